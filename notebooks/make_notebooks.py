"""Write the walkthrough notebooks of this folder (outputs empty), so they are easy to review and regenerate.

    python notebooks/make_notebooks.py            # (re)write 01_..., 02_..., 03_....ipynb
    python notebooks/make_notebooks.py --check    # exit 1 if a committed notebook differs from this script

Every notebook reads ``BALPM_NOTEBOOK_MODE`` (``quick``, the default, or ``full``) in its first cell. Quick mode
reads the sample embedded in balpm (``sample:`` names, no data folder needed), takes small whole-prompt-group
samples of it (the same in all three notebooks, so the embedding cache is shared) and finishes each notebook in a
few minutes on a busy 2-core CPU; full mode uses whole datasets from the data folder and the paper's number of
seeds. ``tests/test_notebooks.py`` executes all three in quick mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# ------------------------------------------------------------------------------------------------ shared cells
SETUP = '''\
import os

# Size of this walkthrough: "quick" (default; small samples, a few minutes on a busy 2-core CPU) or "full".
MODE = os.environ.get("BALPM_NOTEBOOK_MODE", "quick").strip().lower()
if MODE not in ("quick", "full"):
    raise ValueError(f"BALPM_NOTEBOOK_MODE must be 'quick' or 'full', not {MODE!r}")
QUICK = MODE == "quick"

import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: harmless

import torch

# On a busy shared CPU one torch thread per process is much faster than oversubscribing the cores (about 10x for
# the small ensemble fits here). BALPM_TORCH_THREADS overrides; 0 keeps torch's own default.
TORCH_THREADS = int(os.environ.get("BALPM_TORCH_THREADS", "1" if QUICK else "0"))
if TORCH_THREADS > 0:
    torch.set_num_threads(TORCH_THREADS)

from balpm.embed import default_cache_dir

print(f"mode: {MODE}; torch threads: {torch.get_num_threads()}; embedding cache: {default_cache_dir()}")'''

# The samples every notebook draws: identical texts across notebooks, so embeddings are computed once.
SAMPLES = '''\
import numpy as np

# Pools as balpm.experiment.run_experiment draws them: labelled pairs, then whole prompt groups sampled with
# data seed 0 (quick mode) or everything (full mode). Same texts in every notebook: one embedding cache serves all.
# Quick mode reads the real pairs embedded in balpm (`sample:` names: no data folder needed, the same pairs on
# every machine); full mode the whole datasets from the data folder ($BALPM_DATA_DIR).
QA, HH = ("sample:qa-feedback", "sample:hh-rlhf:harmless-base") if QUICK else ("qa-feedback", "hh-rlhf")
POOL_PAIRS = {QA: 240, HH: 150} if QUICK else {QA: None, HH: None}
MAX_LENGTH = 128 if QUICK else 256   # tokens per embedded text (left-truncated: the end of a dialogue is kept)'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


# ------------------------------------------------------------------------------------------------ 01 quickstart
def quickstart() -> list:
    return [
        md('''
# 01 · Quickstart: why a BAL-PM batch is less redundant than a BALD batch

BAL-PM (Melo, Tigas, Abate & Gal, NeurIPS 2024) chooses which preference pairs a person should label next. Plain
**BALD** ranks pairs by the ensemble's epistemic uncertainty and takes the top *B*; pairs that share a prompt (or
sit in the same corner of the prompt space) tend to be uncertain together, so one batch can spend most of its
labels on one topic. **BAL-PM** adds an entropy bonus over the *prompt* space to BALD and picks greedily, so each
pick makes the next pick near it less attractive.

This notebook loads a real pool, embeds it, fits the ensemble once, and compares the two batches on a UMAP map of
the prompts and with a few numbers. Everything here is the code the app runs (`balpm.learner`, `balpm.plots`).

Set `BALPM_NOTEBOOK_MODE=full` before starting the kernel for whole datasets (the default, `quick`, uses small
samples and takes a few minutes on a laptop CPU).
'''),
        code(SETUP),
        code('''
import pandas as pd
from scipy.spatial.distance import pdist, squareform

from balpm import plots
from balpm.data import format_summary, summarize
from balpm.embed import Embedder, embed_pool
from balpm.experiment import load_labelled_sample
from balpm.learner import ActiveLearner
from balpm.projection import umap_coords
from balpm.uncertainty import bald
'''),
        code(SAMPLES + '''


INITIAL = 16 if QUICK else 64      # random labelled pairs the ensemble is fitted on (the dataset's own labels)
BATCH = 16 if QUICK else 32        # pairs per suggested batch
N_MEMBERS = 3 if QUICK else 5      # ensemble members
SWEEP_SEEDS = range(5)             # initial sets used to check the contrast is not one lucky draw'''),
        md('''
## 1. A real pool: QA-Feedback

AllenAI QA-Feedback: every question has four answers and up to six human pairwise verdicts, so **each prompt
appears up to six times** in the pool. `group` identifies the prompt.
'''),
        code('''
pool = load_labelled_sample(QA, POOL_PAIRS[QA])
print(format_summary(summarize(pool)))
pool.pairs[["group", "prompt", "completion_a", "completion_b", "label"]].head(3)'''),
        md('''
## 2. Embed

One frozen model (MiniLM, 384-d) embeds the prompt alone (the space BAL-PM's entropy term lives in) and
prompt + each completion (the features of the preference model). Vectors are cached on disk by content, so the
other notebooks and the app reuse them.
'''),
        code('''
embedder = Embedder("default", max_length=MAX_LENGTH)
emb = embed_pool(pool, embedder)
print(embedder)
print("embedding stats:", emb.stats)'''),
        md('''
## 3. Fit the ensemble once, pick a batch two ways

Two learners with the same seed draw the same initial labelled set and fit the same ensemble (every random
choice is seeded by `(seed, round)`), so they see the same BALD for every pair: only the acquisition differs.
'''),
        code('''
def pick_both(pool, emb, seed=0):
    """The next batch of BALD and of BAL-PM after the same random initial set and the same ensemble."""
    out = {}
    for policy in ("bald", "bal-pm"):
        learner = ActiveLearner(pool, emb, policy=policy, model_params={"n_members": N_MEMBERS},
                                batch_size=BATCH, seed=seed)
        learner.initialize(INITIAL)
        out[policy] = (learner, learner.suggest())
    probs = out["bald"][0].member_proba()                  # (members, pairs) P(A better than B)
    assert np.allclose(probs, out["bal-pm"][0].member_proba()), "both learners must share one ensemble"
    return {policy: sel for policy, (_, sel) in out.items()}, bald(probs)


picks, pool_bald = pick_both(pool, emb)
cols = ["pick", "row", "uncertainty", "entropy_term", "score", "ratio"]
for policy, sel in picks.items():
    sel = sel.assign(group=pool.groups[sel["row"]], prompt=sel["prompt"].str.slice(0, 60))
    print(f"--- {policy}")
    display(sel[cols + ["group", "prompt"]].head(8))'''),
        md('''
`uncertainty` is BALD in nats, `entropy_term` is $\\beta\\hat H$ at the moment of the pick, `ratio` is the share
of BAL-PM's score that came from uncertainty. With only a few labels the ensemble barely departs from
$P=0.5$, BALD is tiny everywhere and BAL-PM's choice is driven by the entropy term (ratio near 0). The paper
reports the uncertainty share rising as labels accumulate; notebook 02 plots it over rounds.

## 4. How redundant is each batch?

For the prompts of one batch:

- **distinct prompts**: how many different prompt groups the *B* picks cover;
- **picks sharing a prompt**: picks whose prompt another pick of the batch also has (exact repeats);
- **mean pairwise distance**: average Euclidean distance between the picks' prompt embeddings (unit vectors: 0
  is the same prompt, $\\sqrt 2$ is orthogonal);
- **mean nearest-pick distance**: for each pick, the distance to the closest other pick, averaged (near-duplicates
  pull this towards 0).
'''),
        code('''
def batch_diversity(rows, emb, groups):
    """Redundancy of one batch in prompt space (rows: pool row indices of the picks)."""
    x = emb.prompt[np.asarray(rows)]
    g = groups[np.asarray(rows)]
    dist = squareform(pdist(x))
    np.fill_diagonal(dist, np.inf)
    _, counts = np.unique(g, return_counts=True)
    return {
        "distinct prompts": len(counts),
        "picks sharing a prompt": int(counts[counts > 1].sum()),
        "mean pairwise distance": float(pdist(x).mean()),
        "mean nearest-pick distance": float(dist.min(axis=1).mean()),
    }


def diversity_table(pool, emb, picks):
    rows = {policy: batch_diversity(sel["row"], emb, pool.groups) for policy, sel in picks.items()}
    return pd.DataFrame(rows).T.rename_axis("policy")


qa_table = diversity_table(pool, emb, picks)
qa_table.round(3)'''),
        md('''
## 5. The two batches on a map of the prompt space

UMAP of the prompt embeddings (the same cached projection as the app's *Feature space* page). Colour is each
pair's BALD; diamonds are the picks. Repeated prompts sit on one spot, so a batch that spends several labels on
one question shows fewer diamonds than picks.
'''),
        code('''
def show_maps(pool, emb, picks, pool_bald, title):
    coords, index = umap_coords(emb)             # index: pool rows that were projected (all of them here)
    hover = pool.pairs["prompt"].str.slice(0, 100).to_numpy()[index]
    for policy, sel in picks.items():
        mask = np.isin(index, sel["row"].to_numpy())
        fig = plots.feature_space(coords, color=pool_bald[index], hover=hover, highlight_mask=mask,
                                  color_title="BALD", highlight_name=f"{policy} batch")
        n_prompts = len(np.unique(pool.groups[sel["row"]]))
        fig.update_layout(title=f"{title}: {policy} batch, {len(sel)} picks on {n_prompts} distinct prompts",
                          height=450)
        fig.show()


show_maps(pool, emb, picks, pool_bald, "QA-Feedback")'''),
        md('''
## 6. Not one lucky draw

The same comparison after several different random initial sets (each its own ensemble).
'''),
        code('''
def sweep(pool, emb, seeds):
    rows = []
    for seed in seeds:
        for policy, sel in pick_both(pool, emb, seed)[0].items():
            rows.append({"seed": seed, "policy": policy, **batch_diversity(sel["row"], emb, pool.groups)})
    df = pd.DataFrame(rows)
    return df.groupby("policy").mean(numeric_only=True).drop(columns="seed")


qa_sweep = sweep(pool, emb, SWEEP_SEEDS)
display(qa_sweep.round(3))
print(f"QA-Feedback, mean over {len(SWEEP_SEEDS)} initial sets: BALD covers "
      f"{qa_sweep.loc['bald', 'distinct prompts']:.1f} prompts per batch of {BATCH}, "
      f"BAL-PM {qa_sweep.loc['bal-pm', 'distinct prompts']:.1f}")
assert qa_sweep.loc["bal-pm", "distinct prompts"] > qa_sweep.loc["bald", "distinct prompts"]'''),
        md('''
## 7. The same on HH-RLHF

In HH-RLHF almost every prompt appears once, so no batch repeats a prompt and the contrast can only show in the
distances: BAL-PM's picks are a little further apart. QA-Feedback, with its six pairs per prompt, is where BALD's
redundancy is plainest.
'''),
        code('''
hh_pool = load_labelled_sample(HH, POOL_PAIRS[HH])
hh_emb = embed_pool(hh_pool, embedder)
print(format_summary(summarize(hh_pool)).splitlines()[1], "| embedding stats:", hh_emb.stats)
hh_picks, hh_bald = pick_both(hh_pool, hh_emb)
display(diversity_table(hh_pool, hh_emb, hh_picks).round(3))
show_maps(hh_pool, hh_emb, hh_picks, hh_bald, "HH-RLHF")
hh_sweep = sweep(hh_pool, hh_emb, SWEEP_SEEDS)
hh_sweep.round(3)'''),
        md('''
## What to take away

- Both policies use the same ensemble and the same BALD; BAL-PM only changes *how the batch is assembled*.
- On QA-Feedback the BALD batch spends many of its labels on a few questions (picks sharing a prompt, nearest-pick
  distance near 0); BAL-PM covers more distinct prompts.
- With few labels BALD is nearly flat and BAL-PM's entropy term decides; notebook 02 shows how the balance shifts
  over rounds and whether the spread-out batches buy a better model per label.
'''),
    ]


# ------------------------------------------------------------------------------------------------ 02 the paper
def reproduce() -> list:
    return [
        md('''
# 02 · Reproduce the paper: simulated active learning on HH-RLHF and QA-Feedback

A *simulated* run hides the dataset's labels and reveals them only for the pairs a policy acquires (the dataset is
the oracle). We compare **BAL-PM**, **random** and **BALD** (and, with `BALPM_NOTEBOOK_STOCHASTIC=1`, the
stochastic BALDs of Kirsch et al. 2023) by the test log-likelihood of the preference model against the number of
labels, then read off how many labels BAL-PM saves.

Quick mode (default) runs tiny pools, few rounds and 2 seeds: it checks that the pipeline runs and shows the
shape of the outputs, **not** the paper's effect sizes (its test sets hold a few dozen pairs). Set
`BALPM_NOTEBOOK_MODE=full` for whole datasets, 20 rounds and 5 seeds (30 runs: 3 minutes on a quiet 2-core CPU
once the embeddings are cached; embedding all of HH-RLHF first takes about 6 minutes; runs already finished with
the same configuration are not run again).
'''),
        code(SETUP),
        code('''
import inspect
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from balpm import plots
from balpm import uncertainty as unc
from balpm.acquisition import balpm_select, entropy_term, get_policy
from balpm.experiment import ExperimentConfig, compare_runs, labels_saved_table, load_run, run_experiment'''),
        md('''
## The method, equation by equation

**Preference model.** Each of $E$ ensemble members is an MLP reward head $r_e$ on a frozen embedding of
prompt $x$ + completion $y$ (Bradley–Terry):

$$P_e(A \\succ B \\mid x) = \\sigma\\big(r_e(x, y_A) - r_e(x, y_B)\\big) =: p_e .$$

**Uncertainty (BALD).** With $\\mathcal H[p] = -p\\log p - (1-p)\\log(1-p)$ (nats) and
$\\bar p = \\frac1E\\sum_e p_e$,

$$U(x) = \\underbrace{\\mathcal H[\\bar p]}_{\\text{predictive}} \\;-\\;
\\underbrace{\\tfrac1E \\textstyle\\sum_e \\mathcal H[p_e]}_{\\text{expected (aleatoric)}} ,$$

the mutual information between the label and the model: high where the members disagree, not where they agree
the pair is a coin flip. In code:
'''),
        code('''
print(inspect.getsource(unc.bald))

# the same quantity written out from the equation, on random member probabilities
p = np.random.default_rng(0).uniform(0.01, 0.99, size=(5, 7))      # (members, pairs)
H = lambda q: -q * np.log(q) - (1 - q) * np.log(1 - q)
by_hand = H(p.mean(axis=0)) - H(p).mean(axis=0)
assert np.allclose(unc.bald(p), by_hand)
print("BALD of 7 random pairs:", np.round(unc.bald(p), 4))'''),
        md('''
**Prompt entropy (the BAL-PM bonus).** Let $r_k(x)$ be the distance from $x$'s prompt embedding to its $k$-th
nearest other prompt (pool and acquired together, $k = 13$), and $n(x)$ the number of *acquired* prompts within
$r_k(x)$ of $x$ (already labelled, plus those picked earlier in this batch). The Kozachenko–Leonenko estimate of
the entropy of the acquired prompts, read at $x$, is

$$\\hat H(x) = \\log\\big(2\\, r_k(x) + \\varepsilon\\big) - \\frac{\\psi\\big(n(x) + 1\\big)}{d},$$

with $\\psi$ the digamma function ($d = 1$, $\\varepsilon = 10^{-4}$). It is high where few prompts have been
acquired nearby. In code ($\\beta$ is applied by the caller):
'''),
        code('''
print(inspect.getsource(entropy_term))

from scipy.special import digamma
r, n = np.array([0.2, 0.2, 0.8]), np.array([0, 3, 3])
assert np.allclose(entropy_term(r, n), np.log(2 * r + 1e-4) - digamma(n + 1))
print("H_hat for (r_k, n) =", list(zip(r, n)), "->", np.round(entropy_term(r, n), 3))'''),
        md('''
**The BAL-PM score and batch.** Picks are greedy:

$$x^\\star = \\arg\\max_{x \\in \\text{pool}} \\; U(x) + \\beta\\,\\hat H(x), \\qquad \\beta = 0.01,$$

then $x^\\star$ counts as acquired ($n$ grows by one for the points whose ball holds it) and the next pick is
taken, $B$ times. $U$ is fixed within a batch; only $\\hat H$ changes. The *ratio* $U/(U + \\beta\\hat H)$ of a pick
says how much of its score came from uncertainty (the paper's entropy-versus-uncertainty figure).

A toy: two tight clusters of prompts, the first slightly more uncertain. BALD spends the whole batch on cluster
0; BAL-PM alternates, because every pick lowers $\\hat H$ around it.
'''),
        code('''
rng = np.random.default_rng(0)
centres = np.array([[1.0, 0.0], [0.0, 1.0]])
prompts = np.concatenate([c + 0.01 * rng.normal(size=(20, 2)) for c in centres]).astype(np.float32)
cluster = np.repeat([0, 1], 20)
u = np.where(cluster == 0, 0.020, 0.015) + 0.001 * rng.random(40)

toy_bald = np.argsort(-u)[:6]
toy_balpm = balpm_select(prompts, np.empty((0, 2)), u, batch_size=6, beta=0.01, k=5)
print("clusters of the BALD picks:  ", cluster[toy_bald])
print("clusters of the BAL-PM picks:", cluster[toy_balpm])'''),
        md('''
## Runs

`run_experiment` samples whole prompt groups, splits them into train and test (no prompt on both sides), labels a
random initial set, then for every round fits the ensemble, evaluates on the test split, and acquires a batch with
the policy. Each run writes a folder (`config.json`, `metrics.csv`, `acquired.csv`).
'''),
        code(SAMPLES + '''

STOCHASTIC = os.environ.get("BALPM_NOTEBOOK_STOCHASTIC", "0").strip().lower() in ("1", "true", "yes")
POLICIES = ["random", "bald", "bal-pm"] + (["softmax-bald", "power-bald", "softrank-bald"] if STOCHASTIC else [])
SEEDS = [0, 1] if QUICK else [0, 1, 2, 3, 4]
RUN = dict(
    max_length=MAX_LENGTH,
    initial=16 if QUICK else 64,
    batch_size=16 if QUICK else 64,
    rounds=4 if QUICK else 20,
    n_members=3 if QUICK else 5,
    hidden=(64,),            # balpm.model's default head (the paper's is (2048, 256): see benchmarks/README.md)
    max_epochs=15,
    test_fraction=0.2,
    data_seed=0,             # same pool sample, A/B coin and test set for every seed
)
RUNS_DIR = Path(tempfile.mkdtemp(prefix="balpm-nb02-")) if QUICK else Path("..").resolve() / "runs" / "notebook-02"
print("policies:", POLICIES, "| seeds:", SEEDS, "| run folders under", RUNS_DIR)'''),
        code('''
def finished_with(cfg):
    """True when cfg's folder already holds a finished run of exactly this configuration (full mode reruns)."""
    path = cfg.out_dir() / "config.json"
    if not path.exists():
        return False
    info = json.loads(path.read_text())
    return info.get("config") == json.loads(json.dumps(cfg.to_dict())) and bool(info["resolved"].get("finished"))


run_dirs = []
t_all = time.perf_counter()
for dataset, max_pairs in POOL_PAIRS.items():
    for policy in POLICIES:
        for seed in SEEDS:
            cfg = ExperimentConfig(dataset=dataset, max_pairs=max_pairs, policy=policy, seed=seed,
                                   out=str(RUNS_DIR / f"{dataset.replace(':', '-')}-{policy}-seed{seed}"), **RUN)
            t0 = time.perf_counter()
            if not finished_with(cfg):
                run_experiment(cfg)
            run_dirs.append(cfg.out_dir())
            final = load_run(cfg.out_dir())[1].query("split == 'test'").iloc[-1]
            print(f"{dataset:30s} {policy:14s} seed {seed}: {int(final.n_labeled):4d} labels, "
                  f"test log-lik {final.log_likelihood:.4f}, acc {final.accuracy:.3f} "
                  f"({time.perf_counter() - t0:.1f}s)")
print(f"{len(run_dirs)} runs in {time.perf_counter() - t_all:.0f}s")
info = load_run(run_dirs[0])[0]["resolved"]
print("first run: train", info["n_train"], "pairs, test", info["n_test"], "pairs")'''),
        md('''
## Learning curves

Mean test log-likelihood (nats; higher is better) over seeds, ± one standard error, against the number of
labelled pairs: `balpm.experiment.compare_runs` then `balpm.plots.learning_curves`, exactly as the app's
*Diagnostics* page and `balpm compare` draw them.
'''),
        code('''
curves = compare_runs(run_dirs)
for dataset in POOL_PAIRS:
    fig = plots.learning_curves(curves[curves["dataset"] == dataset], metric="log_likelihood")
    fig.update_layout(title=f"{dataset}: test log-likelihood", height=400)
    fig.show()

last = curves[curves["split"] == "test"].sort_values("n_labeled").groupby(["dataset", "policy"]).tail(1)
last[["dataset", "policy", "n_labeled", "n_seeds", "log_likelihood_mean", "log_likelihood_se",
      "accuracy_mean", "accuracy_se"]].round(4).reset_index(drop=True)'''),
        md('''
## Labels saved

How many labels each policy needs to reach the reference policy's final mean test log-likelihood, against the
reference's own count: `balpm.experiment.labels_saved_table`. A policy counts from the point where its mean curve
rises to the target and *stays* there at every later round (linear interpolation at that last upward crossing); a
curve that touches the target early and falls back, or ends below it, has not reached it.
The `note` column flags a reference whose curve rose by less than two standard errors: the number is then noise.
'''),
        code('''
table = labels_saved_table(curves, references=("random", "bald"))
display(table[["dataset", "policy", "reference", "target", "reference_labels", "labels_needed", "labels_saved",
               "percent_saved", "note"]].round(3))
plots.labels_saved_bar(table).update_layout(height=400)'''),
        md('''
## Entropy versus uncertainty over rounds

For BAL-PM's picks, the median and interquartile range of $U/(U+\\beta\\hat H)$ per round
(`balpm.plots.ratio_over_rounds`). Near 0 the prompt-entropy term chooses; as the ensemble learns, BALD grows and
takes a larger share. In quick mode the ensemble has seen few labels and the ratio stays near 0.

$\hat H$ estimates a *differential* entropy, so $\beta\hat H$ is negative where acquired prompts are dense; the
ratio then leaves $[0, 1]$ (negative, or above 1 when the score is smaller than $U$). The figure's axis shows
$[0, 1]$; the cell prints how many picks fall outside.
'''),
        code('''
for dataset in POOL_PAIRS:
    acquired = []
    for d in run_dirs:
        info, _, acq = load_run(d)
        if info["config"]["dataset"] == dataset and info["config"]["policy"] == "bal-pm":
            acquired.append(acq[acq["round"] > 0])
    acquired = pd.concat(acquired, ignore_index=True)
    ratio = acquired["ratio"]
    outside = ((ratio < 0) | (ratio > 1)).mean()
    print(f"{dataset}: median ratio per round {ratio.groupby(acquired['round']).median().round(4).to_dict()}; "
          f"{outside:.0%} of the picks have a ratio outside [0, 1]")
    fig = plots.ratio_over_rounds(acquired)
    fig.update_layout(title=f"{dataset}: BAL-PM, uncertainty / score of the picks", height=350)
    fig.show()'''),
        md('''
## Reading these results

- The paper's claim is about large pools and hundreds to thousands of labels (`full` mode); quick mode's test sets
  of a few dozen pairs make its curves and labels-saved numbers noise, and are shown to prove the pipeline runs.
- For a report of many runs use the CLI: `balpm compare <run folders> --out report/` writes the same figures,
  `curves.csv`, `labels_saved.csv` and a `summary.md`.
'''),
    ]


# ------------------------------------------------------------------------------------------------ 03 by hand
def by_hand() -> list:
    return [
        md('''
# 03 · Label by hand: the human-in-the-loop learner from code

The app's labelling loop without the app: the learner suggests a batch, a person gives verdicts (A better, B
better, tie, skip), the verdicts go to a durable `LabelStore` (SQLite), the model is refitted, the session is saved
and loaded in a fresh learner that continues exactly where it stopped, and the labels are exported as a TRL-style
dataset (`prompt`, `chosen`, `rejected`).
'''),
        code(SETUP),
        code('''
import tempfile
import time
from pathlib import Path

import pandas as pd

from balpm.embed import Embedder, embed_pool
from balpm.experiment import ExperimentConfig, load_experiment_pools
from balpm.learner import ActiveLearner
from balpm.store import LabelStore'''),
        code(SAMPLES + '''


DATASET = HH
INITIAL = 16 if QUICK else 64      # random pairs labelled first, so there is a model to ask
BATCH = 8                          # pairs per suggestion (a person's sitting)
MODEL = {"n_members": 3 if QUICK else 5}
WORK = (Path(tempfile.mkdtemp(prefix="balpm-nb03-")) if QUICK
        else Path("..").resolve() / "runs" / "notebook-03" / time.strftime("%Y%m%d-%H%M%S"))
WORK.mkdir(parents=True, exist_ok=True)
print("session folder:", WORK)'''),
        md('''
## Pool, embeddings, learner

Held-out prompts (a test split by prompt group) let us score the model on prompts it never saw. (In quick mode,
with a few dozen labels, it stays near chance: log-likelihood $\approx -\log 2$.)
'''),
        code('''
train, test, _ = load_experiment_pools(ExperimentConfig(dataset=DATASET, max_pairs=POOL_PAIRS[DATASET],
                                                        test_fraction=0.2, data_seed=0))
embedder = Embedder("default", max_length=MAX_LENGTH)
emb_train, emb_test = embed_pool(train, embedder), embed_pool(test, embedder)
print(f"{len(train)} pairs to label from, {len(test)} held out")

learner = ActiveLearner(train, emb_train, policy="bal-pm", model_params=MODEL, batch_size=BATCH, seed=0)
store = LabelStore(WORK / "labels.sqlite")
truth = dict(zip(train.pairs["id"], train.pairs["label"]))   # the dataset's own human verdicts (1 = A better)


def verdict(pair_id):
    return "a" if truth[pair_id] == 1 else "b"


# Round 0: a random starting set. Its verdicts come from the dataset; they go into the store like any label.
for pid in learner.initialize(INITIAL):
    store.record(pid, verdict(pid), annotator="dataset", round=0, request_id=f"init:{pid}", batch_id="init")
learner.sync_from_store(store)      # the store is the source of truth of a labelling session
learner.fit()
print(learner, "| test:", {k: round(v, 4) for k, v in learner.evaluate(test, emb_test).items()})'''),
        md('''
## Round 1: suggest a batch, give verdicts

Each row is one pair to judge. In the app the two completions are shown side by side (in a seeded random order);
here we print the end of the dialogue and the two final replies.
'''),
        code('''
batch = learner.suggest()
batch_id = f"round-{int(batch['round'].iloc[0])}"
for _, row in batch.iterrows():
    print(f"[{row.pick}] {row.id}  BALD {row.uncertainty:.2e}  beta*H {row.entropy_term:.4f}")
    print("   prompt …", row.prompt[-160:].replace("\\n", " "))
    print("   A:", row.completion_a[:120].replace("\\n", " "))
    print("   B:", row.completion_b[:120].replace("\\n", " "))'''),
        code('''
# A person would type one verdict per pair: "a", "b", "tie" or "skip".
# Here the dataset's own verdicts stand in for the typing; we call one pair a tie and skip another,
# to show how those are kept: decided (never offered again) but not labels for the model.
ids = batch["id"].tolist()
typed = {pid: verdict(pid) for pid in ids[:-2]}
typed[ids[-2]] = "tie"
typed[ids[-1]] = "skip"

for pid, v in typed.items():
    # request_id: one token per displayed pair, so a double click or a rerun of this cell records nothing twice
    res = store.record(pid, v, annotator="notebook", round=int(batch["round"].iloc[0]),
                       request_id=f"{batch_id}:{pid}", batch_id=batch_id)
    assert res.recorded, res
print("replaying a click:", store.record(ids[0], typed[ids[0]], annotator="notebook",
                                         request_id=f"{batch_id}:{ids[0]}").status)
store.events().tail(len(typed))[["event_id", "pair_id", "verdict", "label", "annotator", "round"]]'''),
        md('''
## Refit, save, load in a fresh learner, continue

The learner's picks depend only on its seed and the labelled set, so a saved learner loaded in a new process
suggests exactly the batch the running one would. Ties and skips count as *decided* but give the model no label.
'''),
        code('''
learner.sync_from_store(store)
learner.fit()
print(f"labels for the model: {learner.n_labeled_}, decided pairs: {int(learner.decided_mask.sum())}")
assert learner.n_labeled_ == INITIAL + BATCH - 2 and learner.decided_mask.sum() == INITIAL + BATCH
print("test:", {k: round(v, 4) for k, v in learner.evaluate(test, emb_test).items()})

learner.save(WORK / "learner")
store.set_meta("session", {"pool": DATASET, "policy": learner.policy, "seed": learner.seed})
next_batch = learner.suggest()

fresh = ActiveLearner.load(WORK / "learner", train, emb_train)
assert not fresh.is_stale                            # the saved ensemble came back: no refit needed
fresh_batch = fresh.suggest()
assert fresh_batch["id"].tolist() == next_batch["id"].tolist()

# Even without the saved model, the store alone rebuilds the same state (the refit is seeded by (seed, round)).
rebuilt = ActiveLearner(train, emb_train, **learner.get_params())
rebuilt.sync_from_store(store)
assert rebuilt.suggest()["id"].tolist() == next_batch["id"].tolist()
assert not set(next_batch["id"]) & set(typed)      # decided pairs (the tie and the skip too) are not offered again
print("the loaded learner and the one rebuilt from the store both suggest the same next batch:")
next_batch[["pick", "id", "uncertainty", "entropy_term", "ratio"]]'''),
        code('''
# Round 2, labelled in the fresh learner (all verdicts from the dataset this time).
batch_id = f"round-{int(fresh_batch['round'].iloc[0])}"
for pid in fresh_batch["id"]:
    store.record(pid, verdict(pid), annotator="notebook", round=int(fresh_batch["round"].iloc[0]),
                 request_id=f"{batch_id}:{pid}", batch_id=batch_id)
fresh.sync_from_store(store)
fresh.fit()
print(fresh, "| test:", {k: round(v, 4) for k, v in fresh.evaluate(test, emb_test).items()})
fresh.save(WORK / "learner")
fresh.acquired().groupby("round").agg(pairs=("id", "size"), model_labels=("label", "count"))'''),
        md('''
## Export a TRL-style dataset

`LabelStore.export_trl` writes the a/b verdicts as JSON lines with `prompt`, `chosen`, `rejected` (ties and skips
left out), the format of TRL's reward trainer: `datasets.load_dataset("json", data_files=...)` reads it.
'''),
        code('''
path = WORK / "preferences.trl.jsonl"
n = store.export_trl(train, path)
trl = pd.read_json(path, lines=True)
print(f"{n} preference pairs written to {path}")
assert list(trl.columns) == ["prompt", "chosen", "rejected"] and len(trl) == n == len(store.label_map())

# Every exported 'chosen' is the completion the verdict preferred (here: the dataset's human choice).
by_id = train.pairs.set_index("id")
for pid, row in zip(store.label_map(), trl.itertuples()):
    pair = by_id.loc[pid]
    assert row.chosen == (pair.completion_a if pair.label == 1 else pair.completion_b)
store.close()
trl.assign(prompt=trl["prompt"].str.slice(-80), chosen=trl["chosen"].str.slice(0, 60),
           rejected=trl["rejected"].str.slice(0, 60)).head()'''),
    ]


# ------------------------------------------------------------------------------------------------ writing
NOTEBOOKS = {
    "01_quickstart.ipynb": quickstart,
    "02_reproduce_the_paper.ipynb": reproduce,
    "03_label_by_hand.ipynb": by_hand,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` with stable cell ids (so regenerating an unchanged notebook changes no byte)."""
    cells = NOTEBOOKS[name]()
    stem = name.split("_")[0]
    for i, cell in enumerate(cells):
        cell["id"] = f"nb{stem}-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        text = render(name)
        path = HERE / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print("wrote", path)
    if stale:
        print("out of date (run python notebooks/make_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
