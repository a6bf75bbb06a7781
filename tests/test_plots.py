"""Figures are checked through their data (traces, values), not pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from balpm.report import compare_runs
from balpm.plots import COLORS, feature_space, labels_saved_bar, learning_curves, ratio_over_rounds


def _metrics() -> pd.DataFrame:
    rows = []
    for policy, offset in (("bal-pm", 0.02), ("random", 0.0)):
        for seed, noise in ((0, -0.01), (1, 0.01)):
            for r, n in enumerate((10, 20, 30)):
                for split in ("test", "ood"):
                    rows.append({"dataset": "toy", "policy": policy, "seed": seed, "round": r, "n_labeled": n,
                                 "split": split, "log_likelihood": -0.69 + 0.01 * r + offset + noise,
                                 "accuracy": 0.5 + 0.05 * r, "brier": 0.25, "ece": 0.1, "mean_bald": 0.01})
    return pd.DataFrame(rows)


def test_learning_curves_from_compare_runs():
    curves = compare_runs(_metrics())
    fig = learning_curves(curves)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names == ["bal-pm ± se", "bal-pm", "random ± se", "random"]
    line = fig.data[1]
    np.testing.assert_array_equal(line.x, [10, 20, 30])
    np.testing.assert_allclose(line.y, [-0.67, -0.66, -0.65])
    assert line.line.color == COLORS["bal-pm"]
    band = fig.data[0]
    se = 0.01 * np.sqrt(2) / np.sqrt(2)  # std of (-0.01, +0.01) with ddof=1 is 0.01·√2; se = that / √2
    np.testing.assert_allclose(band.y[:3], np.array([-0.67, -0.66, -0.65]) + se)
    np.testing.assert_allclose(band.y[3:], (np.array([-0.67, -0.66, -0.65]) - se)[::-1])
    assert band.fill == "toself" and band.showlegend is False


def test_learning_curves_from_raw_rows_and_split():
    fig = learning_curves(_metrics(), metric="accuracy", split="ood")
    lines = [t for t in fig.data if not t.name.endswith("± se")]
    assert [t.name for t in lines] == ["bal-pm", "random"]
    np.testing.assert_allclose(lines[0].y, [0.5, 0.55, 0.6])
    # identical seeds: standard error 0 → the band exists and collapses onto the line
    assert len(fig.data) == 4 and fig.layout.yaxis.title.text == "accuracy"
    assert learning_curves(_metrics(), split="ood").layout.yaxis.title.text == "ood log-likelihood (nats)"


def test_learning_curves_single_seed_has_no_band_and_several_datasets_are_named():
    df = _metrics()
    df = pd.concat([df[df.seed == 0], df[df.seed == 0].assign(dataset="other")])
    fig = learning_curves(compare_runs(df))
    assert [t.name for t in fig.data] == ["other · bal-pm", "other · random", "toy · bal-pm", "toy · random"]


def test_ratio_over_rounds():
    acq = pd.DataFrame({"round": [0, 0, 1, 1, 1, 1, 2, 2],
                        "ratio": [np.nan, np.nan, 0.1, 0.2, 0.3, 0.4, 0.9, 1.0]})
    fig = ratio_over_rounds(acq)
    band, median = fig.data
    assert median.name == "median" and band.name == "q25–q75"
    np.testing.assert_array_equal(median.x, [1, 2])
    np.testing.assert_allclose(median.y, [0.25, 0.95])
    np.testing.assert_allclose(band.y, [0.325, 0.975, 0.925, 0.175])


def test_feature_space_numeric_categorical_highlight():
    coords = np.array([[0, 0], [1, 1], [2, 0], [3, 1]], dtype=float)
    fig = feature_space(coords, color=np.array([0.1, 0.2, 0.3, 0.4]), hover=["a", "b", "c", "d"],
                        highlight_mask=np.array([False, True, False, True]))
    assert [t.name for t in fig.data] == ["pairs", "selected"]
    np.testing.assert_allclose(fig.data[0].marker.color, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(fig.data[1].x, [1, 3])
    assert list(fig.data[1].text) == ["b", "d"]
    cat = feature_space(coords, color=["bal-pm", "random", "bal-pm", "random"])
    assert [t.name for t in cat.data] == ["bal-pm", "random"]
    np.testing.assert_array_equal(cat.data[0].x, [0, 2])
    assert len(feature_space(coords).data) == 1
    with pytest.raises(ValueError):
        feature_space(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        feature_space(coords, highlight_mask=np.array([True]))


def test_labels_saved_bar():
    table = pd.DataFrame({
        "dataset": ["toy"] * 3, "policy": ["bal-pm", "bald", "bal-pm"], "reference": ["random", "random", "bald"],
        "reached": [True, False, True], "percent_saved": [37.5, np.nan, 12.0], "labels_saved": [150, np.nan, 30],
    })
    fig = labels_saved_bar(table)
    assert [t.name for t in fig.data] == ["vs bald", "vs random"]
    vs_random = fig.data[1]
    assert list(vs_random.x) == ["bal-pm", "bald"]
    np.testing.assert_allclose(vs_random.y, [37.5, 0.0])
    assert list(vs_random.text) == ["37.5%", "not reached"]
    assert fig.layout.barmode == "group"


def test_ratio_over_rounds_has_integer_rounds_and_a_visible_spread():
    """Issue 11 item 8: rounds are integers on the axis; the q25–q75 spread shows (outlined band and error bars),
    also for a single round, where a band alone has no width."""
    acquired = pd.DataFrame({"round": np.repeat([1, 2, 3], 4).astype(float),
                             "ratio": [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.9, 0.0, 0.1, 0.1, 0.2]})
    fig = ratio_over_rounds(acquired)
    band, median = fig.data
    assert fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.dtick == 1
    assert np.asarray(median.x).dtype.kind == "i" and list(median.x) == [1, 2, 3]
    assert band.line.width > 0 and float(band.fillcolor.rsplit(",", 1)[1].rstrip(")")) >= 0.3
    g = acquired.groupby("round")["ratio"]
    np.testing.assert_allclose(median.error_y.array, (g.quantile(0.75) - g.median()).to_numpy())
    np.testing.assert_allclose(median.error_y.arrayminus, (g.median() - g.quantile(0.25)).to_numpy())
    one = ratio_over_rounds(acquired[acquired["round"] == 2])
    assert one.data[1].error_y.array[0] > 0  # one round: the spread still shows as an error bar


def test_feature_space_colour_bar_never_covers_the_legend():
    """Issue 11 item 8: with a colour scale and a highlighted batch, the legend sits above the plot and the
    colour bar at the right edge, so neither covers the other."""
    rng = np.random.default_rng(0)
    fig = feature_space(rng.normal(size=(30, 2)), rng.random(30), highlight_mask=np.arange(30) < 3,
                        color_title="BALD")
    bar = fig.data[0].marker.colorbar
    assert fig.data[0].marker.showscale and fig.data[-1].name == "selected"
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y >= 1.0
    assert fig.layout.legend.yanchor == "bottom"  # entirely above the plotting area ...
    assert bar.len <= 1.0 and bar.yanchor == "middle" and bar.y + bar.len / 2 <= 1.0  # ... the bar entirely inside it
    cats = feature_space(rng.normal(size=(30, 2)), np.array(["x", "y"] * 15))
    assert cats.layout.legend.orientation is None  # no colour bar: the usual legend at the right
