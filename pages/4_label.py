"""Label page: one pair at a time from the proposed batch, sides in a seeded random order, keyboard shortcuts.

Why it is shaped like this: the label store is the truth (re-read on every rerun, so two tabs never lose or
duplicate a label), every displayed pair carries a request token (``LabelStore.record`` is idempotent on it, so a
double click records once), and a verdict that arrives within ``BALPM_LABEL_DWELL_S`` seconds (default 0.3) of a
pair appearing is dropped and restarts that clock, so a held key records exactly one label. The clock belongs to
what is on screen now, not to a pair's first display: every pair that comes into view (the next one, one re-shown
by Undo, one coming back after Undo moved it aside) starts a fresh window. The widget is an ``st.fragment``: a
click reruns only it.

What a pair looks like (issue 11): the dialogue as chat turns and the completions as Markdown made safe by
``balpm.render.safe_markdown`` (formatting renders; images, HTML, LaTeX and directives never do), whole texts, with
a raw-text view and a word-level highlight of where A and B differ. The History view lists this annotator's labels
newest first; any of them can be changed (``LabelStore.revise``: a new event supersedes the old one), given a note
or withdrawn (``LabelStore.withdraw``); it is a separate view so the labelling view keeps no text box for a
shortcut key to type into.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

import appkit
from balpm.exports import write_export
from balpm.render import chat_avatar, chat_turns, diff_words, highlight_markdown, matches, prompt_preview, safe_markdown
from balpm.session import Batch, Session
from balpm.vectors import conversational

appkit.run_through_router()
st.title("Label")
session, pool = appkit.session_and_pool_or_stop()
appkit.store_or_stop(session)  # a damaged or emptied label database stops here, with how to restore it

DWELL_S = float(os.environ.get("BALPM_LABEL_DWELL_S", "0.3"))
SHORTCUTS = {"left": "A", "right": "B", "tie": "T", "skip": "S", "undo": "U"}
_TOKENS, _ON_SCREEN, _FOCUS, _FLASH, _LAST, _UNDO = (
    "_label_tokens", "_label_on_screen", "_label_focus", "_label_flash", "_label_last_action", "_label_undo_token")

# ---------------------------------------------------------------------------------------------- annotator
# The name is settled in a small form (Enter or the button submits it) and then shown as text: no text box is left
# on the page for a shortcut key to type into, and the label buttons stay disabled until a name is settled.
# It is kept per tab and per session (appkit.annotator), so switching sessions asks again.
_NAME_ERROR = "_label_name_error"


def _name_key(s: Session) -> str:
    """The name box's widget key, one per session: a box typed in for one session never shows in another."""
    return f"annotator_name:{s.folder}"


def _settle_name() -> None:
    """Form callback: runs before the page draws, so the page that follows has no name box left."""
    s = appkit.current_session()
    try:
        appkit.set_annotator(s, st.session_state.get(_name_key(s)) or "",
                             as_default=bool(st.session_state.get("annotator_default")))
    except ValueError as e:
        st.session_state[_NAME_ERROR] = str(e)


def _change_name(current: str) -> None:
    s = appkit.current_session()
    appkit.forget_annotator(s)
    st.session_state[_name_key(s)] = current  # the box starts from the name being changed


annotator = appkit.annotator(session)
top1, top2 = st.columns([2, 3])
with top1:
    if annotator is None:
        default = session.store.default_annotator()
        with st.form("annotator_form", border=True, enter_to_submit=True):
            st.text_input("Annotator name", key=_name_key(session), max_chars=100,
                          placeholder="your name (kept with every label)")
            if default is None and session.config.mode == "human":
                st.checkbox("I am this session's only annotator: make this its default name (set once)",
                            key="annotator_default",
                            help="New tabs and restarts then label under this name without asking.")
            st.form_submit_button("Start labelling", type="primary", on_click=_settle_name)
        error = st.session_state.pop(_NAME_ERROR, None)
        if error:
            st.error(f"Name not accepted: {appkit.literal(error)}")
    else:
        is_default = annotator == session.store.default_annotator()
        st.markdown(f"Labelling as **{appkit.literal(annotator)}** in session {appkit.literal(session.name)}"
                    + (" (this session's default annotator)" if is_default else ""))
        st.button("Change name", key="annotator_change", on_click=_change_name, args=(annotator,))
SHORTCUT_HELP = [("A", "the left completion (A) is better"), ("B", "the right completion (B) is better"),
                 ("T", "tie"), ("S", "skip"), ("U", "undo your last label"), ("?", "show or hide this list")]
_HELP_OPEN = "_label_help_open"


def _toggle_help() -> None:
    st.session_state[_HELP_OPEN] = not st.session_state.get(_HELP_OPEN, False)


with top2:
    st.caption("Keys: **A** left is better · **B** right is better · **T** tie · **S** skip · **U** undo last · "
               "**?** all shortcuts. Sides are shuffled per pair; the order shown is recorded.")
    st.button("Keyboard shortcuts (?)", key="label_shortcuts", on_click=_toggle_help)
    if st.session_state.get(_HELP_OPEN):
        with st.container(border=True, key="label_shortcut_list"):
            st.markdown("\n".join(f"- **{k}**: {what}" for k, what in SHORTCUT_HELP))
# '?' is Shift+/ and Streamlit's button shortcuts take letters only: a small listener (our own constant script, no
# user text in it) clicks the button above when '?' is typed outside a text box.
st.html("""<script>
(() => {
  const doc = window.parent && window.parent.document ? window.parent.document : document;
  if (doc.__balpmHelpKey) return;
  doc.__balpmHelpKey = true;
  // a toggle (Raw text, Highlight differences) must not keep the focus: shortcut keys skip focused inputs
  doc.addEventListener("click", (e) => {
    const t = e.target;
    if (t && t.closest && t.closest(".st-key-label_raw, .st-key-label_diff")) {
      setTimeout(() => { const a = doc.activeElement; if (a && a !== doc.body) a.blur(); }, 50);
    }
  }, true);
  doc.addEventListener("keydown", (e) => {
    if (e.key !== "?" || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const b = doc.querySelector(".st-key-label_shortcuts button");
    if (b) { e.preventDefault(); b.click(); }
  });
})();
</script>""", unsafe_allow_javascript=True)


def _flash(kind: str, text: str) -> None:
    st.session_state[_FLASH] = (kind, text)


def _same_annotator(folder: str, name: str | None) -> Session | None:
    """The tab's session if a button drawn for ``folder`` and annotator ``name`` may still act, else None.

    Why: a click is acted on in the next run, and the button was drawn for one session and one name; if either
    changed since (or no name was settled), nothing is recorded under a name the person did not see.
    """
    s = appkit.current_session()
    if name is None or s is None or str(s.folder) != folder or appkit.annotator(s) != name:
        _flash("warning", "Nothing recorded: give your name first (the buttons work once it is settled).")
        return None
    return s


def _on_verdict(pair_id: str, choice: str, swapped: bool, token: str, rnd: int, batch_id: str, folder: str,
                name: str | None) -> None:
    """Commit one label; drop it if it came too soon after the pair appeared (held key or double click)."""
    s = _same_annotator(folder, name)
    if s is None:
        return
    now = time.monotonic()
    on_screen = st.session_state.get(_ON_SCREEN)  # (token, when it came into view)
    if DWELL_S > 0 and on_screen is not None and on_screen[0] == token and now - on_screen[1] < DWELL_S:
        st.session_state[_ON_SCREEN] = (token, now)  # a held key keeps restarting the clock: one press, one label
        _flash("warning", "Ignored a repeated press: labels need a deliberate click or key press.")
        return
    verdict = {"left": "b" if swapped else "a", "right": "a" if swapped else "b", "tie": "tie", "skip": "skip"}[choice]
    res = s.record(pair_id, verdict, annotator=name, shown_swapped=swapped, request_id=token, round=rnd,
                   batch_id=batch_id)
    st.session_state[_LAST] = now
    if st.session_state.get(_FOCUS) == pair_id:
        st.session_state.pop(_FOCUS, None)
    if res.status == "recorded":
        _flash("success", f"Saved: {dict(left='left', right='right').get(choice, choice)} "
                          f"{'is better' if choice in ('left', 'right') else ''} (pair {appkit.literal(pair_id)}).")
    elif res.status == "already_labelled":
        _flash("info", f"That pair ({appkit.literal(pair_id)}) was already labelled, in another tab: "
                       "showing the next one.")
    else:
        _flash("info", "That click was already recorded.")


def _on_undo(request_id: str, folder: str, name: str | None) -> None:
    """Undo this annotator's own latest label (never anyone else's)."""
    s = _same_annotator(folder, name)
    if s is None:
        return
    now = time.monotonic()
    if DWELL_S > 0 and now - st.session_state.get(_LAST, 0.0) < DWELL_S:
        st.session_state[_LAST] = now
        _flash("warning", "Ignored a repeated Undo.")
        return
    ev = s.undo_last(name, request_id=request_id)
    st.session_state[_LAST] = now
    st.session_state[_UNDO] = uuid.uuid4().hex
    if ev is None:
        _flash("info", f"Nothing of {appkit.literal(name)} to undo.")
        return
    pid = str(ev["pair_id"])
    st.session_state.setdefault(_TOKENS, {}).pop(pid, None)  # the old token is spent: relabelling needs a new one
    st.session_state[_FOCUS] = pid
    _flash("success", f"Undid the label of pair {appkit.literal(pid)} ({ev['verdict']}); it is shown again.")


def _propose_next(s: Session) -> None:
    """Refit on the store's labels and make the next batch current (engine: ``Session.propose``)."""
    emb = appkit.get_embeddings(s, pool)
    learner = appkit.get_learner(s, appkit.split(s, pool, emb))
    with st.spinner("Fitting the ensemble and proposing the next batch…"):
        s.propose(learner)


@st.cache_data(max_entries=4)
def _texts_by_id(identity: str, _pool) -> dict[str, tuple[str, str, str]]:
    """id → (prompt, completion A, completion B), built once per pool (keyed by its identity)."""
    p = _pool.pairs
    return {i: (a, b, c) for i, a, b, c in zip(p["id"].astype(str), p["prompt"], p["completion_a"], p["completion_b"])}


@st.cache_data(max_entries=4)
def _prompt_messages_by_id(identity: str, _pool) -> dict[str, str]:
    """id → the prompt's message list (JSON text) of a conversational pool; empty for any other pool."""
    p = _pool.pairs
    if "prompt_messages" not in p.columns:
        return {}
    return {i: m for i, m in zip(p["id"].astype(str), p["prompt_messages"]) if isinstance(m, str)}


def _batch_of_this_pool(s: Session) -> Batch | None:
    """The session's current batch, or None when there is none or it was proposed for another pool's pairs."""
    batch = s.current_batch()
    texts = _texts_by_id(s.pool_identity(), pool)
    return batch if batch is not None and any(i in texts for i in batch.ids) else None


# ---------------------------------------------------------------------------------------------- how a pair looks
# Chat bubbles for the dialogue, completions as Markdown made safe by balpm.render.safe_markdown (no image, HTML,
# LaTeX or directive ever renders: issue 10 case 5's guarantee for texts); whole texts, no fixed-height boxes.
EARLIER_TURNS_SHOWN = 4  # the last turns of a long dialogue show; earlier ones wait in an expander


def _text_block(text: str, raw: bool) -> None:
    if raw:  # st.code keeps spaces and indentation (st.text dedents and strips: an HH reply's leading space would go)
        st.code(text, language=None, wrap_lines=True)
    else:
        st.markdown(safe_markdown(text))


def show_pair(prompt: str, left: str, right: str, *, key: str, messages: str | None = None) -> None:
    """The prompt as chat turns and the two completions side by side (Markdown, raw text or differences).

    ``messages``: the prompt's message list of a conversational pool (its roles drawn as given, a system message
    as the system's); without it the turns come from the prompt's text.
    """
    raw = bool(st.session_state.get("label_raw"))
    diff = bool(st.session_state.get("label_diff"))
    with st.container(border=True, key=f"{key}_prompt"):
        turns = chat_turns(prompt, messages) or [("user", "(empty prompt)")]
        if raw:
            _text_block(prompt, raw)
        else:
            early, late = turns[:-EARLIER_TURNS_SHOWN], turns[-EARLIER_TURNS_SHOWN:]
            if early:
                with st.expander(f"{len(early)} earlier turns of this conversation"):
                    for role, text in early:
                        with st.chat_message(role, avatar=chat_avatar(role)):
                            st.markdown(safe_markdown(text))
            for role, text in late:
                with st.chat_message(role, avatar=chat_avatar(role)):
                    st.markdown(safe_markdown(text))
    ca, cb = st.columns(2)
    shown = [left, right]  # exactly as in the source (an HH reply's leading space too): what the exports write
    marked = diff_words(*shown) if diff else None
    for i, (col, side) in enumerate(zip((ca, cb), ("left", "right"))):
        with col:
            st.markdown("**A**" if i == 0 else "**B**")
            with st.container(border=True, key=f"{key}_{side}"):
                with st.chat_message("assistant"):
                    if marked is not None:
                        st.markdown(highlight_markdown(marked[i]))
                    else:
                        _text_block(shown[i], raw)


@st.fragment
def labelling_widget() -> None:
    s = appkit.current_session()
    texts = _texts_by_id(s.pool_identity(), pool)
    batch = _batch_of_this_pool(s)
    if batch is None:  # cleared since the page drew (another tab, a pool change): the page shows the button
        st.rerun(scope="app")
    pending = [i for i in s.pending_ids(batch) if i in texts]
    focus = st.session_state.get(_FOCUS)
    if focus in pending:
        pending.remove(focus)
        pending.insert(0, focus)
    elif focus is not None and focus in texts and focus not in s.store.decided_ids():
        pending.insert(0, focus)
    n_total = s.n_labelled()
    if not pending:
        if len(s.store.decided_ids()) >= len(texts):
            st.success("Every pair of the pool is decided. Export the labels below.")
            return
        st.success(f"Batch of round {batch.round} done.")
        _propose_next(s)
        st.rerun()  # whole app: the sidebar count changes too
        return

    flash = st.session_state.pop(_FLASH, None)
    if flash:
        getattr(st, flash[0])(flash[1])

    pid = pending[0]
    prompt, comp_a, comp_b = texts[pid]
    swapped = s.side_swapped(pid)
    left, right = (comp_b, comp_a) if swapped else (comp_a, comp_b)
    tokens = st.session_state.setdefault(_TOKENS, {})
    token = tokens.get(pid) or tokens.setdefault(pid, f"{batch.batch_id}:{pid}:{uuid.uuid4().hex[:12]}")
    if st.session_state.get(_ON_SCREEN, (None,))[0] != token:  # a pair comes into view: its dwell window starts
        st.session_state[_ON_SCREEN] = (token, time.monotonic())

    done = len([i for i in batch.ids if i in texts]) - len(pending)
    st.progress(done / max(len(batch.ids), 1),
                text=f"Pair {done + 1} of {len(batch.ids)} in round {batch.round} · {n_total} labelled in total")
    st.caption(f"Pair {appkit.literal(pid)}")
    if batch.cold_start:
        st.caption(appkit.COLD_START_NOTE)
    v1, v2, _ = st.columns([1, 2, 2])
    v1.toggle("Raw text", key="label_raw", help="The texts exactly as stored, no Markdown formatting")
    v2.toggle("Highlight differences", key="label_diff", help="Mark the words where A and B differ")
    show_pair(prompt, left, right, key="label", messages=_prompt_messages_by_id(s.pool_identity(), pool).get(pid))

    name = appkit.annotator(s)  # bound into every button: a click acts for the name and session it was drawn for
    who = dict(folder=str(s.folder), name=name)
    args = dict(pair_id=pid, swapped=swapped, token=token, rnd=batch.round, batch_id=batch.batch_id, **who)
    off = name is None  # no label (and no Undo) until a name is settled
    b = st.columns(5)
    b[0].button("A is better", key=f"lab_left_{token}", shortcut=SHORTCUTS["left"], type="primary",
                on_click=_on_verdict, kwargs={**args, "choice": "left"}, width="stretch", disabled=off)
    b[1].button("B is better", key=f"lab_right_{token}", shortcut=SHORTCUTS["right"], type="primary",
                on_click=_on_verdict, kwargs={**args, "choice": "right"}, width="stretch", disabled=off)
    b[2].button("Tie", key=f"lab_tie_{token}", shortcut=SHORTCUTS["tie"], on_click=_on_verdict,
                kwargs={**args, "choice": "tie"}, width="stretch", disabled=off)
    b[3].button("Skip", key=f"lab_skip_{token}", shortcut=SHORTCUTS["skip"], on_click=_on_verdict,
                kwargs={**args, "choice": "skip"}, width="stretch", disabled=off)
    undo_token = st.session_state.setdefault(_UNDO, uuid.uuid4().hex)
    b[4].button("Undo last", key="lab_undo", shortcut=SHORTCUTS["undo"], on_click=_on_undo,
                kwargs={"request_id": f"undo:{undo_token}", **who}, width="stretch", disabled=off,
                help="Takes back your own latest label, never another annotator's")


# ---------------------------------------------------------------------------------------------- history
# Every label of this annotator, newest first; any one can be changed or withdrawn. A change is a new event that
# supersedes the old one (LabelStore.revise), a withdrawal marks it undone (LabelStore.withdraw): nothing is
# deleted and the pair keeps at most one active label.
CHOICES = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "skip": "Skip"}
_HIST_TOKENS, _HFLASH = "_label_history_tokens", "_label_history_flash"


def _hflash(kind: str, text: str) -> None:
    st.session_state[_HFLASH] = (kind, text)


def _choice_of(verdict: str, swapped: bool) -> str:
    """A stored verdict (about the pool's A/B) as the side the annotator saw."""
    if verdict in ("tie", "skip"):
        return verdict
    return {"a": "right", "b": "left"}[verdict] if swapped else {"a": "left", "b": "right"}[verdict]


def _verdict_of(choice: str, swapped: bool) -> str:
    return {"left": "b" if swapped else "a", "right": "a" if swapped else "b"}.get(choice, choice)


def _history_token(event_id: int) -> str:
    """One request token per (history entry, edit): a double click on Save or Withdraw acts once."""
    return st.session_state.setdefault(_HIST_TOKENS, {}).setdefault(event_id, f"hist:{event_id}:{uuid.uuid4().hex}")


def _on_revise(event_id: int, swapped: bool, folder: str, name: str | None) -> None:
    s = _same_annotator(folder, name)
    if s is None:
        return
    choice = st.session_state.get(f"hist_choice_{event_id}")
    note = st.session_state.get(f"hist_note_{event_id}", "")
    try:
        res = s.store.revise(event_id, name, verdict=_verdict_of(choice, swapped), note=note,
                             request_id=_history_token(event_id))
    except (KeyError, ValueError) as e:
        _hflash("error", f"Not changed: {appkit.literal(e)}")
        return
    st.session_state.setdefault(_HIST_TOKENS, {}).pop(event_id, None)
    st.session_state["hist_pick"] = res.event_id  # keep the edited label selected (it has a new event id)
    _hflash("success", f"Changed: {CHOICES.get(choice, choice)} (the earlier label is kept in the log as changed).")


def _on_withdraw(event_id: int, folder: str, name: str | None) -> None:
    s = _same_annotator(folder, name)
    if s is None:
        return
    try:
        ev = s.withdraw(event_id, name, request_id=_history_token(event_id))
    except (KeyError, ValueError) as e:
        _hflash("error", f"Not withdrawn: {appkit.literal(e)}")
        return
    st.session_state.pop("hist_pick", None)
    _hflash("success", f"Withdrew the label of pair {appkit.literal(ev['pair_id'])}: it is offered again for "
                       "labelling.")


def history_panel(s: Session, name: str) -> None:
    texts = _texts_by_id(s.pool_identity(), pool)
    hist = s.store.history(name)
    with st.container(key="label_history"):
        flash = st.session_state.pop(_HFLASH, None)
        if flash:
            getattr(st, flash[0])(flash[1])
        if hist.empty:
            st.caption("No labels of yours yet.")
            return
        query = st.text_input("Search by pair id or text", key="hist_query", placeholder="id or words")
        prompt_of = [texts.get(p, ("", "", ""))[0] for p in hist["pair_id"]]
        keep = [matches(query, pid, *texts.get(pid, ("", "", ""))) for pid in hist["pair_id"]]
        shown = hist[keep]
        table = pd.DataFrame({
            "pair": shown["pair_id"].astype(str),
            "your choice": [CHOICES[_choice_of(v, bool(w))] for v, w in zip(shown["verdict"], shown["shown_swapped"])],
            "when (UTC)": shown["created_at"].str.slice(0, 19).str.replace("T", " "),
            "round": shown["round"],
            "note": shown["note"].fillna(""),
            "prompt": [prompt_preview(p, 80) for p, k in zip(prompt_of, keep) if k],
        })
        st.caption(f"{len(shown)} of {len(hist)} labels, newest first"
                   + (f" matching {appkit.literal(query)}" if query.strip() else ""))
        st.dataframe(table, hide_index=True, width="stretch", key="hist_table")
        if shown.empty:
            return
        ids = shown["event_id"].astype(int).tolist()
        if st.session_state.get("hist_pick") not in ids:
            st.session_state.pop("hist_pick", None)
        label_of = {int(r.event_id): f"{r.pair_id} · {CHOICES[_choice_of(r.verdict, bool(r.shown_swapped))]} · "
                                     f"{str(r.created_at)[:19].replace('T', ' ')}" for r in shown.itertuples()}
        pick = st.selectbox("Label to change", ids, format_func=label_of.get, key="hist_pick", index=None,
                            placeholder="choose one of your labels")
        if pick is None:
            return
        ev = shown.set_index("event_id").loc[pick]
        swapped = bool(ev["shown_swapped"])
        prompt, comp_a, comp_b = texts.get(str(ev["pair_id"]), ("(not in this pool)", "", ""))
        left, right = (comp_b, comp_a) if swapped else (comp_a, comp_b)
        st.caption(f"Pair {appkit.literal(ev['pair_id'])}, shown as you saw it")
        show_pair(prompt, left, right, key=f"hist_{pick}",
                  messages=_prompt_messages_by_id(s.pool_identity(), pool).get(str(ev["pair_id"])))
        current = _choice_of(str(ev["verdict"]), swapped)
        who = dict(folder=str(s.folder), name=name)
        st.radio("Your choice", list(CHOICES), format_func=CHOICES.get, index=list(CHOICES).index(current),
                 horizontal=True, key=f"hist_choice_{pick}")
        st.text_input("Note (optional)", value=ev["note"] if isinstance(ev["note"], str) else "", max_chars=2000,
                      key=f"hist_note_{pick}", placeholder="why, or anything a reviewer should know")
        h1, h2 = st.columns(2)
        h1.button("Save change", key=f"hist_save_{pick}", type="primary", on_click=_on_revise,
                  kwargs=dict(event_id=int(pick), swapped=swapped, **who))
        h2.button("Withdraw this label", key=f"hist_withdraw_{pick}", on_click=_on_withdraw,
                  kwargs=dict(event_id=int(pick), **who), help="The pair becomes unlabelled and is offered again")


VIEWS = ("Label pairs", "History: change or withdraw a label")
# Two views, so the labelling view holds no text box a shortcut key could type into (issue 10 case 1): the
# history's search and note boxes exist only in the history view, where no shortcut labels.
view = st.radio("View", VIEWS, horizontal=True, key="label_view", label_visibility="collapsed",
                disabled=annotator is None)
if view == VIEWS[1] and annotator is not None:
    history_panel(session, annotator)
elif not (session.config.mode == "human" or st.toggle("Label by hand in this simulation session", key="label_sim")):
    st.info("This is a simulation session: the dataset's own labels answer on the Acquire page.")
else:
    if annotator is None:
        st.warning("Give your name above and press Enter (or Start labelling): every label and Undo is kept "
                   "under it, apart from other annotators'.")
    if _batch_of_this_pool(session) is None:
        # A whole-page button, not part of the fragment: a fragment click that lands while a full rerun is
        # running (say, right after the name was entered) is dropped by Streamlit; a page click never is.
        if st.button("Propose a batch", type="primary", key="label_propose"):
            _propose_next(session)
            st.rerun()
        st.info("No batch proposed yet: propose one here or press Step on the Acquire page.")
    else:
        labelling_widget()


# ---------------------------------------------------------------------------------------------- export
st.divider()
st.subheader("Export")


def _export_bytes(folder: str, export_pool, kind: str) -> bytes:
    """One export of the session's labels as the bytes of a download; runs on download (engine:
    ``balpm.exports.write_export``, the formats of ``balpm export --format``).

    ``trl``: TRL reward-trainer JSONL; ``trl-chat``: TRL's conversational format (message lists); ``train``: the
    Parquet training table; ``dataset``: a zip of a ``datasets.Dataset.save_to_disk`` folder; ``events``: the full
    event log (undone and changed events too).
    """
    s = Session.open(Path(folder))
    try:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / ("dataset" if kind == "dataset" else "export")
            write_export(s.store, export_pool, kind, out)
            if kind == "dataset":
                out = Path(shutil.make_archive(str(Path(d) / "dataset"), "zip", root_dir=d, base_dir="dataset"))
            return out.read_bytes()
    finally:
        s.close()


folder = str(session.folder)
exports = [
    ("trl", "TRL JSONL", f"{session.name}-labels.jsonl", "application/jsonl"),
    ("train", "Training table (Parquet)", f"{session.name}-labels.parquet", "application/vnd.apache.parquet"),
    ("dataset", "datasets folder (zip)", f"{session.name}-labels-dataset.zip", "application/zip"),
    ("events", "Label events (Parquet)", f"{session.name}-label-events.parquet", "application/vnd.apache.parquet"),
]
if conversational(pool):  # the pool keeps message lists: offer them as trl's conversational format too
    exports.insert(1, ("trl-chat", "TRL conversational JSONL", f"{session.name}-labels-chat.jsonl",
                       "application/jsonl"))
for col, (kind, title, file_name, mime) in zip(st.columns(len(exports)), exports):
    col.download_button(f"Download {title}", data=lambda kind=kind: _export_bytes(folder, pool, kind),
                        file_name=file_name, mime=mime, on_click="ignore", key=f"export_{kind}")
st.caption("All but the events file are for training: one row per A/B label (ties and skips left out) with id, "
           "prompt, chosen, rejected (texts exactly as in the source; the conversational file as message lists), "
           "annotator, labelled_at and your note; the datasets "
           "folder loads with datasets.load_from_disk. The events file is the audit log: every label event with "
           "annotator, time, side order shown, undos, changes and withdrawals.")
