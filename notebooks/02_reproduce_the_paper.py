# %% [markdown]
# # 02 · Reproduce the paper: simulated active learning on HH-RLHF and QA-Feedback
#
# A *simulated* run hides the dataset's labels and reveals them only for the pairs a policy acquires (the dataset is
# the oracle). We compare **BAL-PM**, **random** and **BALD** (and, with `BALPM_NOTEBOOK_STOCHASTIC=1`, the
# stochastic BALDs of Kirsch et al. 2023) by the test log-likelihood of the preference model against the number of
# labels, then read off how many labels BAL-PM saves.
#
# Quick mode (default) runs tiny pools, few rounds and 2 seeds: it checks that the pipeline runs and shows the
# shape of the outputs, **not** the paper's effect sizes (its test sets hold a few dozen pairs). Set
# `BALPM_NOTEBOOK_MODE=full` for whole datasets, 20 rounds and 5 seeds (30 runs: 3 minutes on a quiet 2-core CPU
# once the embeddings are cached; embedding all of HH-RLHF first takes about 6 minutes; runs already finished with
# the same configuration are not run again).

# %%
from _setup import MAX_LENGTH, POOL_PAIRS, QUICK, setup

setup()  # BALPM_NOTEBOOK_MODE (quick or full), torch threads; the pools every notebook draws: notebooks/_setup.py

# %%
import inspect
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import display

from balpm import plots
from balpm import uncertainty as unc
from balpm.acquisition import balpm_select, entropy_term
from balpm.check import embed_labelled, learnability_check, random_labelled_ids
from balpm.config import AcquisitionConfig, EmbeddingConfig, EnsembleConfig, PoolConfig
from balpm.embed import Embedder
from balpm.experiment import ExperimentConfig, load_labelled_sample, run_experiment, run_finished
from balpm.report import compare_runs, labels_saved_table, load_run

# %% [markdown]
# ## First: is there anything to learn?
#
# Before paying for labels (or for the runs below), `balpm.check.learnability_check` answers from a few labels in
# hand, here `CHECK_LABELS` random pairs of each pool with the pool's own labels (what `balpm check POOL --labels N`
# does). It cross-validates the preference model and three simple baselines by prompt group, fits a learning curve
# $LL(n) = c - a\,n^{-b}$, forecasts it at the budget (the whole pool here) and says one of four verdicts, with the
# numbers behind it:
#
# - *no usable signal*: no model beats a constant predictor, and the labels rule out a useful gain (the
#   preference model's gain over the constant plus two standard errors is below 0.01 nats); the curves of every
#   policy below then stay flat and their differences are noise;
# - *too few labels to tell*: no model shows a signal yet, but a useful gain cannot be ruled out either; the
#   report says about how many labels would tell (at 128-256 labels this is the usual answer on pools whose
#   ceiling is small, `benchmarks/README.md`, "Learnability check");
# - *learning and still rising*: labels still buy model quality at the budget, the case where a policy can save
#   labels;
# - *saturating: few labels left to save*: the forecast is near its ceiling, so little is left for any policy to
#   save.
#
# In quick mode 64 labels are too few to tell on either pool.

# %%
CHECK_LABELS = 64 if QUICK else 256
embedder = Embedder("default", max_length=MAX_LENGTH)
for dataset, max_pairs in POOL_PAIRS.items():
    pool = load_labelled_sample(dataset, max_pairs)  # the pool the runs below sample from
    ids = random_labelled_ids(pool, CHECK_LABELS, seed=0)
    report = learnability_check(pool, embed_labelled(pool, ids, embedder), ids, seed=0)
    print(f"--- {dataset}\n{report.summary()}\n")
    fig = plots.learnability_curve(report)
    fig.update_layout(title=f"{dataset}: learnability check on {CHECK_LABELS} labels", height=380)
    fig.show()

# %% [markdown]
# ## The method, equation by equation
#
# **Preference model.** Each of $E$ ensemble members is an MLP reward head $r_e$ on a frozen embedding of
# prompt $x$ + completion $y$ (Bradley–Terry):
#
# $$P_e(A \succ B \mid x) = \sigma\big(r_e(x, y_A) - r_e(x, y_B)\big) =: p_e .$$
#
# **Uncertainty (BALD).** With $\mathcal H[p] = -p\log p - (1-p)\log(1-p)$ (nats) and
# $\bar p = \frac1E\sum_e p_e$,
#
# $$U(x) = \underbrace{\mathcal H[\bar p]}_{\text{predictive}} \;-\;
# \underbrace{\tfrac1E \textstyle\sum_e \mathcal H[p_e]}_{\text{expected (aleatoric)}} ,$$
#
# the mutual information between the label and the model: high where the members disagree, not where they agree
# the pair is a coin flip. In code:

# %%
print(inspect.getsource(unc.bald))

# the same quantity written out from the equation, on random member probabilities
p = np.random.default_rng(0).uniform(0.01, 0.99, size=(5, 7))      # (members, pairs)
H = lambda q: -q * np.log(q) - (1 - q) * np.log(1 - q)
by_hand = H(p.mean(axis=0)) - H(p).mean(axis=0)
assert np.allclose(unc.bald(p), by_hand)
print("BALD of 7 random pairs:", np.round(unc.bald(p), 4))

# %% [markdown]
# **Prompt entropy (the BAL-PM bonus).** Let $r_k(x)$ be the distance from $x$'s prompt embedding to its $k$-th
# nearest other prompt (pool and acquired together, $k = 13$), and $n(x)$ the number of *acquired* prompts within
# $r_k(x)$ of $x$ (already labelled, plus those picked earlier in this batch). The Kozachenko–Leonenko estimate of
# the entropy of the acquired prompts, read at $x$, is
#
# $$\hat H(x) = \log\big(2\, r_k(x) + \varepsilon\big) - \frac{\psi\big(n(x) + 1\big)}{d},$$
#
# with $\psi$ the digamma function ($d = 1$, $\varepsilon = 10^{-4}$). It is high where few prompts have been
# acquired nearby. In code ($\beta$ is applied by the caller):

# %%
print(inspect.getsource(entropy_term))

from scipy.special import digamma
r, n = np.array([0.2, 0.2, 0.8]), np.array([0, 3, 3])
assert np.allclose(entropy_term(r, n), np.log(2 * r + 1e-4) - digamma(n + 1))
print("H_hat for (r_k, n) =", list(zip(r, n)), "->", np.round(entropy_term(r, n), 3))

# %% [markdown]
# **The BAL-PM score and batch.** Picks are greedy:
#
# $$x^\star = \arg\max_{x \in \text{pool}} \; U(x) + \beta\,\hat H(x), \qquad \beta = 0.01,$$
#
# then $x^\star$ counts as acquired ($n$ grows by one for the points whose ball holds it) and the next pick is
# taken, $B$ times. $U$ is fixed within a batch; only $\hat H$ changes. The *ratio* $U/(U + \beta\hat H)$ of a pick
# says how much of its score came from uncertainty (the paper's entropy-versus-uncertainty figure).
#
# A toy: two tight clusters of prompts, the first slightly more uncertain. BALD spends the whole batch on cluster
# 0; BAL-PM alternates, because every pick lowers $\hat H$ around it.

# %%
rng = np.random.default_rng(0)
centres = np.array([[1.0, 0.0], [0.0, 1.0]])
prompts = np.concatenate([c + 0.01 * rng.normal(size=(20, 2)) for c in centres]).astype(np.float32)
cluster = np.repeat([0, 1], 20)
u = np.where(cluster == 0, 0.020, 0.015) + 0.001 * rng.random(40)

toy_bald = np.argsort(-u)[:6]
toy_balpm = balpm_select(prompts, np.empty((0, 2)), u, batch_size=6, beta=0.01, k=5)
print("clusters of the BALD picks:  ", cluster[toy_bald])
print("clusters of the BAL-PM picks:", cluster[toy_balpm])

# %% [markdown]
# ## Runs
#
# `run_experiment` samples whole prompt groups, splits them into train and test (no prompt on both sides), labels a
# random initial set, then for every round fits the ensemble, evaluates on the test split, and acquires a batch with
# the policy. Each run writes a folder (`config.json`, `metrics.csv`, `acquired.csv`).
#
# **The paper's configuration** is the named preset `paper` (`balpm run --preset paper`, or
# `EnsembleConfig.preset("paper")` and `AcquisitionConfig.preset("paper", policy)` in the library): (2048, 256) tanh
# heads with N(0, 0.01²) weights, AdamW at lr 3e-5 to early stopping (patience 3), β = 0.01, k = 13, d = 1. Its
# heads cost about 40x the default's compute and need ~30 epochs at that learning rate, so the runs below use it
# only with `BALPM_NOTEBOOK_PRESET=paper` (then every run is the paper's configuration); by default they use
# balpm's own model defaults (head (64,), lr 1e-3, 15 epochs; why: `benchmarks/README.md`, "Ensemble training"),
# which since issue 12 train each member on a bootstrap resample of its labels (`EnsembleConfig.bootstrap`; the
# only change in the model study whose learning curve did not fall with more labels on any dataset:
# `benchmarks/README.md`, "Model study"). The paper preset keeps plain members, as the paper trains them.
# BAL-PM's β stays 0.01 in both; `AcquisitionConfig("bal-pm", {"beta": "auto"})` (`--beta auto`) rescales it
# every round so BALD and $\beta\hat H$ have the same spread (better than 0.01 on hh-rlhf:harmless-base, worse on
# qa-feedback: "β rules" in the same file).

# %%
PAPER = os.environ.get("BALPM_NOTEBOOK_PRESET", "").strip().lower() == "paper"
print("paper preset:", EnsembleConfig.preset("paper"), AcquisitionConfig.preset("paper").params, sep="\n  ")
print("the runs below use:", "the paper preset" if PAPER else "balpm's model defaults")

# %%
STOCHASTIC = os.environ.get("BALPM_NOTEBOOK_STOCHASTIC", "0").strip().lower() in ("1", "true", "yes")
POLICIES = ["random", "bald", "bal-pm"] + (["softmax-bald", "power-bald", "softrank-bald"] if STOCHASTIC else [])
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
RUN = dict(
    embedding=EmbeddingConfig(max_length=MAX_LENGTH),
    initial=16 if QUICK else 64,
    batch_size=16 if QUICK else 64,
    rounds=4 if QUICK else 20,
    # balpm's default model (head (64,), bootstrapped members), or the paper's preset (2048, 256) with
    # BALPM_NOTEBOOK_PRESET=paper
    ensemble=EnsembleConfig.preset("paper") if PAPER else EnsembleConfig(n_members=3 if QUICK else 5, hidden=(64,),
                                                                         max_epochs=15),
)
RUNS_DIR = Path(tempfile.mkdtemp(prefix="balpm-nb02-")) if QUICK else Path("..").resolve() / "runs" / "notebook-02"
print("policies:", POLICIES, "| seeds:", SEEDS, "| run folders under", RUNS_DIR)

# %%
run_dirs = []
t_all = time.perf_counter()
for dataset, max_pairs in POOL_PAIRS.items():
    for policy in POLICIES:
        for seed in SEEDS:
            # data_seed=0: the same pool sample, A/B coin and test set for every seed
            pool = PoolConfig(dataset=dataset, max_pairs=max_pairs, test_fraction=0.2, data_seed=0)
            acquisition = AcquisitionConfig.preset("paper", policy) if PAPER else AcquisitionConfig(policy)
            cfg = ExperimentConfig(pool, acquisition=acquisition, seed=seed,
                                   out=str(RUNS_DIR / f"{dataset.replace(':', '-')}-{policy}-seed{seed}"), **RUN)
            t0 = time.perf_counter()
            if not run_finished(cfg):  # a full-mode rerun skips the runs already finished
                run_experiment(cfg)
            run_dirs.append(cfg.out_dir())
            final = load_run(cfg.out_dir())[1].query("split == 'test'").iloc[-1]
            print(f"{dataset:30s} {policy:14s} seed {seed}: {int(final.n_labeled):4d} labels, "
                  f"test log-lik {final.log_likelihood:.4f}, acc {final.accuracy:.3f} "
                  f"({time.perf_counter() - t0:.1f}s)")
print(f"{len(run_dirs)} runs in {time.perf_counter() - t_all:.0f}s")
info = load_run(run_dirs[0])[0]["resolved"]
print("first run: train", info["n_train"], "pairs, test", info["n_test"], "pairs")

# %% [markdown]
# ## Learning curves
#
# Mean test log-likelihood (nats; higher is better) over seeds, ± one standard error, against the number of
# labelled pairs: `balpm.report.compare_runs` then `balpm.plots.learning_curves`, exactly as the app's
# *Diagnostics* page and `balpm compare` draw them.

# %%
curves = compare_runs(run_dirs)
for dataset in POOL_PAIRS:
    fig = plots.learning_curves(curves[curves["dataset"] == dataset], metric="log_likelihood")
    fig.update_layout(title=f"{dataset}: test log-likelihood", height=400)
    fig.show()

last = curves[curves["split"] == "test"].sort_values("n_labeled").groupby(["dataset", "policy"]).tail(1)
last[["dataset", "policy", "n_labeled", "n_seeds", "log_likelihood_mean", "log_likelihood_se",
      "accuracy_mean", "accuracy_se"]].round(4).reset_index(drop=True)

# %% [markdown]
# ## Labels saved
#
# How many labels each policy needs to reach the reference policy's final mean test log-likelihood, against the
# reference's own count: `balpm.report.labels_saved_table`. A policy counts from the point where its mean curve
# rises to the target and *stays* there at every later round (linear interpolation at that last upward crossing); a
# curve that touches the target early and falls back, or ends below it, has not reached it.
# The `note` column flags a reference whose curve rose by less than two standard errors: the number is then noise.

# %%
table = labels_saved_table(curves, references=("random", "bald"))
display(table[["dataset", "policy", "reference", "target", "reference_labels", "labels_needed", "labels_saved",
               "percent_saved", "note"]].round(3))
plots.labels_saved_bar(table).update_layout(height=400)

# %% [markdown]
# ## Entropy versus uncertainty over rounds
#
# For BAL-PM's picks, the median and interquartile range of $U/(U+\beta\hat H)$ per round
# (`balpm.plots.ratio_over_rounds`). Near 0 the prompt-entropy term chooses; as the ensemble learns, BALD grows and
# takes a larger share. In quick mode the ensemble has seen few labels and the ratio stays near 0.
#
# $\hat H$ estimates a *differential* entropy, so $\beta\hat H$ is negative where acquired prompts are dense; the
# ratio then leaves $[0, 1]$ (negative, or above 1 when the score is smaller than $U$). The figure's axis shows
# $[0, 1]$; the cell prints how many picks fall outside.

# %%
for dataset in POOL_PAIRS:
    acquired = []
    for d in run_dirs:
        info, _, acq = load_run(d)
        cfg = ExperimentConfig.from_dict(info["config"])
        if cfg.pool.dataset == dataset and cfg.acquisition.policy == "bal-pm":
            acquired.append(acq[acq["round"] > 0])
    acquired = pd.concat(acquired, ignore_index=True)
    ratio = acquired["ratio"]
    outside = ((ratio < 0) | (ratio > 1)).mean()
    print(f"{dataset}: median ratio per round {ratio.groupby(acquired['round']).median().round(4).to_dict()}; "
          f"{outside:.0%} of the picks have a ratio outside [0, 1]")
    fig = plots.ratio_over_rounds(acquired)
    fig.update_layout(title=f"{dataset}: BAL-PM, uncertainty / score of the picks", height=350)
    fig.show()

# %% [markdown]
# ## Reading these results
#
# - The paper's claim is about large pools and hundreds to thousands of labels (`full` mode); quick mode's test sets
#   of a few dozen pairs make its curves and labels-saved numbers noise, and are shown to prove the pipeline runs.
# - For a report of many runs use the CLI: `balpm compare <run folders> --out report/` writes the same figures,
#   `curves.csv`, `labels_saved.csv` and a `summary.md`.
