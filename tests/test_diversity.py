"""balpm.diversity: the redundancy numbers of a batch, on prompt geometries whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from balpm.diversity import batch_diversity, diversity_table

# Four unit prompt vectors: rows 0 and 1 are the same prompt (group 7), rows 2 and 3 two orthogonal others.
PROMPT = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
GROUPS = np.array([7, 7, 8, 9])


def test_a_batch_that_repeats_a_prompt():
    d = batch_diversity([0, 1, 2], PROMPT, GROUPS)
    assert d["distinct prompts"] == 2
    assert d["picks sharing a prompt"] == 2              # rows 0 and 1
    assert d["mean pairwise distance"] == pytest.approx((0 + np.sqrt(2) + np.sqrt(2)) / 3)
    assert d["mean nearest-pick distance"] == pytest.approx((0 + 0 + np.sqrt(2)) / 3)


def test_a_batch_of_distinct_orthogonal_prompts():
    d = batch_diversity(np.array([0, 2, 3]), PROMPT, GROUPS)
    assert d == {"distinct prompts": 3, "picks sharing a prompt": 0,
                 "mean pairwise distance": pytest.approx(np.sqrt(2)),
                 "mean nearest-pick distance": pytest.approx(np.sqrt(2))}


def test_rows_may_be_a_pandas_column():
    """A learner's suggested batch gives its rows as a Series (``sel["row"]``); its index is not the pool row."""
    rows = pd.Series([2, 3], index=[10, 11])
    assert batch_diversity(rows, PROMPT, GROUPS)["distinct prompts"] == 2


def test_one_pick_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least two picks"):
        batch_diversity([1], PROMPT, GROUPS)


def test_diversity_table_one_row_per_batch():
    table = diversity_table({"bald": [0, 1], "bal-pm": [0, 2]}, PROMPT, GROUPS)
    assert table.index.name == "policy" and list(table.index) == ["bald", "bal-pm"]
    assert table.loc["bald", "picks sharing a prompt"] == 2 and table.loc["bal-pm", "distinct prompts"] == 2
