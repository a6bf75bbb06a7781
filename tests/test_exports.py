"""Exports that train as they are (issue 11 item 9): texts exactly as in the source, and trl's conversational format.

Real rows only: HH-RLHF transcripts from the embedded sample and from the full shared split, and the same rows
rewritten as message lists (trl's conversational layout, explicit and implicit prompt).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from balpm.cli import main
from balpm.config import SessionConfig
from balpm.data import hh_pair_id, load_pool, sample_dir
from balpm.data.chat import render_turns
from balpm.exports import export_trl, export_trl_chat, training_table, write_export
from balpm.session import Session
from balpm.store import LabelStore

HH_SAMPLE = "hh-rlhf/harmless-base-sample.jsonl.gz"
HH_FILE = "hh-rlhf/harmless-base-test.jsonl.gz"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _source_rows(path: Path) -> dict[str, dict]:
    """pair id -> the source record, first occurrence (the one the loader keeps)."""
    out: dict[str, dict] = {}
    for line in gzip.open(path, "rt", encoding="utf-8"):
        r = json.loads(line)
        cut = r["chosen"].rfind("\n\nAssistant:") + len("\n\nAssistant:")
        out.setdefault(hh_pair_id(r["chosen"][:cut], r["chosen"][cut:], r["rejected"][cut:]), r)
    return out


def _label(store: LabelStore, pool, n: int, against_every: int = 0) -> list[tuple[str, bool]]:
    """Label the first ``n`` pairs as the source did (every ``against_every``-th against it); -> (id, agreed)."""
    out = []
    for i, (pid, lab) in enumerate(zip(pool.ids[:n], pool.labels[:n])):
        agree = not (against_every and i % against_every == 0)
        a_wins = (lab == 1) == agree
        store.record(str(pid), "a" if a_wins else "b", "ann", False, 1, f"r{i}", note="sure" if i == 1 else None)
        out.append((str(pid), agree))
    return out


def _check_trl_lines(path: Path, source: dict[str, dict], labelled: list[tuple[str, bool]]) -> None:
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == [pid for pid, _ in labelled]
    for x, (pid, agreed) in zip(lines, labelled):
        rec = source[pid]
        chosen, rejected = (rec["chosen"], rec["rejected"]) if agreed else (rec["rejected"], rec["chosen"])
        assert x["prompt"] + x["chosen"] == chosen and x["prompt"] + x["rejected"] == rejected
        assert x["chosen"].startswith(" ") and x["rejected"].startswith(" ")  # the source's leading space
        assert x["annotator"] == "ann" and x["labelled_at"].startswith("20")
    assert lines[1]["note"] == "sure" and "note" not in lines[0]


def test_trl_export_of_the_sample_reproduces_the_hh_transcripts(tmp_path: Path) -> None:
    f = sample_dir() / HH_SAMPLE
    pool = load_pool(f)
    store = LabelStore(tmp_path / "s.db")
    labelled = _label(store, pool, 30, against_every=3)
    assert export_trl(store, pool, tmp_path / "l.jsonl") == 30
    _check_trl_lines(tmp_path / "l.jsonl", _source_rows(f), labelled)
    table = training_table(store, pool)  # the Parquet and datasets exports write this table
    assert (table["prompt"] + table["chosen"]).iloc[1] == _source_rows(f)[labelled[1][0]]["chosen"]


def test_trl_export_of_the_full_split_reproduces_the_hh_transcripts(shared_data: Path, tmp_path: Path) -> None:
    f = shared_data / HH_FILE
    pool = load_pool(f)
    store = LabelStore(tmp_path / "s.db")
    labelled = _label(store, pool, len(pool), against_every=5)
    assert export_trl(store, pool, tmp_path / "l.jsonl") == len(pool)
    _check_trl_lines(tmp_path / "l.jsonl", _source_rows(f), labelled)


# ------------------------------------------------------------------------------------------- conversational
def _messages(transcript: str) -> list[dict] | None:
    """An HH transcript as messages, or None when the plain rendering would not give it back exactly."""
    parts = _TURN.split(transcript)
    msgs = [{"role": "user" if r == "Human" else "assistant", "content": c} for r, c in zip(parts[1::2], parts[2::2])]
    ok = parts[0] == "" and msgs and render_turns(msgs) == transcript and msgs[-1]["role"] == "assistant"
    return msgs if ok else None


def _chat_file(tmp_path: Path, shape: str, n: int = 40) -> tuple[Path, dict[str, tuple[list, list, list]]]:
    """Real HH rows of the sample rewritten in trl's conversational layout; -> (file, first prompt turn ->
    (prompt, chosen, rejected) messages)."""
    recs, source = [], {}
    for line in gzip.open(sample_dir() / HH_SAMPLE, "rt", encoding="utf-8"):
        r = json.loads(line)
        c, j = _messages(r["chosen"]), _messages(r["rejected"])
        if not (c and j and len(c) == len(j) and c[:-1] == j[:-1]) or json.dumps(c[:-1]) in source:
            continue
        source[json.dumps(c[:-1])] = (c[:-1], c[-1:], j[-1:])
        recs.append({"prompt": c[:-1], "chosen": c[-1:], "rejected": j[-1:]} if shape == "explicit"
                    else {"chosen": c, "rejected": j})
        if len(recs) == n:
            break
    path = tmp_path / f"chat-{shape}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path, source


def _is_conversational_preference(row: dict) -> bool:
    """trl's conversational preference row (explicit prompt): prompt, chosen, rejected as lists of messages."""
    return all(isinstance(row[k], list) and row[k] and all(set(m) == {"role", "content"} for m in row[k])
               for k in ("prompt", "chosen", "rejected"))


@pytest.mark.parametrize("shape", ["explicit", "implicit"])
def test_conversational_export_loads_with_datasets_and_round_trips_the_messages(tmp_path: Path, shape: str) -> None:
    from datasets import Dataset

    f, source = _chat_file(tmp_path, shape)
    pool = load_pool(f, seed=2)
    assert len(pool) == 40
    store = LabelStore(tmp_path / "s.db")
    labelled = _label(store, pool, 12, against_every=4)
    assert export_trl_chat(store, pool, tmp_path / "chat.jsonl") == 12
    ds = Dataset.from_json(str(tmp_path / "chat.jsonl"), cache_dir=str(tmp_path / "hf"))
    assert {"prompt", "chosen", "rejected", "id", "annotator", "labelled_at"} <= set(ds.column_names)
    for col in ("prompt", "chosen", "rejected"):  # a list of {content, role} strings, as trl's own datasets
        inner = ds.features[col].feature
        assert {k: v.dtype for k, v in inner.items()} == {"content": "string", "role": "string"}
    assert ds["id"] == [pid for pid, _ in labelled]
    for row, (pid, agreed) in zip(ds, labelled):
        assert _is_conversational_preference(row)
        prompt, chosen, rejected = source[json.dumps(row["prompt"])]
        assert row["prompt"] == prompt  # exactly the file's messages, not the plain rendering
        assert (row["chosen"], row["rejected"]) == ((chosen, rejected) if agreed else (rejected, chosen))
        assert row["annotator"] == "ann"
    # the standard export of the same pool still writes text (the plain rendering)
    assert export_trl(store, pool, tmp_path / "plain.jsonl") == 12
    assert isinstance(json.loads((tmp_path / "plain.jsonl").read_text().splitlines()[0])["chosen"], str)


def test_conversational_export_of_a_plain_pool_is_a_clear_error(tmp_path: Path) -> None:
    pool = load_pool(sample_dir() / HH_SAMPLE)
    store = LabelStore(tmp_path / "s.db")
    _label(store, pool, 2)
    with pytest.raises(ValueError, match=r"pool 'harmless-base-sample.jsonl.gz' is not conversational.*'trl'"):
        export_trl_chat(store, pool, tmp_path / "chat.jsonl")
    assert not (tmp_path / "chat.jsonl").exists()
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        write_export(store, pool, "csv", tmp_path / "x")


def test_cli_export_writes_each_format_and_refuses_chat_for_a_plain_pool(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f, _ = _chat_file(tmp_path, "explicit", n=10)
    chat = Session.create(Path(tmp_path / "chat-session"), SessionConfig.from_settings(dataset=str(f), max_pairs=None))
    plain = Session.create(Path(tmp_path / "plain-session"),
                           SessionConfig.from_settings(dataset=str(sample_dir() / HH_SAMPLE), max_pairs=None))
    for s in (chat, plain):
        _label(s.store, s.load_pool(), 3)
    out = tmp_path / "out"
    assert main(["export", str(chat.folder), "--format", "trl-chat", "--out", str(out / "chat.jsonl")]) == 0
    assert "3 rows written" in capsys.readouterr().out
    assert _is_conversational_preference(json.loads((out / "chat.jsonl").read_text().splitlines()[0]))
    for fmt, name in (("trl", "l.jsonl"), ("train", "t.parquet"), ("dataset", "ds"), ("events", "e.parquet")):
        assert main(["export", str(plain.folder), "--format", fmt, "--out", str(out / name)]) == 0, fmt
        assert (out / name).exists()
    assert main(["export", str(plain.folder), "--format", "trl-chat", "--out", str(out / "no.jsonl")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the datasets folder's progress bar
    assert err.startswith("balpm export: pool ") and "is not conversational" in err
    assert not (out / "no.jsonl").exists()


# ------------------------------------------------------------------------------------------------ Label page
def test_label_page_offers_the_conversational_export_only_for_a_conversational_pool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_app import SMALL, _app, _set_annotator  # the page-test helpers of tests/test_app.py

    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")
    f, _ = _chat_file(tmp_path, "implicit", n=10)
    offered = {}
    for name, dataset in (("chat", str(f)), ("plain", "hh-rlhf:harmless-base")):
        s = Session.create(name, SessionConfig.from_settings(**{**SMALL, "dataset": dataset, "max_pairs": None}),
                           root=tmp_path / "sessions")
        (tmp_path / "sessions" / ".last_session").write_text(str(s.folder))
        at = _app("pages/4_label.py")
        _set_annotator(at, "ann")
        offered[name] = [d.label for d in at.download_button]
    assert offered["chat"] == ["Download TRL JSONL", "Download TRL conversational JSONL",
                               "Download Training table (Parquet)", "Download datasets folder (zip)",
                               "Download Label events (Parquet)"]
    assert offered["plain"] == [x for x in offered["chat"] if "conversational" not in x]
