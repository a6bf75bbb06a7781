"""Acquire page: policy and parameters; Step proposes the next batch; simulation mode runs rounds with a live curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import appkit
from balpm.acquisition import policy_names, policy_parameters
from balpm.render import diversity_driven, format_sig, prompt_preview

appkit.run_through_router()
st.title("Acquire")
session, pool = appkit.session_and_pool_or_stop()
cfg = session.config

# ---------------------------------------------------------------------------------------------- settings
names = policy_names()
c1, c2, c3, c4 = st.columns(4)
saved_policy = cfg.acquisition.policy
policy = c1.selectbox("Policy", names, index=names.index(saved_policy) if saved_policy in names else 0,
                      key="acq_policy")
batch_size = c2.number_input("Batch size", min_value=1, max_value=1024, value=int(cfg.batch_size), key="acq_batch")
seed = c3.number_input("Seed", min_value=0, value=int(cfg.seed), key="acq_seed")
n_members = c4.number_input("Ensemble members", min_value=1, max_value=32, value=int(cfg.ensemble.n_members),
                            key="acq_members")
params: dict = {}
for p, col in zip(policy_parameters(policy, advanced=False), st.columns(3)):  # what the policy declares
    value = cfg.acquisition.params.get(p.name, p.default)
    if p.words:  # a rule by name (β "auto") or a number
        rules = ("fixed", *p.words)
        rule = col.selectbox(f"{p.label or p.name}: rule", rules, index=rules.index(p.word(value) or "fixed"),
                             help=p.help, key=f"acq_{p.name}_rule")
        if rule != "fixed":
            params[p.name] = rule
            continue
        value = p.default if p.word(value) else value
    if p.choices is not None:
        params[p.name] = col.selectbox(p.label or p.name, p.choices, index=list(p.choices).index(value),
                                       help=p.help, key=f"acq_{p.name}")
    else:
        params[p.name] = p.type(col.number_input(
            p.label or p.name, min_value=None if p.low is None else p.type(p.low),
            max_value=None if p.high is None else p.type(p.high), value=p.type(value), step=p.type(p.step),
            format=None if p.type is int else "%.4f", help=p.help, key=f"acq_{p.name}"))
wanted = {"policy": policy, "policy_params": params, "batch_size": int(batch_size), "seed": int(seed),
          "n_members": int(n_members)}
if any(cfg.settings()[k] != v for k, v in wanted.items()):
    session.update(**wanted)  # nothing recomputes until Step; the learner is re-keyed on these settings

emb = appkit.embeddings_or_offer(session, pool, key="acq_embed_now")
parts = appkit.split(session, pool, emb)
learner = appkit.get_learner(session, parts)

# ---------------------------------------------------------------------------------------------- step
# Step replaces the current batch: with pairs of it still unlabelled it asks first (their labels are not lost,
# and the pairs stay in the pool, but the person labelling them would be switched to another batch).
_CONFIRM = "_acq_confirm_replace"


def _pending(batch) -> list[str]:
    return session.pending_ids(batch) if batch is not None else []


def _propose() -> None:
    with st.spinner("Fitting the ensemble and scoring the pool…"):
        new = session.propose(learner)
    st.toast(f"Proposed {len(new.ids)} pairs for round {new.round}.")


if st.button("Step: fit, score and propose a batch", type="primary", key="acq_step"):
    current = session.current_batch()
    if _pending(current):
        st.session_state[_CONFIRM] = current.batch_id
    else:
        _propose()
asked = st.session_state.get(_CONFIRM)
if asked is not None:
    current = session.current_batch()
    left = _pending(current) if current is not None and current.batch_id == asked else []
    if not left:  # labelled meanwhile (or replaced in another tab): nothing to ask any more
        st.session_state.pop(_CONFIRM, None)
    else:
        with st.container(border=True, key="acq_confirm"):
            st.warning(f"{len(left)} pairs of round {current.round} are unlabelled. Replace the batch anyway? "
                       "Their pairs stay in the pool and may be proposed again; labels already given are kept.")
            k1, k2 = st.columns(2)
            keep_label = "Keep labelling" if cfg.mode == "human" else "Keep this batch"
            if k1.button(keep_label, key="acq_keep"):
                st.session_state.pop(_CONFIRM, None)
                if cfg.mode == "human":
                    st.switch_page("pages/4_label.py")
                st.rerun()
            if k2.button("Replace the batch", key="acq_replace", type="primary"):
                st.session_state.pop(_CONFIRM, None)
                _propose()
                st.rerun()  # draw the page again without the question


def _sig(x: float) -> str:
    """2 significant digits (1.2e-06, never 0.0000); a dash where a pick has no score (random, cold start)."""
    return format_sig(x, 2) or "–"


@st.fragment(run_every=appkit.LIVE_S)
def batch_view() -> None:
    """Counts, the batch and its status, re-read every few seconds: labels arrive from the Label page or other tabs."""
    n_lab = session.n_labelled()
    st.caption(f"{len(parts.train)} pairs to pick from" +
               (f", {len(parts.test)} held out for the test curve" if parts.test is not None else "") +
               f" · {n_lab} labelled · next round {learner.last_round_ + 1}.")
    batch = session.current_batch()
    if batch is None or not batch.ids:
        st.info("No batch proposed yet: press **Step**.")
        return
    pending = set(session.pending_ids(batch))
    st.subheader(f"Proposed batch: round {batch.round}, {len(batch.ids)} pairs ({len(pending)} still to label)")
    if batch.cold_start:
        st.caption(appkit.COLD_START_NOTE)
    texts = pool.pairs.set_index("id")["prompt"]
    table = batch.table.copy()
    for col in ("uncertainty", "entropy_term", "score", "ratio"):
        if col not in table:
            table[col] = np.nan
    driven, n_small, n_scored = diversity_driven(table["uncertainty"], table["score"])
    if driven:
        st.info(f"This round is driven by prompt diversity alone: for {n_small} of {n_scored} picks the "
                "uncertainty term (BALD) is under 1% of the score, so the entropy term β·Ĥ chose them.")
    shown = pd.DataFrame({
        "id": table["id"],
        "prompt": [prompt_preview(str(texts.get(i, "")), 120) for i in table["id"]],
        "BALD": table["uncertainty"].astype(float),
        "β·Ĥ": table["entropy_term"].astype(float),
        "score": table["score"].astype(float),
        "ratio": table["ratio"].astype(float),
        "status": ["to label" if i in pending else "done" for i in table["id"]],
    })
    # a column with no value in this batch (a random batch; β·Ĥ of a policy without it) is left out
    shown, numbers = appkit.without_empty_columns(shown, ("BALD", "β·Ĥ", "score", "ratio"))
    st.dataframe(shown.style.format({c: _sig for c in numbers}), hide_index=True, width="stretch",
                 key="acq_batch_table",
                 column_config={"prompt": st.column_config.TextColumn(
                     help="The last human turn of the dialogue (or the prompt's start)")})
    if cfg.mode == "human":
        st.page_link("pages/4_label.py", label="Label this batch", icon="✍️")
    t = learner.timings_
    if t:
        st.caption("Last step: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))


batch_view()

# ---------------------------------------------------------------------------------------------- simulation
if cfg.mode == "simulation":
    st.divider()
    st.subheader("Simulation: the dataset's own labels answer")
    try:
        from balpm.plots import learning_curves
    except ImportError:  # pragma: no cover - plots is part of the engine
        learning_curves = None

    def draw(metrics: pd.DataFrame, where) -> None:
        if metrics.empty or "log_likelihood" not in metrics:
            where.info("No rounds yet.")
            return
        if learning_curves is not None:
            fig = learning_curves(metrics, "log_likelihood")
        else:
            import plotly.express as px

            fig = px.line(metrics, x="n_labeled", y="log_likelihood", markers=True)
        fig.update_layout(height=360, title="Held-out test log-likelihood")
        where.plotly_chart(fig, key=f"sim_curve_{len(metrics)}")

    r1, r2 = st.columns([1, 3])
    n_rounds = r1.number_input("Rounds", min_value=1, max_value=500, value=5, key="sim_rounds")
    run = r1.button(f"Run {int(n_rounds)} rounds", type="primary", key="sim_run")
    chart = r2.empty()
    table_slot = st.empty()
    metrics = session.metrics()
    draw(metrics, chart)
    if run:
        bar = appkit.progress_bar("Simulating", unit="rounds")
        bar(0, int(n_rounds))
        for i in range(int(n_rounds)):
            row = session.simulate_round(learner, parts.test, parts.test_emb)
            if not row:
                st.warning("The pool ran dry: every pair is labelled.")
                break
            metrics = session.metrics()
            draw(metrics, chart)
            bar(i + 1, int(n_rounds))
        bar.clear()
        st.rerun()
    if not metrics.empty:
        cols = [c for c in ("round", "n_labeled", "log_likelihood", "accuracy", "ece", "mean_bald", "fit_seconds")
                if c in metrics]
        table_slot.dataframe(metrics[cols], hide_index=True, key="sim_metrics")
