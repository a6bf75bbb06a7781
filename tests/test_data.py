"""Tests of the data layer on small subsets of the real files and hand-written bad inputs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balpm.cli import main
from balpm.data import (
    PoolFormatError,
    PreferencePool,
    data_dir,
    format_summary,
    join_prompt_completion,
    load_pool,
    pair_id,
    summarize,
)

HH_FILE = "hh-rlhf/harmless-base-test.jsonl.gz"


def head_gzip(src: Path, dst: Path, n: int, extra: list[str] | None = None) -> Path:
    """Write the first ``n`` lines of a real gzip JSONL file (plus extra lines) to a temporary gzip file."""
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(n)]
    lines += [x if x.endswith("\n") else x + "\n" for x in extra or []]
    with gzip.open(dst, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    return dst


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hh(shared_data: Path) -> PreferencePool:
    return load_pool("hh-rlhf")


@pytest.fixture(scope="module")
def qa(shared_data: Path) -> PreferencePool:
    return load_pool("qa-feedback")


# ------------------------------------------------------------------------------------------------- built-ins


def test_hh_builtin_counts_and_speed(shared_data: Path) -> None:
    t0 = time.perf_counter()
    pool = load_pool("hh-rlhf")
    elapsed = time.perf_counter() - t0
    assert elapsed < 4.0  # target well under 2 s; slack for a shared machine
    # 8,552 rows: 36 chosen == rejected, 17 with different prompts, 11 with a blank final reply
    assert pool.report.dropped == {"identical completions": 36, "prompts differ": 17, "empty completion": 11}
    assert len(pool) == 8552 - 64 == pool.report.kept
    assert pool.pairs["id"].is_unique
    assert list(pool.pairs.columns[:7]) == ["id", "prompt", "completion_a", "completion_b", "label", "source", "group"]
    assert str(pool.pairs["label"].dtype) == "Int8"
    assert set(pool.pairs["source"]) == {
        "hh-rlhf:harmless-base", "hh-rlhf:helpful-base", "hh-rlhf:helpful-online", "hh-rlhf:helpful-rejection-sampled"
    }
    one = load_pool("hh-rlhf:helpful-online")
    assert len(one) == (pool.pairs["source"] == "hh-rlhf:helpful-online").sum()


def test_hh_split_on_real_rows(sample_data: Path, tmp_path: Path) -> None:
    f = head_gzip(sample_data / HH_FILE, tmp_path / "hh.jsonl.gz", 60)
    pool = load_pool(f)
    raw = [json.loads(x) for x in gzip.open(f, "rt", encoding="utf-8")]
    assert pool.report.format == "hh-rlhf"
    assert len(pool) + pool.report.dropped_total == 60
    by_id = pool.pairs.set_index("id")
    rebuilt = 0
    for r in raw:
        prompt = r["chosen"][: r["chosen"].rindex("\n\nAssistant:") + len("\n\nAssistant:")]
        chosen, rejected = r["chosen"][len(prompt):].strip(), r["rejected"][len(prompt):].strip()
        pid = pair_id(prompt, chosen, rejected)
        if chosen == rejected or not r["rejected"].startswith(prompt) or not chosen or not rejected:
            assert pid not in by_id.index
            continue
        row = by_id.loc[pid]
        assert row["prompt"] == prompt and prompt.endswith("\n\nAssistant:")
        a_is_chosen = row["label"] == 1
        assert (row["completion_a"], row["completion_b"]) == ((chosen, rejected) if a_is_chosen else (rejected, chosen))
        # the text embedded for prompt + completion rebuilds the published transcript
        if r["chosen"] == prompt + " " + chosen:
            assert join_prompt_completion(prompt, chosen) == r["chosen"]
            rebuilt += 1
    assert rebuilt > len(pool) // 2


def test_hh_drop_rules_and_duplicates(sample_data: Path, tmp_path: Path) -> None:
    with gzip.open(sample_data / HH_FILE, "rt", encoding="utf-8") as fh:
        first = fh.readline()
    bad = [
        {"chosen": "\n\nHuman: hi\n\nAssistant: same", "rejected": "\n\nHuman: hi\n\nAssistant: same"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: x", "rejected": "\n\nHuman: ho\n\nAssistant: y"},
        {"chosen": "\n\nHuman: hi there", "rejected": "\n\nHuman: hi\n\nAssistant: y"},
        {"chosen": "\n\nHuman: hi\n\nAssistant:  ", "rejected": "\n\nHuman: hi\n\nAssistant: y"},
    ]
    f = head_gzip(sample_data / HH_FILE, tmp_path / "hh.jsonl.gz", 3, [first] + [json.dumps(x) for x in bad])
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


def test_builtin_needs_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared_data: Path) -> None:
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path / "nowhere"))
    assert data_dir() == tmp_path / "nowhere"
    with pytest.raises(PoolFormatError, match="BALPM_DATA_DIR"):
        load_pool("hh-rlhf")
    monkeypatch.delenv("BALPM_DATA_DIR")
    assert data_dir().resolve() == shared_data.resolve()
    with pytest.raises(PoolFormatError, match="unknown hh-rlhf split"):
        load_pool("hh-rlhf:nope")
    with pytest.raises(PoolFormatError, match="no such file or built-in"):
        load_pool(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------------------------------- summarize


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


# ------------------------------------------------------------------------------------------------- generic files

TRL = [{"prompt": f"question {i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(200)]


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


def test_readers_agree(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p1", "completion_a": "a1", "completion_b": "b1", "label": 1, "topic": "x"},
        {"prompt": "p2", "completion_a": "a2", "completion_b": "b2", "label": None, "topic": "y"},
        {"prompt": "p2", "completion_a": "a3", "completion_b": "b3", "label": 0, "topic": "z"},
    ]
    df = pd.DataFrame(rows)
    df["label"] = df["label"].astype("Int8")
    paths = [write_lines(tmp_path / "p.jsonl", rows), tmp_path / "p.csv", tmp_path / "p.parquet", tmp_path / "p.json"]
    df.to_csv(paths[1], index=False)
    df.to_parquet(paths[2])
    paths[3].write_text(json.dumps(rows), encoding="utf-8")
    for path in paths:
        pool = load_pool(path)
        assert pool.labels.tolist()[0] == 1.0 and np.isnan(pool.labels[1]) and pool.labels[2] == 0.0, path
        assert pool.pairs["completion_a"].tolist() == ["a1", "a2", "a3"]
        assert pool.pairs["topic"].tolist() == ["x", "y", "z"]
        assert pool.pairs["group"].iloc[1] == pool.pairs["group"].iloc[2] != pool.pairs["group"].iloc[0]
        assert pool.pairs["source"].iloc[0] == path.name
    s = summarize(load_pool(paths[0]))
    assert (s["pairs"], s["labelled"], s["unlabelled"], s["a_preferred"]) == (3, 2, 1, 1)
    assert (s["repeated_prompt_groups"], s["pairs_in_repeated_groups"]) == (1, 2)
    no_label = write_lines(tmp_path / "u.jsonl", [{k: v for k, v in r.items() if k != "label"} for r in rows])
    assert load_pool(no_label).pairs["label"].isna().all()


def test_hf_save_to_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(TRL[:5]).save_to_disk(str(tmp_path / "ds"))
    pool = load_pool(tmp_path / "ds")
    assert len(pool) == 5 and pool.report.format == "trl"
    assert pool.ids.tolist() == load_pool(write_lines(tmp_path / "t.jsonl", TRL[:5])).ids.tolist()


def test_folder_of_files(sample_data: Path, tmp_path: Path) -> None:
    head_gzip(sample_data / HH_FILE, tmp_path / "a.jsonl.gz", 5)
    write_lines(tmp_path / "b.v2.jsonl", TRL[:3])
    pool = load_pool(tmp_path)
    assert len(pool) == 8 and set(pool.pairs["source"]) == {"a.jsonl.gz", "b.v2.jsonl"}
    assert pool.report.format == "hh-rlhf+trl"


# ------------------------------------------------------------------------------------------------- bad input

GOOD = {"prompt": "p", "completion_a": "a", "completion_b": "b", "label": 1}
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


def test_non_utf8_bytes(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b'{"prompt": "p", "completion_a": "a", "completion_b": "b"}\n'
                  b'{"prompt": "p", "completion_a": "caf\xe9", "completion_b": "b"}\n')
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.line, e.value.field) == (2, "completion_a") and "UTF-8" in str(e.value)
    c = tmp_path / "bad.csv"
    c.write_bytes(b"prompt,completion_a,completion_b\np,a,b\nq,a,\xff\xfe\n")
    with pytest.raises(PoolFormatError) as e:
        load_pool(c)
    assert (e.value.path, e.value.line, e.value.field) == (str(c), 2, "completion_b")


def test_bad_csv_and_json_list(tmp_path: Path) -> None:
    c = tmp_path / "p.csv"
    c.write_text("prompt,completion_a,completion_b,label\np,a,b,1\nq,a,b,0\nr,a,b,5\n", encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(c)
    assert (e.value.line, e.value.field) == (3, "label")
    c.write_text("prompt,completion_a,completion_b\np,a,b\n,a,b\n", encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(c)
    assert (e.value.line, e.value.field) == (2, "prompt")
    j = tmp_path / "p.json"
    j.write_text(json.dumps([GOOD, GOOD | {"prompt": "q", "completion_a": None}]), encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(j)
    assert (e.value.path, e.value.line, e.value.field) == (str(j), 2, "completion_a")


def test_duplicates_without_ids_are_dropped(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "d.jsonl", [GOOD, GOOD, GOOD | {"label": 0}, GOOD | {"completion_b": "a"}])
    pool = load_pool(f)
    assert len(pool) == 1
    assert pool.report.dropped == {"duplicate pair": 1, "conflicting duplicate": 1, "identical completions": 1}


# ------------------------------------------------------------------------------------------------- pool API


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


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_lines(tmp_path / "good.jsonl", [GOOD, GOOD | {"prompt": "q", "label": None}])
    assert main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "pairs: 2" in out and "1 unlabelled" in out
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD, GOOD | {"prompt": "q", "label": 7}])
    assert main(["validate", str(bad)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and "Traceback" not in err
    assert f"{bad}:2: field 'label':" in err


def test_cli_validate_subprocess(shared_data: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("balpm")
    r = subprocess.run([str(exe), "validate", "qa-feedback"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "pairs: 2616" in r.stdout and "tie: 384" in r.stdout
    r = subprocess.run([str(exe), "validate", str(tmp_path / "nope.jsonl")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope.jsonl" in r.stderr


# ------------------------------------------------------------------------------------------------- CSV shapes (issue 10 case 6)

HEADER = "prompt,completion_a,completion_b,label"


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def assert_located(f: Path, line: int | None, fld: str | None, msg: str) -> PoolFormatError:
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.path, e.value.line, e.value.field) == (str(f), line, fld), str(e.value)
    assert msg in str(e.value)
    return e.value


def test_csv_trailing_comma_on_every_row_is_read_unshifted(tmp_path: Path) -> None:
    # a spreadsheet export: every data row ends in a separator, the header does not (or does too)
    rows = "p1,a1,b1,1,\np2,a2,b2,0,\np3,a3,b3,,\n"
    for name, head in (("rows.csv", HEADER), ("both.csv", HEADER + ",")):
        pool = load_pool(write_csv(tmp_path / name, head + "\n" + rows))
        p = pool.pairs
        assert p["prompt"].tolist() == ["p1", "p2", "p3"], name
        assert p["completion_a"].tolist() == ["a1", "a2", "a3"] and p["completion_b"].tolist() == ["b1", "b2", "b3"]
        assert p["label"].tolist()[:2] == [1, 0] and p["label"].isna().tolist() == [False, False, True]
        assert list(p.columns) == ["id", "prompt", "completion_a", "completion_b", "label", "source", "group"], name
    tsv = tmp_path / "rows.tsv"
    tsv.write_text(HEADER.replace(",", "\t") + "\n" + rows.replace(",", "\t"), encoding="utf-8")
    assert load_pool(tsv).pairs["prompt"].tolist() == ["p1", "p2", "p3"]


def test_csv_ragged_rows_and_unquoted_commas_are_located(tmp_path: Path) -> None:
    # a row with too few values names the first missing column (an empty label would be read as 'unlabelled')
    f = write_csv(tmp_path / "short.csv", f"{HEADER}\np1,a1,b1,1\np2,a2,b2\n")
    assert_located(f, 2, "label", "3 values")
    # an unquoted comma in the first data row: pandas used the extra value as an index and shifted every column
    f = write_csv(tmp_path / "first.csv", f"{HEADER}\nWhat is 1, 2 or 3?,a1,b1,1\np2,a2,b2,0\n")
    assert_located(f, 1, "prompt", "unquoted comma")
    f = write_csv(tmp_path / "later.csv", f"{HEADER}\np1,a1,b1,1\np2,a2,b2,0\np3,a3,yes, it is,0\n")
    assert_located(f, 3, "completion_b", "unquoted comma")
    # several values could hold the comma: the line is named, the field is not guessed
    f = write_csv(tmp_path / "unsure.csv", f"{HEADER}\np1,a1,b1,1\np2,a2,b2,0,x\n")
    err = assert_located(f, 2, None, "5 values")
    assert "prompt, completion_a, completion_b, label" in str(err)
    # a quoted comma is text, and data rows count from 1 after the header even with a quoted newline
    f = write_csv(tmp_path / "quoted.csv", f'{HEADER}\n"What is 1, 2\nor 3?",a1,b1,1\np2,a2,b2,7\n')
    assert_located(f, 2, "label", "expected one of")


def test_csv_duplicated_or_unnamed_header_is_an_error(tmp_path: Path) -> None:
    f = write_csv(tmp_path / "dup.csv", f"{HEADER},label\np1,a1,b1,1,0\n")
    assert_located(f, None, "label", "header names column 'label' twice (columns 4 and 5)")
    f = write_csv(tmp_path / "unnamed.csv", "prompt,,completion_a,completion_b\np1,x,a1,b1\n")
    assert_located(f, None, None, "column 2 has no name")
    # an unnamed last column that holds values is data, not a trailing separator
    f = write_csv(tmp_path / "unnamed_last.csv", f"{HEADER},\np1,a1,b1,1,note\n")
    assert_located(f, 1, None, "column 5 has no name")


# ------------------------------------------------------------------------------------------------- nesting (issue 10 case 7)

QA_RECORD = {
    "question": "Who?", "passages": [["Title", "text"]], "gold": "g",
    **{f"prediction {i}": f"answer {i}" for i in range(1, 5)}, "preference": [1, 2, 1, 2, 1, 2],
}


def test_deeply_nested_json_is_a_located_error(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    rec = '{"prompt": "q", "completion_a": "a", "completion_b": "b", "meta": {"notes": ' + deep + "}}"
    f = write_lines(tmp_path / "deep.jsonl", [GOOD, rec])
    assert_located(f, 2, "meta", "nested 5001 levels deep")
    j = tmp_path / "deep.json"
    j.write_text("[" + json.dumps(GOOD) + ",\n" + rec + "]", encoding="utf-8")
    assert_located(j, 2, "meta", "nested 5001 levels deep")
    w = tmp_path / "wrapped.json"  # {"data": [...]} is read as the list it holds
    w.write_text('{"data": [' + json.dumps(GOOD) + ",\n" + rec + "]}", encoding="utf-8")
    assert_located(w, 2, "meta", "nested 5001 levels deep")


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # JSON: RecursionError
    "(" * 100_000 + ")" * 100_000,  # Python literal: 'too many nested parentheses'
    "-" * 199_999 + "1",  # Python literal: MemoryError from the parser
])
def test_qa_feedback_string_too_deep_to_parse_is_a_located_error(text: str, tmp_path: Path) -> None:
    f = tmp_path / "qa.json"
    f.write_text(json.dumps([QA_RECORD, QA_RECORD | {"question": "Why?", "passages": text}]), encoding="utf-8")
    assert_located(f, 2, "passages", "too deeply nested")
    f.write_text(json.dumps([QA_RECORD | {"preference": text}]), encoding="utf-8")
    assert_located(f, 1, "preference", "too deeply nested")


# ------------------------------------------------------------------------------------------------- drops (issue 10 case 8)


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


def test_nan_label_means_missing_in_every_container(tmp_path: Path) -> None:
    j = tmp_path / "nan.jsonl"
    j.write_text(json.dumps(GOOD) + "\n" + '{"prompt": "q", "completion_a": "a", "completion_b": "b", "label": NaN}\n'
                 + '{"prompt": "r", "completion_a": "a", "completion_b": "b", "label": null}\n', encoding="utf-8")
    c = write_csv(tmp_path / "nan.csv", f"{HEADER}\np,a,b,1\nq,a,b,NaN\nr,a,b,\n")
    c2 = write_csv(tmp_path / "nan2.csv", f"{HEADER}\np,a,b,1\nq,a,b,nan\nr,a,b,null\n")
    pools = [load_pool(x) for x in (j, c, c2)]
    for p in pools:
        assert p.pairs["label"].tolist()[0] == 1 and p.pairs["label"].isna().tolist() == [False, True, True]
    assert pools[0].ids.tolist() == pools[1].ids.tolist() == pools[2].ids.tolist()
    assert_located(write_csv(tmp_path / "inf.csv", f"{HEADER}\np,a,b,inf\n"), 1, "label", "expected one of")


def test_strict_reaches_every_command_that_reads_a_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_lines(tmp_path / "dups.jsonl", [GOOD, GOOD | {"prompt": "q"}, GOOD])
    assert len(load_pool(f)) == 2
    for argv in (["validate"], ["embed", "--no-cache", "--quiet"], ["run", "--quiet", "--out", str(tmp_path / "run"), "--dataset"]):
        assert main([*argv, str(f), "--strict"]) == 2, argv
        err = capsys.readouterr().err
        assert f"{f}:3:" in err and "duplicate pair" in err and "Traceback" not in err, argv


def test_encodings_and_separators_are_named(tmp_path: Path) -> None:
    text = "prompt,chosen,rejected\ncafé,ja,nein\n"
    bom = tmp_path / "bom.csv"  # Excel's "CSV UTF-8" starts with a byte order mark: read as UTF-8
    bom.write_bytes(text.encode("utf-8-sig"))
    assert load_pool(bom).pairs["prompt"].tolist() == ["café"]
    bom_jsonl = tmp_path / "bom.jsonl"
    bom_jsonl.write_bytes(jsonl_bytes := ("\ufeff" + json.dumps(GOOD) + "\n").encode("utf-8"))
    assert jsonl_bytes.startswith(b"\xef\xbb\xbf") and len(load_pool(bom_jsonl)) == 1
    for codec, name in (("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-32", "UTF-32")):
        f = tmp_path / f"{codec}.csv"
        f.write_bytes(text.encode(codec))
        assert_located(f, None, None, f"{name} text")
    semi = write_csv(tmp_path / "semi.csv", "prompt;chosen;rejected\nq;a, b;c\n")
    assert_located(semi, None, None, "separated by ';'?")
    gz = tmp_path / "broken.jsonl.gz"
    data = bytearray(gzip.compress(b"".join(json.dumps(GOOD | {"prompt": f"p{i}"}).encode() + b"\n" for i in range(50))))
    data[20] ^= 0xFF  # the deflate stream itself (zlib.error, not an OSError)
    gz.write_bytes(bytes(data))
    assert_located(gz, None, None, "broken gzip file")
