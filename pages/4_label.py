"""Label page: one pair at a time from the proposed batch, sides in a seeded random order, keyboard shortcuts.

Why it is shaped like this: the label store is the truth (re-read on every rerun, so two tabs never lose or
duplicate a label), every displayed pair carries a request token (``LabelStore.record`` is idempotent on it, so a
double click records once), and a verdict that arrives within ``BALPM_LABEL_DWELL_S`` seconds (default 0.3) of a
pair appearing is dropped and restarts that clock, so a held key records exactly one label. The clock belongs to
what is on screen now, not to a pair's first display: every pair that comes into view (the next one, one re-shown
by Undo, one coming back after Undo moved it aside) starts a fresh window. The widget is an ``st.fragment``: a
click reruns only it.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import streamlit as st

import appkit
from balpm.session import Batch, Session

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
top2.caption("Keys: **A** left is better · **B** right is better · **T** tie · **S** skip · **U** undo last. "
             "Sides are shuffled per pair; the order shown is recorded.")


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


def _batch_of_this_pool(s: Session) -> Batch | None:
    """The session's current batch, or None when there is none or it was proposed for another pool's pairs."""
    batch = s.current_batch()
    texts = _texts_by_id(s.pool_identity(), pool)
    return batch if batch is not None and any(i in texts for i in batch.ids) else None


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
    st.markdown("**Prompt**")
    with st.container(border=True, height=220, key="label_prompt"):
        st.text(prompt.strip())
    ca, cb = st.columns(2)
    with ca:
        st.markdown("**A**")
        with st.container(border=True, height=300, key="label_left"):
            st.text(left.strip())
    with cb:
        st.markdown("**B**")
        with st.container(border=True, height=300, key="label_right"):
            st.text(right.strip())

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


if not (session.config.mode == "human" or st.toggle("Label by hand in this simulation session", key="label_sim")):
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


def _export_trl(folder: str, export_pool) -> bytes:
    """TRL reward-trainer JSONL (prompt, chosen, rejected) of the active a/b labels; runs on download."""
    s = Session.open(Path(folder))
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "labels.jsonl"
            s.store.export_trl(export_pool, path)
            return path.read_bytes()
    finally:
        s.close()


def _export_parquet(folder: str) -> bytes:
    """Every label event (undone ones too, for audit) as Parquet; runs on download."""
    s = Session.open(Path(folder))
    try:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "labels.parquet"
            s.store.export_parquet(path)
            return path.read_bytes()
    finally:
        s.close()


e1, e2 = st.columns(2)
folder = str(session.folder)
e1.download_button("Download labels (TRL JSONL)", data=lambda: _export_trl(folder, pool),
                   file_name=f"{session.name}-labels.jsonl", mime="application/jsonl", on_click="ignore",
                   key="export_trl")
e2.download_button("Download label events (Parquet)", data=lambda: _export_parquet(folder),
                   file_name=f"{session.name}-label-events.parquet", mime="application/vnd.apache.parquet",
                   on_click="ignore", key="export_parquet")
st.caption("JSONL: one line per A/B label (ties and skips left out). Parquet: the full event log with annotator, "
           "time, side order shown and undos.")
