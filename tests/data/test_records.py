"""Record schemas: HH transcripts, QA-Feedback, summarize, trl/pairs; drops and errors per record (balpm.data.records)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balpm.cli import main
from balpm.data import (
    PoolFormatError,
    PreferencePool,
    format_summary,
    join_prompt_completion,
    load_pool,
    pair_id,
    summarize,
)

from data_helpers import GOOD, HH_FILE, HH_SAMPLE, QA_RECORD, TRL, head_gzip, write_lines


def _check_hh_pairs_against_source(path: Path, pool: PreferencePool) -> int:
    """Every kept pair of an HH file: texts exactly as in the source (``prompt + chosen`` is the chosen transcript,
    leading space and all), id and drop rules on the stripped replies, embedded text as before (stripped reply)."""
    by_id = pool.pairs.set_index("id")
    embedded = dict(zip(pool.ids, zip(pool.pair_texts("a"), pool.pair_texts("b"))))
    seen, leading = set(), 0
    for line in gzip.open(path, "rt", encoding="utf-8"):
        r = json.loads(line)
        cut = [t.rfind("\n\nAssistant:") + len("\n\nAssistant:") for t in (r["chosen"], r["rejected"])]
        prompt, chosen, rejected = r["chosen"][: cut[0]], r["chosen"][cut[0]:], r["rejected"][cut[1]:]
        pid = pair_id(prompt, chosen.strip(), rejected.strip())
        if chosen.strip() == rejected.strip() or r["rejected"][: cut[1]] != prompt or not chosen.strip() \
                or not rejected.strip() or min(cut) < len("\n\nAssistant:"):
            assert pid not in by_id.index
            continue
        if pid in seen:  # a duplicate line: the first one is kept
            continue
        seen.add(pid)
        row = by_id.loc[pid]
        a_is_chosen = row["label"] == 1
        a, b = (chosen, rejected) if a_is_chosen else (rejected, chosen)
        assert (row["prompt"], row["completion_a"], row["completion_b"]) == (prompt, a, b)
        assert row["prompt"] + (row["completion_a"] if a_is_chosen else row["completion_b"]) == r["chosen"]
        assert row["prompt"] + (row["completion_b"] if a_is_chosen else row["completion_a"]) == r["rejected"]
        # what is embedded is what it was before the texts kept their spaces: the stripped reply
        assert embedded[pid] == (join_prompt_completion(prompt, a.strip()), join_prompt_completion(prompt, b.strip()))
        leading += chosen.startswith(" ")
    assert seen == set(pool.ids)
    return leading


def test_hh_split_on_real_rows(sample_data: Path, tmp_path: Path) -> None:
    f = head_gzip(sample_data / HH_SAMPLE, tmp_path / "hh.jsonl.gz", 60)
    pool = load_pool(f)
    assert pool.report.format == "hh-rlhf"
    assert len(pool) + pool.report.dropped_total == 60
    assert _check_hh_pairs_against_source(f, pool) > len(pool) // 2  # most replies start with a space: kept


def test_hh_texts_are_the_source_texts_in_every_full_split(shared_data: Path) -> None:
    for f in sorted((shared_data / "hh-rlhf").glob("*.jsonl.gz")):
        pool = load_pool(f)
        assert len(pool) > 1000
        assert _check_hh_pairs_against_source(f, pool) == len(pool), f  # every published reply starts with a space


def test_hh_drop_rules_and_duplicates(sample_data: Path, tmp_path: Path) -> None:
    with gzip.open(sample_data / HH_SAMPLE, "rt", encoding="utf-8") as fh:
        first = fh.readline()
    bad = [
        {"chosen": "\n\nHuman: hi\n\nAssistant: same", "rejected": "\n\nHuman: hi\n\nAssistant: same"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: x", "rejected": "\n\nHuman: ho\n\nAssistant: y"},
        {"chosen": "\n\nHuman: hi there", "rejected": "\n\nHuman: hi\n\nAssistant: y"},
        {"chosen": "\n\nHuman: hi\n\nAssistant:  ", "rejected": "\n\nHuman: hi\n\nAssistant: y"},
    ]
    f = head_gzip(sample_data / HH_SAMPLE, tmp_path / "hh.jsonl.gz", 3, [first] + [json.dumps(x) for x in bad])
    pool = load_pool(f)
    assert pool.report.dropped == {
        "duplicate pair": 1, "identical completions": 1, "prompts differ": 1, "no assistant turn": 1,
        "empty completion": 1,
    }
    assert len(pool) == 3


def test_qa_feedback_counts_and_order(qa: PreferencePool, shared_data: Path) -> None:
    raw = json.loads((shared_data / "qa-feedback" / "dev_feedback.json").read_text(encoding="utf-8"))
    assert len(qa) == 2616 and qa.report.dropped == {"tie": 384}
    assert (qa.pairs["prompt"] == qa.pairs["group"]).all()
    assert qa.pairs.groupby("group").size().max() <= 6
    q0 = raw[0]
    rows = qa.pairs[qa.pairs["group"] == q0["question"]]
    verdict = {pair: v for pair, v in zip([(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)], q0["preference"])}
    shown = [tuple(map(int, p.split(","))) for p in rows["pair"]]
    assert [tuple(sorted(p)) for p in shown] == [p for p, v in verdict.items() if v != 0]
    for (i, j), (_, row) in zip(shown, rows.iterrows()):
        assert row["completion_a"] == q0[f"prediction {i}"] and row["completion_b"] == q0[f"prediction {j}"]
        preferred = min(i, j) if verdict[tuple(sorted((i, j)))] == 1 else max(i, j)
        assert row["label"] == (1 if preferred == i else 0)
    assert json.loads(rows["passages"].iloc[0]) == q0["passages"]
    # A/B is a seeded coin, not source order (the annotators preferred the first prediction 61% of the time)
    assert 0.46 < qa.pairs["label"].astype(float).mean() < 0.54
    swapped = [int(p.split(",")[0]) > int(p.split(",")[1]) for p in qa.pairs["pair"]]
    assert 0.45 < np.mean(swapped) < 0.55
    other = load_pool("qa-feedback", seed=1)
    assert other.ids.tolist() == qa.ids.tolist() and other.pairs["pair"].tolist() != qa.pairs["pair"].tolist()


def test_qa_feedback_string_literals(tmp_path: Path) -> None:
    rec = {
        "question": "Who?", "passages": "[['Title', 'text']]", "gold": "g",
        **{f"prediction {i}": f"answer {i}" for i in range(1, 5)},
        "feedback": {}, "preference": "[1, 2, 0, 0, 1, 2]",
    }
    f = tmp_path / "qa.json"
    f.write_text(json.dumps([rec]), encoding="utf-8")
    pool = load_pool(f)
    assert len(pool) == 4 and pool.report.dropped == {"tie": 2}
    firsts = {(1, 2): 1, (1, 3): 0, (2, 4): 1, (3, 4): 0}  # 1 when the lower-numbered prediction won
    for pair, label in zip(pool.pairs["pair"], pool.pairs["label"]):
        i, j = map(int, pair.split(","))
        assert label == (firsts[(min(i, j), max(i, j))] if i < j else 1 - firsts[(min(i, j), max(i, j))])
    assert json.loads(pool.pairs["passages"].iloc[0]) == [["Title", "text"]]
    rec["preference"] = [1, 2, 3, 0, 1, 2]
    f.write_text(json.dumps([rec]), encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.path, e.value.line, e.value.field) == (str(f), 1, "preference")


def summarize_record(info: dict, texts: tuple[str, str], choice: int, worker: str = "w1") -> dict:
    return {
        "info": info,
        "summaries": [{"text": texts[0], "policy": "sup1", "note": None}, {"text": texts[1], "policy": "ref", "note": "ok"}],
        "choice": choice, "worker": worker, "batch": "batch3", "split": "train", "extra": {"confidence": 7},
    }


def test_summarize_from_feedback(tmp_path: Path) -> None:
    post = {"id": "t3_abc", "post": "My cat ate my homework.", "title": "Help", "subreddit": "pets"}
    article = {"id": "cnn-1", "article": "Rain fell.", "title": "Weather", "site": "cnn"}
    f = write_lines(tmp_path / "batch3.json", [
        summarize_record(post, (" cat ate it", " homework gone"), 0),
        summarize_record(post, (" cat ate it", " homework gone"), 1, worker="w2"),
        summarize_record(article, (" it rained", " weather"), 1),
    ])
    pool = load_pool(f)
    p = pool.pairs
    assert pool.report.format == "summarize"
    assert p["id"].tolist() == ["t3_abc-0", "t3_abc-1", "cnn-1-0"]
    assert p["prompt"].iloc[0] == "SUBREDDIT: r/pets\n\nTITLE: Help\n\nPOST: My cat ate my homework.\n\nTL;DR:"
    assert p["prompt"].iloc[2] == "Article:\nRain fell.\n\nTL;DR:"
    assert p["label"].tolist() == [1, 0, 0]
    assert p["completion_a"].iloc[0] == " cat ate it"  # order kept: A = summaries[0]
    assert p["group"].tolist() == ["t3_abc", "t3_abc", "cnn-1"]
    assert p["worker"].tolist() == ["w1", "w2", "w1"]
    assert p["policy_a"].iloc[0] == "sup1" and p["policy_b"].iloc[0] == "ref" and p["confidence"].iloc[0] == 7
    assert pool.pair_texts("a")[0].endswith("TL;DR: cat ate it")
    bad = summarize_record(post, ("x", "y"), 2)
    write_lines(f, [summarize_record(post, ("x", "y"), 0), bad])
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.line, e.value.field) == (2, "choice")
    del post["title"]
    write_lines(f, [summarize_record(post, ("x", "y"), 0)])
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.line, e.value.field) == (1, "info.title")


def test_coin_balanced_and_deterministic(hh: PreferencePool, tmp_path: Path) -> None:
    frac = hh.pairs["label"].mean()
    assert 0.47 < frac < 0.53
    f = write_lines(tmp_path / "trl.jsonl", TRL)
    p0, p0b, p1 = load_pool(f, seed=0), load_pool(f, seed=0), load_pool(f, seed=1)
    pd.testing.assert_frame_equal(p0.pairs, p0b.pairs)
    assert p0.pairs["id"].tolist() == p1.pairs["id"].tolist()  # ids never depend on the coin
    assert (p0.pairs["label"] != p1.pairs["label"]).any()
    for p in (p0, p1):
        chosen = np.where(p.labels == 1, p.pairs["completion_a"], p.pairs["completion_b"])
        assert all(c.startswith("good") for c in chosen)
        assert 60 < p.pairs["label"].sum() < 140
    # the same pair is shown the same way round in a subset of the dataset
    sub = load_pool("hh-rlhf:harmless-base")
    merged = sub.pairs.merge(hh.pairs, on="id", suffixes=("", "_all"))
    assert len(merged) == len(sub) and (merged["completion_a"] == merged["completion_a_all"]).all()


BAD_CASES = {
    "malformed JSON": ([GOOD, '{"prompt": "p", '], 2, None, "malformed JSON"),
    "missing field": ([GOOD, {"prompt": "p2", "completion_a": "a"}], 2, "completion_b", "missing"),
    "empty prompt": ([GOOD, {**GOOD, "prompt": "  "}], 2, "prompt", "empty"),
    "empty completion": ([GOOD, GOOD | {"prompt": "q", "completion_b": ""}], 2, "completion_b", "empty"),
    "not text": ([GOOD | {"prompt": 3}], 1, "prompt", "expected text"),
    "label 2": ([GOOD, GOOD | {"prompt": "q", "label": 2}], 2, "label", "expected one of"),
    "label text": ([GOOD | {"label": "yes"}], 1, "label", "expected one of"),
    "duplicate id": ([GOOD | {"id": "x"}, GOOD | {"id": "y", "prompt": "q"}, GOOD | {"id": "x", "prompt": "r"}], 3, "id", "duplicate id 'x'"),
    "missing chosen": ([{"prompt": "p", "rejected": "r"}], 1, "chosen", "missing"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_jsonl(case: str, tmp_path: Path) -> None:
    lines, line, fld, msg = BAD_CASES[case]
    f = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    err = e.value
    assert (err.path, err.line, err.field) == (str(f), line, fld)
    assert msg in str(err)
    where = f"{f}:{line}:" + (f" field '{fld}':" if fld else "")
    assert str(err).startswith(where)


def test_duplicates_without_ids_are_dropped(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "d.jsonl", [GOOD, GOOD, GOOD | {"label": 0}, GOOD | {"completion_b": "a"}])
    pool = load_pool(f)
    assert len(pool) == 1
    assert pool.report.dropped == {"duplicate pair": 1, "conflicting duplicate": 1, "identical completions": 1}


def test_summarize_empty_summary_is_dropped_counted_and_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    post = {"id": "t3_abc", "post": "My cat ate my homework.", "title": "Help", "subreddit": "pets"}
    f = write_lines(tmp_path / "batch7.json", [
        summarize_record(post, (" cat ate it", " homework gone"), 0),
        summarize_record(post, (" cat ate it", ""), 1),  # a policy produced nothing: the published files have these
        summarize_record(post, ("  ", " gone"), 1),
        summarize_record(post, (" the cat", " homework gone"), 1),
    ])
    pool = load_pool(f)
    assert len(pool) == 2 and pool.report.dropped == {"empty completion": 2}
    assert pool.report.first_dropped == {"empty completion": (str(f), 2)}
    d = summarize(pool)
    assert d["first_dropped"] == {"empty completion": {"path": str(f), "line": 2}}
    assert "dropped while reading the source file: 2 (empty completion: 2, first at line 2)" in format_summary(d)
    # strict: any drop is a located error
    with pytest.raises(PoolFormatError) as e:
        load_pool(f, strict=True)
    assert (e.value.path, e.value.line, e.value.field) == (str(f), 2, "summaries[1].text")
    assert "empty completion" in str(e.value) and "strict" in str(e.value)
    assert main(["validate", str(f)]) == 0 and "first at line 2" in capsys.readouterr().out
    assert main(["validate", "--strict", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}:2: field 'summaries[1].text':" in err and "Traceback" not in err


def test_every_reader_records_where_each_drop_reason_first_happened(shared_data: Path, tmp_path: Path) -> None:
    bad = [
        {"chosen": "\n\nHuman: hi\n\nAssistant: x", "rejected": "\n\nHuman: ho\n\nAssistant: y"},
        {"chosen": "\n\nHuman: hi\n\nAssistant:  ", "rejected": "\n\nHuman: hi\n\nAssistant: y"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: ", "rejected": "\n\nHuman: hi\n\nAssistant: z"},
    ]
    f = head_gzip(shared_data / HH_FILE, tmp_path / "hh.jsonl.gz", 3, [json.dumps(x) for x in bad])
    pool = load_pool(f)
    assert pool.report.dropped == {"prompts differ": 1, "empty completion": 2}
    assert pool.report.first_dropped == {"prompts differ": (str(f), 4), "empty completion": (str(f), 5)}
    with pytest.raises(PoolFormatError) as e:
        load_pool(f, strict=True)
    assert e.value.line == 4 and "prompts differ" in str(e.value)
    # QA-Feedback: a blank prediction drops the three pairs it is in (model output, like a summary), ties counted
    qa = tmp_path / "qa.json"
    qa.write_text(json.dumps([QA_RECORD, QA_RECORD | {"question": "Why?", "prediction 3": " ", "preference": [0, 1, 1, 2, 1, 2]}]),
                  encoding="utf-8")
    pool = load_pool(qa)
    assert len(pool) == 6 + 2 and pool.report.dropped == {"tie": 1, "empty completion": 3}
    assert pool.report.first_dropped == {"tie": (str(qa), 2), "empty completion": (str(qa), 2)}
    assert not pool.pairs["pair"].iloc[6:].str.contains("3").any()
    # a folder: the first drop names its file relative to the folder
    folder = tmp_path / "many"
    folder.mkdir()
    write_lines(folder / "a.jsonl", TRL[:2])
    write_lines(folder / "b.jsonl", [TRL[0], TRL[0]])
    text = format_summary(summarize(load_pool(folder)))
    assert "duplicate pair: 2, first at b.jsonl:1" in text
    with pytest.raises(PoolFormatError) as e:
        load_pool(folder, strict=True)
    assert (e.value.path, e.value.line) == (str(folder / "b.jsonl"), 1)
