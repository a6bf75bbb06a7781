"""Run folders read back: comparisons over seeds, "labels saved", the report folder, selection statistics.

A run folder (written by :func:`balpm.experiment.run_experiment`) holds ``config.json``, ``metrics.csv`` (columns
:data:`METRIC_COLUMNS`) and ``acquired.csv`` (columns :data:`ACQUIRED_COLUMNS`). :func:`compare_runs` averages runs
over seeds; :func:`labels_saved` reads off how many labels a policy saves against a reference policy (the paper's
headline number), counting from where the policy's mean curve stays at or above the reference's final score, not
from its first touch; :func:`write_report` writes all of it, with figures, into one folder (``balpm compare``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ACQUIRED_COLUMNS",
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_COLUMNS",
    "compare_runs",
    "find_runs",
    "pool_names",
    "labels_saved",
    "labels_saved_table",
    "load_run",
    "load_runs",
    "ratio_by_round",
    "write_report",
]

#: Metric columns of ``metrics.csv`` (one value per round and evaluation split).
METRICS = ("log_likelihood", "accuracy", "brier", "ece", "mean_bald")
#: Which way each metric improves, for "labels saved" (≥ or ≤ the reference's final score).
HIGHER_IS_BETTER = {"log_likelihood": True, "accuracy": True, "brier": False, "ece": False, "mean_bald": False}
#: Columns of a run folder's ``metrics.csv``.
METRIC_COLUMNS = (
    "dataset", "policy", "seed", "round", "n_labeled", "split", *METRICS, "n_eval",
    "ratio_median", "ratio_q25", "ratio_q75", "uncertainty_mean", "entropy_term_mean", "beta",
    "fit_seconds", "score_seconds", "select_seconds", "eval_seconds",
)
#: Columns of a run folder's ``acquired.csv`` (one row per acquired pair; round 0 is the random initial set).
ACQUIRED_COLUMNS = ("round", "pick", "id", "label", "uncertainty", "entropy_term", "score", "ratio", "beta")


def _slug(s: str) -> str:
    """A file-name-safe form of a dataset or policy name (run folders, figure files)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in str(s)).strip("-")


def _selection_stats(sel: pd.DataFrame | None) -> dict[str, float]:
    """Quartiles of ``U / score``, mean BALD and β·Ĥ and the β of one batch's picks: the same columns in a run's
    metric rows and in :func:`ratio_by_round`, so a run folder and a session read alike."""
    nan = float("nan")
    if sel is None or not len(sel):
        return {"ratio_median": nan, "ratio_q25": nan, "ratio_q75": nan, "uncertainty_mean": nan,
                "entropy_term_mean": nan, "beta": nan}
    r = sel["ratio"].to_numpy(dtype=np.float64)
    r = r[np.isfinite(r)]
    q = np.quantile(r, [0.25, 0.5, 0.75]) if r.size else [nan, nan, nan]
    et = sel["entropy_term"].to_numpy(dtype=np.float64)
    return {
        "ratio_median": float(q[1]), "ratio_q25": float(q[0]), "ratio_q75": float(q[2]),
        "uncertainty_mean": float(np.nanmean(sel["uncertainty"])) if sel["uncertainty"].notna().any() else nan,
        "entropy_term_mean": float(np.nanmean(et)) if np.isfinite(et).any() else nan,
        "beta": _batch_beta(sel),
    }


def _batch_beta(sel: pd.DataFrame) -> float:
    """The β a batch was picked with (one per batch; NaN without one, or for picks logged before it was kept)."""
    b = pd.to_numeric(sel["beta"], errors="coerce").to_numpy(dtype=np.float64) if "beta" in sel else np.empty(0)
    b = b[np.isfinite(b)]
    return float(np.mean(b)) if b.size else float("nan")


def ratio_by_round(picks: pd.DataFrame) -> pd.DataFrame:
    """Per round: number of scored picks, median and quartiles of ``U / score``, mean BALD, mean β·Ĥ and β.

    ``picks`` holds one row per pick with ``round``, ``ratio``, ``uncertainty`` and ``entropy_term`` (a run's
    ``acquired.csv`` or ``Session.pick_history()``); picks without a finite ratio (random batches) are left out.
    """
    cols = ["round", "picks", "ratio_median", "ratio_q25", "ratio_q75", "uncertainty_mean", "entropy_term_mean",
            "beta"]
    if not len(picks):
        return pd.DataFrame(columns=cols)
    ok = np.isfinite(pd.to_numeric(picks["ratio"], errors="coerce").to_numpy(dtype=np.float64))
    rows = [{"round": rnd, "picks": len(g), **_selection_stats(g)} for rnd, g in picks[ok].groupby("round")]
    return pd.DataFrame(rows, columns=cols)


def load_run(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(config.json, metrics, acquired)`` of a run folder (``acquired`` empty if missing)."""
    d = Path(run_dir)
    if not (d / "metrics.csv").exists():
        raise FileNotFoundError(f"{d}: not a run folder (no metrics.csv)")
    info = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else {}
    metrics = pd.read_csv(d / "metrics.csv")
    acq = pd.read_csv(d / "acquired.csv", dtype={"id": str}) if (d / "acquired.csv").exists() else pd.DataFrame(
        columns=list(ACQUIRED_COLUMNS))
    return info, metrics, acq


def find_runs(root: str | os.PathLike[str], depth: int = 3) -> list[Path]:
    """Run folders (holding ``metrics.csv``) at or below ``root``, at most ``depth`` levels down, sorted.

    Hidden folders are skipped; an unreadable folder is skipped rather than failing the search.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [root] if (root / "metrics.csv").is_file() else []
    if depth > 0:
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            children = []
        for child in children:
            found += find_runs(child, depth - 1)
    return found


def load_runs(dirs: Iterable[str | os.PathLike[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenated ``metrics.csv`` and ``acquired.csv`` rows of several run folders.

    The acquired rows gain ``policy`` (the run's policy label), ``seed``, ``dataset``, ``run`` (the folder) and
    ``beta_rule`` (the configured β, ``"auto"`` or a number as text; ``""`` for a policy without one), so picks of
    many runs can be grouped like their metrics.
    """
    metrics, acquired = [], []
    for d in dirs:
        info, m, a = load_run(d)
        metrics.append(m)
        cfg = _run_config(info)
        label = info.get("policy_label") or (m["policy"].iloc[0] if len(m) and "policy" in m else Path(d).name)
        if len(a):
            acquired.append(a.assign(policy=label, seed=cfg.get("seed"), dataset=cfg.get("dataset"), run=str(d),
                                     beta_rule=cfg.get("beta_rule", "")))
    return (pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=list(METRIC_COLUMNS)),
            pd.concat(acquired, ignore_index=True) if acquired else pd.DataFrame())


def _run_config(info: dict[str, Any]) -> dict[str, Any]:
    """A run's ``dataset``, ``seed`` and ``beta_rule`` from its ``config.json``: the nested layout (issue 13) or the
    flat one."""
    cfg = info.get("config", {})
    pool = cfg.get("pool")
    acq = cfg.get("acquisition") if isinstance(cfg.get("acquisition"), dict) else {"policy": cfg.get("policy"),
                                                                                     "params": cfg}
    beta = (acq.get("params") or {}).get("beta") if acq.get("policy") in ("bal-pm", "balpm", "bal_pm") else None
    return {"dataset": pool.get("dataset") if isinstance(pool, dict) else cfg.get("dataset"), "seed": cfg.get("seed"),
            "beta_rule": "" if beta is None else str(beta)}


def compare_runs(dirs: Iterable[str | os.PathLike[str]] | pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds, per dataset, policy, split and number of labels.

    Parameters
    ----------
    dirs : iterable of run folders, or a DataFrame of concatenated ``metrics.csv`` rows

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``policy``, ``split``, ``n_labeled``, ``round``, ``n_seeds``, and for every metric
        ``{metric}_mean`` and ``{metric}_se`` (standard error ``std(ddof=1)/√n``; NaN with one seed).
    """
    if isinstance(dirs, pd.DataFrame):
        df = dirs
    else:
        frames = [load_run(d)[1] for d in dirs]
        if not frames:
            raise ValueError("compare_runs needs at least one run folder")
        df = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "policy", "split", "n_labeled"]
    g = df.groupby(keys, sort=True)
    out = g.agg(round=("round", "min"), n_seeds=("seed", "nunique")).reset_index()
    for m in METRICS:
        if m not in df.columns:
            continue
        agg = g[m].agg(["mean", "std", "count"]).reset_index(drop=True)
        out[f"{m}_mean"] = agg["mean"].to_numpy()
        se = agg["std"].to_numpy() / np.sqrt(agg["count"].to_numpy())
        out[f"{m}_se"] = np.where(agg["count"].to_numpy() > 1, se, np.nan)
    return out


def _two_curves(curves: pd.DataFrame, policy: str, reference: str, metric: str, split: str,
                dataset: str | None) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """``(dataset, metric column, reference curve, policy curve)`` for :func:`labels_saved`, curves sorted by n."""
    df = curves[curves["split"] == split]
    if dataset is None:
        names = df["dataset"].unique()
        if len(names) != 1:
            raise ValueError(f"curves hold datasets {list(names)}: pass dataset=")
        dataset = str(names[0])
    df = df[df["dataset"] == dataset]
    col = f"{metric}_mean" if f"{metric}_mean" in df.columns else metric
    ref = df[df["policy"] == reference].sort_values("n_labeled")
    pol = df[df["policy"] == policy].sort_values("n_labeled")
    if ref.empty or pol.empty:
        missing = reference if ref.empty else policy
        raise ValueError(f"no {split} curve for policy {missing!r} on {dataset!r}")
    return dataset, col, ref, pol


def labels_saved(
    curves: pd.DataFrame,
    policy: str,
    reference: str,
    *,
    metric: str = "log_likelihood",
    split: str = "test",
    dataset: str | None = None,
) -> dict[str, Any]:
    """How many fewer labels ``policy`` needs than ``reference`` to reach the reference's final score.

    The target is the reference's mean ``metric`` at its largest ``n_labeled``. ``labels_needed`` is the smallest
    label count from which the policy's mean curve *stays* at or above the target (≥ for log-likelihood and
    accuracy, ≤ for Brier and ECE) at every later point: the start of the final run of points that reach the
    target, linearly interpolated between that point and the (missing) point before it, i.e. at the last upward
    crossing. A noisy curve that touches the target early and falls back does not count from its first touch
    (the note says where it first crossed); a curve whose last point is below the target has not reached it.

    Parameters
    ----------
    curves : DataFrame
        :func:`compare_runs` output.
    policy, reference : str
        Values of the ``policy`` column.
    dataset : str, optional
        Needed when ``curves`` holds several datasets.

    Returns
    -------
    dict
        ``dataset``, ``policy``, ``reference``, ``metric``, ``target``, ``reference_labels`` (n at the target),
        ``reached`` (bool: the curve ends at or above the target), ``labels_needed`` (float, NaN if not reached),
        ``labels_saved`` (reference_labels − labels_needed; negative means the policy needs more),
        ``percent_saved`` (of reference_labels), ``note``.
    """
    dataset, col, ref, pol = _two_curves(curves, policy, reference, metric, split, dataset)
    target = float(ref[col].iloc[-1])
    n_ref = float(ref["n_labeled"].iloc[-1])
    higher = HIGHER_IS_BETTER.get(metric, True)
    n = pol["n_labeled"].to_numpy(dtype=np.float64)
    v = pol[col].to_numpy(dtype=np.float64)
    reached = (v >= target) if higher else (v <= target)
    gain = (target - float(ref[col].iloc[0])) * (1 if higher else -1)
    se_col = f"{metric}_se"
    se = float(ref[se_col].iloc[-1]) if se_col in ref.columns else float("nan")
    out: dict[str, Any] = {"dataset": dataset, "policy": policy, "reference": reference, "metric": metric,
                           "split": split, "target": target, "reference_labels": n_ref, "reference_gain": gain}
    notes = []
    if np.isfinite(se) and abs(gain) < 2 * se:
        notes.append("reference improved by less than 2 standard errors: read with care")
    if gain < 0:
        notes.append(f"reference ended below its first point ({gain:+.4f}): the target is not a gain")
    if not reached.any():
        best = float(np.nanmax(v) if higher else np.nanmin(v))
        notes.insert(0, f"never reached {target:.4f} within {int(n[-1])} labels (best {best:.4f})")
        return out | {"reached": False, "labels_needed": float("nan"), "labels_saved": float("nan"),
                      "percent_saved": float("nan"), "note": "; ".join(notes)}
    first = int(np.argmax(reached))
    if not reached[-1]:
        notes.insert(0, f"touched {target:.4f} at {int(n[first])} labels but ended below it "
                        f"({float(v[-1]):.4f} at {int(n[-1])}): did not stay at or above the target")
        return out | {"reached": False, "labels_needed": float("nan"), "labels_saved": float("nan"),
                      "percent_saved": float("nan"), "note": "; ".join(notes)}
    below = np.flatnonzero(~reached)
    i = int(below[-1]) + 1 if below.size else 0  # start of the final run of points at or above the target
    if i == 0:
        needed = float(n[0])
        notes.insert(0, "reached at its first point")
    else:
        frac = (target - v[i - 1]) / (v[i] - v[i - 1])
        needed = float(n[i - 1] + frac * (n[i] - n[i - 1]))
        if first < i:
            notes.insert(0, f"first touched the target at {int(n[first])} labels, fell back below, "
                            f"and stays at or above it from {needed:.0f}")
    saved = n_ref - needed
    return out | {"reached": True, "labels_needed": needed, "labels_saved": saved,
                  "percent_saved": 100.0 * saved / n_ref if n_ref else float("nan"), "note": "; ".join(notes)}


def labels_saved_table(curves: pd.DataFrame, references: Sequence[str] = ("random", "bald"),
                       metric: str = "log_likelihood", split: str = "test") -> pd.DataFrame:
    """:func:`labels_saved` of every other policy against each present reference, for every dataset."""
    rows = []
    df = curves[curves["split"] == split]
    for dataset in sorted(df["dataset"].unique()):
        policies = sorted(df.loc[df["dataset"] == dataset, "policy"].unique())
        for ref in references:
            if ref not in policies:
                continue
            for pol in policies:
                if pol != ref:
                    rows.append(labels_saved(curves, pol, ref, metric=metric, split=split, dataset=dataset))
    cols = ["dataset", "policy", "reference", "metric", "split", "target", "reference_labels", "reference_gain",
            "reached",
            "labels_needed", "labels_saved", "percent_saved", "note"]
    return pd.DataFrame(rows, columns=cols)


def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, (float, np.floating)):
        return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _markdown_table(df: pd.DataFrame, digits: int | dict[str, int] = 4) -> str:
    cols = list(df.columns)
    per = digits if isinstance(digits, dict) else {}
    default = digits if isinstance(digits, int) else 4
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], per.get(c, default)) for c in cols) + " |")
    return "\n".join(lines)


def pool_names(datasets: Iterable[str]) -> dict[str, str]:
    """Each run's ``dataset`` as the pool is named (:func:`balpm.data.load_pool`): a path by its file or folder name,
    a built-in or ``hf:`` name as it is. Paths that share a file name keep as many parent folders as tell them apart.

    Why: a report is read and shared away from the machine that ran it; a full path says nothing there.
    """
    def is_path(d: str) -> bool:
        return not d.startswith("hf:") and ("/" in d or os.sep in d or d.startswith("~"))

    names = {d: (Path(d).name if is_path(d) else d) for d in {str(x) for x in datasets}}
    for name in set(names.values()):
        clash = [d for d, v in names.items() if v == name]
        for k in range(2, max(len(Path(d).parts) for d in clash) + 1) if len(clash) > 1 else ():
            names.update({d: "/".join(Path(d).parts[-k:]) for d in clash if is_path(d)})
            if len({names[d] for d in clash}) == len(clash):
                break
    return names


#: The plotly.js every HTML figure of a report loads: one copy beside them (4.6 MB once, not in each of ~20 files).
PLOTLY_JS = "plotly.min.js"


def write_report(dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 png: bool = True) -> Path:
    """Write a comparison folder: ``curves.csv``, ``labels_saved.csv``, ``summary.md``, HTML (and PNG) figures.

    The HTML figures load :data:`PLOTLY_JS` from the folder itself, so they draw offline as long as the folder is
    kept whole (one local copy rather than one inside each file: a report has one figure per dataset, split and
    metric). PNG export needs kaleido (``requirements.txt``) and a Chrome or Chromium on ``PATH`` or
    ``$BROWSER_PATH``; when that fails the summary says why and the HTML figures stay. Datasets are named by
    :func:`pool_names`.
    """
    from balpm import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in dirs]
    if not runs:
        raise ValueError("no run folders given")
    metrics = pd.concat([m for _, m, _ in runs], ignore_index=True)
    names = pool_names([*metrics["dataset"].astype(str),
                        *(str(_run_config(info).get("dataset")) for info, _, _ in runs)])
    metrics["dataset"] = metrics["dataset"].astype(str).map(names)
    curves = compare_runs(metrics)
    curves.to_csv(out / "curves.csv", index=False)
    table = labels_saved_table(curves)
    table.to_csv(out / "labels_saved.csv", index=False)

    figures: dict[str, Any] = {}
    for dataset in sorted(curves["dataset"].unique()):
        sub = curves[curves["dataset"] == dataset]
        slug = _slug(dataset)
        for split in sorted(sub["split"].unique()):
            for metric in ("log_likelihood", "accuracy", "brier", "ece"):
                fig = plots.learning_curves(sub, metric=metric, split=split)
                fig.update_layout(title=f"{dataset}: {split} {metric.replace('_', '-')}")
                figures[f"{slug}-{split}-{metric}"] = fig
    acq = []
    for info, m, a in runs:
        if len(a) and "policy_label" in info:
            cfg = _run_config(info)
            acq.append(a.assign(policy=info["policy_label"], seed=cfg.get("seed"),
                                dataset=names[str(cfg.get("dataset"))]))
    if acq:
        acq_df = pd.concat(acq, ignore_index=True)
        acq_df = acq_df[acq_df["round"] > 0]
        has_entropy = acq_df.groupby("policy")["entropy_term"].apply(lambda s: s.notna().any())
        for pol in has_entropy[has_entropy].index:
            for dataset in sorted(acq_df["dataset"].dropna().unique()):
                part = acq_df[(acq_df["policy"] == pol) & (acq_df["dataset"] == dataset)]
                if len(part):
                    fig = plots.ratio_over_rounds(part)
                    fig.update_layout(title=f"{dataset}: {pol}, uncertainty / score of the picks")
                    figures[f"{_slug(dataset)}-ratio-{_slug(pol)}"] = fig
    if len(table):
        figures["labels-saved"] = plots.labels_saved_bar(table)

    for name, fig in figures.items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory")  # writes PLOTLY_JS once, loads it
    png_note = _write_pngs(figures, out) if png else "PNG export not requested (--no-png)."
    (out / "summary.md").write_text(_summary_markdown(runs, curves, table, figures, png_note))
    return out


#: What PNG export needs, said whenever it fails.
PNG_NEEDS = ("PNG export needs kaleido (pinned in requirements.txt) and Chrome or Chromium on PATH "
             "(Debian: apt-get install chromium) or its path in $BROWSER_PATH")


def _write_pngs(figures: dict[str, Any], out: Path) -> str:
    """Export PNGs through kaleido (one browser session when plotly has ``write_images``); never raises.

    The note names the exception and its first non-blank line: plotly's messages start with a blank line, which
    once left the reason empty.
    """
    import plotly.io as pio

    names = list(figures)
    paths = [out / f"{n}.png" for n in names]
    try:
        if hasattr(pio, "write_images"):
            pio.write_images([figures[n] for n in names], paths, width=900, height=550)
        else:  # pragma: no cover - older plotly
            for n, p in zip(names, paths):
                figures[n].write_image(p, width=900, height=550)
    except Exception as exc:  # kaleido needs a Chrome: no browser, no PNG
        for p in paths:
            p.unlink(missing_ok=True)
        reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), repr(exc))[:200]
        return (f"PNG export skipped ({type(exc).__name__}: {reason}). {PNG_NEEDS}. "
                f"The HTML figures were written and draw offline with `{PLOTLY_JS}` beside them.")
    return "PNG figures written beside the HTML ones."


def _why_no_labels_saved(curves: pd.DataFrame, n_runs: int, references: Sequence[str] = ("random", "bald")) -> str:
    """Why :func:`labels_saved_table` came out empty, per dataset, in words a reader can act on."""
    need = (f"labels saved compares a policy with a reference policy ({' or '.join(references)}) on the same "
            "dataset's test split")
    test = curves[curves["split"] == "test"]
    if n_runs == 1:
        row = curves.iloc[0] if len(curves) else None
        what = f" ({row['policy']} on {row['dataset']})" if row is not None else ""
        return f"No table: one run{what}; {need}. Add a run of a reference policy."
    if test.empty:
        return f"No table: the runs have no test split; {need}."
    parts = []
    for dataset, g in test.groupby("dataset"):
        pols = sorted(g["policy"].unique())
        if not set(pols) & set(references):
            parts.append(f"{dataset}: no reference run (policies {', '.join(pols)})")
        else:
            parts.append(f"{dataset}: only the reference policy ({', '.join(pols)})")
    return f"No table: {need}. " + "; ".join(parts) + "."


def _summary_markdown(runs: list, curves: pd.DataFrame, table: pd.DataFrame, figures: dict, png_note: str) -> str:
    lines = ["# Label efficiency", ""]
    cfgs = [_run_config(info) for info, _, _ in runs]
    seeds = sorted({c.get("seed") for c in cfgs if c.get("seed") is not None})
    lines.append(f"{len(runs)} run{'s' if len(runs) != 1 else ''}; seeds {seeds}. Metric: mean test log-likelihood "
                 "(nats, higher is better), mean ± standard error over seeds.")
    lines.append("")
    final = curves[curves["split"] == "test"].sort_values("n_labeled").groupby(["dataset", "policy"]).tail(1)
    final = final.sort_values(["dataset", "log_likelihood_mean"], ascending=[True, False])  # best first per dataset
    if len(final):
        lines += ["## Final test metrics", ""]
        view = final[["dataset", "policy", "n_labeled", "n_seeds"]].copy()
        for m in ("log_likelihood", "accuracy", "brier", "ece"):
            view[m] = [f"{a:.4f} ± {b:.4f}" if np.isfinite(b) else f"{a:.4f}"
                       for a, b in zip(final[f"{m}_mean"], final[f"{m}_se"])]
        lines += [_markdown_table(view.reset_index(drop=True)), ""]
    else:
        lines += ["## Final test metrics", "", "No table: the runs' metrics have no test split.", ""]
    lines += ["## Labels saved", ""]
    if not len(table):
        lines += [_why_no_labels_saved(curves, len(runs)), ""]
    else:
        lines += ["Labels a policy needs to reach the reference policy's final mean test log-likelihood, against "
                  "the reference's label count: the smallest label count from which the policy's mean curve stays "
                  "at or above that target at every later point (linear interpolation at its last upward "
                  "crossing), so an early touch of a noisy curve that falls back does not count. A curve that "
                  "ends below the target has not reached it.", ""]
        view = table[["dataset", "policy", "reference", "target", "reference_gain", "reference_labels",
                      "labels_needed", "labels_saved", "percent_saved", "note"]]
        lines += [_markdown_table(view, {"target": 4, "reference_gain": 4, "reference_labels": 0,
                                         "labels_needed": 1, "labels_saved": 1, "percent_saved": 1}), ""]
    lines += ["## Files", "", "- `curves.csv`, `labels_saved.csv`",
              *(f"- `{n}.html`" for n in figures),
              f"- `{PLOTLY_JS}`: the plotly.js every HTML figure loads (keep the folder whole to view offline)",
              f"- {png_note}", ""]
    return "\n".join(lines)
