"""Summaries a user reads before labelling: :func:`summarize` (counts) and :func:`format_summary` (text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from balpm.data.pool import PreferencePool

def _percentiles(lengths: np.ndarray) -> dict[str, int]:
    if len(lengths) == 0:
        return {"p5": 0, "p50": 0, "p95": 0}
    p = np.percentile(lengths, [5, 50, 95])
    return {"p5": int(round(p[0])), "p50": int(round(p[1])), "p95": int(round(p[2]))}


def summarize(pool: PreferencePool) -> dict:
    """Counts a user checks before labelling: pairs, drops, label balance, repeated prompts, text lengths.

    Every count describes ``pool`` itself except the drops: validation happens once, when the source file is
    read, so ``dropped`` and ``dropped_total`` count rows of the *whole source file*, also for a subset or a sample
    of it (``pool.subset``, ``pool.sample_groups``). ``source_pairs`` (pairs the file gave) and ``is_subset`` say
    which case it is, and :func:`format_summary` spells it out.

    Returns
    -------
    dict
        ``name``, ``path``, ``format``, ``origin`` (built-ins: embedded sample or full split), ``pairs``,
        ``source_pairs`` (pairs kept when the source was read),
        ``is_subset`` (``pairs < source_pairs``), ``dropped`` (reason -> count, whole source file),
        ``first_dropped`` (reason -> ``{"path", "line"}`` of its first dropped record),
        ``dropped_total`` (whole source file), ``labelled``, ``unlabelled``, ``a_preferred``, ``b_preferred``,
        ``a_preferred_fraction`` (NaN when nothing is labelled), ``groups``, ``repeated_prompt_groups`` (groups
        with more than one pair), ``pairs_in_repeated_groups``, ``sources`` (source -> pairs) and ``lengths`` (``prompt``/``completion_a``/
        ``completion_b``/``completion`` -> ``p5``/``p50``/``p95`` in characters).
    """
    df = pool.pairs
    lab = df["label"]
    n_lab = int(lab.notna().sum())
    n_a = int((lab == 1).sum())
    sizes = df["group"].value_counts()
    rep = sizes[sizes > 1]
    la = df["completion_a"].str.len().to_numpy()
    lb = df["completion_b"].str.len().to_numpy()
    return {
        "name": pool.name,
        "path": pool.report.path,
        "format": pool.report.format,
        "origin": pool.report.origin,
        "pairs": len(df),
        "source_pairs": int(pool.report.kept),
        "is_subset": len(df) < int(pool.report.kept),
        "dropped": dict(pool.report.dropped),
        "first_dropped": {k: {"path": f, "line": n} for k, (f, n) in pool.report.first_dropped.items()},
        "dropped_total": pool.report.dropped_total,
        "labelled": n_lab,
        "unlabelled": len(df) - n_lab,
        "a_preferred": n_a,
        "b_preferred": n_lab - n_a,
        "a_preferred_fraction": n_a / n_lab if n_lab else float("nan"),
        "groups": int(len(sizes)),
        "repeated_prompt_groups": int(len(rep)),
        "pairs_in_repeated_groups": int(rep.sum()),
        "sources": {str(k): int(v) for k, v in df["source"].value_counts(sort=False).items()},
        "lengths": {
            "prompt": _percentiles(df["prompt"].str.len().to_numpy()),
            "completion_a": _percentiles(la),
            "completion_b": _percentiles(lb),
            "completion": _percentiles(np.concatenate([la, lb])),
        },
    }


def _where(first: dict, pool_path: str) -> str:
    """``line 22`` in the pool's own file, ``name:22`` in a file of a folder or of a built-in dataset."""
    f, line = Path(first["path"]), first["line"]
    base = Path(pool_path).expanduser()
    if f == base:
        name = ""
    else:
        try:
            name = str(f.relative_to(base))
        except ValueError:
            name = f.name
    if line is None:
        return name or "the file"
    return f"{name}:{line}" if name else f"line {line}"


def format_summary(d: dict) -> str:
    """The summary of :func:`summarize` as plain text (``pairs: N`` on its own line, N a plain number).

    The drop line says that it counts the source file, and for a subset how many pairs the file gave.
    """
    if d.get("origin"):  # a built-in name: say whether this is the embedded sample or the full split
        lines = [f"pool: {d['name']} ({d['origin']}" + (f"; format {d['format']})" if d.get("format") else ")")]
    else:
        lines = [f"pool: {d['name']}" + (f" ({d['format']})" if d.get("format") else "")]
    lines.append(f"pairs: {d['pairs']}")
    dropped = f"dropped while reading the source file: {d['dropped_total']}"
    if d["dropped_total"]:
        first = d.get("first_dropped", {})
        dropped += " (" + "; ".join(
            f"{k}: {v}" + (f", first at {_where(first[k], d['path'])}" if k in first else "")
            for k, v in sorted(d["dropped"].items())
        ) + ")"
    if d.get("is_subset"):
        dropped += f"; the file gave {d['source_pairs']} pairs, this pool is a subset of {d['pairs']}"
    lines.append(dropped)
    if d["labelled"]:
        frac = d["a_preferred_fraction"]
        lines.append(
            f"labels: {d['labelled']} labelled (A preferred {d['a_preferred']} = {frac:.1%}, "
            f"B preferred {d['b_preferred']}), {d['unlabelled']} unlabelled"
        )
    else:
        lines.append(f"labels: none ({d['unlabelled']} unlabelled)")
    lines.append(
        f"prompts: {d['groups']} groups; {d['repeated_prompt_groups']} with more than one pair "
        f"({d['pairs_in_repeated_groups']} pairs)"
    )
    if len(d["sources"]) > 1:
        lines.append("sources: " + ", ".join(f"{k} {v}" for k, v in d["sources"].items()))
    lines.append("length (characters)      p5     p50     p95")
    for key in ("prompt", "completion_a", "completion_b"):
        q = d["lengths"][key]
        lines.append(f"  {key:<20} {q['p5']:>7} {q['p50']:>7} {q['p95']:>7}")
    return "\n".join(lines)
