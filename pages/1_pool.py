"""Pool page: choose the pairs to label (built-in dataset, uploaded file or path), check them, preview them."""

from __future__ import annotations


import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import appkit
from balpm.data import BUILTIN_DATASETS, COLUMN_TARGETS, PoolFormatError, format_columns, format_summary, summarize
from balpm.session import Session

appkit.run_through_router()
st.title("Pool")
session = appkit.current_session()
if session is None:
    st.stop()
cfg = session.config

SOURCES = ("Built-in dataset", "Upload a file", "Path")
builtin_names = list(BUILTIN_DATASETS)
is_builtin = cfg.pool.dataset in BUILTIN_DATASETS
source_kind = st.radio("Source", SOURCES, index=0 if (is_builtin or not cfg.pool.dataset) else 2, horizontal=True,
                       key="pool_source_kind")

with st.form("pool_form", border=True):
    builtin = path_text = upload = None
    if source_kind == "Built-in dataset":
        builtin = st.selectbox("Built-in dataset", builtin_names,
                               index=builtin_names.index(cfg.pool.dataset) if is_builtin else
                               builtin_names.index("hh-rlhf:harmless-base"),
                               format_func=lambda k: f"{k}: {BUILTIN_DATASETS[k]}", key="pool_builtin")
    elif source_kind == "Upload a file":
        upload = st.file_uploader("Pool file (JSONL, JSON, CSV/TSV or Parquet; gzip allowed)",
                                  type=["jsonl", "json", "ndjson", "csv", "tsv", "parquet", "gz"], key="pool_upload")
    else:
        path_text = st.text_input("Path to a file or folder", value="" if is_builtin else cfg.pool.dataset,
                                  key="pool_path")
    c1, c2 = st.columns(2)
    max_pairs = c1.number_input("Max pairs (0 = all; whole prompt groups are sampled)", min_value=0,
                                value=int(cfg.pool.max_pairs or 0), step=100, key="pool_max_pairs")
    seed = c2.number_input("Seed (sample and A/B coin)", min_value=0, value=int(cfg.pool.data_seed),
                           key="pool_seed")
    strict = st.checkbox("Strict: refuse the file if any record would be dropped", value=bool(cfg.pool.strict),
                         key="pool_strict",
                         help="Records the format allows dropping (empty completion, tie, duplicate pair …) are "
                              "dropped and counted by default; strict makes the first one a located error.")
    submitted = st.form_submit_button("Load pool", type="primary")

PENDING = "_pool_mapping"  # the settings of a file that waits for a column mapping (this tab)
NONE = "(none)"


def try_load(changes: dict, *, form_shown: bool = False) -> None:
    """Switch the session to ``changes`` if that pool loads; else the located error (and the mapping form when a
    mapping can fix it) and stop: a bad file never replaces a good pool."""
    trial = Session(session.folder, session.config.with_settings(**changes))
    try:
        appkit.get_pool(trial)
    except (PoolFormatError, OSError, ValueError) as e:
        st.error(f"Cannot load this pool: {appkit.literal(e)}")
        if appkit.needs_column_mapping(e) and not form_shown:  # shown: it stays as the user left it
            st.session_state[PENDING] = changes
            mapping_form(trial)
        st.stop()
    st.session_state.pop(PENDING, None)
    session.update(**changes)
    st.rerun()


def mapping_form(trial: Session) -> str | None:
    """Which of the file's columns holds the prompt, the completions, ... (pre-filled: the session's mapping or a
    guess). Returns the ``--columns`` text when submitted (what the session keeps), else None."""
    try:
        fields, guess = appkit.mapping_form_defaults(trial)
    except (PoolFormatError, OSError) as e:
        st.error(f"Cannot read the file's columns: {appkit.literal(e)}")
        return None
    st.subheader("Map the file's columns")
    st.caption("Say which column holds what: prompt with chosen/rejected, or prompt with completion A/B and an "
               "optional label (1 = A preferred). The mapping is kept in the session.")
    with st.form("pool_mapping_form"):
        picks = {t: st.selectbox(t, [NONE, *fields], index=1 + fields.index(guess[t]) if t in guess else 0,
                                 key=f"pool_map_{t}") for t in COLUMN_TARGETS}
        pressed = st.form_submit_button("Load with this mapping", type="primary")
    return format_columns({t: c for t, c in picks.items() if c != NONE}) if pressed else None


if submitted:
    if source_kind == "Built-in dataset":
        new_source = builtin
    elif source_kind == "Upload a file":
        new_source = session.save_upload(upload.name, upload.getvalue()) if upload is not None else None
    else:
        new_source = (path_text or "").strip() or None
    if not new_source:
        st.error("Choose a dataset, upload a file or give a path first.")
    else:  # the same file keeps its mapping; another starts without one
        try_load({"dataset": new_source, "max_pairs": int(max_pairs) or None, "data_seed": int(seed),
                  "strict": bool(strict), "columns": cfg.pool.columns if new_source == cfg.pool.dataset else ""})
elif PENDING in st.session_state:  # the mapping form's own submit (or a rerun while it is open)
    pending = st.session_state[PENDING]
    columns = mapping_form(Session(session.folder, session.config.with_settings(**pending)))
    if columns is not None:
        try_load({**pending, "columns": columns}, form_shown=True)

if not session.config.pool.dataset:
    st.info("No pool yet: pick a built-in dataset, upload a JSONL/CSV/Parquet file, or give a path.")
    st.stop()

pool = appkit.pool_or_stop(session)
summary = summarize(pool)

st.subheader(appkit.literal(summary["name"]))
m = st.columns(5)
m[0].metric("Pairs", summary["pairs"])
m[1].metric("Dropped from file", summary["dropped_total"],
            help="Rows of the whole source file that failed validation (reasons below)"
                 + (f"; this pool is a subset: {summary['pairs']} of the file's {summary['source_pairs']} pairs."
                    if summary["is_subset"] else "."))
m[2].metric("Labels in the file", summary["labelled"],
            help="Pairs whose file says which completion is preferred (chosen/rejected, or a label column); the "
                 "labels given in this session are counted in the sidebar.")
m[3].metric("Prompt groups", summary["groups"])
frac = summary["a_preferred_fraction"]
m[4].metric("A preferred", "n/a" if frac != frac else f"{frac:.1%}")
if session.config.pool.columns:
    st.caption(f"Columns mapped: {appkit.literal(session.config.pool.columns)} (on the command line: "
               f"--columns {appkit.literal(session.config.pool.columns)})")
with st.expander("Validation summary", expanded=True):
    st.code(format_summary(summary), language=None)
    if session.config.mode == "simulation":
        st.caption("Simulation session: only labelled pairs are kept (the oracle answers with them).")

st.subheader("Preview")
cols = ["id", "prompt", "completion_a", "completion_b", "label", "source", "group"]
st.dataframe(pool.pairs[cols].head(200), hide_index=True, width="stretch", height=320, key="pool_preview")

st.subheader("Text lengths (characters)")
lengths = pd.DataFrame({
    "prompt": pool.pairs["prompt"].str.len(),
    "completion A": pool.pairs["completion_a"].str.len(),
    "completion B": pool.pairs["completion_b"].str.len(),
})
h1, h2 = st.columns(2)
fig_p = go.Figure(go.Histogram(x=lengths["prompt"], nbinsx=50, name="prompt"))
fig_p.update_layout(title="Prompt length", xaxis_title="characters", yaxis_title="pairs", template="plotly_white",
                    height=320, margin=dict(t=40, b=30))
h1.plotly_chart(fig_p, key="hist_prompt")
fig_c = go.Figure()
for col in ("completion A", "completion B"):
    fig_c.add_trace(go.Histogram(x=lengths[col], nbinsx=50, name=col, opacity=0.6))
fig_c.update_layout(title="Completion length", barmode="overlay", xaxis_title="characters", yaxis_title="pairs",
                    template="plotly_white", height=320, margin=dict(t=40, b=30))
h2.plotly_chart(fig_c, key="hist_completions")
