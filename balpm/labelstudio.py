"""Label Studio as the labelling front end: balpm chooses the pairs, people label them in Label Studio.

Why: teams that already label in Label Studio keep their tool, accounts and review flow and use balpm only to pick
which pairs are worth a label. Built from Label Studio's documented formats:

- **Tasks out** (:func:`export_tasks`): a JSON list of tasks, each ``{"data": {...}}``, one per unlabelled pair of
  the session's current batch. ``data`` holds the texts the labelling config shows (``prompt``, ``left``,
  ``right``) and balpm's keys (``balpm_pair_id``, ``balpm_swapped``, ``balpm_round``, ``balpm_batch_id``,
  ``balpm_session``), which Label Studio keeps and returns in its export. Sides follow the session's seeded coin
  (:meth:`balpm.session.Session.side_swapped`), as in the app, so position bias is balanced and recorded.
- **Labelling config** (:data:`LABEL_CONFIG`): ``Choices`` over the prompt and two ``Text`` objects (left, right)
  with *Left is better*, *Right is better* and *Tie*. ``Choices`` rather than the ``Pairwise`` tag because
  ``Pairwise`` has no tie, and balpm records ties.
- **Labels back** (:func:`import_export`): Label Studio's JSON export (a list of tasks, each with ``data`` and
  ``annotations``; an annotation has ``id``, ``result``, ``completed_by``, ``created_at``, ``was_cancelled``).
  Each annotation becomes one label event: the verdict from the ``choices`` result, mapped from screen sides back
  to the pool's A and B; the annotator from ``completed_by`` (the user's email, else name, else
  ``labelstudio-user-<id>`` when the export holds only the user id); the time from the annotation's
  ``created_at``; the request id ``labelstudio:<annotation id>``, so importing the same export twice, or a later
  export that holds it again, records it once.

A skipped task (``was_cancelled``) is not a label: it is counted, not recorded, so the pair stays open for another
annotator instead of being closed by a skip. When two annotators labelled one task (Label Studio's overlap), the
store keeps one active label per pair: the earlier annotation is recorded, the later one is reported as a
conflict (with both verdicts), never silently dropped. The whole file is checked before anything is written: a
bad file changes nothing and the error names the file, the task and the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from balpm.store import validate_annotator

if TYPE_CHECKING:
    from balpm.session import Session

__all__ = ["LABEL_CONFIG", "CHOICES", "ImportResult", "LabelStudioFormatError", "export_tasks", "import_export",
           "annotator_name"]

#: The choice values of :data:`LABEL_CONFIG` and the verdict each means about the *screen's* sides.
CHOICES = {"Left is better": "left", "Right is better": "right", "Tie": "tie"}

#: Label Studio labelling config for the exported tasks (paste into the project's Labeling Interface).
LABEL_CONFIG = """<View>
  <Header value="Which response is better?"/>
  <Text name="prompt" value="$prompt"/>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;">
      <Header value="Left"/>
      <Text name="left" value="$left"/>
    </View>
    <View style="flex: 1;">
      <Header value="Right"/>
      <Text name="right" value="$right"/>
    </View>
  </View>
  <Choices name="preference" toName="prompt" choice="single-radio" required="true" showInline="true">
    <Choice value="Left is better"/>
    <Choice value="Right is better"/>
    <Choice value="Tie"/>
  </Choices>
</View>
"""

_PREFIX = "labelstudio:"


class LabelStudioFormatError(ValueError):
    """A Label Studio file balpm cannot use; the message names the file, the task and the field."""


@dataclass
class ImportResult:
    """What :func:`import_export` did: counts, and the conflicts a person should look at."""

    recorded: int = 0
    duplicates: int = 0
    cancelled: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    """Annotations imported before whose verdict has since changed in Label Studio: not applied (a correction is
    the annotator's to make, in balpm's History), listed so nobody believes it was."""

    def summary(self) -> str:
        lines = [f"recorded {self.recorded} labels; {self.duplicates} already imported; "
                 f"{self.cancelled} skipped in Label Studio (not labels); {len(self.conflicts)} conflicts; "
                 f"{len(self.changed)} changed in Label Studio since imported (not applied)"]
        lines += [f"  pair {c['pair_id']}: {c['annotator']} said {c['verdict']} (annotation {c['annotation']}), "
                  f"kept the earlier label {c['kept_verdict']} by {c['kept_annotator']}" for c in self.conflicts]
        lines += [f"  pair {c['pair_id']}: annotation {c['annotation']} by {c['annotator']} now says {c['verdict']}, "
                  f"imported as {c['kept_verdict']}: change it in balpm's History if meant" for c in self.changed]
        return "\n".join(lines)


def _plain(text: Any) -> str:
    """A pool text as Label Studio's ``Text`` shows it: strings as they are, message lists as ``role: content``."""
    if isinstance(text, str):
        return text
    if isinstance(text, (list, tuple)):
        return "\n\n".join(f"{m.get('role', '')}: {m.get('content', '')}" if isinstance(m, dict) else str(m)
                           for m in text)
    return str(text)


def export_tasks(session: Session, out: str | os.PathLike[str], *,
                 config_out: str | os.PathLike[str] | None = None) -> int:
    """Write the session's current batch, less pairs already labelled, as Label Studio tasks; returns the count.

    ``config_out`` also writes :data:`LABEL_CONFIG` there. Raises ValueError when the session has no batch.
    """
    batch = session.current_batch()
    if batch is None:
        raise ValueError(f"session {session.name!r} has no proposed batch: propose one first (Acquire page, Step)")
    decided = session.store.decided_ids()
    ids = [i for i in batch.ids if i not in decided]
    pairs = session.load_pool().pairs.set_index("id")
    tasks = []
    for pid in ids:
        row = pairs.loc[pid]
        swapped = session.side_swapped(pid)
        a, b = _plain(row["completion_a"]), _plain(row["completion_b"])
        tasks.append({"data": {
            "prompt": _plain(row["prompt"]), "left": b if swapped else a, "right": a if swapped else b,
            "balpm_pair_id": pid, "balpm_swapped": swapped, "balpm_round": batch.round,
            "balpm_batch_id": batch.batch_id, "balpm_session": session.name}})
    Path(out).write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    if config_out is not None:
        Path(config_out).write_text(LABEL_CONFIG, encoding="utf-8")
    return len(tasks)


def annotator_name(completed_by: Any) -> str:
    """The balpm annotator of a Label Studio annotation's ``completed_by``: email, else full name, else user id.

    Exports hold either the user object (``id``, ``email``, ``first_name``, ``last_name``) or only the user id.
    """
    if isinstance(completed_by, dict):
        email = str(completed_by.get("email") or "").strip()
        name = " ".join(str(completed_by.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
        if email or name:
            return email or name
        completed_by = completed_by.get("id")
    if isinstance(completed_by, (int, str)) and not isinstance(completed_by, bool) and str(completed_by).strip():
        return f"labelstudio-user-{str(completed_by).strip()}"
    raise ValueError(f"completed_by {completed_by!r} names no user")


def _read_tasks(path: Path) -> list[dict[str, Any]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LabelStudioFormatError(f"{path}: line {e.lineno}, column {e.colno}: not JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise LabelStudioFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(tasks, list):
        raise LabelStudioFormatError(f"{path}: expected Label Studio's JSON export (a list of tasks), "
                                     f"got a JSON {type(tasks).__name__}")
    return tasks


def _verdict(ann: dict[str, Any], where: str) -> str | None:
    """'left' | 'right' | 'tie' from an annotation's ``choices`` result, None when it holds no choice."""
    picked = [v for r in ann.get("result") or [] if isinstance(r, dict) and r.get("type") == "choices"
              for v in (r.get("value") or {}).get("choices") or []]
    if not picked:
        return None
    if len(picked) > 1 or picked[0] not in CHOICES:
        raise LabelStudioFormatError(f"{where}: field result.value.choices: {picked!r}; expected one of "
                                     f"{list(CHOICES)} (the labelling config balpm exports)")
    return CHOICES[picked[0]]


def _plan(path: Path, tasks: list[Any], known: set[str]) -> tuple[list[dict[str, Any]], int]:
    """Every annotation to record, checked, in the order given (by annotation time); and the skipped count."""
    plan, cancelled = [], 0
    for i, task in enumerate(tasks, start=1):
        where = f"{path}: task {i}" + (f" (Label Studio id {task.get('id')})" if isinstance(task, dict) else "")
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not data.get("balpm_pair_id"):
            raise LabelStudioFormatError(f"{where}: field data.balpm_pair_id is missing: not a task exported by "
                                         "`balpm labelstudio export`")
        pid = str(data["balpm_pair_id"])
        if pid not in known:
            raise LabelStudioFormatError(f"{where}: field data.balpm_pair_id: pair {pid!r} is not in this "
                                         "session's pool (exported from another session?)")
        for ann in task.get("annotations") or []:
            aw = f"{where}, annotation {ann.get('id') if isinstance(ann, dict) else '?'}"
            if not isinstance(ann, dict) or ann.get("id") in (None, ""):
                raise LabelStudioFormatError(f"{aw}: field id is missing (it makes the import idempotent)")
            if ann.get("was_cancelled"):
                cancelled += 1
                continue
            side = _verdict(ann, aw)
            if side is None:
                continue
            try:
                annotator = validate_annotator(annotator_name(ann.get("completed_by")))
            except ValueError as e:
                raise LabelStudioFormatError(f"{aw}: field completed_by: {e}") from None
            swapped = bool(data.get("balpm_swapped", False))
            verdict = "tie" if side == "tie" else ("b" if (side == "left") == swapped else "a")
            try:
                when = datetime.fromisoformat(str(ann.get("created_at")).replace("Z", "+00:00"))
                if when.tzinfo is None:
                    raise ValueError("no time zone")
            except ValueError as e:
                raise LabelStudioFormatError(f"{aw}: field created_at: {ann.get('created_at')!r} is not an "
                                             f"ISO-8601 time with a zone ({e})") from None
            plan.append({"pair_id": pid, "verdict": verdict, "annotator": annotator, "shown_swapped": swapped,
                         "round": data.get("balpm_round"), "batch_id": data.get("balpm_batch_id"),
                         "request_id": f"{_PREFIX}{ann['id']}", "created_at": when.isoformat(), "where": aw})
    plan.sort(key=lambda p: datetime.fromisoformat(p["created_at"]))  # overlap: the earlier annotation wins the pair
    return plan, cancelled


def import_export(session: Session, path: str | os.PathLike[str]) -> ImportResult:
    """Record the labels of a Label Studio JSON export of tasks written by :func:`export_tasks`.

    Idempotent (request id per annotation id). The whole file is checked first: a bad one raises
    :class:`LabelStudioFormatError` naming file, task, annotation and field, and records nothing.
    """
    path = Path(path)
    tasks = _read_tasks(path)
    known = set(session.load_pool().ids.astype(str).tolist())
    plan, cancelled = _plan(path, tasks, known)
    result = ImportResult(cancelled=cancelled)
    others = []
    for p in plan:
        r = session.store.record(p["pair_id"], p["verdict"], annotator=p["annotator"],
                                 shown_swapped=p["shown_swapped"], round=p["round"], request_id=p["request_id"],
                                 batch_id=p["batch_id"], created_at=p["created_at"])
        result.recorded += r.recorded
        if not r.recorded:
            others.append((p, r))
    kept = session.store.events().set_index("event_id") if others else None  # one read, after every write
    for p, r in others:
        k = kept.loc[r.event_id]
        row = {"pair_id": p["pair_id"], "annotator": p["annotator"], "verdict": p["verdict"],
               "annotation": p["request_id"][len(_PREFIX):], "kept_verdict": k["verdict"]}
        if r.status == "duplicate":
            result.duplicates += 1
            if k["verdict"] != p["verdict"]:
                result.changed.append(row)
        else:
            result.conflicts.append(row | {"kept_event": r.event_id, "kept_annotator": k["annotator"]})
    return result
