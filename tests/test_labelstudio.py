"""Label Studio round trip: a session's batch out as Label Studio tasks, Label Studio's JSON export back as labels.

The export file is written by hand in Label Studio's documented export layout (tasks with ``data`` and
``annotations``; an annotation has ``id``, ``result`` of ``choices``, ``completed_by`` as a user object or a user
id, ``created_at``, ``was_cancelled``), holding a skipped task, a second annotator on one task and a tie.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from balpm.cli import main
from balpm.labelstudio import LABEL_CONFIG, LabelStudioFormatError, export_tasks, import_export
from balpm.session import Session, SessionConfig

TINY = dict(dataset="hh-rlhf:harmless-base", max_pairs=60, batch_size=4)
ALICE = {"id": 3, "email": "alice@example.com", "first_name": "Alice", "last_name": "Ng"}


@pytest.fixture()
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    """A human session on the embedded sample with a proposed batch of 4 pairs, one already labelled in balpm."""
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")
    s = Session.create("ls", SessionConfig.from_settings(**TINY))
    ids = s.load_pool().ids[:5].astype(str).tolist()
    s.set_batch(pd.DataFrame({"id": ids, "round": 1}))
    s.record(ids[4], "a", annotator="carol", shown_swapped=False, request_id="app-click-1", round=1)
    return s


def _choice(value: str) -> list[dict]:
    return [{"id": "r1", "from_name": "preference", "to_name": "prompt", "type": "choices", "origin": "manual",
             "value": {"choices": [value]}}]


def _label_studio_export(tasks_out: Path) -> list[dict]:
    """What Label Studio's JSON export of the imported tasks looks like after labelling (ids it assigns)."""
    tasks = json.loads(tasks_out.read_text())
    export = []
    for n, t in enumerate(tasks):
        export.append({"id": 100 + n, "project": 7, "created_at": "2026-11-30T09:00:00.000000Z",
                       "updated_at": "2026-11-30T10:00:00.000000Z", "data": t["data"], "annotations": [],
                       "predictions": [], "drafts": [], "meta": {}, "inner_id": n + 1, "total_annotations": 1,
                       "cancelled_annotations": 0, "total_predictions": 0, "comment_count": 0})

    def ann(aid: int, who, choice: str | None, when: str, cancelled: bool = False) -> dict:
        return {"id": aid, "completed_by": who, "result": [] if choice is None else _choice(choice),
                "was_cancelled": cancelled, "ground_truth": False, "created_at": when, "updated_at": when,
                "draft_created_at": None, "lead_time": 12.5, "prediction": {}, "result_count": 0,
                "unique_id": f"u-{aid}", "import_id": None, "last_action": None, "task": export[0]["id"],
                "project": 7, "updated_by": who if isinstance(who, int) else who["id"], "parent_prediction": None,
                "parent_annotation": None, "last_created_by": None}

    export[0]["annotations"] = [ann(1001, ALICE, "Left is better", "2026-11-30T10:01:02.5Z"),
                                ann(1004, 8, "Right is better", "2026-11-30T11:30:00Z")]  # overlap: a second person
    export[1]["annotations"] = [ann(1002, ALICE, "Tie", "2026-11-30T10:02:00+01:00")]
    export[2]["annotations"] = [ann(1003, 8, None, "2026-11-30T10:03:00Z", cancelled=True)]  # skipped
    export[3]["annotations"] = []  # not labelled yet
    return export


def test_export_writes_unlabelled_batch_pairs_as_tasks_with_a_valid_config(session: Session, tmp_path: Path) -> None:
    out, cfg = tmp_path / "tasks.json", tmp_path / "config.xml"
    assert export_tasks(session, out, config_out=cfg) == 4  # the pair labelled in the app is left out
    tasks = json.loads(out.read_text())
    pairs = session.load_pool().pairs.set_index("id")
    batch = session.current_batch()
    assert [t["data"]["balpm_pair_id"] for t in tasks] == batch.ids[:4]
    for t in tasks:
        d = t["data"]
        row = pairs.loc[d["balpm_pair_id"]]
        assert d["prompt"] == row["prompt"] and d["balpm_round"] == 1 and d["balpm_batch_id"] == batch.batch_id
        assert d["balpm_swapped"] == session.side_swapped(d["balpm_pair_id"])
        shown = (d["right"], d["left"]) if d["balpm_swapped"] else (d["left"], d["right"])
        assert shown == (row["completion_a"], row["completion_b"])
    root = ET.fromstring(cfg.read_text())
    names = {e.get("name") for e in root.iter() if e.get("name")}
    assert {"prompt", "left", "right", "preference"} <= names
    variables = {e.get("value")[1:] for e in root.iter("Text")}
    assert variables <= set(tasks[0]["data"])  # every $variable of the config is in each task
    assert [c.get("value") for c in root.iter("Choice")] == ["Left is better", "Right is better", "Tie"]
    assert cfg.read_text() == LABEL_CONFIG


def test_round_trip_import_is_idempotent_and_keeps_annotator_time_and_sides(session: Session, tmp_path: Path) -> None:
    export_tasks(session, tmp_path / "tasks.json")
    export = _label_studio_export(tmp_path / "tasks.json")
    f = tmp_path / "export.json"
    f.write_text(json.dumps(export))
    res = import_export(session, f)
    assert (res.recorded, res.duplicates, res.cancelled) == (2, 0, 1)
    ev = session.store.events().set_index("request_id")
    first, second = export[0]["data"], export[1]["data"]
    left_is = "b" if first["balpm_swapped"] else "a"  # "Left is better" means the pool's side shown on the left
    e1 = ev.loc["labelstudio:1001"]
    assert (e1["pair_id"], e1["verdict"], e1["annotator"]) == (first["balpm_pair_id"], left_is, "alice@example.com")
    assert e1["created_at"] == "2026-11-30T10:01:02.500000+00:00"
    assert bool(e1["shown_swapped"]) == first["balpm_swapped"]
    assert e1["round"] == 1 and e1["batch_id"] == first["balpm_batch_id"]
    e2 = ev.loc["labelstudio:1002"]
    assert (e2["pair_id"], e2["verdict"], e2["created_at"]) == (second["balpm_pair_id"], "tie",
                                                                 "2026-11-30T09:02:00.000000+00:00")
    # the second annotator on task 1 (a user id only) is a conflict with the earlier label, reported, not recorded
    assert len(res.conflicts) == 1
    c = res.conflicts[0]
    assert (c["pair_id"], c["annotator"], c["kept_annotator"]) == (first["balpm_pair_id"], "labelstudio-user-8",
                                                                   "alice@example.com")
    assert c["verdict"] == ("a" if left_is == "b" else "b") and c["kept_verdict"] == left_is
    # the skipped task stays open: no event for it
    assert export[2]["data"]["balpm_pair_id"] not in set(ev["pair_id"])
    n = len(session.store.events())
    again = import_export(session, f)  # the same export again: nothing new
    assert (again.recorded, again.duplicates) == (0, 2) and len(session.store.events()) == n
    # the app's own label on the fifth pair is untouched
    assert ev.loc["app-click-1", "annotator"] == "carol"
    # alice changes her mind in Label Studio after the import: listed, not applied behind her back
    export[1]["annotations"][0]["result"] = _choice("Left is better")
    f.write_text(json.dumps(export))
    later = import_export(session, f)
    assert later.recorded == 0 and len(session.store.events()) == n
    assert [(c["pair_id"], c["verdict"], c["kept_verdict"]) for c in later.changed] == [
        (second["balpm_pair_id"], "b" if second["balpm_swapped"] else "a", "tie")]
    assert "1 changed in Label Studio since imported" in later.summary()


def test_bad_export_names_file_task_and_field_and_records_nothing(session: Session, tmp_path: Path) -> None:
    export_tasks(session, tmp_path / "tasks.json")
    good = _label_studio_export(tmp_path / "tasks.json")
    n = len(session.store.events())
    cases = []
    bad = copy.deepcopy(good)
    bad[1]["annotations"][0]["result"][0]["value"]["choices"] = ["Both are bad"]
    cases.append((bad, "task 2 (Label Studio id 101), annotation 1002: field result.value.choices"))
    bad = copy.deepcopy(good)
    del bad[2]["data"]["balpm_pair_id"]
    cases.append((bad, "task 3 (Label Studio id 102): field data.balpm_pair_id is missing"))
    bad = copy.deepcopy(good)
    bad[1]["annotations"][0]["completed_by"] = {"id": None, "email": ""}
    cases.append((bad, "annotation 1002: field completed_by"))
    bad = copy.deepcopy(good)
    bad[1]["annotations"][0]["created_at"] = "yesterday"
    cases.append((bad, "annotation 1002: field created_at"))
    for i, (content, expected) in enumerate(cases):
        f = tmp_path / f"bad-{i}.json"
        f.write_text(json.dumps(content))
        with pytest.raises(LabelStudioFormatError) as e:
            import_export(session, f)
        assert str(f) in str(e.value) and expected in str(e.value), str(e.value)
        assert len(session.store.events()) == n  # the good annotations before the bad one were not recorded
    f = tmp_path / "broken.json"
    f.write_text('[{"data": {}\n')
    with pytest.raises(LabelStudioFormatError, match=r"broken\.json: line 2"):
        import_export(session, f)


def test_cli_export_and_import(session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks, cfg = tmp_path / "tasks.json", tmp_path / "config.xml"
    assert main(["labelstudio", "export", "ls", "--out", str(tasks), "--config", str(cfg)]) == 0
    assert len(json.loads(tasks.read_text())) == 4 and cfg.read_text() == LABEL_CONFIG
    f = tmp_path / "export.json"
    f.write_text(json.dumps(_label_studio_export(tasks)))
    assert main(["labelstudio", "import", "ls", str(f)]) == 0
    out = capsys.readouterr().out
    assert "recorded 2 labels" in out and "1 skipped" in out and "labelstudio-user-8" in out
    assert main(["labelstudio", "import", "ls", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("balpm labelstudio: ")
