"""Issue 11, done when: a trl conversational file and a mapped CSV go through embed → step → label → export in a
real browser (``streamlit run app.py`` driven by Debian's Chromium, the helpers of ``tests/test_app_browser.py``).

Each journey starts on an empty sessions folder and does what a new user does: create a session in the sidebar,
upload their file on the Pool page (the CSV through the column-mapping form), embed it with the default model,
press Step on Acquire, label a few pairs with keys and clicks, and download the export. The downloaded file is read
back: the labelled ids, the annotator, and chosen/rejected on the side the person picked on screen. The files are
real HH-RLHF rows of the embedded sample rewritten into those shapes. Screenshots: ``tests/artifacts/e2e_*.png``.
"""

from __future__ import annotations

import difflib
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from test_app_browser import (  # noqa: F401 - browser, embed_cache, page and servers are fixtures
    _start, app_env, browser, current_pair, embed_cache, goto, page, press_label, servers, set_annotator, shoot,
    wait_idle, wait_text)

pytestmark = pytest.mark.browser

N_PAIRS = 40  # small: embedding 3 x 40 texts stays quick on a shared CPU
BATCH = 4
ANNOTATOR = "e2e-tester"
MAIN = "[data-testid='stMain']"


@pytest.fixture(autouse=True)
def _screenshot_on_failure(page: Any, request: pytest.FixtureRequest) -> Any:
    """A failed journey leaves ``e2e_failed_<test>.png``: where it stopped (its call phase is counted before this
    teardown runs)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        shoot(page, f"e2e_failed_{request.node.name}")


# ---------------------------------------------------------------------------------------------- data
def _dialogues(skip: int, n: int = N_PAIRS) -> list[dict]:
    """``n`` real HH harmless-base rows of the embedded sample (after ``skip`` usable ones) as prompt turns and two
    replies. Usable: both transcripts share every turn but the last, end with different non-empty assistant turns,
    and the prompt has at most three turns (all of them shown as bubbles, none folded in an expander)."""
    from balpm.datasets import SAMPLE_DIR
    from balpm.render import split_turns

    out: list[dict] = []
    with gzip.open(SAMPLE_DIR / "hh-rlhf" / "harmless-base-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            c, j = split_turns(r["chosen"]), split_turns(r["rejected"])
            if (len(c) == len(j) <= 4 and c[:-1] == j[:-1] and c[-1][0] == j[-1][0] == "assistant"
                    and c[-1][1] and j[-1][1] and c[-1][1] != j[-1][1]):
                out.append({"turns": [{"role": role, "content": text} for role, text in c[:-1]],
                            "chosen": c[-1][1], "rejected": j[-1][1]})
    assert len(out) >= skip + n, f"only {len(out)} usable rows in the sample"
    return out[skip:skip + n]


def _conversational_file(path: Path) -> list[dict]:
    """trl's conversational format, explicit prompt: prompt/chosen/rejected as message lists (JSONL)."""
    rows = _dialogues(0)
    path.write_text("".join(json.dumps({"prompt": d["turns"],
                                        "chosen": [{"role": "assistant", "content": d["chosen"]}],
                                        "rejected": [{"role": "assistant", "content": d["rejected"]}]}) + "\n"
                            for d in rows), encoding="utf-8")
    return rows


def _mapped_csv(path: Path) -> pd.DataFrame:
    """A CSV the way a team keeps it: question (the last human turn), answer_good, answer_bad; other rows."""
    rows = _dialogues(N_PAIRS)
    table = pd.DataFrame({"question": [d["turns"][-1]["content"] for d in rows],
                          "answer_good": [d["chosen"] for d in rows], "answer_bad": [d["rejected"] for d in rows]})
    table.to_csv(path, index=False)
    return table


# ---------------------------------------------------------------------------------------------- steps of a journey
def _start_journey(page: Any, servers: list, tmp_path: Path, embed_cache: Path, name: str, data: Path) -> Path:
    """A server on an empty sessions folder; session ``name`` created in the sidebar; ``data`` uploaded on the
    Pool page. Returns the sessions folder."""
    sessions = tmp_path / "sessions"
    srv = _start(servers, app_env(sessions, embed_cache, BALPM_DATA_DIR="none"), tmp_path / "server.log")
    _new_session(page, srv.url, name)
    _upload_pool(page, data)
    return sessions


def _new_session(page: Any, url: str, name: str) -> None:
    """Open the app on an empty sessions folder and create session ``name`` in the sidebar, as a new user would."""
    page.goto(url, timeout=60_000)
    page.wait_for_selector(f"{MAIN} h1", timeout=60_000)
    wait_idle(page)
    side = page.locator("[data-testid='stSidebarUserContent']")
    side.get_by_text("Sessions", exact=True).click()
    box = side.get_by_role("textbox", name="New session name")
    box.fill(name)
    box.press("Enter")
    wait_idle(page)
    side.get_by_role("button", name="Create session").click()
    page.wait_for_function(
        "([n]) => { const s = document.querySelector(\"[data-testid='stSidebarUserContent']\");"
        " return s && s.innerText.includes('Session: ' + n + ' '); }", arg=[name], timeout=120_000, polling="raf")
    wait_idle(page)
    # the session picker names the session now open (it kept the old one: Open session went back to it)
    assert side.get_by_role("combobox", name="Open or resume a session").input_value() == name


def _upload_pool(page: Any, data: Path) -> None:
    """Pool page: upload ``data`` (all its pairs) and press Load pool."""
    goto(page, "Pool")
    main = page.locator(MAIN)
    main.get_by_text("Upload a file", exact=True).click()
    wait_idle(page)
    main.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(data))
    main.locator("[data-testid='stFileChipName']").wait_for(timeout=30_000)  # the name shows cut in the middle
    page.wait_for_function("() => !document.querySelector(\"[data-testid='stFileChipIconSpinner']\")",
                           timeout=30_000, polling="raf")
    main.get_by_label(re.compile(r"^Max pairs")).fill("0")
    main.get_by_role("button", name="Load pool").click()
    wait_idle(page)


def _wait_pool_loaded(page: Any, n: int) -> None:
    """Until the Pool page shows the pool's ``n`` pairs; its counts never contradict the sidebar's label count."""
    wait_text(page, rf"Pairs\s*\n?\s*{n}\b", timeout=120)
    wait_idle(page)
    metrics = {m.locator("[data-testid='stMetricLabel']").inner_text().strip():
               m.locator("[data-testid='stMetricValue']").inner_text().strip()
               for m in page.locator(f"{MAIN} [data-testid='stMetric']").all()}
    side = page.locator("[data-testid='stSidebarUserContent']").inner_text()
    assert "Labelled: 0 pairs" in side
    # the file's own preferences are not labels given here ("Labelled 40" showed beside "Labelled: 0 pairs")
    assert metrics.get("Labelled", "0") == "0", metrics


def _embed_and_step(page: Any, n: int, name: str) -> None:
    """Embed page: the default model (short texts); Acquire: a batch of ``BATCH``, then Step."""
    goto(page, "Embed")
    main = page.locator(MAIN)
    assert main.get_by_role("combobox", name="Embedding model").input_value().startswith("default:")
    main.get_by_label("Max length (tokens)").fill("96")
    main.get_by_role("button", name="Embed pool").click()
    wait_text(page, rf"Embedded {n} pairs", timeout=600)
    wait_idle(page)
    goto(page, "Acquire")
    batch = main.get_by_label("Batch size", exact=True)
    batch.fill(str(BATCH))
    batch.press("Enter")
    wait_idle(page)
    main.get_by_role("button", name=re.compile("^Step")).click()
    wait_text(page, rf"Proposed batch: round 0, {BATCH} pairs \({BATCH} still to label\)", timeout=300)
    wait_idle(page)
    shoot(page, f"e2e_{name}_acquire")


def _pool_pairs(folder: Path) -> pd.DataFrame:
    """The session's pool as the library reads it, by pair id."""
    from balpm.session import Session

    s = Session.open(folder)
    try:
        return s.load_pool().pairs.set_index("id")
    finally:
        s.close()


def _bubble_roles(page: Any) -> list[str]:
    """The role of each chat bubble in the main area, in page order (from its avatar)."""
    return [("user" if b.locator("[data-testid='stChatMessageAvatarUser']").count() else "assistant")
            for b in page.locator(f"{MAIN} [data-testid='stChatMessage']").all()]


def _open_label_view(page: Any) -> None:
    """Label page: give the annotator name; the batch's first pair shows."""
    goto(page, "Label")
    set_annotator(page, ANNOTATOR)
    wait_text(page, rf"Pair 1 of {BATCH}", timeout=60)


def _shown_sides(page: Any) -> tuple[str, str]:
    """The texts of the left (A) and right (B) completions as the page shows them."""
    main = page.locator(MAIN)
    return (main.locator(".st-key-label_left").inner_text(timeout=10_000),
            main.locator(".st-key-label_right").inner_text(timeout=10_000))


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _which(shown: str, a: str, b: str) -> str:
    """Which of the pool's completions (``"a"`` or ``"b"``) a shown text is (Markdown rendering aside)."""
    ra, rb = (difflib.SequenceMatcher(None, _words(shown).split(), _words(x).split(), autojunk=False).ratio()
              for x in (a, b))
    assert max(ra, rb) > 0.8 and ra != rb, (shown, a, b)
    return "a" if ra > rb else "b"


def _label(page: Any, folder: Path) -> dict[str, str]:
    """Label three pairs (key A, a click on B, key B); returns pair id → the pool side ("a"/"b") chosen, read
    from what the page showed on the side pressed."""
    pairs = _pool_pairs(folder)
    chosen: dict[str, str] = {}
    for key, click in (("a", False), ("b", True), ("b", False)):
        pid = current_pair(page)
        left, right = _shown_sides(page)
        a, b = pairs.loc[pid, "completion_a"], pairs.loc[pid, "completion_b"]
        sides = (_which(left, a, b), _which(right, a, b))
        assert sorted(sides) == ["a", "b"], sides
        labelled, _, _ = press_label(page, key, click=click)
        assert labelled == pid
        chosen[pid] = sides[0] if key == "a" else sides[1]
    return chosen


def _won_lost(side: str) -> tuple[str, str]:
    """The pool columns of the chosen and the rejected completion when side ``"a"`` or ``"b"`` was picked."""
    return ("completion_a", "completion_b") if side == "a" else ("completion_b", "completion_a")


def _download(page: Any, title: str, dest: Path) -> Path:
    """Press the Label page's download button ``title`` and save the file the browser gets."""
    button = page.locator(MAIN).get_by_role("button", name=title)
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=120_000) as got:
        button.click()
    got.value.save_as(dest)
    return dest


def _check_trl_export(path: Path, folder: Path, chosen: dict[str, str]) -> list[dict]:
    """The TRL JSONL holds exactly the labelled pairs, each with the annotator, a time and chosen/rejected as
    picked on screen (the pool's texts exactly)."""
    pairs = _pool_pairs(folder)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(chosen)
    for r in lines:
        p = pairs.loc[r["id"]]
        win, lose = _won_lost(chosen[r["id"]])
        assert (r["prompt"], r["chosen"], r["rejected"]) == (p["prompt"], p[win], p[lose])
        assert r["annotator"] == ANNOTATOR and r["labelled_at"]
    return lines


def _check_chat_export(path: Path, folder: Path, chosen: dict[str, str], source: list[dict]) -> None:
    """trl's conversational export: the same labels, with the prompt and both completions as the message lists of
    the file given (roles and contents exactly), chosen on the side picked on screen."""
    from balpm.data.chat import render_prompt
    pairs = _pool_pairs(folder)
    by_prompt = {render_prompt(d["turns"]): d for d in source}
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(chosen)
    for r in lines:
        p = pairs.loc[r["id"]]
        win, lose = _won_lost(chosen[r["id"]])
        d = by_prompt[p["prompt"]]
        assert r["prompt"] == d["turns"]
        assert [r["chosen"], r["rejected"]] == [[{"role": "assistant", "content": p[side].strip()}]
                                                for side in (win, lose)]
        assert {r["chosen"][0]["content"], r["rejected"][0]["content"]} == {d["chosen"], d["rejected"]}
        assert r["annotator"] == ANNOTATOR and r["labelled_at"]


# ---------------------------------------------------------------------------------------------- journeys
def test_conversational_file_embed_step_label_export(page: Any, servers: list, tmp_path: Path,
                                                     embed_cache: Path) -> None:
    """A trl conversational JSONL (message lists) from upload to the downloaded TRL export."""
    from balpm.data.chat import render_prompt

    data = tmp_path / "hh-conversational.jsonl"
    source = _conversational_file(data)
    sessions = _start_journey(page, servers, tmp_path, embed_cache, "conv", data)
    _wait_pool_loaded(page, N_PAIRS)
    shoot(page, "e2e_conv_pool")
    _embed_and_step(page, N_PAIRS, "conv")

    _open_label_view(page)
    # the dialogue as chat: one bubble per prompt turn with its role, then the two completions as the assistant's
    turns = json.loads(_pool_pairs(sessions / "conv").loc[current_pair(page), "prompt_messages"])
    bubbles = page.locator(f"{MAIN} [data-testid='stChatMessage']")
    roles = _bubble_roles(page)
    assert roles == [t["role"] for t in turns] + ["assistant", "assistant"], roles
    assert _words(turns[0]["content"])[:60] in _words(bubbles.first.inner_text())
    shoot(page, "e2e_conv_label")

    chosen = _label(page, sessions / "conv")
    shoot(page, "e2e_conv_labelled")
    lines = _check_trl_export(_download(page, "Download TRL JSONL", tmp_path / "conv.jsonl"),
                              sessions / "conv", chosen)
    by_prompt = {render_prompt(d["turns"]): d for d in source}
    for r in lines:  # the texts of the file given, exactly
        d = by_prompt[r["prompt"]]
        assert {r["chosen"], r["rejected"]} == {d["chosen"], d["rejected"]}
    # and as trl's conversational format: the message lists themselves (issue 11 item 9)
    _check_chat_export(_download(page, "Download TRL conversational JSONL", tmp_path / "conv-chat.jsonl"),
                       sessions / "conv", chosen, source)


def test_mapped_csv_embed_step_label_export(page: Any, servers: list, tmp_path: Path, embed_cache: Path) -> None:
    """A CSV of question,answer_good,answer_bad through the Pool page's mapping form, to the downloaded export."""
    data = tmp_path / "qa-pairs.csv"
    source = _mapped_csv(data)
    sessions = _start_journey(page, servers, tmp_path, embed_cache, "mapped", data)

    wait_text(page, "Map the file's columns", timeout=60)
    wait_idle(page)
    form = page.locator(f"{MAIN} [data-testid='stForm']").filter(has_text="Load with this mapping")
    want = {"prompt": "question", "chosen": "answer_good", "rejected": "answer_bad"}
    for target, column in want.items():  # pre-filled with the guesses; confirmed (set where a guess differs)
        box = form.get_by_role("combobox", name=target, exact=True)
        if box.input_value() != column:
            box.click()
            page.get_by_role("option", name=column, exact=True).click()
            wait_idle(page)
        assert box.input_value() == column
    form.get_by_role("button", name="Load with this mapping").scroll_into_view_if_needed()
    shoot(page, "e2e_csv_mapping")
    form.get_by_role("button", name="Load with this mapping").click()
    _wait_pool_loaded(page, N_PAIRS)
    wait_text(page, re.escape("--columns prompt=question,chosen=answer_good,rejected=answer_bad"), timeout=30)
    shoot(page, "e2e_csv_pool")
    _embed_and_step(page, N_PAIRS, "csv")

    _open_label_view(page)
    roles = _bubble_roles(page)
    assert roles == ["user", "assistant", "assistant"], roles  # the question, then the two answers
    shoot(page, "e2e_csv_label")

    chosen = _label(page, sessions / "mapped")
    lines = _check_trl_export(_download(page, "Download TRL JSONL", tmp_path / "mapped.jsonl"),
                              sessions / "mapped", chosen)
    assert page.locator(MAIN).get_by_role("button", name="Download TRL conversational JSONL").count() == 0
    by_question = {q: (g, b) for q, g, b in source.itertuples(index=False)}
    for r in lines:  # the CSV's texts exactly, answer_good/answer_bad wherever the person put them
        assert {r["chosen"], r["rejected"]} == set(by_question[r["prompt"]])
