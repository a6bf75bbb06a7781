"""Column mapping: read a table whose columns have other names (``question,answer_good,answer_bad``).

``--columns prompt=question,chosen=answer_good,rejected=answer_bad`` on the command line, the mapping form on the
Pool page and ``load_pool(..., columns=...)`` all end here: every record is renamed before its schema is detected,
so a mapped file is read by the same rules as one written with balpm's names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: The names a column can be mapped to (what the record readers know).
TARGETS = ("prompt", "chosen", "rejected", "completion_a", "completion_b", "label", "id", "group")

# Words that suggest a target in a column name (lower case), most specific first: the Pool page's pre-filled guess.
_HINTS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "question", "query", "instruction", "input", "context", "post", "conversation"),
    "chosen": ("chosen", "good", "better", "preferred", "winner", "win", "accepted", "positive"),
    "rejected": ("rejected", "bad", "worse", "dispreferred", "loser", "lose", "negative"),
    "completion_a": ("completion_a", "response_a", "answer_a", "output_a", "a"),
    "completion_b": ("completion_b", "response_b", "answer_b", "output_b", "b"),
    "label": ("label", "preference", "choice", "winner_is_a"),
    "id": ("id", "uid", "pair_id", "uuid"),
    "group": ("group", "prompt_id", "question_id"),
}


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"prompt=question,chosen=answer_good"`` (or a dict) -> ``{"prompt": "question", ...}``, checked.

    Raises ValueError naming the bad part: no ``=``, an unknown target, a target or column given twice.
    """
    if spec is None or spec == "":
        return {}
    items = list(spec.items()) if isinstance(spec, Mapping) else []
    if not isinstance(spec, Mapping):
        for part in str(spec).split(","):
            if not part.strip():
                continue
            target, eq, col = part.partition("=")
            if not eq or not target.strip() or not col.strip():
                raise ValueError(f"--columns: {part.strip()!r} is not TARGET=COLUMN (e.g. prompt=question)")
            items.append((target.strip(), col.strip()))
    out: dict[str, str] = {}
    for target, col in items:
        if target not in TARGETS:
            raise ValueError(f"--columns: unknown target {target!r}; known: {', '.join(TARGETS)}")
        if target in out:
            raise ValueError(f"--columns: {target!r} is mapped twice")
        if col in out.values():
            raise ValueError(f"--columns: column {col!r} is mapped twice")
        out[target] = str(col)
    return out


def format_columns(columns: Mapping[str, str]) -> str:
    """The ``--columns`` text of a mapping (what the app shows so a user can repeat it on the command line)."""
    return ",".join(f"{t}={c}" for t, c in columns.items())


def apply_columns(rec: dict, columns: Mapping[str, str]) -> dict:
    """``rec`` with mapped columns renamed to their targets; a column that a target would shadow is dropped.

    Returns the mapped record; a mapped column missing from it is reported by the caller (it knows the location).
    """
    if not columns:
        return rec
    sources = set(columns.values())
    out = {k: v for k, v in rec.items() if k not in sources and k not in columns}
    for target, col in columns.items():
        if col in rec:
            out[target] = rec[col]
    return out


def missing_column(rec: dict, columns: Mapping[str, str]) -> str | None:
    """The first mapped column the record lacks, or None."""
    return next((c for c in columns.values() if c not in rec), None)


def guess_columns(fields: Iterable[str]) -> dict[str, str]:
    """A first guess at the mapping from a table's column names (the Pool page pre-fills its form with it).

    Each target takes the first unused column whose lower-cased name equals, then contains, one of its hint words.
    Only a pair layout is guessed: chosen/rejected when such columns exist, else completion_a/b.
    """
    names = [str(f) for f in fields]
    used: set[str] = set()
    out: dict[str, str] = {}

    def pick(target: str) -> None:
        for exact in (True, False):
            for word in _HINTS[target]:
                for n in names:
                    low = n.lower()
                    if n in used:
                        continue
                    if (low == word) if exact else (len(word) > 2 and word in low):
                        out[target] = n
                        used.add(n)
                        return

    for t in ("chosen", "rejected", "id", "label", "group", "prompt"):
        pick(t)
    if "chosen" not in out or "rejected" not in out:
        out.pop("chosen", None)
        out.pop("rejected", None)
        used = set(out.values())
        pick("completion_a")
        pick("completion_b")
    return {t: out[t] for t in TARGETS if t in out}
