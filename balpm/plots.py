"""Plotly figures shared by the app, the ``balpm compare`` report and notebooks.

Pure functions: data in, ``plotly.graph_objects.Figure`` out, no I/O and no Streamlit. Tests assert on the figures'
traces and values, not on pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["learning_curves", "ratio_over_rounds", "beta_rule_label", "feature_space", "labels_saved_bar", "learnability_curve",
           "COLORS"]

#: One stable colour per policy, so every figure of a report agrees.
COLORS = {
    "bal-pm": "#d62728",
    "random": "#7f7f7f",
    "bald": "#1f77b4",
    "softmax-bald": "#2ca02c",
    "power-bald": "#9467bd",
    "softrank-bald": "#8c564b",
    "entropy": "#e377c2",
}
_FALLBACK = ["#17becf", "#bcbd22", "#ff7f0e", "#393b79", "#637939", "#843c39"]
_LABELS = {"log_likelihood": "test log-likelihood (nats)", "accuracy": "accuracy", "brier": "Brier score",
           "ece": "expected calibration error", "mean_bald": "mean BALD (nats)"}


def _color(name: str, i: int) -> str:
    base = str(name).split(" [")[0]
    return COLORS.get(base, _FALLBACK[i % len(_FALLBACK)])


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _aggregate(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-run metrics rows → mean/se per (dataset, policy, split, n_labeled), as ``compare_runs`` does."""
    keys = [c for c in ("dataset", "policy", "split", "n_labeled") if c in df.columns]
    g = df.groupby(keys, sort=True)[metric].agg(["mean", "std", "count"]).reset_index()
    g[f"{metric}_mean"] = g["mean"]
    g[f"{metric}_se"] = np.where(g["count"] > 1, g["std"] / np.sqrt(g["count"]), np.nan)
    return g.drop(columns=["mean", "std", "count"])


def learning_curves(df: pd.DataFrame, metric: str = "log_likelihood", split: str = "test") -> go.Figure:
    """Mean ``metric`` against the number of labels, one line per policy (and dataset), ± one standard error.

    Parameters
    ----------
    df : DataFrame
        :func:`balpm.experiment.compare_runs` output (``{metric}_mean``, ``{metric}_se``), or raw ``metrics.csv``
        rows (aggregated here).
    metric : str
    split : str
        ``test`` or ``ood``; ignored when ``df`` has no ``split`` column.

    Returns
    -------
    go.Figure
        Per curve: a band trace (``name`` ``"<curve> ± se"``, filled polygon, hidden from the legend; only when
        some standard error is finite) followed by the mean line (``name`` = policy, or ``"dataset · policy"``).
    """
    if "split" in df.columns:
        df = df[df["split"] == split]
    if f"{metric}_mean" not in df.columns:
        df = _aggregate(df, metric)
    fig = go.Figure()
    multi = "dataset" in df.columns and df["dataset"].nunique() > 1
    group_keys = [c for c in ("dataset", "policy") if c in df.columns]
    groups = df.groupby(group_keys, sort=True) if group_keys else [((), df)]
    for i, (key, part) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        policy = str(key[-1]) if key else metric
        name = " · ".join(map(str, key)) if multi else policy
        part = part.sort_values("n_labeled")
        x = part["n_labeled"].to_numpy(dtype=np.float64)
        y = part[f"{metric}_mean"].to_numpy(dtype=np.float64)
        se = part[f"{metric}_se"].to_numpy(dtype=np.float64) if f"{metric}_se" in part else np.full_like(y, np.nan)
        color = _color(policy, i)
        if np.isfinite(se).any():
            s = np.nan_to_num(se)
            fig.add_trace(go.Scatter(
                x=np.concatenate([x, x[::-1]]), y=np.concatenate([y + s, (y - s)[::-1]]), fill="toself", mode="lines",
                fillcolor=_rgba(color, 0.18), line=dict(width=0), hoverinfo="skip", showlegend=False,
                name=f"{name} ± se", legendgroup=name,
            ))
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color, width=2), marker=dict(size=5),
                                 customdata=se, hovertemplate="%{x} labels: %{y:.4f} ± %{customdata:.4f}"))
    fig.update_layout(xaxis_title="labelled pairs", yaxis_title=_LABELS.get(metric, metric).replace(
        "test", split), template="plotly_white", legend_title_text="policy", hovermode="x unified")
    return fig


def beta_rule_label(rule: Any) -> str:
    """How a run's β was set, for legends: ``"β auto"`` (:func:`balpm.acquisition.auto_beta`, chosen per round),
    ``"β 0.01 (fixed)"``, or ``""`` for a policy without a β (or a value missing from an old file)."""
    if rule is None or (isinstance(rule, float) and not np.isfinite(rule)) or str(rule).strip() == "":
        return ""
    if str(rule).strip().lower() == "auto":
        return "β auto"
    try:
        return f"β {float(rule):g} (fixed)"
    except ValueError:
        return f"β {rule}"


def ratio_over_rounds(acquired: pd.DataFrame, column: str = "ratio", rule_column: str = "beta_rule") -> go.Figure:
    """Median and interquartile range of ``U / score`` of the picks per round (BAL-PM's uncertainty share).

    A ratio near 1 means BALD drove the pick; near 0 means the prompt-entropy term did (the paper's
    entropy-versus-uncertainty figure). The axis is not clamped to [0, 1]: β·Ĥ is a differential-entropy estimate
    and can be negative, which puts the ratio above 1 (or below 0 when the score itself is negative); a dotted
    line marks 1. Rows with a non-finite ratio (random picks, the initial set) are ignored.

    When ``acquired`` has a ``rule_column`` (how β was set: ``"auto"`` or a number, see :func:`beta_rule_label`),
    each rule gets its own band and median, named after it, and the title names the rule(s); with a ``beta``
    column the hover shows the β each round was picked with (it changes per round under ``auto``).

    Returns
    -------
    go.Figure
        Per rule: ``"q25–q75"`` band (filled, outlined polygon) and ``"median"`` line with q25–q75 error bars
        (``"… · β auto"`` etc. when there are several rules); x = round as integers (integer ticks).
    """
    df = acquired[np.isfinite(pd.to_numeric(acquired[column], errors="coerce"))]
    if rule_column in df.columns:
        labels = df[rule_column].map(beta_rule_label)
        groups = [(lab, df[labels == lab]) for lab in sorted(labels.unique())]
    else:
        groups = [("", df)]
    fig = go.Figure()
    several = len(groups) > 1
    for i, (label, part) in enumerate(groups):
        color = COLORS["bal-pm"] if i == 0 else _FALLBACK[(i - 1) % len(_FALLBACK)]
        _ratio_traces(fig, part, column, color, f" · {label}" if several and label else "")
    fig.add_hline(y=1.0, line=dict(color="#7f7f7f", dash="dot", width=1))
    rules = [lab for lab, _ in groups if lab]
    fig.update_layout(xaxis_title="round", yaxis_title="uncertainty / score of the picks",
                      template="plotly_white", title=("U / score, " + "; ".join(rules)) if rules else None)
    n_rounds = df["round"].nunique() if len(df) else 0
    fig.update_xaxes(tickformat="d", dtick=1 if n_rounds <= 20 else None)
    return fig


def _ratio_traces(fig: go.Figure, df: pd.DataFrame, column: str, color: str, suffix: str) -> None:
    """The band and the median line of one β rule's picks."""
    g = df.groupby("round")[column]
    stats = pd.DataFrame({"q25": g.quantile(0.25), "median": g.median(), "q75": g.quantile(0.75)}).reset_index()
    x = stats["round"].to_numpy().astype(np.int64)  # rounds are counted: integers on the axis and in the hover
    med = stats["median"].to_numpy(dtype=np.float64)
    q25, q75 = stats["q25"].to_numpy(dtype=np.float64), stats["q75"].to_numpy(dtype=np.float64)
    beta = (pd.to_numeric(df["beta"], errors="coerce").groupby(df["round"]).mean().reindex(stats["round"])
            .to_numpy(dtype=np.float64) if "beta" in df.columns else np.full(len(x), np.nan))
    # The spread as a band between rounds (outlined, so a thin one still shows) and as error bars at each round:
    # a band alone has no width with one round, and no height where the picks of a round agree.
    fig.add_trace(go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([q75, q25[::-1]]), fill="toself", mode="lines",
        fillcolor=_rgba(color, 0.3), line=dict(width=1, color=_rgba(color, 0.6)), hoverinfo="skip",
        name="q25–q75" + suffix,
    ))
    fig.add_trace(go.Scatter(
        x=x, y=med, mode="lines+markers", name="median" + suffix, line=dict(color=color, width=2),
        error_y=dict(type="data", symmetric=False, array=q75 - med, arrayminus=med - q25, color=color,
                     thickness=1.5, width=6),
        customdata=np.stack([q25, q75, beta], axis=-1) if len(x) else None,
        hovertemplate="round %{x:d}: median %{y:.3g} (q25 %{customdata[0]:.3g}, q75 %{customdata[1]:.3g}), "
                      "β %{customdata[2]:.3g}<extra></extra>",
    ))


def feature_space(
    coords: np.ndarray,
    color: Sequence[Any] | np.ndarray | None = None,
    hover: Sequence[str] | None = None,
    highlight_mask: np.ndarray | None = None,
    *,
    color_title: str = "",
    highlight_name: str = "selected",
) -> go.Figure:
    """2-D scatter of prompt embeddings (e.g. UMAP), optionally coloured and with some points highlighted.

    Parameters
    ----------
    coords : (N, 2) array
    color : (N,) numbers (colour scale) or labels (one trace per category), optional
    hover : (N,) str, optional
    highlight_mask : (N,) bool, optional
        Drawn on top as a last trace named ``highlight_name`` with larger, outlined markers.

    Returns
    -------
    go.Figure
        Numeric or no colour: one ``"pairs"`` trace (+ highlight). Categorical: one trace per category in sorted
        order (+ highlight).
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must be (N, 2), got {xy.shape}")
    n = len(xy)
    text = np.asarray(hover, dtype=object) if hover is not None else None
    mask = np.zeros(n, bool) if highlight_mask is None else np.asarray(highlight_mask, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"highlight_mask must have shape ({n},)")
    fig = go.Figure()
    hov = "%{text}<extra></extra>" if text is not None else None

    def _text(m: np.ndarray) -> Any:
        return text[m] if text is not None else None

    col = None if color is None else np.asarray(color)
    if col is not None and col.shape != (n,):
        raise ValueError(f"color must have shape ({n},)")
    if col is not None and not np.issubdtype(col.dtype, np.number):
        cats = pd.Series(col.astype(str))
        for i, c in enumerate(sorted(cats.unique())):
            m = (cats == c).to_numpy()
            fig.add_trace(go.Scattergl(x=xy[m, 0], y=xy[m, 1], mode="markers", name=c, text=_text(m),
                                       hovertemplate=hov, marker=dict(size=5, color=_color(c, i), opacity=0.7)))
    else:
        marker: dict[str, Any] = dict(size=5, opacity=0.7, color="#9aa0a6")
        if col is not None:  # the colour bar takes the right edge; the legend goes above the plot (never under it)
            marker.update(color=col.astype(np.float64), colorscale="Viridis", showscale=True,
                          colorbar=dict(title=color_title, x=1.0, xanchor="left", y=0.5, yanchor="middle", len=0.9))
        all_rows = np.ones(n, bool)
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="pairs", text=_text(all_rows),
                                   hovertemplate=hov, marker=marker))
    if mask.any():
        fig.add_trace(go.Scattergl(x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=highlight_name,
                                   text=_text(mask), hovertemplate=hov,
                                   marker=dict(size=10, color=COLORS["bal-pm"], line=dict(width=1.5, color="black"),
                                               symbol="diamond")))
    fig.update_layout(template="plotly_white", xaxis=dict(showticklabels=False, title=""),
                      yaxis=dict(showticklabels=False, title=""), legend_title_text=color_title)
    if col is not None and np.issubdtype(col.dtype, np.number):
        fig.update_layout(legend=dict(orientation="h", x=0.0, xanchor="left", y=1.0, yanchor="bottom"))
    return fig


def labels_saved_bar(table: pd.DataFrame) -> go.Figure:
    """Percent of labels saved per policy, one bar group per reference (and dataset).

    Parameters
    ----------
    table : DataFrame
        :func:`balpm.experiment.labels_saved_table` output.

    Returns
    -------
    go.Figure
        One ``go.Bar`` per reference (``name`` ``"vs <reference>"``, or ``"<dataset> vs <reference>"`` with several
        datasets); x = policy, y = ``percent_saved`` (0 and the text "not reached" when never reached).
    """
    fig = go.Figure()
    multi = "dataset" in table.columns and table["dataset"].nunique() > 1
    keys = ["dataset", "reference"] if "dataset" in table.columns else ["reference"]
    for (key, part) in table.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = f"{key[0]} vs {key[-1]}" if multi else f"vs {key[-1]}"
        reached = part["reached"].astype(bool).to_numpy()
        y = np.where(reached, part["percent_saved"].to_numpy(dtype=np.float64), 0.0)
        text = [f"{v:.1f}%" if r else "not reached" for v, r in zip(y, reached)]
        fig.add_trace(go.Bar(x=part["policy"].astype(str).to_numpy(), y=y, name=name, text=text,
                             textposition="outside",
                             customdata=part["labels_saved"].to_numpy(dtype=np.float64),
                             hovertemplate="%{x}: %{y:.1f}% (%{customdata:.0f} labels)<extra>%{fullData.name}</extra>"))
    fig.update_layout(barmode="group", template="plotly_white", yaxis_title="labels saved (%)",
                      xaxis_title="policy", title="Labels saved to reach the reference's final test log-likelihood")
    return fig


def learnability_curve(report: Any) -> go.Figure:
    """The learnability check's learning curve: held-out LL over nested subsets, the fitted saturating curve
    extrapolated to the budget with its bootstrap band, and the constant's and chance's levels for scale.

    Parameters
    ----------
    report : balpm.check.LearnabilityReport
        Reads ``curve``, ``forecast``, ``models``, ``n_labels``, ``budget``, ``verdict``.

    Returns
    -------
    go.Figure
        Traces, in order: ``"forecast band (10-90%)"`` (filled polygon), ``"fitted curve"``, then one
        ``lines+markers`` trace per model of ``report.curve`` (``± se`` error bars), then ``"constant P(A)"`` and
        ``"chance"`` (flat dotted lines from the first subset to the budget); dashed vertical lines mark the labels
        in hand and the budget. Log x axis.
    """
    fc = report.forecast
    color = COLORS["bal-pm"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=np.concatenate([fc["n"], fc["n"][::-1]]), y=np.concatenate([fc["hi"], fc["lo"][::-1]]), fill="toself",
        mode="lines", fillcolor=_rgba(color, 0.18), line=dict(width=0), hoverinfo="skip",
        name="forecast band (10-90%)"))
    fig.add_trace(go.Scatter(x=fc["n"], y=fc["log_likelihood"], mode="lines", name="fitted curve",
                             line=dict(color=color, width=2, dash="dash"),
                             hovertemplate="%{x:.0f} labels: %{y:.4f}<extra>fitted</extra>"))
    for i, (model, part) in enumerate(report.curve.groupby("model", sort=False)):
        c = color if i == 0 else _FALLBACK[(i - 1) % len(_FALLBACK)]
        fig.add_trace(go.Scatter(
            x=part["n_train"], y=part["log_likelihood"], mode="lines+markers", name=str(model),
            line=dict(color=c, width=2), marker=dict(size=7),
            error_y=dict(type="data", array=part["ll_se"].to_numpy(dtype=np.float64), color=c, thickness=1),
            hovertemplate="%{x:.0f} training pairs: %{y:.4f}<extra>" + str(model) + "</extra>"))
    x_span = [float(fc["n"].min()), float(max(report.budget, report.n_labels))]
    const = report.models.set_index("model")["log_likelihood"].get("constant P(A)", np.nan)
    for name, level, c in (("constant P(A)", const, "#7f7f7f"), ("chance", -np.log(2.0), "#bbbbbb")):
        fig.add_trace(go.Scatter(x=x_span, y=[level, level], mode="lines", name=name,
                                 line=dict(color=c, width=1, dash="dot"), hoverinfo="skip"))
    for x, label in ((report.n_labels, "labels in hand"), (report.budget, "budget")):
        fig.add_vline(x=x, line=dict(color="#555555", width=1, dash="dash"), annotation_text=label,
                      annotation_position="top")
    fig.update_layout(template="plotly_white", title=f"verdict: {report.verdict}", xaxis_title="training labels",
                      yaxis_title="held-out log-likelihood (nats)", hovermode="closest")
    fig.update_xaxes(type="log")
    return fig
