"""What the walkthrough notebooks of this folder share: their size, the samples they draw, and their glue.

Each notebook imports this module in its first code cell (Jupyter starts the kernel in this folder, so
``import _setup`` finds it; ``python notebooks/01_quickstart.py`` finds it beside the script). It holds no
algorithm: the maths is in ``balpm`` (batch redundancy in :mod:`balpm.diversity`); here are only the notebooks'
settings and the few helpers that tie library calls together for one figure or one table.

``BALPM_NOTEBOOK_MODE`` (read once, at import) is ``quick`` (the default: the sample embedded in balpm, small
whole-prompt-group samples of it, a few minutes per notebook on a busy 2-core CPU) or ``full`` (whole datasets
from the data folder and the paper's number of seeds). ``tests/test_notebooks.py`` executes all three notebooks in
quick mode.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from balpm.data import PreferencePool
    from balpm.embed import PoolEmbeddings

# Size of the walkthroughs: "quick" (default; small samples, a few minutes on a busy 2-core CPU) or "full".
MODE = os.environ.get("BALPM_NOTEBOOK_MODE", "quick").strip().lower()
if MODE not in ("quick", "full"):
    raise ValueError(f"BALPM_NOTEBOOK_MODE must be 'quick' or 'full', not {MODE!r}")
QUICK = MODE == "quick"

# The samples every notebook draws, as balpm.experiment.run_experiment draws them: labelled pairs, then whole
# prompt groups sampled with data seed 0 (quick mode) or everything (full mode). The same texts in every notebook,
# so one embedding cache serves all three. Quick mode reads the real pairs embedded in balpm (`sample:` names: no
# data folder needed, the same pairs on every machine); full mode the whole datasets from the data folder
# ($BALPM_DATA_DIR).
QA, HH = ("sample:qa-feedback", "sample:hh-rlhf:harmless-base") if QUICK else ("qa-feedback", "hh-rlhf")
POOL_PAIRS: dict[str, int | None] = {QA: 240, HH: 150} if QUICK else {QA: None, HH: None}
MAX_LENGTH = 128 if QUICK else 256  # tokens per embedded text (left-truncated: the end of a dialogue is kept)


def setup() -> None:
    """Quiet tqdm's widget warning, size torch's thread pool, and print the mode and the embedding cache.

    On a busy shared CPU one torch thread per process is much faster than oversubscribing the cores (about 10x for
    the small ensemble fits here), so quick mode uses one; ``BALPM_TORCH_THREADS`` overrides (0 keeps torch's own
    default).
    """
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: harmless
    import torch

    from balpm.embed import default_cache_dir

    threads = int(os.environ.get("BALPM_TORCH_THREADS", "1" if QUICK else "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    print(f"mode: {MODE}; torch threads: {torch.get_num_threads()}; embedding cache: {default_cache_dir()}")


# ------------------------------------------------------------------------------------------ 01 quickstart
def pick_both(pool: PreferencePool, emb: PoolEmbeddings, *, initial: int, batch_size: int, n_members: int,
              seed: int = 0) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    """The next batch of BALD and of BAL-PM after the same random initial set and the same ensemble.

    Two learners with one seed draw the same initial set and fit the same ensemble (every random choice is seeded
    by ``(seed, round)``), so only the acquisition differs; this is checked. Returns ``{policy: suggested batch}``
    and the pool's BALD under that shared ensemble.
    """
    from balpm.learner import ActiveLearner
    from balpm.uncertainty import bald

    out = {}
    for policy in ("bald", "bal-pm"):
        learner = ActiveLearner(pool, emb, policy=policy, model_params={"n_members": n_members},
                                batch_size=batch_size, seed=seed)
        learner.initialize(initial)
        out[policy] = (learner, learner.suggest())
    probs = out["bald"][0].member_proba()  # (members, pairs) P(A better than B)
    assert np.allclose(probs, out["bal-pm"][0].member_proba()), "both learners must share one ensemble"
    return {policy: sel for policy, (_, sel) in out.items()}, bald(probs)


def sweep(pool: PreferencePool, emb: PoolEmbeddings, seeds: Iterable[int], **settings: int) -> pd.DataFrame:
    """Mean :func:`balpm.diversity.batch_diversity` per policy over several initial sets (``pick_both`` seeds)."""
    from balpm.diversity import batch_diversity

    rows = []
    for seed in seeds:
        for policy, sel in pick_both(pool, emb, seed=seed, **settings)[0].items():
            rows.append({"seed": seed, "policy": policy, **batch_diversity(sel["row"], emb.prompt, pool.groups)})
    df = pd.DataFrame(rows)
    return df.groupby("policy").mean(numeric_only=True).drop(columns="seed")


def show_maps(pool: PreferencePool, emb: PoolEmbeddings, picks: dict[str, pd.DataFrame], pool_bald: np.ndarray,
              title: str) -> None:
    """One UMAP map of the prompts per batch (the app's cached projection), coloured by BALD, picks as diamonds."""
    from balpm import plots
    from balpm.projection import umap_coords

    coords, index = umap_coords(emb)  # index: pool rows that were projected (all of them here)
    hover = pool.pairs["prompt"].str.slice(0, 100).to_numpy()[index]
    for policy, sel in picks.items():
        mask = np.isin(index, sel["row"].to_numpy())
        fig = plots.feature_space(coords, color=pool_bald[index], hover=hover, highlight_mask=mask,
                                  color_title="BALD", highlight_name=f"{policy} batch")
        n_prompts = len(np.unique(pool.groups[sel["row"]]))
        fig.update_layout(title=f"{title}: {policy} batch, {len(sel)} picks on {n_prompts} distinct prompts",
                          height=450)
        fig.show()
