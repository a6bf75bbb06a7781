"""trl's conversational format: message lists (``[{"role": ..., "content": ...}]``) as prompts and completions.

Two shapes are read (as trl writes them):

- *explicit prompt*: ``prompt``, ``chosen`` and ``rejected`` are message lists (the completions usually one
  assistant message each);
- *implicit prompt*: only ``chosen`` and ``rejected``, each a whole conversation; the prompt is their shared
  leading turns and the completions are what follows.

The messages are kept as JSON text in the metadata columns ``prompt_messages``, ``completion_a_messages`` and
``completion_b_messages`` (so the label view and the exports can show and write them as chat), and rendered as
plain text in ``prompt``/``completion_a``/``completion_b`` so everything else works unchanged. The plain rendering
is HH-RLHF's: each turn is ``"\\n\\n" + Role + ": " + content`` with ``Human`` for ``user``, ``Assistant`` for
``assistant`` and the role capitalised otherwise; the prompt ends in ``"\\n\\nAssistant:"`` and a completion is its
first message's content (stripped), further turns rendered after it. An HH transcript rewritten as messages thus
reads as the same pairs, with the same ids and the same embedded texts, as the transcript itself (whose pool keeps
each reply's leading space, as the source has it; the messages keep theirs exactly).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from balpm.data.pool import _Loc

_ROLE_NAMES = {"user": "Human", "assistant": "Assistant"}
Message = dict[str, str]
#: The metadata columns holding a conversational pair's messages as JSON (:func:`to_json`).
MESSAGE_COLUMNS = ("prompt_messages", "completion_a_messages", "completion_b_messages")


def is_messages(v: Any) -> bool:
    """Whether a field value looks like a message list (a list, or a Parquet/``datasets`` array, of dicts)."""
    if isinstance(v, np.ndarray):
        v = list(v)
    return isinstance(v, list) and len(v) > 0 and all(isinstance(m, dict) for m in v)


def messages(rec: dict, key: str, loc: _Loc) -> list[Message]:
    """A required message-list field, checked: each item a dict with text ``role`` and ``content``."""
    if key not in rec:
        raise loc.error(key, "missing field")
    v = rec[key]
    if isinstance(v, np.ndarray):
        v = list(v)
    if not isinstance(v, list):
        raise loc.error(key, f"expected a list of messages ({{'role', 'content'}}), got {type(v).__name__}")
    if not v:
        raise loc.error(key, "empty list of messages")
    out = []
    for i, m in enumerate(v):
        if not isinstance(m, dict):
            raise loc.error(f"{key}[{i}]", f"expected a message {{'role', 'content'}}, got {type(m).__name__}")
        for part in ("role", "content"):
            x = m.get(part)
            if not isinstance(x, str):
                got = "missing" if x is None else f"expected text, got {type(x).__name__}"
                raise loc.error(f"{key}[{i}].{part}", got)
        out.append({"role": m["role"], "content": m["content"]})
    return out


def render_turns(msgs: Sequence[Message]) -> str:
    """The plain rendering of turns: ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` (see the module docstring)."""
    return "".join(f"\n\n{_ROLE_NAMES.get(m['role'], m['role'].capitalize())}: {m['content']}" for m in msgs)


def render_prompt(msgs: Sequence[Message]) -> str:
    """A prompt's plain text: its turns, then ``"\\n\\nAssistant:"`` (where the reply starts)."""
    return render_turns(msgs) + "\n\nAssistant:"


def render_completion(msgs: Sequence[Message]) -> str:
    """A completion's plain text: its first message's content, stripped, then any further turns rendered."""
    return (msgs[0]["content"].strip() + render_turns(msgs[1:])).strip() if msgs else ""


def split_conversations(chosen: list[Message], rejected: list[Message]) -> tuple[list, list, list] | str:
    """(prompt turns, chosen turns, rejected turns) of two whole conversations, or the reason to drop them.

    The prompt is the longest shared leading run of turns that ends before an assistant turn in both.
    """
    k = 0
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    while k > 0 and chosen[k - 1]["role"] == "assistant" and (k == len(chosen) or k == len(rejected)):
        k -= 1
    if k == 0:
        return "prompts differ"
    return chosen[:k], chosen[k:], rejected[k:]


def to_json(msgs: Sequence[Message]) -> str:
    """Messages as the JSON text kept in a pool's ``*_messages`` column."""
    return json.dumps(list(msgs), ensure_ascii=False)


def from_json(text: str) -> list[Message]:
    """The messages of a pool's ``*_messages`` column (the inverse of :func:`to_json`)."""
    return json.loads(text)
