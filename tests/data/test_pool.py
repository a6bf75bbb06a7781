"""The pool type: group splits, accessors, the text embedded for prompt + completion (balpm.data.pool)."""

from __future__ import annotations

import numpy as np
import pytest

from balpm.data import PreferencePool, join_prompt_completion


def test_split_by_group_never_shares_a_prompt(qa: PreferencePool) -> None:
    train, test = qa.split_by_group(0.2, seed=3)
    assert len(train) + len(test) == len(qa)
    assert not set(train.pairs["group"]) & set(test.pairs["group"])
    assert abs(len(test) / len(qa) - 0.2) < 0.02
    again = qa.split_by_group(0.2, seed=3)[1]
    assert again.ids.tolist() == test.ids.tolist()
    assert qa.split_by_group(0.2, seed=4)[1].ids.tolist() != test.ids.tolist()
    small = qa.sample_groups(300, seed=0)
    assert 280 <= len(small) <= 300
    sizes = qa.pairs.groupby("group").size()
    got = small.pairs.groupby("group").size()
    assert got.to_dict() == sizes[got.index].to_dict()  # whole groups only
    assert qa.sample_groups(10_000) is qa


def test_pool_accessors(qa: PreferencePool) -> None:
    sub = qa.subset(np.array([5, 2]))
    assert sub.ids.tolist() == qa.ids[[5, 2]].tolist() and sub.pairs.index.tolist() == [0, 1]
    mask = np.zeros(len(qa), dtype=bool)
    mask[:3] = True
    assert len(qa.subset(mask)) == 3
    assert qa.labels.dtype == np.float64 and qa.ids.dtype.kind == "U"
    assert qa.prompt_texts()[0] == qa.pairs["prompt"].iloc[0]
    assert qa.pair_texts("b")[0] == qa.pairs["prompt"].iloc[0] + " " + qa.pairs["completion_b"].iloc[0]
    with pytest.raises(ValueError):
        qa.pair_texts("c")


def test_join_prompt_completion() -> None:
    assert join_prompt_completion("Q:", "A") == "Q: A"
    assert join_prompt_completion("Q: ", "A") == "Q: A"
    assert join_prompt_completion("TL;DR:", " A") == "TL;DR: A"
    assert join_prompt_completion("Q\n", "A") == "Q\nA"
