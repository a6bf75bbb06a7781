"""Diagnostics page: is BAL-PM's entropy term doing its job, is the model improving, and how do runs compare?

Three views:

1. the entropy-versus-uncertainty ratio per round (median and interquartile range of ``U / score`` of each batch's
   picks, the paper's figure): near 1 BALD drives the picks, near 0 the prompt-entropy bonus does;
2. held-out log-likelihood and accuracy of this session's simulated rounds (test split, and ``ood`` rows when
   the metrics hold them);
3. a comparison of run folders written by ``balpm run`` (learning curves and the labels-saved table);
4. the learnability check (:func:`balpm.check.check_session`) on this session's labels: can the features learn the
   task, and how much would the rest of the budget still buy.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import appkit
from balpm import plots
from balpm.check import MIN_LABELS, check_session
from balpm.experiment import compare_runs, find_runs, labels_saved_table, load_runs, ratio_by_round


@st.cache_data(show_spinner=False, max_entries=16)
def _load_runs(paths: tuple[str, ...], stamps: tuple[float, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`balpm.experiment.load_runs`, cached; ``stamps`` (metrics files' mtimes) re-read a changed run."""
    del stamps
    return load_runs(paths)


# ====================================================================================================== page
appkit.run_through_router()
st.title("Diagnostics")
session = appkit.current_session()
tab_session, tab_runs, tab_check = st.tabs(["This session", "Compare runs", "Learnability"])

with tab_session:
    if session is None:
        st.info("No session open.")
    else:
        st.subheader("Entropy versus uncertainty")
        st.caption("Share of BALD in the BAL-PM score of each pick, `U / (U + β·Ĥ)`: near 1 the model's "
                   "uncertainty chose the pair, near 0 the prompt-diversity bonus did. The paper sees the "
                   "diversity term dominate early and uncertainty take over as the prompt space fills up.")
        picks = session.pick_history()
        table = ratio_by_round(picks)
        if table.empty:
            policy = session.config.acquisition.policy
            why = (f"the policy {appkit.literal(policy)} has no entropy term" if policy not in ("bal-pm",) else
                   "no scored batch yet (the first batch is random)")
            st.info(f"No ratios to show: {why}. Run a Step on the Acquire page.")
        else:
            acq = session.config.acquisition  # the session's β rule names the plot
            rule = acq.params.get("beta", "") if acq.policy == "bal-pm" else ""
            st.plotly_chart(plots.ratio_over_rounds((picks[picks["round"] > 0] if (picks["round"] > 0).any()
                                                     else picks).assign(beta_rule=rule)),
                            key="dg_ratio_chart", width="stretch")
            st.dataframe(table.rename(columns={"ratio_median": "ratio median", "ratio_q25": "ratio q25",
                                               "ratio_q75": "ratio q75", "uncertainty_mean": "mean BALD",
                                               "entropy_term_mean": "mean β·Ĥ", "beta": "β used"}),
                         hide_index=True, width="stretch", key="dg_ratio_table")
            if not session.selections_file.is_file():  # no need to read it again: pick_history just did
                st.caption(f"{len(table)} round(s) on disk: this session predates the per-round history and "
                           "keeps the pick statistics of its latest batch only.")

        st.subheader("Held-out curves")
        metrics = session.metrics()
        have = [m for m in ("log_likelihood", "accuracy") if m in metrics.columns]
        if metrics.empty or not have or "n_labeled" not in metrics.columns:
            if session.config.mode == "simulation":
                st.info("No simulated round yet: run rounds on the Acquire page to draw test curves.")
            else:
                st.info("Held-out curves come from simulation sessions (the dataset's own labels answer and a "
                        "test split is held out). This is a human-labelling session.")
        else:
            df = metrics.copy()
            if "split" not in df.columns:
                df["split"] = "test"
            if "policy" not in df.columns:
                df["policy"] = session.config.acquisition.policy
            splits = [s for s in ("test", "ood") if s in set(df["split"])]
            cols = st.columns(len(have))
            for col, metric in zip(cols, have):
                fig = None
                for split_name in splits:
                    f = plots.learning_curves(df, metric=metric, split=split_name)
                    for tr in f.data:
                        tr.name = f"{tr.name} ({split_name})" if len(splits) > 1 else tr.name
                        if split_name == "ood":
                            tr.line.dash = "dash"
                    fig = f if fig is None else fig.add_traces(list(f.data))
                fig.update_layout(title=metric.replace("_", "-"), height=380,
                                  yaxis_title=metric.replace("_", " ") + (" (nats)" if metric == "log_likelihood"
                                                                          else ""))
                col.plotly_chart(fig, key=f"dg_curve_{metric}", width="stretch")
            last = df.sort_values("n_labeled").groupby("split").tail(1)
            st.caption("Latest: " + " · ".join(
                f"{r['split']}: " + ", ".join(f"{m} {r[m]:.4f}" for m in have) + f" at {int(r['n_labeled'])} labels"
                for _, r in last.iterrows()))

with tab_runs:
    st.caption("Run folders written by `balpm run` (each holds `metrics.csv`, `acquired.csv`, `config.json`).")
    root_text = st.text_input("Folder to search for runs", value="runs", key="dg_runs_root",
                              help="Searched three levels deep for folders holding metrics.csv")
    extra = st.text_area("More run folders (one path per line)", value="", key="dg_runs_extra", height=80)
    found = [str(p) for p in find_runs(Path(root_text).expanduser())] if root_text.strip() else []
    for line in extra.splitlines():
        p = Path(line.strip()).expanduser()
        if line.strip() and (p / "metrics.csv").is_file() and str(p) not in found:
            found.append(str(p))
        elif line.strip() and not (p / "metrics.csv").is_file():
            st.warning(f"{appkit.literal(line.strip())} is not a run folder (no metrics.csv).")
    if not found:
        st.info("No run folders found. Write some with `balpm run --policy bal-pm` and `balpm run --policy random`, "
                "then give their folder here.")
    else:
        if st.session_state.get("_dg_runs_found") != found:  # another folder: select all it holds, not nothing
            st.session_state["_dg_runs_found"] = list(found)
            st.session_state["dg_runs_chosen"] = list(found)
        chosen = st.multiselect("Runs to compare", found, key="dg_runs_chosen")
        if chosen:
            stamps = tuple((Path(p) / "metrics.csv").stat().st_mtime for p in chosen)
            try:
                metrics_all, acq_all = _load_runs(tuple(chosen), stamps)
            except (OSError, ValueError, KeyError) as e:
                st.error(f"Cannot read the runs: {appkit.literal(e)}")
                st.stop()
            curves = compare_runs(metrics_all)
            c1, c2 = st.columns(2)
            metric = c1.selectbox("Metric", ["log_likelihood", "accuracy", "brier", "ece"], key="dg_metric")
            splits = sorted(curves["split"].unique())
            split_name = c2.selectbox("Split", splits, key="dg_split")
            fig = plots.learning_curves(curves, metric=metric, split=split_name)
            st.plotly_chart(fig, key="dg_compare_chart", width="stretch")
            summary = curves.groupby(["dataset", "policy", "split"]).agg(
                seeds=("n_seeds", "max"), rounds=("round", "max"), labels=("n_labeled", "max")).reset_index()
            st.dataframe(summary, hide_index=True, width="stretch", key="dg_runs_summary")

            st.subheader("Labels saved")
            refs = [r for r in ("random", "bald") if r in set(curves["policy"])]
            if not refs or curves["policy"].nunique() < 2:
                st.info("The labels-saved table needs a `random` or `bald` run and at least one other policy.")
            else:
                table = labels_saved_table(curves, references=refs, metric=metric if metric in (
                    "log_likelihood", "accuracy", "brier", "ece") else "log_likelihood", split=split_name)
                st.dataframe(table, hide_index=True, width="stretch", key="dg_labels_saved",
                             column_config={c: st.column_config.NumberColumn(format="%.2f") for c in (
                                 "target", "reference_labels", "labels_needed", "labels_saved", "percent_saved")})
                if len(table):
                    st.plotly_chart(plots.labels_saved_bar(table), key="dg_labels_saved_chart", width="stretch")
            if len(acq_all) and "entropy_term" in acq_all and acq_all["entropy_term"].notna().any():
                st.subheader("Entropy versus uncertainty per run")
                pols = sorted(acq_all.loc[acq_all["entropy_term"].notna(), "policy"].unique())
                pol = st.selectbox("Policy", pols, key="dg_ratio_policy")
                part = acq_all[(acq_all["policy"] == pol) & (acq_all["round"] > 0)]
                st.caption("One band per β rule of the runs (`--beta auto` or a fixed β); hover a point for the "
                           "β that round was picked with.")
                st.plotly_chart(plots.ratio_over_rounds(part), key="dg_runs_ratio", width="stretch")

with tab_check:
    st.caption("Before paying for more labels: cross-validated (by prompt group) held-out log-likelihood of the "
               "preference model and of simple baselines on the labels given so far, a learning curve extrapolated "
               "to your budget, and a verdict. Same as `balpm check --session NAME`.")
    if session is None:
        st.info("No session open.")
    else:
        try:
            check_pool = appkit.get_pool(session)
        except (ValueError, OSError) as e:  # PoolFormatError is a ValueError
            check_pool = None
            st.error(f"Cannot load the pool: {appkit.literal(e)}")
        if check_pool is not None:
            n_have = session.n_labelled()
            c1, c2 = st.columns(2)
            budget = c1.number_input("Budget (labels in all)", min_value=max(n_have, 1),
                                     value=max(len(check_pool), n_have, 1), step=50, key="dg_check_budget")
            folds = c2.number_input("Folds", min_value=2, max_value=10, value=5, key="dg_check_folds")
            st.caption(f"{n_have} A/B label(s) in this session. The check needs at least {MIN_LABELS}, from as "
                       "many prompt groups as folds or more; it embeds only the labelled pairs when the pool is not "
                       "embedded in this server.")
            state_key = f"_dg_check::{session.folder}"
            if st.button("Run the check", key="dg_check_run", type="primary", disabled=n_have < MIN_LABELS):
                try:
                    with st.spinner("Cross-validating…"):
                        st.session_state[state_key] = (n_have, check_session(
                            session, check_pool, appkit.cached_embeddings(session), budget=int(budget),
                            folds=int(folds)))
                except ValueError as e:
                    st.error(f"The check cannot run: {appkit.literal(e)}")
            done = st.session_state.get(state_key)
            if done is not None:
                n_then, report = done
                if n_then != n_have:
                    st.caption(f"From {n_then} labels; the session now has {n_have}: run it again to update.")
                st.subheader(f"Verdict: {report.verdict}")
                for reason in report.reasons:
                    st.markdown(f"- {appkit.literal(reason)}")
                st.plotly_chart(plots.learnability_curve(report), key="dg_check_curve", width="stretch")
                st.dataframe(report.models, hide_index=True, width="stretch", key="dg_check_models",
                             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in (
                                 "log_likelihood", "ll_se", "accuracy", "accuracy_se", "gain", "gain_se")})
                with st.expander("Full report"):
                    st.code(report.summary(), language=None)
