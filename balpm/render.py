"""Text helpers for showing pairs to people: chat turns, safe Markdown, prompt previews, A/B differences, numbers.

Pure functions (no Streamlit): the Label and Acquire pages draw with them and the tests check them directly.

Why they exist: HH-RLHF prompts are whole dialogues (``"\\n\\nHuman: …\\n\\nAssistant: …"``) that read best as chat
bubbles; completions are often Markdown, but a text written by a model or a stranger must never make the browser
fetch a remote image or run HTML, so :func:`safe_markdown` neutralises those and leaves the rest; a table cell
needs the last question asked, not the last 200 characters cut mid-word; and an acquisition score of 1e-6 must
read ``1.2e-06``, not ``0.0000``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence

__all__ = ["split_turns", "chat_turns", "chat_avatar", "last_human_turn", "preview", "prompt_preview",
           "safe_markdown", "diff_words", "highlight_markdown", "format_sig", "matches", "diversity_driven"]

_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def split_turns(text: str) -> list[tuple[str, str]]:
    """HH-RLHF dialogue → ``[(role, text), …]`` with role ``"user"`` or ``"assistant"`` (``st.chat_message``'s names).

    Turns start at ``"\\n\\nHuman:"`` / ``"\\n\\nAssistant:"`` (or the same without the blank line at the very start);
    each turn's text is stripped, and a trailing empty assistant turn (the prompt's open ``"Assistant:"``) is dropped.
    A text without those markers is one ``("user", text)`` turn, so any prompt can be drawn the same way.
    """
    marks = list(_TURN.finditer(text))
    if not marks:
        return [("user", text.strip())] if text.strip() else []
    turns: list[tuple[str, str]] = []
    head = text[: marks[0].start()].strip()
    if head:  # text before the first marker (a system preamble): shown as the user's
        turns.append(("user", head))
    for m, nxt in zip(marks, marks[1:] + [None]):
        body = text[m.end(): nxt.start() if nxt is not None else len(text)].strip()
        turns.append((_ROLES[m.group(1)], body))
    if turns and turns[-1] == ("assistant", ""):
        turns.pop()
    return turns


#: Avatars for roles ``st.chat_message`` has no picture for (it would show the role's first letter): a
#: system message must not look like something the user typed.
_AVATARS = {"system": ":material/settings:", "developer": ":material/settings:", "tool": ":material/build:"}


def chat_turns(text: str, messages: str | Sequence[Mapping[str, str]] | None = None) -> list[tuple[str, str]]:
    """A prompt's turns as ``[(role, text), …]``: from its message list when the pair keeps one, else its text.

    ``messages`` is a conversational pool's ``prompt_messages`` value (the JSON text of
    :func:`balpm.data.chat.to_json`, or the list itself); its roles are kept as given, so a ``system`` message is
    drawn as the system's, not as a user turn saying ``"System: …"`` (which is all the flattened ``text`` still
    tells). Without messages (a missing value, non-conversational pools) this is :func:`split_turns` of ``text``.
    Contents are stripped, like :func:`split_turns`'s turns; empty messages are left out.
    """
    if isinstance(messages, str):
        messages = json.loads(messages)
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        return split_turns(text)
    turns = [(str(m["role"]), str(m["content"]).strip()) for m in messages]
    return [(role, body) for role, body in turns if body]


def chat_avatar(role: str) -> str | None:
    """The ``avatar`` for ``st.chat_message(role)``: None where Streamlit has its own (user, assistant)."""
    return _AVATARS.get(role.lower())


def last_human_turn(text: str) -> str:
    """The last user turn of a dialogue (the question being answered), or the whole text without turn markers."""
    users = [t for role, t in split_turns(text) if role == "user"]
    return users[-1] if users else text.strip()


def preview(text: str, limit: int = 120) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters, ``…`` when cut."""
    s = " ".join(str(text).split())
    if len(s) <= limit:
        return s
    cut = s[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; else a very long word is cut inside
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def prompt_preview(prompt: str, limit: int = 120) -> str:
    """What a table shows for a prompt: its last human turn (or its start), one line, cut at a word, ``…``."""
    return preview(last_human_turn(prompt), limit)


# Markdown that reaches outside the page or runs as markup: images (![alt](url), ![alt][ref]), raw HTML (<…>),
# LaTeX ($…$, Streamlit renders it) and Streamlit's :color[…] / :material/icon: directives. Escaping the one
# character that starts each keeps every other Markdown feature (emphasis, lists, code, tables, links).
_UNSAFE = re.compile(r"(!(?=\[)|[<$:])")


def safe_markdown(text: str) -> str:
    """Markdown of ``text`` that renders its formatting but never an image, HTML, LaTeX or a Streamlit directive.

    Why not :func:`appkit.literal` (every punctuation escaped): a completion's lists, code blocks and emphasis are
    part of what the annotator judges. Inside code spans and fenced blocks a backslash is shown as typed, so
    there nothing needs (or gets) escaping: Markdown does not run there.
    """
    out: list[str] = []
    fence: str | None = None
    for line in str(text).split("\n"):
        stripped = line.lstrip()
        if fence is not None:
            out.append(line)
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith("```") or stripped.startswith("~~~"):
            fence = stripped[:3]
            out.append(line)
            continue
        # outside fences: escape outside `code spans` only
        parts = re.split(r"(`+[^`]*`+)", line)
        out.append("".join(p if p.startswith("`") and p.endswith("`") and len(p) > 1 else _UNSAFE.sub(r"\\\1", p)
                           for p in parts))
    return "\n".join(out)


_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def diff_words(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Where ``a`` and ``b`` differ, word by word: each text as ``[(piece, differs), …]`` that joins back to it.

    Uses :class:`difflib.SequenceMatcher` on words, spaces and punctuation (no junk heuristic: a short shared
    word is still shared). Whitespace-only pieces are never marked, so highlights do not bleed across gaps.
    """
    ta, tb = _TOKENS.findall(a), _TOKENS.findall(b)
    sm = difflib.SequenceMatcher(a=ta, b=tb, autojunk=False)
    out_a: list[tuple[str, bool]] = []
    out_b: list[tuple[str, bool]] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        same = op == "equal"
        out_a += [(t, not same and not t.isspace()) for t in ta[i1:i2]]
        out_b += [(t, not same and not t.isspace()) for t in tb[j1:j2]]
    return _merge(out_a), _merge(out_b)


def _merge(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Join neighbouring pieces with the same flag (a space between two changed words joins them)."""
    merged: list[tuple[str, bool]] = []
    for i, (t, d) in enumerate(pieces):
        if t.isspace() and 0 < i < len(pieces) - 1 and pieces[i - 1][1] and pieces[i + 1][1] and "\n" not in t:
            d = True
        if merged and merged[-1][1] == d:
            merged[-1] = (merged[-1][0] + t, d)
        else:
            merged.append((t, d))
    return merged


_ALL_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def highlight_markdown(pieces: list[tuple[str, bool]], color: str = "orange") -> str:
    """Markdown of :func:`diff_words` pieces: every character literal, differing pieces on a coloured background.

    The text is shown as typed (every ASCII punctuation escaped, as ``appkit.literal`` does), so the highlight view
    is the raw text with marks; line breaks are kept.
    """
    out = []
    for text, differs in pieces:
        lines = [_ALL_PUNCT.sub(r"\\\1", ln) for ln in text.split("\n")]
        if differs:
            lines = [f":{color}-background[{ln}]" if ln.strip() else ln for ln in lines]
        out.append("  \n".join(lines))
    return "".join(out)


def format_sig(x: float | None, digits: int = 2) -> str:
    """``x`` with ``digits`` significant digits: ``1.2e-06``, ``0.53``, ``12``; ``""`` for None or NaN.

    Why: acquisition terms span many orders of magnitude (BALD of a confident ensemble is ~1e-6), and a fixed
    ``%.4f`` shows those as ``0.0000``, as if they were zero.
    """
    if x is None:
        return ""
    x = float(x)
    if math.isnan(x):
        return ""
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def matches(query: str, *texts: str) -> bool:
    """True when every word of ``query`` occurs in one of ``texts`` (case-insensitive); an empty query matches."""
    words = str(query).lower().split()
    hay = "\n".join(str(t).lower() for t in texts)
    return all(w in hay for w in words)


def diversity_driven(uncertainty, score, *, share: float = 0.01, most: float = 0.5) -> tuple[bool, int, int]:
    """Whether a batch was chosen by the prompt-entropy term alone: ``U < share·|score|`` for most of its picks.

    Returns ``(driven, n_small, n_scored)`` over the picks with a finite score and uncertainty (random and
    cold-start picks have none, and then ``driven`` is False). Why: with a confident ensemble BALD is ~1e-6 while
    β·Ĥ is ~0.01, and the score column alone does not tell the annotator that uncertainty played no part.
    """
    import numpy as np

    u = np.asarray(uncertainty, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(u) & np.isfinite(s) & (s != 0)
    small = int((np.abs(u[ok]) < share * np.abs(s[ok])).sum())
    n = int(ok.sum())
    return (n > 0 and small > most * n), small, n
