"""Feature space page: a UMAP map of the pool's prompts, coloured by what the learner knows, with box/lasso selection.

Why: BAL-PM's entropy term is about *where* in prompt space the acquired pairs lie. Seeing the acquired rounds,
BALD and the β·Ĥ term on one map shows whether the batches spread over topics or pile up on one, and a lasso over a
region lists exactly which pairs live there.
"""

from __future__ import annotations

import html
import os
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from plotly.colors import sample_colorscale

import appkit
from balpm import plots
from balpm.projection import umap_coords
from balpm.render import format_sig, preview

MAX_POINTS = int(os.environ.get("BALPM_MAP_MAX_POINTS", "50000"))  # a smaller cap lets tests see the sample
COLOR_OPTIONS = ("acquisition round", "labelled or not", "BALD", "entropy term (β·Ĥ)", "score (BALD + β·Ĥ)",
                 "label")
HIGHLIGHT = "current batch"
_GREY = "rgba(160,160,160,0.45)"

appkit.run_through_router()
st.title("Feature space")
session, pool = appkit.session_and_pool_or_stop()
emb = appkit.embeddings_or_offer(session, pool, key="fs_load")
parts = appkit.split(session, pool, emb)
learner = appkit.get_learner(session, parts)
train, temb = parts.train, parts.train_emb
n = len(train)
if n == 0:
    st.info("The pool has no pairs to show.")
    st.stop()


# ---------------------------------------------------------------------------------------------- cached computations
@st.cache_data(show_spinner="Fitting UMAP on the prompt embeddings (once per pool and model)…", max_entries=16)
def _umap(model_id: str, ids_key: str, n_rows: int, seed: int, n_neighbors: int, min_dist: float, max_points: int,
          _emb: Any) -> tuple[np.ndarray, np.ndarray]:
    """Memory layer over balpm.projection's disk cache: a rerun (colour change, selection) costs nothing."""
    del model_id, ids_key, n_rows  # cache key only
    return umap_coords(_emb, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist, max_points=max_points)


def _pool_scores(lrn: Any) -> pd.DataFrame | None:
    """BALD, β·Ĥ and score of every pair from the learner (under its last fitted ensemble, no refit here);
    None before any fit. A failed kNN build only disables the entropy colouring."""
    if lrn.ensemble_ is None:
        return None
    with st.spinner("Scoring the pool with the current ensemble…"):
        try:
            return lrn.score_pool(refit=False)
        except Exception:  # noqa: BLE001 - shown as "entropy term unavailable"
            return None


@st.cache_data(show_spinner=False, max_entries=8)
def _hover(ids_key: str, rows_key: int, _df: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """``id`` and a wrapped, escaped prompt snippet (plotly hover text is HTML); cached: thousands of points."""
    del ids_key, rows_key
    df = _df
    out = []
    for pid, prompt in zip(df["id"].to_numpy()[rows], df["prompt"].to_numpy()[rows]):
        s = preview(str(prompt), 240)  # one line, cut at a word with an ellipsis
        body = "<br>".join(html.escape(line) for line in textwrap.wrap(s, 70)) or "(empty prompt)"
        out.append(f"<b>{html.escape(str(pid))}</b><br>{body}")
    return out


def _trace_rows(fig: Any, rows: np.ndarray, color: np.ndarray | None, mask: np.ndarray) -> None:
    """Put each point's pool row into ``customdata``, so a selection maps back to pairs whatever the trace layout.

    Mirrors how ``balpm.plots.feature_space`` splits points: one trace per category (or one ``pairs`` trace), then
    the highlight trace last.
    """
    cats = None if color is None or np.issubdtype(np.asarray(color).dtype, np.number) else \
        pd.Series(np.asarray(color).astype(str))
    for tr in fig.data:
        if tr.name == HIGHLIGHT:
            sel = rows[mask]
        elif cats is not None:
            sel = rows[(cats == tr.name).to_numpy()]
        else:
            sel = rows
        tr.customdata = sel


def _selected_rows(event: Any) -> np.ndarray:
    """Pool rows of the points in a box/lasso selection event (``customdata`` set by :func:`_trace_rows`)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return np.zeros(0, np.int64)
    rows = []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            rows.append(int(cd))
    return np.unique(np.asarray(rows, dtype=np.int64))


# ---------------------------------------------------------------------------------------------- controls
with st.expander("Projection settings", expanded=False):
    c1, c2, c3 = st.columns(3)
    n_neighbors = c1.slider("UMAP neighbours", 2, 100, 15, key="fs_neighbors",
                            help="Larger: more global structure; smaller: tighter local clusters")
    min_dist = c2.slider("UMAP min distance", 0.0, 0.99, 0.1, 0.01, key="fs_min_dist")
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key="fs_seed"))
color_by = st.radio("Colour by", COLOR_OPTIONS, horizontal=True, key="fs_color")

ids = train.pairs["id"].astype(str).to_numpy()
ids_key = f"{n}:{hash(tuple(ids.tolist()))}"
coords, index = _umap(str(temb.model_id), ids_key, n, seed, int(n_neighbors), float(min_dist), MAX_POINTS, temb)
if len(index) < n:
    st.warning(f"The pool has {n:,} pairs: the map shows a random sample of {len(index):,} of them (UMAP and the "
               f"browser slow down past about {MAX_POINTS:,} points). Rounds, labels and the batch are still exact "
               "for the points shown.")

# what every pool row is
rounds = learner.acquired_round_
labels = learner.labels_
decided = rounds >= 0
batch = session.current_batch()
pending = set(session.pending_ids(batch)) if batch is not None else set()
in_batch = np.isin(ids, list(pending)) if pending else np.zeros(n, bool)

scores = _pool_scores(learner)
bald = scores["uncertainty"].to_numpy() if scores is not None else None
needs_model = color_by in ("BALD", "score (BALD + β·Ĥ)")
needs_knn = color_by == "entropy term (β·Ĥ)"
ent = scores["entropy_term"].to_numpy() if scores is not None else None

color: np.ndarray | None
color_title = color_by
if color_by == "acquisition round":
    width = len(str(max(int(rounds.max(initial=0)), 0)))
    color = np.where(decided, np.char.add("round ", np.char.zfill(rounds.astype(str), width)), "not acquired")
    color_title = "round"
elif color_by == "labelled or not":
    color = np.where(~decided, "unlabelled", np.where(np.isnan(labels), "tie / skip", "labelled"))
    color_title = ""
elif color_by == "label":
    color = np.where(~decided, "unlabelled", np.where(np.isnan(labels), "tie / skip",
                                                      np.where(labels == 1, "A preferred", "B preferred")))
    color_title = "label"
elif needs_model and bald is None:
    st.info("No model has been fitted in this session yet: BALD and the score need one. Label a batch (Label "
            "page) or run a Step (Acquire page); showing the acquisition rounds meanwhile.")
    color = np.where(decided, "acquired", "not acquired")
elif needs_knn and (ent is None or np.isnan(ent).all()):
    st.info(f"The {learner.policy} policy has no entropy term (β·Ĥ is BAL-PM's and entropy's), or the kNN graph "
            "of the prompts could not be built.")
    color = None
elif color_by == "BALD":
    color = bald
    color_title = "BALD (nats)"
elif color_by == "entropy term (β·Ĥ)":
    color = ent
    color_title = "β·Ĥ"
elif np.isnan(scores["score"].to_numpy()).all():  # type: ignore[index]
    st.info(f"The {learner.policy} policy ranks by no score (it draws at random).")
    color = None
else:
    color = scores["score"].to_numpy()  # type: ignore[index]
    color_title = "score"

rows = index
col_s = None if color is None else np.asarray(color)[rows]
mask_s = in_batch[rows]
fig = plots.feature_space(coords, col_s, _hover(ids_key, len(rows), train.pairs, rows), mask_s, color_title=color_title,
                          highlight_name=HIGHLIGHT)
for tr in fig.data:  # unlabelled / not acquired in small grey, drawn under the rest; decided pairs stand out
    if tr.name in ("not acquired", "unlabelled"):
        tr.marker.color = _GREY
    elif tr.name != HIGHLIGHT and isinstance(col_s, np.ndarray) and col_s.dtype.kind not in "fiu":
        tr.marker.size, tr.marker.opacity = 8, 0.9
round_traces = [tr for tr in fig.data if str(tr.name).startswith("round ")]
if round_traces:  # rounds are ordered: a dark-to-warm scale reads as time (the default palette does not)
    shades = sample_colorscale("Plasma", list(np.linspace(0.0, 0.8, len(round_traces))))
    for tr, shade in zip(round_traces, shades):
        tr.marker.color = shade
_trace_rows(fig, rows, col_s, mask_s)
fig.update_layout(height=620, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso", legend=dict(itemsizing="constant"))

summary = (f"{len(rows):,} prompts · {int(decided.sum()):,} decided ({int((~np.isnan(labels)).sum()):,} labelled) · "
           f"{int(in_batch.sum())} in the current batch (◆)")
st.caption(summary + ". Hover a point for its prompt; draw a box or lasso to list pairs.")
event = st.plotly_chart(fig, key="fs_chart", on_select="rerun", selection_mode=("box", "lasso"),
                        width="stretch")

sel_rows = _selected_rows(event)
st.subheader(f"Selected pairs ({len(sel_rows)})")
if not len(sel_rows):
    st.caption("Nothing selected: use the box or lasso tool in the chart's toolbar.")
else:
    pairs = train.pairs.iloc[sel_rows]
    table = pd.DataFrame({
        "id": pairs["id"].astype(str).to_numpy(),
        "round": np.where(decided[sel_rows], rounds[sel_rows], -1),
        "label": pd.Series(labels[sel_rows]).map({1.0: "A", 0.0: "B"}).fillna("").to_numpy(),
        "in batch": in_batch[sel_rows],
        "BALD": bald[sel_rows] if bald is not None else np.nan,
        "prompt": pairs["prompt"].to_numpy(),
        "completion_a": pairs["completion_a"].to_numpy(),
        "completion_b": pairs["completion_b"].to_numpy(),
    })
    shown, numbers = appkit.without_empty_columns(table, ("BALD",))  # no model yet: no BALD column of "None"
    st.dataframe(shown.style.format({c: lambda x: format_sig(x, 2) or "–" for c in numbers}), hide_index=True,
                 width="stretch", key="fs_selected_table",
                 column_config={"round": st.column_config.NumberColumn(help="-1: not acquired")})
    st.download_button("Download selection (CSV)", table.to_csv(index=False).encode(), "selection.csv",
                       "text/csv", key="fs_download")
