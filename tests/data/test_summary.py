"""What a user reads before labelling: summaries and their text (balpm.data.summary)."""

from __future__ import annotations

from balpm.data import PreferencePool, format_summary, summarize


def test_summary_text(hh: PreferencePool) -> None:
    d = summarize(hh)
    assert d["pairs"] == len(hh) and d["dropped_total"] == 64
    assert d["lengths"]["prompt"]["p5"] <= d["lengths"]["prompt"]["p50"] <= d["lengths"]["prompt"]["p95"]
    text = format_summary(d)
    assert f"\npairs: {len(hh)}\n" in text and "identical completions: 36" in text
    assert d["source_pairs"] == len(hh) and not d["is_subset"] and "subset" not in text
    assert "dropped while reading the source file: 64 (" in text


def test_summary_of_a_subset_says_drops_count_the_source_file(hh: PreferencePool) -> None:
    sample = hh.sample_groups(500, seed=0)
    d = summarize(sample)
    assert d["pairs"] == len(sample) <= 500 and d["source_pairs"] == len(hh) and d["is_subset"]
    assert d["dropped_total"] == 64  # the file's drops: validation ran once, on the whole file
    assert d["labelled"] == int(sample.pairs["label"].notna().sum())  # everything else is the subset's own
    text = format_summary(d)
    assert f"\npairs: {len(sample)}\n" in text
    assert ("dropped while reading the source file: 64 (" in text
            and f"the file gave {len(hh)} pairs, this pool is a subset of {len(sample)}" in text)
    built = PreferencePool(sample.pairs.copy(), name="built")  # no source file: nothing dropped, not a subset
    b = summarize(built)
    assert b["dropped_total"] == 0 and b["source_pairs"] == len(sample) and not b["is_subset"]
