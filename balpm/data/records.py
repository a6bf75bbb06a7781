"""Record schemas: one reader per source layout (trl, pairs, HH-RLHF, summarize-from-feedback, QA-Feedback).

A reader takes one parsed record (a dict, from any container of :mod:`balpm.data.formats`) and adds its pairs to a
:class:`_Builder`, which drops duplicates and counts every drop; the rules are in :mod:`balpm.data`'s docstring.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from balpm.data import chat
from balpm.data.columns import apply_columns, missing_column
from balpm.data.pool import CORE_COLUMNS, STRIP_COLUMN, PoolFormatError, _Loc

HH_SEPARATOR = "\n\nAssistant:"
QA_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))


def pair_id(prompt: str, first: str, second: str) -> str:
    """A stable 16-hex-digit id of a pair from its texts in source order (chosen/first, rejected/second)."""
    h = hashlib.sha1()
    for t in (prompt, first, second):
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _coin(seed: int, pid: str) -> bool:
    """True when the rejected completion is shown as A for pair ``pid`` under ``seed``."""
    return hashlib.sha1(f"{seed}\x00{pid}".encode()).digest()[0] & 1 == 1


def _prompt_group(prompt: str) -> str:
    return hashlib.sha1(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def _text(rec: dict, key: str, loc: _Loc, *, allow_empty: bool = False, label: str | None = None) -> str:
    """A required string field: present, a string, valid Unicode, not blank."""
    name = label or key
    if key not in rec:
        raise loc.error(name, "missing field")
    v = rec[key]
    if _is_missing(v):
        raise loc.error(name, "missing value")
    if not isinstance(v, str):
        raise loc.error(name, f"expected text, got {type(v).__name__}")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise loc.error(name, f"not valid UTF-8 text (bad byte or surrogate at character {e.start})") from None
    if not allow_empty and not v.strip():
        raise loc.error(name, "empty text")
    return v


#: Label texts that mean "no label" (lower-cased, stripped): what a CSV cell holds where JSON has null or NaN.
MISSING_LABEL_TEXTS = frozenset({"", "nan", "na", "<na>", "null", "none"})


def _label(v: Any, loc: _Loc, key: str = "label", allowed: Sequence[int] = (0, 1)) -> int | None:
    """A label field: missing (None, NaN, or a text in :data:`MISSING_LABEL_TEXTS`), else a value in ``allowed``.

    ``NaN`` in a JSON line and ``NaN`` in a CSV cell mean the same: no label.
    """
    if _is_missing(v) or (isinstance(v, str) and v.strip().lower() in MISSING_LABEL_TEXTS):
        return None
    x: Any = v
    if isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            raise loc.error(key, f"expected one of {list(allowed)}, got {v!r}") from None
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or float(x) not in allowed:
        raise loc.error(key, f"expected one of {list(allowed)}, got {v!r}")
    return int(x)


def _optional_str(v: Any) -> str | None:
    if _is_missing(v):
        return None
    return v if isinstance(v, str) else str(v)


# --------------------------------------------------------------------------------------------------- records


@dataclass
class _Row:
    id: str
    prompt: str
    a: str
    b: str
    label: int | None
    source: str
    group: str
    meta: dict[str, Any]
    loc: _Loc
    explicit_id: bool


class _Builder:
    """Collects rows, drops duplicates, counts drops, builds the table."""

    def __init__(self, strict: bool = False, columns: dict[str, str] | None = None) -> None:
        self.columns = dict(columns or {})  # target -> the file's column (--columns)
        self.rows: list[_Row] = []
        self.dropped: Counter[str] = Counter()
        self.first_dropped: dict[str, tuple[str, int | None]] = {}
        self.strict = strict
        self._seen: dict[str, _Row] = {}

    def drop(self, reason: str, loc: _Loc, fld: str | None = None, n: int = 1) -> None:
        """Count ``n`` pairs dropped for ``reason`` at ``loc``; in strict mode, refuse the file there instead."""
        if self.strict:
            raise loc.error(
                fld, f"{reason}: the record would be dropped, and strict mode turns every drop into an error")
        self.dropped[reason] += n
        self.first_dropped.setdefault(reason, (loc.path, loc.line))

    def add(self, row: _Row) -> None:
        if row.a == row.b:
            self.drop("identical completions", row.loc)
            return
        prev = self._seen.get(row.id)
        if prev is not None:
            if row.explicit_id or prev.explicit_id:
                first = f" (first at line {prev.loc.line})" if prev.loc.line is not None else ""
                raise row.loc.error("id", f"duplicate id {row.id!r}{first}")
            self.drop("duplicate pair" if prev.label == row.label else "conflicting duplicate", row.loc)
            return
        self._seen[row.id] = row
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        rows = self.rows
        meta_keys: list[str] = []
        seen: set[str] = set()
        for r in rows:
            for k in r.meta:
                if k not in seen:
                    seen.add(k)
                    meta_keys.append(k)
        data: dict[str, Any] = {
            "id": [r.id for r in rows],
            "prompt": [r.prompt for r in rows],
            "completion_a": [r.a for r in rows],
            "completion_b": [r.b for r in rows],
            "label": pd.array([r.label for r in rows], dtype="Int8"),
            "source": [r.source for r in rows],
            "group": [r.group for r in rows],
        }
        for k in meta_keys:
            data[k] = [r.meta.get(k) for r in rows]
        cols = {k: (v if k == "label" else pd.Series(v, dtype=str if k in CORE_COLUMNS else None))
                for k, v in data.items()}
        return pd.DataFrame(cols)


def _detect_schema(rec: dict, loc: _Loc) -> str:
    keys = set(rec)
    if {"info", "summaries", "choice"} <= keys:
        return "summarize"
    if "question" in keys and "preference" in keys and "prediction 1" in keys:
        return "qa-feedback"
    if {"chosen", "rejected"} <= keys:
        if chat.is_messages(rec["chosen"]) or chat.is_messages(rec.get("prompt")):
            return "trl-chat" if "prompt" in keys else "chat"
        return "trl" if "prompt" in keys else "hh-rlhf"
    if {"prompt", "completion_a", "completion_b"} <= keys:
        return "pairs"
    if "prompt" in keys and ("chosen" in keys or "rejected" in keys):
        raise loc.error("rejected" if "chosen" in keys else "chosen", "missing field")
    if "prompt" in keys and ("completion_a" in keys or "completion_b" in keys):
        raise loc.error("completion_b" if "completion_a" in keys else "completion_a", "missing field")
    raise loc.error(
        None,
        f"unknown record layout (fields {sorted(keys)[:8]}); expected prompt/chosen/rejected, "
        "prompt/completion_a/completion_b[/label], chosen/rejected transcripts (HH-RLHF), "
        "info/summaries/choice (summarize-from-feedback) or question/prediction 1..4/preference (QA-Feedback); "
        "other names can be mapped: --columns prompt=COLUMN,chosen=COLUMN,rejected=COLUMN",
    )


_GENERIC_RESERVED = {"id", "prompt", "chosen", "rejected", "completion_a", "completion_b", "label", "source", "group"}


def _generic_extras(rec: dict, loc: _Loc, source: str) -> tuple[str | None, str, str | None, dict]:
    rid = rec.get("id")
    rid = None if _is_missing(rid) or (isinstance(rid, str) and not rid.strip()) else str(rid)
    if isinstance(rec.get("id"), float) and rid is not None and float(rec["id"]).is_integer():
        rid = str(int(rec["id"]))  # CSV/Parquet ids that pandas read as floats
    src = _optional_str(rec.get("source")) or source
    grp = _optional_str(rec.get("group"))
    meta = {k: v for k, v in rec.items() if k not in _GENERIC_RESERVED}
    return rid, src, grp, meta


def _add_chosen_rejected(
    b: _Builder, prompt: str, chosen: str, rejected: str, rid: str | None, src: str, grp: str | None,
    meta: dict, loc: _Loc, seed: int, id_texts: tuple[str, str] | None = None,
) -> None:
    """Add one chosen/rejected pair, A/B by the coin; ``id_texts`` are the completions the id hashes (default: the
    texts kept)."""
    pid = rid if rid is not None else pair_id(prompt, *(id_texts or (chosen, rejected)))
    if _coin(seed, pid):
        a, c, lab = rejected, chosen, 0
    else:
        a, c, lab = chosen, rejected, 1
    grp = grp if grp is not None else _prompt_group(prompt)
    b.add(_Row(pid, prompt, a, c, lab, src, grp, meta, loc, rid is not None))


def _read_trl(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    prompt = _text(rec, "prompt", loc)
    chosen = _text(rec, "chosen", loc)
    rejected = _text(rec, "rejected", loc)
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    _add_chosen_rejected(b, prompt, chosen, rejected, rid, src, grp, meta, loc, seed)


def _read_pairs(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    prompt = _text(rec, "prompt", loc)
    a = _text(rec, "completion_a", loc)
    c = _text(rec, "completion_b", loc)
    lab = _label(rec.get("label"), loc)
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    pid = rid if rid is not None else pair_id(prompt, a, c)
    grp = grp if grp is not None else _prompt_group(prompt)
    b.add(_Row(pid, prompt, a, c, lab, src, grp, meta, loc, rid is not None))


def _read_chat(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    """trl conversational records (:mod:`balpm.data.chat`): explicit prompt, or whole conversations."""
    chosen = chat.messages(rec, "chosen", loc)
    rejected = chat.messages(rec, "rejected", loc)
    if "prompt" in rec:
        prompt = chat.messages(rec, "prompt", loc)
    else:
        parts = chat.split_conversations(chosen, rejected)
        if isinstance(parts, str):
            b.drop(parts, loc)
            return
        prompt, chosen, rejected = parts
    rc, rr = chat.render_completion(chosen), chat.render_completion(rejected)
    if rc == rr:
        b.drop("identical completions", loc)
        return
    if not rc or not rr:
        b.drop("empty completion", loc, "chosen" if not rc else "rejected")
        return
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    meta["prompt_messages"] = chat.to_json(prompt)
    n = len(b.rows)
    _add_chosen_rejected(b, chat.render_prompt(prompt), rc, rr, rid, src, grp, meta, loc, seed)
    if len(b.rows) > n:  # kept: its A/B messages follow the coin
        row = b.rows[-1]
        first, second = (rejected, chosen) if row.label == 0 else (chosen, rejected)
        row.meta = {**meta, "completion_a_messages": chat.to_json(first),
                    "completion_b_messages": chat.to_json(second)}


def split_hh_transcript(chosen: str, rejected: str) -> tuple[str, str, str] | str:
    """Split two HH-RLHF dialogues into (prompt, chosen reply, rejected reply), or return the drop reason.

    The prompt runs up to and including the last ``"\\n\\nAssistant:"`` and must be the same in both. The replies
    are returned exactly as in the source (usually with a leading space), so ``prompt + chosen reply`` is the
    chosen transcript; the drop rules judge them stripped (empty, identical), and so does the pair id
    (:func:`hh_pair_id`).
    """
    pc, sep_c, rc = chosen.rpartition(HH_SEPARATOR)
    pr, sep_r, rr = rejected.rpartition(HH_SEPARATOR)
    if not sep_c or not sep_r:
        return "no assistant turn"
    if pc != pr:
        return "prompts differ"
    sc, sr = rc.strip(), rr.strip()
    if sc == sr:
        return "identical completions"
    if not sc or not sr:
        return "empty completion"
    return pc + HH_SEPARATOR, rc, rr


def hh_pair_id(prompt: str, chosen: str, rejected: str) -> str:
    """The id of an HH pair from :func:`split_hh_transcript`'s parts: :func:`pair_id` of the stripped replies.

    Why stripped: ids were defined on stripped replies before the pool kept the source's whitespace, and an id
    must never change (labels, caches and sessions are keyed by it).
    """
    return pair_id(prompt, chosen.strip(), rejected.strip())


def _read_hh(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    chosen = _text(rec, "chosen", loc)
    rejected = _text(rec, "rejected", loc)
    parts = split_hh_transcript(chosen, rejected)
    if isinstance(parts, str):
        b.drop(parts, loc)
        return
    prompt, rc, rr = parts
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    meta[STRIP_COLUMN] = True  # shown and exported as in the source; embedded stripped, as the id is
    _add_chosen_rejected(b, prompt, rc, rr, rid, src, grp, meta, loc, seed, id_texts=(rc.strip(), rr.strip()))


def _read_summarize(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int, counts: Counter) -> None:
    info = rec.get("info")
    if not isinstance(info, dict):
        raise loc.error("info", f"expected an object, got {type(info).__name__}")
    iloc = _Loc(loc.path, loc.line)
    info_id = info.get("id")
    if _is_missing(info_id) or (isinstance(info_id, str) and not info_id.strip()):
        raise loc.error("info.id", "missing field")
    info_id = str(info_id)
    if "post" in info and not _is_missing(info.get("post")):
        post = _text(info, "post", iloc, label="info.post")
        title = _text(info, "title", iloc, label="info.title")
        sub = _text(info, "subreddit", iloc, label="info.subreddit")
        prompt = f"SUBREDDIT: r/{sub}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
        site = None
    elif "article" in info and not _is_missing(info.get("article")):
        article = _text(info, "article", iloc, label="info.article")
        prompt = f"Article:\n{article}\n\nTL;DR:"
        site = _optional_str(info.get("site"))
        sub = None
    else:
        raise loc.error("info.post", "missing field (a comparison needs info.post or info.article)")
    sums = rec.get("summaries")
    if not isinstance(sums, list) or len(sums) != 2:
        raise loc.error("summaries", "expected a list of two summaries")
    texts, policies, notes = [], [], []
    for i, s in enumerate(sums):
        if not isinstance(s, dict):
            raise loc.error(f"summaries[{i}]", f"expected an object, got {type(s).__name__}")
        texts.append(_text(s, "text", loc, label=f"summaries[{i}].text", allow_empty=True))
        policies.append(_optional_str(s.get("policy")))
        notes.append(_optional_str(s.get("note")))
    if "choice" not in rec:
        raise loc.error("choice", "missing field")
    choice = _label(rec["choice"], loc, key="choice")
    if choice is None:
        raise loc.error("choice", "missing value")
    extra = rec.get("extra")
    conf = extra.get("confidence") if isinstance(extra, dict) else None
    k = counts[info_id]
    counts[info_id] += 1  # a dropped comparison keeps its number, so ids never depend on what was dropped
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:  # a policy produced nothing: the published files hold such comparisons
        b.drop("empty completion", loc, f"summaries[{blank[0]}].text")
        return
    meta = {
        "worker": _optional_str(rec.get("worker")),
        "policy_a": policies[0],
        "policy_b": policies[1],
        "note_a": notes[0],
        "note_b": notes[1],
        "confidence": None if _is_missing(conf) else conf,
        "batch": _optional_str(rec.get("batch")),
        "split": _optional_str(rec.get("split")),
        "subreddit": sub,
        "site": site,
    }
    b.add(_Row(f"{info_id}-{k}", prompt, texts[0], texts[1], 1 if choice == 0 else 0, source, info_id, meta, loc, True))


def _literal(v: Any, loc: _Loc, key: str) -> Any:
    """QA-Feedback fields may hold a JSON or Python literal as a string.

    Raises ValueError for text that is no literal, and a located error for one too deeply nested (or too long a
    chain of operators) for the parsers, which would otherwise end in a RecursionError or MemoryError.
    """
    if not isinstance(v, str):
        return v
    s = v.strip()
    try:
        try:
            return json.loads(s)
        except ValueError:
            pass
        import ast

        try:
            return ast.literal_eval(s)
        except SyntaxError as e:
            if "too many nested" in str(e):
                raise RecursionError(str(e)) from None
            raise ValueError(str(e)) from None
        except TypeError as e:  # {[1]: 2}: an unhashable key
            raise ValueError(str(e)) from None
    except (RecursionError, MemoryError):
        raise loc.error(key, f"too deeply nested to parse ({len(s):,} characters)") from None


def _read_qa(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    question = _text(rec, "question", loc)
    answers = [_text(rec, f"prediction {i}", loc, allow_empty=True) for i in range(1, 5)]
    try:
        pref = _literal(rec.get("preference"), loc, "preference")
    except PoolFormatError:
        raise
    except ValueError:
        raise loc.error("preference", "not a list of six verdicts") from None
    if not isinstance(pref, (list, tuple)) or len(pref) != 6:
        raise loc.error("preference", f"expected a list of six verdicts (0, 1, 2), got {rec.get('preference')!r}")
    verdicts = [_label(v, loc, key="preference", allowed=(0, 1, 2)) for v in pref]
    passages = rec.get("passages")
    try:
        passages = _literal(passages, loc, "passages")
    except PoolFormatError:
        raise
    except ValueError:
        pass  # metadata: kept as the text it is
    try:
        passages_json = passages if isinstance(passages, str) else json.dumps(passages, ensure_ascii=False)
    except (TypeError, ValueError):  # a Python literal JSON cannot hold (a set, bytes): keep the source text
        passages_json = str(rec.get("passages"))
    gold = _optional_str(rec.get("gold"))
    for (i, j), v in zip(QA_PAIRS, verdicts):
        if v is None:
            raise loc.error("preference", "missing verdict")
        if v == 0:
            b.drop("tie", loc, "preference")
            continue
        a, c = answers[i - 1], answers[j - 1]
        if not a.strip() or not c.strip():  # model output, like a summary: the pair is dropped, not the file
            b.drop("empty completion", loc, f"prediction {i if not a.strip() else j}")
            continue
        pid = pair_id(question, a, c)  # source order, so the id never depends on the seed
        first_better = v == 1
        # The annotators preferred the lower-numbered prediction 61% of the time; a Bradley-Terry model has no
        # position term, so showing the source order would hand it an unlearnable 61/39 prior. Same coin as trl.
        if _coin(seed, pid):
            i, j, a, c, first_better = j, i, c, a, not first_better
        meta = {"pair": f"{i},{j}", "passages": passages_json, "gold": gold}
        b.add(_Row(pid, question, a, c, 1 if first_better else 0, source, question, meta, loc, False))


def _deepest_field(rec: dict) -> str | None:
    """The field of an already parsed record whose value nests deepest (iterative: safe at any depth)."""
    best, name = -1, None
    for k, v in rec.items():
        depth, todo = 0, [(v, 1)]
        while todo:
            x, d = todo.pop()
            depth = max(depth, d)
            if isinstance(x, dict):
                todo.extend((y, d + 1) for y in x.values())
            elif isinstance(x, (list, tuple)):
                todo.extend((y, d + 1) for y in x)
        if depth > best:
            best, name = depth, str(k)
    return name


_READERS: dict[str, Callable[..., None]] = {
    "trl": _read_trl,
    "trl-chat": _read_chat,
    "chat": _read_chat,
    "pairs": _read_pairs,
    "hh-rlhf": _read_hh,
    "qa-feedback": _read_qa,
}


def _consume(b: _Builder, records: Iterable[tuple[_Loc, dict]], source: str, seed: int, schemas: set[str]) -> None:
    schema = None
    counts: Counter[str] = Counter()
    for loc, rec in records:
        if b.columns:
            gone = missing_column(rec, b.columns)
            if gone is not None:
                raise loc.error(gone, f"missing column (mapped by --columns; the record has {sorted(rec)[:8]})")
            rec = apply_columns(rec, b.columns)
        if schema is None:
            schema = _detect_schema(rec, loc)
            schemas.add(schema)
        try:
            if schema == "summarize":
                _read_summarize(b, rec, loc, source, seed, counts)
            else:
                _READERS[schema](b, rec, loc, source, seed)
        except RecursionError:  # a value the parser took but Python cannot walk (json.dumps of deep metadata)
            raise loc.error(_deepest_field(rec), "too deeply nested to read") from None
