"""balpm.render: chat turns of HH-RLHF dialogues, safe Markdown, prompt previews, A/B differences, numbers."""

from __future__ import annotations

import re

import pytest

from balpm.data import load_pool
from balpm.render import (chat_avatar, chat_turns, diff_words, format_sig, highlight_markdown, last_human_turn,
                          preview, prompt_preview, safe_markdown, split_turns)

HH = ("\n\nHuman: What is a good way to store tomatoes?\n\nAssistant: At room temperature, out of the sun."
      "\n\nHuman: And once they are cut?\n\nAssistant:")


def test_split_turns_of_an_hh_prompt():
    assert split_turns(HH) == [
        ("user", "What is a good way to store tomatoes?"),
        ("assistant", "At room temperature, out of the sun."),
        ("user", "And once they are cut?"),
    ]
    assert split_turns("Human: hi") == [("user", "hi")]
    assert split_turns("just a question") == [("user", "just a question")]
    assert split_turns("   ") == []
    # a line that merely mentions 'Human:' inside a turn is not a new turn
    assert split_turns("\n\nHuman: say 'Human: x'\n\nAssistant:") == [("user", "say 'Human: x'")]


def test_every_real_hh_prompt_splits_into_alternating_turns_ending_with_the_human():
    pool = load_pool("sample:hh-rlhf:harmless-base")
    for prompt in pool.pairs["prompt"]:
        turns = split_turns(prompt)
        assert turns and turns[-1][0] == "user"
        assert turns[0][0] == "user"
        # one turn per marker, less the open 'Assistant:' the prompt ends with (one real prompt has two
        # assistant turns in a row: kept as they are)
        assert len(turns) == prompt.count("\n\nHuman:") + prompt.count("\n\nAssistant:") - 1
        assert last_human_turn(prompt) == turns[-1][1]


def test_preview_cuts_at_a_word_boundary_with_an_ellipsis():
    text = "How do I " + "carefully " * 30 + "cut tomatoes?"
    p = preview(text, 60)
    assert len(p) <= 60 and p.endswith("…") and p[:-1] == p[:-1].rstrip()
    assert text.startswith(p[:-1]) and text[len(p) - 1] == " "  # the cut falls between two words
    assert preview("short   text\nhere", 60) == "short text here"
    assert prompt_preview(HH, 60) == "And once they are cut?"  # the last human turn, not the prompt's tail


@pytest.mark.parametrize("text", [
    "![pixel](http://127.0.0.1:9/pixel.png)",
    "![pixel][r]\n\n[r]: http://127.0.0.1:9/pixel.png",
    "<img src='http://127.0.0.1:9/pixel.png'>",
    "costs $5 and $10",
    ":red[alarm] :material/home:",
])
def test_safe_markdown_neutralises_images_html_latex_and_directives(text):
    md = safe_markdown(text)
    for unsafe in (r"!\[", "<", r"\$", ":"):  # each may appear only backslash-escaped (shown as text)
        assert not re.search(r"(?<!\\)" + unsafe, md), (unsafe, md)
    assert md.replace("\\", "") == text  # nothing else changed


def test_safe_markdown_keeps_formatting_and_code_as_typed():
    text = "**bold** and a list:\n\n- one\n- two\n\n```python\nx = '<b>$1</b>'\n```\nand `a<b>:x`"
    md = safe_markdown(text)
    assert "**bold**" in md and "\n- one\n- two" in md
    assert "x = '<b>$1</b>'" in md and "`a<b>:x`" in md  # inside code nothing is escaped (a backslash would show)


def test_diff_words_marks_exactly_what_differs_and_joins_back():
    a = "Keep them on the counter, stem side down."
    b = "Keep them in the fridge, stem side down."
    pa, pb = diff_words(a, b)
    assert "".join(t for t, _ in pa) == a and "".join(t for t, _ in pb) == b
    assert [t for t, d in pa if d] == ["on"] + ["counter"] and [t for t, d in pb if d] == ["in", "fridge"]
    same, _ = diff_words(a, a)
    assert not any(d for _, d in same)
    md = highlight_markdown(pb)
    assert ":orange-background[fridge]" in md and "Keep them " in md and "down\\." in md


def test_format_sig_never_shows_a_small_number_as_zero():
    assert format_sig(1.234e-6) == "1.2e-06"
    assert format_sig(0.5312) == "0.53"
    assert format_sig(12.0) == "12"
    assert format_sig(-3.1e-9) == "-3.1e-09"
    assert format_sig(0.0) == "0" and format_sig(float("nan")) == "" and format_sig(None) == ""


def test_diversity_driven_when_uncertainty_is_under_one_percent_of_most_scores():
    from balpm.render import diversity_driven

    score = [0.05, 0.04, 0.03, 0.02]
    assert diversity_driven([1e-6, 2e-6, 1e-7, 0.01], score) == (True, 3, 4)
    assert diversity_driven([1e-6, 0.01, 0.01, 0.01], score) == (False, 1, 4)
    assert diversity_driven([float("nan")] * 4, score) == (False, 0, 0)  # random picks: nothing to say


def test_chat_turns_keep_the_roles_of_a_message_list_and_fall_back_to_the_text():
    from balpm.data.chat import render_prompt, to_json

    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": " Store tomatoes? "},
            {"role": "assistant", "content": ""}]
    text = render_prompt(msgs)
    assert split_turns(text)[0] == ("user", "System: Be terse.")  # all the flat text can tell
    assert chat_turns(text, to_json(msgs)) == [("system", "Be terse."), ("user", "Store tomatoes?")]
    assert chat_turns(text, msgs) == chat_turns(text, to_json(msgs))
    assert chat_turns(HH, None) == chat_turns(HH, float("nan")) == split_turns(HH)  # a pool without messages
    assert chat_avatar("system") == chat_avatar("System") == ":material/settings:"
    assert chat_avatar("user") is None and chat_avatar("assistant") is None
