"""Shared UI helpers of the balpm Streamlit app: the only place pages get sessions, pools, embeddings, learners.

Why one module: every page must agree on which session is open and must never show results computed for another
pool or model, so all cached objects are keyed by ``(session.pool_identity(), session.config.model_key())``
here, once. Pages stay thin: widgets + engine calls (``balpm.*``) through these helpers.

API (small on purpose)
----------------------
``current_session() -> Session | None``
    The session this browser tab works on (first start: the most recent session, else the demo on
    ``hh-rlhf:harmless-base``, else an empty session whose Pool page asks for a file).
``open_session(session)``
    Switch the tab to another :class:`balpm.session.Session` (remembered as the one to resume).
``render_sidebar(session)``
    Session / pool / model / labelled count, and the create / open controls (app.py calls it on every page).
``get_pool(session) -> PreferencePool``
    The session's pool, cached (``st.cache_data``) by pool identity; raises :class:`balpm.data.PoolFormatError`.
``pool_or_stop(session) -> PreferencePool``
    ``get_pool`` that shows a located ``st.error`` (never a traceback) and stops the page on a bad pool.
``needs_column_mapping(error) -> bool``, ``mapping_form_defaults(session) -> (fields, mapping)``
    Whether a pool error is one a column mapping fixes (unknown layout, a mapped column missing), and the file's
    column names with the form's pre-filled mapping (the session's own, else :func:`balpm.data.guess_columns`).
``session_and_pool_or_stop() -> (Session, PreferencePool)``
    What a page that needs a pool starts with: ``current_session`` then ``pool_or_stop`` (stops on either).
``store_or_stop(session) -> LabelStore``
    The session's label store, or the library's restore steps in an ``st.error`` and ``st.stop()`` when the
    database is damaged or lost its labels (:class:`balpm.store.LabelStoreError`): nothing is written into it.
``get_embedder(model, device, batch_size, max_length) -> Embedder``
    Loaded once per process (``st.cache_resource``).
``cached_embeddings(session) -> PoolEmbeddings | None``
    The embeddings of the current pool with the current model if computed in this process, else None.
``get_embeddings(session, pool) -> PoolEmbeddings``
    ``cached_embeddings`` or compute them (disk cache first) with a progress bar (texts/s, time left).
    An embedding model ``file:PATH`` (a path relative to the session folder for uploads) is your own vectors:
    read with :meth:`balpm.embed.PoolEmbeddings.from_file` instead of computed (the Embed page's *Import vectors*).
``save_vectors_upload(session, filename, data) -> str``
    An uploaded vectors file written under the session's ``vectors/``; returns the ``file:`` model value.
``embeddings_or_offer(session, pool, key) -> PoolEmbeddings``
    ``cached_embeddings``, or an *Embed now* button (with the progress bar once pressed) and ``st.stop()``: a page
    that needs vectors never starts minutes of embedding work unasked.
``split(session, pool, embeddings) -> Split``
    Train part (what the learner picks from) and the held-out test part (simulation mode; else None).
``get_learner(session, pool, embeddings) -> ActiveLearner``
    The tab's learner on the train part, labelled set re-read from the label store on every call.
``progress_bar(label, container=None) -> StreamlitProgress``
    A ``progress(done, total)`` callback (the engine's Progress protocol) drawing an ``st.progress`` bar.
``annotator(session) -> str | None``, ``set_annotator(session, name, as_default=False)``, ``forget_annotator``
    Who this tab labels as in ``session``: kept per tab *and* per session folder, so switching sessions never
    carries a name into another session (the Label page asks again, or shows the name this tab used there).
``literal(value) -> str``
    Markdown that shows ``value`` as plain text: how every page puts a user-supplied string (pair id, annotator,
    file, session, pool or model name, an error naming a file) into ``st.caption`` / ``st.error`` / ``st.markdown``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from balpm.data import BUILTIN_DATASETS, PoolFormatError, PreferencePool
from balpm.session import (MODES, Session, SessionConfig, list_sessions, open_or_create_demo, sessions_dir,
                           validate_session_name)
from balpm.store import LabelStore, LabelStoreError, validate_annotator
from balpm.vectors import FILE_MODEL, model_vectors_file  # FILE_MODEL: the pages' name for the file: prefix

__all__ = [
    "current_session", "open_session", "render_sidebar", "get_pool", "pool_or_stop", "session_and_pool_or_stop",
    "store_or_stop",
    "get_embedder", "cached_embeddings", "get_embeddings", "split", "get_learner", "progress_bar",
    "StreamlitProgress", "Split", "COLD_START_NOTE", "literal", "annotator", "set_annotator", "forget_annotator",
    "embeddings_or_offer", "LIVE_S", "needs_column_mapping", "mapping_form_defaults", "FILE_MODEL",
    "save_vectors_upload",
]

_SESSION = "_balpm_session"
_LEARNER = "_balpm_learner"
_ANNOTATORS = "_balpm_annotators"  # session folder -> the name this tab settled there ("" = asked to change it)
_LAST_FILE = ".last_session"
_PICK_NEXT = "_balpm_pick_next"  # the session the sidebar's picker must show (set on a switch, used once)
_CLEAR_NEW_NAME = "_balpm_clear_new_name"  # set by Create session: the next run empties the name box (once)
_MAX_EMBEDDINGS = 4  # (pool, model) embeddings kept in memory per process
LIVE_S = float(os.environ.get("BALPM_LIVE_S", "3"))
"""Seconds between re-reads of the label counts (sidebar, Acquire caption): labels arrive from other tabs."""
COLD_START_NOTE = ("Nothing was labelled yet, so this first batch is drawn at random (no model to score with): "
                   "the policy picks from the next round on.")
"""What the Acquire and Label pages say about a ``Batch.cold_start`` batch."""


_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def literal(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text: every ASCII punctuation character backslash-escaped.

    Why: Streamlit renders captions, alerts, subheaders and toasts as Markdown, so a pair id or file name holding
    ``![x](http://host/pixel.png)`` would make every browser showing it fetch that URL (and `` ` `` in an id breaks
    out of a code span). CommonMark lets any ASCII punctuation be escaped, which also covers HTML (``<``), LaTeX
    (``$``) and Streamlit's ``:color[...]`` directives. Use it for every user-supplied string in a Markdown body.
    """
    return _MD_PUNCTUATION.sub(r"\\\1", str(value))


def without_empty_columns(table: Any, columns: Any) -> tuple[Any, list[str]]:
    """``table`` (a DataFrame) without those of ``columns`` that hold no value at all, and the ones kept.

    Why: Streamlit's grid draws an empty cell as a grey "None" in the browser whatever a Styler's display value
    says (``"–"`` never shows there), so a score column with no value in this table (BALD of a random batch or of
    a session with no fitted model) is left out rather than shown as a column of "None".
    """
    kept = [c for c in columns if table[c].notna().any()]
    return table.drop(columns=[c for c in columns if c not in kept]), kept


# ---------------------------------------------------------------------------------------------------- sessions
def run_through_router() -> None:
    """Make sure the page runs inside ``app.py``'s ``st.navigation`` router; every page calls this first.

    With a ``pages/`` folder beside ``app.py``, Streamlit (1.67) serves a fresh server's first request the old
    multipage way: a deep link such as ``/label`` runs the page file alone, without ``app.py`` (no session
    sidebar, page names taken from file names), until some browser loads ``app.py``; ``AppTest`` does the same on
    every run after the first. Switch Streamlit to the router, as ``st.navigation`` itself would, and run
    ``app.py`` here, in this same run (a rerun would drop the click that started it): it resolves the same URL
    to this same page, which then runs routed. The unrouted rest of this run is stopped.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # another Streamlit layout: nothing to fix
        return
    if not getattr(PagesManager, "uses_pages_directory", False):
        return
    PagesManager.uses_pages_directory = False
    entry = Path(__file__).resolve().with_name("app.py")
    exec(compile(entry.read_text(encoding="utf-8"), str(entry), "exec"),  # noqa: S102 - our own entry point
         {"__name__": "__main__", "__file__": str(entry)})
    st.stop()


def _remember(session: Session) -> None:
    try:
        root = sessions_dir()
        root.mkdir(parents=True, exist_ok=True)
        (root / _LAST_FILE).write_text(str(session.folder), encoding="utf-8")
    except OSError:
        pass


def _first_session() -> Session:
    """Resume the last session used, else the demo, else an empty session (its Pool page asks for a file)."""
    root = sessions_dir()
    last = root / _LAST_FILE
    if last.is_file():
        try:
            return Session.open(Path(last.read_text(encoding="utf-8").strip()))  # a folder, not a name
        except (OSError, ValueError):
            pass
    demo = open_or_create_demo(root)
    if demo is not None:
        return demo
    return Session.create("untitled", SessionConfig.from_settings(dataset=""), root=root, exist_ok=True)


def current_session() -> Session | None:
    """The tab's session, settings re-read from ``session.json`` on every run.

    Why: another tab may have changed the settings (never show results for a stale pool or model). The label
    store needs no care here: it opens a connection per operation, so Streamlit's fresh thread per rerun is safe.
    """
    session: Session | None = st.session_state.get(_SESSION)
    if session is None:
        try:
            session = _first_session()
        except (OSError, ValueError) as e:
            st.error(f"Could not open a session in {literal(sessions_dir())}: {literal(e)}")
            return None
        st.session_state[_SESSION] = session
        _remember(session)
    session.reload()  # another tab may have changed the settings: never key caches on stale ones
    return session


def open_session(session: Session) -> None:
    """Make ``session`` this tab's session (and the one a restart resumes); forgets the old learner."""
    old: Session | None = st.session_state.get(_SESSION)
    if old is not None:
        old.close()
    st.session_state[_SESSION] = session
    st.session_state.pop(_LEARNER, None)
    st.session_state[_PICK_NEXT] = session.name  # the sidebar's picker shows it from the next run on
    _remember(session)


# ---------------------------------------------------------------------------------------------------- annotator
def _annotators() -> dict[str, str]:
    return st.session_state.setdefault(_ANNOTATORS, {})


def annotator(session: Session) -> str | None:
    """The name this tab labels under in ``session``, or None until one is settled (the Label page asks).

    Why per tab *and* session folder: a name typed for one session must never label in another one the tab
    switches to (labels went to the wrong person). A one-person session's default annotator
    (:meth:`balpm.store.LabelStore.set_default_annotator`) is taken as this tab's name until the tab changes it.
    """
    names = _annotators()
    key = str(session.folder)
    if key not in names:
        default = session.store.default_annotator()
        if default:
            names[key] = default
    return names.get(key) or None


def set_annotator(session: Session, name: str, *, as_default: bool = False) -> str:
    """Settle this tab's annotator name for ``session``; ``as_default`` also makes it the session's default (once).

    Raises
    ------
    ValueError
        A blank or unusable name (:func:`balpm.store.validate_annotator`), or another default was set already.
    """
    name = validate_annotator(name)
    if as_default:
        session.store.set_default_annotator(name)
    _annotators()[str(session.folder)] = name
    return name


def forget_annotator(session: Session) -> None:
    """Ask this tab for a name again in ``session`` (even where the session has a default annotator)."""
    _annotators()[str(session.folder)] = ""


# ---------------------------------------------------------------------------------------------------- pools
@st.cache_data(show_spinner="Loading the pool…", max_entries=8)
def _load_pool_cached(folder: str, config_json: str, identity: str) -> PreferencePool:
    del identity  # part of the cache key only: changes when the file changes
    return Session(folder, SessionConfig.from_dict(json.loads(config_json))).load_pool()


def get_pool(session: Session) -> PreferencePool:
    """The session's pool (cached by pool identity). Raises PoolFormatError for a file the user must fix."""
    if not session.config.pool.dataset:
        raise PoolFormatError(None, None, None,
                              "no pool chosen yet: pick a built-in dataset, upload a file or give a path")
    pool_fields = {"pool": asdict(session.config.pool), "mode": session.config.mode}
    return _load_pool_cached(str(session.folder), json.dumps(pool_fields, sort_keys=True), session.pool_identity())


def pool_or_stop(session: Session) -> PreferencePool:
    """``get_pool``, or a located error in the page (no traceback) and ``st.stop()``."""
    try:
        return get_pool(session)
    except (PoolFormatError, OSError) as e:
        st.error(f"Cannot load the pool: {literal(e)}")
        st.page_link("pages/1_pool.py", label="Choose a pool on the Pool page", icon="📂")
        st.stop()
        raise  # unreachable: st.stop raises


def needs_column_mapping(error: Exception) -> bool:
    """Whether ``error`` (from :func:`get_pool`) is one a column mapping can fix: the file's layout is not
    recognised, or a mapped column is missing. The loader's messages name ``--columns`` exactly then."""
    return isinstance(error, PoolFormatError) and "--columns" in error.message


def mapping_form_defaults(session: Session) -> tuple[list[str], dict[str, str]]:
    """The pool file's column names (:func:`balpm.data.read_fields`) and the mapping to pre-fill the form with:
    the session's own mapping when it has one, else :func:`balpm.data.guess_columns` of those names.

    Raises PoolFormatError (located) when the file cannot be read.
    """
    from balpm.data import guess_columns, parse_columns, read_fields

    fields = read_fields(session.pool_source())
    try:
        own = {t: c for t, c in parse_columns(session.config.pool.columns).items() if c in fields}
    except ValueError:  # a mapping the loader refused: guess again
        own = {}
    return fields, own or guess_columns(fields)


def session_and_pool_or_stop() -> tuple[Session, PreferencePool]:
    """The tab's session and its pool, or stop the page (no session; or a located error for a bad pool)."""
    session = current_session()
    if session is None:
        st.stop()
    return session, pool_or_stop(session)


def store_or_stop(session: Session, action: str = "Labelling") -> LabelStore:
    """The session's label store, opened and checked; or the restore steps in the page and ``st.stop()``.

    Why: a damaged or emptied label database must stop labelling with what to do about it (restore a backup),
    never show a traceback, and never be written into.
    """
    try:
        store = session.store
        store.default_annotator()  # a first read: the open check runs here at the latest
        return store
    except LabelStoreError as e:
        st.error(f"{action} is stopped: {literal(e)}")
        st.stop()
        raise  # unreachable: st.stop raises


# ---------------------------------------------------------------------------------------------------- embeddings
@st.cache_resource(show_spinner="Loading the embedding model…", max_entries=2)
def get_embedder(model: str, device: str | None, batch_size: int, max_length: int) -> Any:
    """The frozen embedding model, loaded once per process and setting."""
    from balpm.embed import Embedder

    return Embedder(model, device=device or None, batch_size=int(batch_size), max_length=int(max_length))


@st.cache_resource(max_entries=1)
def _embedding_memo() -> dict[tuple[str, str], Any]:
    """Process-wide (pool identity, model key) → PoolEmbeddings.

    A plain memo instead of ``st.cache_data`` because computing must draw a live progress bar, which a cached
    function cannot; arrays are made read-only so no page can alter another tab's vectors.
    """
    return {}


def _vectors_file(session: Session) -> Path | None:
    """The vectors file a ``file:PATH`` model names (relative paths: in the session folder), else None."""
    return model_vectors_file(session.config.embedding.embedding_model, session.folder)


def save_vectors_upload(session: Session, filename: str, data: bytes) -> str:
    """Write an uploaded vectors file under the session's ``vectors/`` (atomically); returns its ``file:`` model
    value (relative to the session folder, like pool uploads). The session is not changed: the page switches it
    only once the file has been read and checked against the pool."""
    from balpm.safeio import atomic_write_bytes

    rel = Path("vectors") / (Path(filename).name or "vectors.parquet")
    (session.folder / rel).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(session.folder / rel, data)
    return FILE_MODEL + rel.as_posix()


def _embedding_key(session: Session) -> tuple[str, str]:
    key = session.config.model_key()
    path = _vectors_file(session)
    if path is not None and path.exists():  # a rewritten vectors file is other vectors
        st_ = path.stat()
        key += f"|{path.resolve()}|{st_.st_size}|{st_.st_mtime_ns}"  # relative paths: per session folder
    return session.pool_identity(), key


def cached_embeddings(session: Session) -> Any | None:
    """Embeddings of the current pool with the current model if already computed in this process, else None."""
    return _embedding_memo().get(_embedding_key(session))


class StreamlitProgress:
    """``progress(done, total)`` → an ``st.progress`` bar with items per second and time left."""

    def __init__(self, label: str, container: Any = None, unit: str = "texts") -> None:
        self.label = label
        self.unit = unit
        self.bar = (container or st).progress(0.0, text=label)
        self._t0: float | None = None
        self._done0 = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self._t0 is None:  # the first call reports what the cache already had: rate counts from here
            self._t0, self._done0 = now, done
        elapsed = now - self._t0
        rate = (done - self._done0) / elapsed if elapsed > 0 and done > self._done0 else float("nan")
        left = (total - done) / rate if rate and math.isfinite(rate) and rate > 0 else float("nan")
        text = f"{self.label}: {done}/{total} {self.unit}"
        if math.isfinite(rate):
            text += f" · {rate:.1f} {self.unit}/s · {_fmt_seconds(left)} left"
        self.bar.progress(min(1.0, done / total) if total else 1.0, text=text)

    def clear(self) -> None:
        self.bar.empty()


def progress_bar(label: str, container: Any = None, unit: str = "texts") -> StreamlitProgress:
    """A progress callback for the engine (``balpm.embed.Progress`` protocol) drawing a Streamlit bar."""
    return StreamlitProgress(label, container, unit)


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def get_embeddings(session: Session, pool: PreferencePool, container: Any = None) -> Any:
    """Embeddings of ``pool`` with the session's model: from memory, else the disk cache, else computed.

    Draws a progress bar (texts/s, time left) while computing; cached texts are skipped (``emb.stats``). A
    ``file:PATH`` model reads your own vectors instead; raises :class:`balpm.vectors.VectorFileError` (located).
    """
    key = _embedding_key(session)
    memo = _embedding_memo()
    if key in memo:
        return memo[key]
    from balpm.embed import PoolEmbeddings, embed_pool

    c = session.config.embedding
    vectors = _vectors_file(session)
    if vectors is not None:  # your own vectors: read and checked (VectorFileError names file, row and field)
        emb = PoolEmbeddings.from_file(vectors, pool)
    else:
        embedder = get_embedder(c.embedding_model, c.device, int(c.embed_batch_size), int(c.max_length))
        bar = progress_bar(f"Embedding {len(pool)} pairs with {c.embedding_model}", container)
        try:
            emb = embed_pool(pool, embedder, progress=bar)
        finally:
            bar.clear()
    for arr in (emb.prompt, emb.a, emb.b):
        arr.flags.writeable = False
    while len(memo) >= _MAX_EMBEDDINGS:  # keep memory bounded: drop the oldest pool/model
        memo.pop(next(iter(memo)))
    memo[key] = emb
    return emb


def embeddings_or_offer(session: Session, pool: PreferencePool, key: str) -> Any:
    """The pool's embeddings if this server holds them; else an *Embed now* button, and the page stops until pressed.

    Why: embedding a pool can take minutes (and a GPU); opening a page must never start that silently.
    """
    emb = cached_embeddings(session)
    if emb is not None:
        return emb
    model = session.config.embedding.embedding_model
    st.info(f"The pool ({len(pool):,} pairs) is not embedded with {literal(model)} in this server "
            "yet. Embed it now (texts already in the disk cache are read, not recomputed) or on the Embed page.")
    c1, c2 = st.columns([1, 3])
    c2.page_link("pages/2_embed.py", label="Go to the Embed page", icon="🧮")
    if not c1.button("Embed now", key=key, type="primary"):
        st.stop()
    get_embeddings(session, pool)  # with its progress bar; then the page draws again without the offer
    st.rerun()
    raise AssertionError("unreachable: st.rerun raises")


# ---------------------------------------------------------------------------------------------------- learner
@dataclass
class Split:
    """The learner's part of the pool (``train``) and the held-out part for the test curve (simulation only)."""

    train: PreferencePool
    train_emb: Any
    test: PreferencePool | None
    test_emb: Any | None


def split(session: Session, pool: PreferencePool, embeddings: Any) -> Split:
    """Split pool and embeddings the same way (row masks), so row i stays pair i on both sides."""
    train_mask, test_mask = session.split_masks(pool)
    if test_mask is None:
        return Split(pool, embeddings, None, None)
    return Split(pool.subset(train_mask), embeddings.subset(train_mask), pool.subset(test_mask),
                 embeddings.subset(test_mask))


def get_learner(session: Session, parts: Split) -> Any:
    """The tab's :class:`balpm.learner.ActiveLearner` for the current pool/model/policy, synced with the store."""
    key = json.dumps([str(session.folder), session.pool_identity(), session.config.model_key(),
                      getattr(parts.train_emb, "model_id", ""), session.learner_params()], sort_keys=True, default=str)
    held = st.session_state.get(_LEARNER)
    if held is not None and held[0] == key:
        return session.sync(held[1])
    learner = session.make_learner(parts.train, parts.train_emb)
    if session.last_warning:  # a damaged saved state was moved aside and refit from the database's labels
        st.warning(literal(session.last_warning))
    st.session_state[_LEARNER] = (key, learner)
    return learner


# ---------------------------------------------------------------------------------------------------- sidebar
def render_sidebar(session: Session | None) -> None:
    """What is open (session, pool, model, labels) and the session controls, on every page."""
    with st.sidebar:
        if session is None:
            st.warning("No session open.")
        else:
            c = session.config
            st.markdown(f"**Session:** {literal(session.name)} ({c.mode})")
            pool_name = c.pool.dataset or "none chosen"
            size = f", at most {c.pool.max_pairs} pairs" if c.pool.max_pairs else ""
            st.markdown(f"**Pool:** {literal(Path(pool_name).name if '/' in pool_name else pool_name)}{size}")
            st.markdown(f"**Model:** {literal(c.embedding.embedding_model)} (max {c.embedding.max_length} tokens)")
            _label_count(str(session.folder))
        _session_controls(session)


@st.fragment(run_every=LIVE_S)
def _label_count(folder: str) -> None:
    """The sidebar's label count, re-read every ``LIVE_S`` seconds: labels given in a fragment (the Label page's
    buttons) or in another tab do not rerun the sidebar."""
    session = current_session()
    if session is None or str(session.folder) != folder:
        return
    try:
        n_lab, n_dec = session.n_labelled(), len(session.store)
    except Exception as e:  # a locked or damaged store must not hide the rest of the page
        st.error(f"Label store unreadable: {literal(e)}")
    else:
        st.markdown(f"**Labelled:** {n_lab} pairs" + (f" ({n_dec - n_lab} ties/skips)" if n_dec > n_lab else ""))


def _session_controls(session: Session | None) -> None:
    with st.expander("Sessions", expanded=False):
        names = list_sessions()
        if names:
            current = session.name if session is not None and session.name in names else names[0]
            if st.session_state.pop(_PICK_NEXT, None) in names:  # after a switch or Create session: the picker
                st.session_state["sb_open_name"] = current   # kept the old choice, and Open session went back
            choice = st.selectbox("Open or resume a session", names, index=names.index(current), key="sb_open_name")
            if st.button("Open session", key="sb_open"):
                try:
                    open_session(Session.open(choice))
                except (OSError, ValueError) as e:
                    st.error(literal(e))
                else:
                    st.rerun()
        st.divider()
        if st.session_state.pop(_CLEAR_NEW_NAME, False):  # a widget's value can only be set before it is drawn
            st.session_state["sb_new_name"] = ""
        name = st.text_input("New session name", key="sb_new_name", placeholder="e.g. alice-hh",
                             help="Letters, digits, '.', '_' and '-': a folder under the sessions directory, "
                                  "never a path")
        valid: str | None = None
        if name.strip():
            try:  # checked as typed: the library's rule, said before anything is created
                valid = validate_session_name(name)
            except ValueError as e:
                st.error(literal(e))
        mode = st.radio("Mode", MODES, key="sb_new_mode", horizontal=True,
                        help="human: a person labels; simulation: the dataset's own labels answer")
        options = list(BUILTIN_DATASETS)
        pool = st.selectbox("Pool", options, index=options.index("hh-rlhf:harmless-base"), key="sb_new_pool",
                            help="Choose a file later on the Pool page")
        max_pairs = st.number_input("Max pairs (0 = all)", min_value=0, value=500, step=100, key="sb_new_max")
        if st.button("Create session", key="sb_create", disabled=valid is None):
            try:
                base = session.config if session is not None else SessionConfig()
                cfg = SessionConfig.from_settings(
                    dataset=pool, max_pairs=int(max_pairs) or None, mode=mode,
                    embedding_model=base.embedding.embedding_model, max_length=base.embedding.max_length,
                    policy=base.acquisition.policy, policy_params=dict(base.acquisition.params),
                    batch_size=base.batch_size)
                open_session(Session.create(valid, cfg))  # a str is a name under sessions_dir(), never a path
            except (OSError, ValueError) as e:
                st.error(f"Cannot create session: {literal(e)}")
            else:
                st.session_state[_CLEAR_NEW_NAME] = True  # the name is used: the box starts empty again
                st.rerun()
