"""Diagnostics page: is BAL-PM's entropy term doing its job, is the model improving, and how do runs compare?

Three views:

1. the entropy-versus-uncertainty ratio per round (median and interquartile range of ``U / score`` of each batch's
   picks, the paper's figure): near 1 BALD drives the picks, near 0 the prompt-entropy bonus does;
2. held-out log-likelihood and accuracy of this session's simulated rounds (test split, and ``ood`` rows when
   the metrics hold them);
3. a comparison of run folders written by ``balpm run`` (learning curves and the labels-saved table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import appkit
from balpm import plots
from balpm.experiment import compare_runs, labels_saved_table, load_run

_PICK_COLUMNS = ["round", "pick", "id", "uncertainty", "entropy_term", "score", "ratio"]


def _session_picks(session: Any) -> pd.DataFrame:
    """Every batch of this session whose pick statistics are on disk, one row per pick.

    Sources, later ones winning per (round, id): ``selections.csv`` (a per-round history, when the session
    writes one), the learner's last selection and the current batch.
    """
    frames = []
    hist = session.folder / "selections.csv"
    if hist.is_file():
        frames.append(pd.read_csv(hist, dtype={"id": str}))
    last = session.learner_dir / "last_selection.csv"
    if last.is_file():
        frames.append(pd.read_csv(last, dtype={"id": str}))
    batch = session.current_batch()
    if batch is not None and len(batch.table) and not batch.cold_start:
        frames.append(batch.table.assign(round=batch.round, pick=np.arange(len(batch.table))))
    frames = [f for f in frames if len(f) and {"round", "ratio"} <= set(f.columns)]
    if not frames:
        return pd.DataFrame(columns=_PICK_COLUMNS)
    df = pd.concat([f.reindex(columns=_PICK_COLUMNS) for f in frames], ignore_index=True)
    return df.drop_duplicates(["round", "id"], keep="last").sort_values(["round", "pick"]).reset_index(drop=True)


def _ratio_table(picks: pd.DataFrame) -> pd.DataFrame:
    """Median and spread of U / score per round, with the mean of each part (what the figure summarises)."""
    df = picks[np.isfinite(pd.to_numeric(picks["ratio"], errors="coerce"))]
    g = df.groupby("round")
    return pd.DataFrame({
        "picks": g.size(),
        "ratio median": g["ratio"].median(),
        "ratio q25": g["ratio"].quantile(0.25),
        "ratio q75": g["ratio"].quantile(0.75),
        "mean BALD": g["uncertainty"].mean(),
        "mean β·Ĥ": g["entropy_term"].mean(),
    }).reset_index()


def _find_runs(root: Path, depth: int = 3) -> list[Path]:
    """Run folders (holding ``metrics.csv``) at or below ``root``, sorted."""
    if not root.is_dir():
        return []
    found = [root] if (root / "metrics.csv").is_file() else []
    if depth > 0:
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            children = []
        for child in children:
            found += _find_runs(child, depth - 1)
    return found


@st.cache_data(show_spinner=False, max_entries=16)
def _load_runs(paths: tuple[str, ...], stamps: tuple[float, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenated metrics and acquired picks of run folders (re-read when a metrics file changes)."""
    del stamps
    metrics, acquired = [], []
    for p in paths:
        info, m, a = load_run(p)
        metrics.append(m)
        cfg = info.get("config", {})
        label = info.get("policy_label") or (m["policy"].iloc[0] if len(m) else Path(p).name)
        if len(a):
            acquired.append(a.assign(policy=label, seed=cfg.get("seed"), dataset=cfg.get("dataset"), run=p))
    acq = pd.concat(acquired, ignore_index=True) if acquired else pd.DataFrame()
    return pd.concat(metrics, ignore_index=True), acq


# ====================================================================================================== page
st.title("Diagnostics")
session = appkit.current_session()
tab_session, tab_runs = st.tabs(["This session", "Compare runs"])

with tab_session:
    if session is None:
        st.info("No session open.")
    else:
        st.subheader("Entropy versus uncertainty")
        st.caption("Share of BALD in the BAL-PM score of each pick, `U / (U + β·Ĥ)`: near 1 the model's "
                   "uncertainty chose the pair, near 0 the prompt-diversity bonus did. The paper sees the "
                   "diversity term dominate early and uncertainty take over as the prompt space fills up.")
        picks = _session_picks(session)
        table = _ratio_table(picks) if len(picks) else pd.DataFrame()
        if table.empty:
            policy = session.config.policy
            why = (f"the policy `{policy}` has no entropy term" if policy not in ("bal-pm",) else
                   "no scored batch yet (the first batch is random)")
            st.info(f"No ratios to show: {why}. Run a Step on the Acquire page.")
        else:
            st.plotly_chart(plots.ratio_over_rounds(picks[picks["round"] > 0] if (picks["round"] > 0).any()
                                                    else picks),
                            key="dg_ratio_chart", width="stretch")
            st.dataframe(table, hide_index=True, width="stretch", key="dg_ratio_table")
            if not (session.folder / "selections.csv").is_file():
                st.caption(f"{len(table)} round(s) on disk: this session keeps the pick statistics of its "
                           "latest batch only.")

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
                df["policy"] = session.config.policy
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
    found = [str(p) for p in _find_runs(Path(root_text).expanduser())] if root_text.strip() else []
    for line in extra.splitlines():
        p = Path(line.strip()).expanduser()
        if line.strip() and (p / "metrics.csv").is_file() and str(p) not in found:
            found.append(str(p))
        elif line.strip() and not (p / "metrics.csv").is_file():
            st.warning(f"`{line.strip()}` is not a run folder (no metrics.csv).")
    if not found:
        st.info("No run folders found. Write some with `balpm run --policy bal-pm` and `balpm run --policy random`, "
                "then give their folder here.")
    else:
        chosen = st.multiselect("Runs to compare", found, default=found, key="dg_runs_chosen")
        if chosen:
            stamps = tuple((Path(p) / "metrics.csv").stat().st_mtime for p in chosen)
            try:
                metrics_all, acq_all = _load_runs(tuple(chosen), stamps)
            except (OSError, ValueError, KeyError) as e:
                st.error(f"Cannot read the runs: {e}")
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
                st.plotly_chart(plots.ratio_over_rounds(part), key="dg_runs_ratio", width="stretch")
