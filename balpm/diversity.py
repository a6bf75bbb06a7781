"""How redundant a batch of picks is in prompt space (pure functions on arrays).

BAL-PM's case against plain BALD is that a top-*B* batch spends several labels on one prompt, or on prompts that
sit close together, while BAL-PM's entropy bonus spreads the batch out. These numbers say by how much, for any
batch of any policy: notebook 01 compares BALD's and BAL-PM's batches with them.

``prompt`` is the pool's ``(pairs, d)`` prompt-embedding matrix (``PoolEmbeddings.prompt``: unit vectors, so a
distance of 0 is the same prompt and ``sqrt(2)`` an orthogonal one), ``groups`` the ``(pairs,)`` prompt-group
ids (``PreferencePool.groups``: pairs of one prompt share a group), ``rows`` the pool row indices of the picks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.spatial.distance import pdist, squareform

__all__ = ["batch_diversity", "diversity_table"]


def batch_diversity(rows: ArrayLike, prompt: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Redundancy of one batch in prompt space.

    Parameters
    ----------
    rows : pool row indices of the batch's picks (at least two).
    prompt : ``(pairs, d)`` prompt embeddings of the whole pool.
    groups : ``(pairs,)`` prompt-group id of every pair.

    Returns
    -------
    dict with ``distinct prompts`` (prompt groups the picks cover), ``picks sharing a prompt`` (picks whose
    group another pick also has: exact repeats), ``mean pairwise distance`` (Euclidean, between the picks'
    prompt vectors) and ``mean nearest-pick distance`` (each pick's distance to its closest other pick,
    averaged: near-duplicates pull it towards 0).
    """
    rows = np.asarray(rows)
    if rows.ndim != 1 or len(rows) < 2:
        raise ValueError(f"batch_diversity needs the row indices of at least two picks, got shape {rows.shape}")
    x = prompt[rows]
    g = np.asarray(groups)[rows]
    dist = squareform(pdist(x))
    np.fill_diagonal(dist, np.inf)
    _, counts = np.unique(g, return_counts=True)
    return {
        "distinct prompts": len(counts),
        "picks sharing a prompt": int(counts[counts > 1].sum()),
        "mean pairwise distance": float(pdist(x).mean()),
        "mean nearest-pick distance": float(dist.min(axis=1).mean()),
    }


def diversity_table(batches: Mapping[str, ArrayLike], prompt: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """:func:`batch_diversity` of several batches side by side: one row per batch (index ``policy``)."""
    rows = {name: batch_diversity(picks, prompt, groups) for name, picks in batches.items()}
    return pd.DataFrame(rows).T.rename_axis("policy")
