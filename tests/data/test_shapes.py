"""Pools in the shapes people keep them (issue 11 items 1-2): trl's conversational format and column mapping.

The conversational files are real HH-RLHF rows rewritten as message lists: read back, they must give the very pairs
(ids, prompts, labels, embedded texts) the transcripts give, in every container.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from balpm.data import PoolFormatError, guess_columns, load_pool, parse_columns
from balpm.data.chat import render_turns

HH = "hh-rlhf/harmless-base-test.jsonl.gz"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _messages(transcript: str) -> list[dict] | None:
    """An HH transcript as messages, or None when the plain rendering would not give it back exactly."""
    parts = _TURN.split(transcript)
    if parts[0] != "":
        return None
    msgs = [{"role": "user" if r == "Human" else "assistant", "content": c} for r, c in zip(parts[1::2], parts[2::2])]
    return msgs if render_turns(msgs) == transcript and msgs and msgs[-1]["role"] == "assistant" else None


@pytest.fixture(scope="module")
def hh_rows(shared_data: Path) -> list[dict]:
    """The first 60 real HH rows whose transcripts convert exactly (most of them)."""
    rows = []
    with gzip.open(shared_data / HH, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            c, j = _messages(r["chosen"]), _messages(r["rejected"])
            if c and j and len(c) == len(j) and c[:-1] == j[:-1]:
                rows.append({"chosen": r["chosen"], "rejected": r["rejected"], "c": c, "j": j})
            if len(rows) == 60:
                break
    return rows


def _write(records: list[dict], path: Path, container: str) -> Path:
    if container == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif container == "json":
        path.write_text(json.dumps(records), encoding="utf-8")
    elif container == "parquet":
        pd.DataFrame(records).to_parquet(path)
    else:
        import datasets

        datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


CORE = ["id", "prompt", "completion_a", "completion_b", "label", "group"]


@pytest.mark.parametrize("container", ["jsonl", "json", "parquet", "datasets"])
@pytest.mark.parametrize("shape", ["explicit", "implicit"])
def test_conversational_pools_read_as_the_transcripts_they_came_from(
    hh_rows: list[dict], tmp_path: Path, container: str, shape: str
) -> None:
    transcripts = load_pool(_write([{"chosen": r["chosen"], "rejected": r["rejected"]} for r in hh_rows],
                                   tmp_path / "hh.jsonl", "jsonl"), seed=3)
    if shape == "explicit":
        recs = [{"prompt": r["c"][:-1], "chosen": r["c"][-1:], "rejected": r["j"][-1:]} for r in hh_rows]
    else:
        recs = [{"chosen": r["c"], "rejected": r["j"]} for r in hh_rows]
    suffix = {"jsonl": ".jsonl", "json": ".json", "parquet": ".parquet", "datasets": ""}[container]
    pool = load_pool(_write(recs, tmp_path / f"chat{suffix}", container), seed=3)
    assert pool.report.format == ("trl-chat" if shape == "explicit" else "chat")
    same = ["id", "prompt", "label", "group"]
    pd.testing.assert_frame_equal(pool.pairs[same].reset_index(drop=True),
                                  transcripts.pairs[same].reset_index(drop=True))
    # the transcripts keep each reply's leading space (prompt + chosen is the transcript), the plain rendering of
    # messages does not; what is embedded is the same text
    for side in ("a", "b"):
        assert pool.completion_texts(side) == [t.strip() for t in transcripts.pairs[f"completion_{side}"]]
        assert pool.pair_texts(side) == transcripts.pair_texts(side)
    # the messages are kept, and follow the coin: A's messages are A's text
    by_prompt = {json.dumps(r["c"][:-1]): r for r in hh_rows}
    for _, row in pool.pairs.iterrows():
        prompt = json.loads(row["prompt_messages"])
        src = by_prompt[json.dumps(prompt)]
        a = json.loads(row["completion_a_messages"])
        assert a == (src["c"][-1:] if row["label"] == 1 else src["j"][-1:])
        assert a[0]["content"].strip() == row["completion_a"]


def test_bad_messages_are_located(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    good = {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    bad = {**good, "rejected": [{"role": "assistant", "content": 3}]}
    f.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.line, e.value.field) == (2, "rejected[0].content"), str(e.value)


# ------------------------------------------------------------------------------------------------ column mapping


def test_column_mapping_reads_a_csv_with_its_own_names(tmp_path: Path) -> None:
    f = tmp_path / "qa.csv"
    f.write_text("question,answer_good,answer_bad,qid\nWhy?,Because.,No idea,7\nHow?,Like this.,Dunno,8\n",
                 encoding="utf-8")
    with pytest.raises(PoolFormatError, match="--columns"):
        load_pool(f)  # an unknown layout says how to map it
    pool = load_pool(f, columns="prompt=question,chosen=answer_good,rejected=answer_bad,id=qid")
    plain = tmp_path / "trl.csv"
    plain.write_text("prompt,chosen,rejected,id\nWhy?,Because.,No idea,7\nHow?,Like this.,Dunno,8\n", encoding="utf-8")
    pd.testing.assert_frame_equal(pool.pairs[CORE], load_pool(plain).pairs[CORE])
    assert list(pool.ids) == ["7", "8"]
    with pytest.raises(PoolFormatError) as e:
        load_pool(f, columns={"prompt": "question", "chosen": "answer_good", "rejected": "answer_worse"})
    assert (e.value.path, e.value.line, e.value.field) == (str(f), 1, "answer_worse")


def test_column_mapping_pairs_with_labels_and_groups(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"q": "x", "r1": "one", "r2": "two", "pref": 0, "topic": "t"}) + "\n", encoding="utf-8")
    pool = load_pool(f, columns="prompt=q,completion_a=r1,completion_b=r2,label=pref,group=topic")
    row = pool.pairs.iloc[0]
    assert (row["completion_a"], row["completion_b"], int(row["label"]), row["group"]) == ("one", "two", 0, "t")


def test_parse_and_guess_columns() -> None:
    assert parse_columns("prompt=question, chosen=answer_good") == {"prompt": "question", "chosen": "answer_good"}
    for bad, msg in [("prompt", "TARGET=COLUMN"), ("answer=x", "unknown target"), ("prompt=a,prompt=b", "twice")]:
        with pytest.raises(ValueError, match=msg):
            parse_columns(bad)
    with pytest.raises(PoolFormatError, match="unknown target"):
        load_pool("sample:qa-feedback", columns="answer=x")
    assert guess_columns(["question", "answer_good", "answer_bad"]) == {
        "prompt": "question", "chosen": "answer_good", "rejected": "answer_bad"}
    assert guess_columns(["query", "response_a", "response_b", "winner"]) == {
        "prompt": "query", "completion_a": "response_a", "completion_b": "response_b"}


def test_cli_columns_on_every_command_that_reads_a_pool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from balpm.cli import main

    f = tmp_path / "qa.csv"
    f.write_text("question,answer_good,answer_bad\nWhy?,Because.,No idea\nHow?,Like this.,Dunno\n", encoding="utf-8")
    assert main(["validate", str(f)]) == 2
    assert "--columns" in capsys.readouterr().err
    mapping = "prompt=question,chosen=answer_good,rejected=answer_bad"
    assert main(["validate", str(f), "--columns", mapping]) == 0
    assert "2" in capsys.readouterr().out
    assert main(["validate", str(f), "--columns", "prompt=question,answer=answer_good"]) == 2
    assert "unknown target 'answer'" in capsys.readouterr().err
    for cmd in ("embed", "check"):  # parsed and passed on: a wrong column is named by the loader
        assert main([cmd, str(f), "--columns", "prompt=question,chosen=answer_good,rejected=nope"]) == 2
        assert "field 'nope'" in capsys.readouterr().err


def test_read_fields_feeds_the_mapping_form(tmp_path: Path) -> None:
    from balpm.data import read_fields

    f = tmp_path / "qa.csv"
    f.write_text("question,answer_good,answer_bad\nWhy?,Because.,No idea\n", encoding="utf-8")
    fields = read_fields(f)
    assert fields == ["question", "answer_good", "answer_bad"]
    mapping = guess_columns(fields)
    assert len(load_pool(f, columns=mapping)) == 1
    with pytest.raises(PoolFormatError, match="no such file"):
        read_fields(tmp_path / "nope.csv")


def test_the_run_and_session_loader_takes_the_mapping(tmp_path: Path) -> None:
    from balpm.experiment import load_labelled_sample

    f = tmp_path / "qa.csv"
    f.write_text("question,answer_good,answer_bad\nWhy?,Because.,No idea\nHow?,Like this.,Dunno\n", encoding="utf-8")
    pool = load_labelled_sample(str(f), columns="prompt=question,chosen=answer_good,rejected=answer_bad")
    assert sorted(pool.pairs["prompt"]) == ["How?", "Why?"] and not pool.pairs["label"].isna().any()
