"""Issue 12 section 3: ``beta="auto"``, a β on the scale of the scores (rule, policy, records, CLI, page, plot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma

from test_app import _app, _session, sessions  # noqa: F401  (sessions: the fixture of tests/test_app.py)

from balpm.acquisition import AcquisitionInput, auto_beta, get_policy, robust_spread
from balpm.neighbors import build_knn_graph
from balpm.plots import beta_rule_label, ratio_over_rounds


# --------------------------------------------------------------------------------------------------- the rule


def test_robust_spread_is_the_iqr_then_the_sd_and_ignores_nan():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 1000.0, np.nan])  # one outlier does not set it; NaN is skipped
    assert robust_spread(x) == pytest.approx(np.subtract(*np.quantile(x[:-1], [0.75, 0.25])))
    assert robust_spread(x) < 5
    most_equal = np.array([1.0] * 8 + [2.0, 3.0])  # IQR 0: the standard deviation instead
    assert robust_spread(most_equal) == pytest.approx(np.std(most_equal)) and robust_spread(most_equal) > 0
    assert robust_spread(np.ones(5)) == 0.0 and robust_spread([7.0]) == 0.0 and robust_spread([]) == 0.0


def test_auto_beta_matches_the_spreads():
    rng = np.random.default_rng(0)
    u = rng.random(500) * 1e-4  # BALD right after a small initial set: tiny
    h = rng.normal(0.0, 0.5, 500)
    beta = auto_beta(u, h)
    assert beta == pytest.approx(robust_spread(u) / robust_spread(h))
    assert robust_spread(beta * h) == pytest.approx(robust_spread(u))  # the two terms have the same spread
    assert auto_beta(u * 100, h) == pytest.approx(100 * beta)  # scales with BALD ...
    assert auto_beta(u, h * 4) == pytest.approx(beta / 4)  # ... and against Ĥ
    assert auto_beta(u, h + 3.0) == pytest.approx(beta)  # levels do not matter, only differences


def test_auto_beta_guards_for_zero_spread():
    h = np.linspace(-1, 1, 50)
    assert auto_beta(np.zeros(50), h) == 1.0  # BALD all equal: only Ĥ orders the picks, any β > 0 does the same
    u = np.linspace(0, 1e-3, 50)
    assert auto_beta(u, np.full(50, 0.3)) == pytest.approx(robust_spread(u))  # Ĥ all equal: its scale is 1/d
    assert auto_beta(u, np.full(50, 0.3), d=2.0) == pytest.approx(2 * robust_spread(u))
    assert np.isfinite(auto_beta(u, np.full(50, np.nan)))


# ------------------------------------------------------------------------------------------------- the policy


def _tiny_bald_input(seed: int = 0, n: int = 400) -> AcquisitionInput:
    rng = np.random.default_rng(seed)
    prompts = rng.normal(size=(n, 8)).astype(np.float32)
    u = rng.random(n) * 1e-4  # the first rounds' BALD: 1e-5 .. 1e-4 nats
    acquired = np.zeros(n, bool)
    acquired[rng.choice(n, 32, replace=False)] = True
    return AcquisitionInput(u, np.ones(n, bool), acquired, knn=build_knn_graph(prompts, k=13))


def test_auto_picks_differ_from_the_papers_beta_where_bald_is_tiny():
    """At β = 0.01 a BALD of 1e-4 nats cannot move a pick: the batch is the entropy term's alone (the issue's
    first rounds). ``auto`` gives BALD the same say as Ĥ, so its batch differs and is partly BALD's."""
    inp = _tiny_bald_input()
    fixed = get_policy("bal-pm", beta=0.01).select(inp, 16, 0)
    pure_entropy = get_policy("entropy").select(inp, 16, 0)
    auto = get_policy("bal-pm", beta="auto").select(inp, 16, 0)
    assert len(set(fixed.indices) & set(pure_entropy.indices)) >= 14  # the failure: β = 0.01 all but ignores BALD
    assert len(set(auto.indices) & set(fixed.indices)) <= 8
    sel = inp.selectable()
    assert np.mean(inp.uncertainty[auto.indices]) > np.mean(inp.uncertainty[fixed.indices])
    g = inp.knn
    h = g.log_radius(1e-4) - digamma(g.count_in_ball(inp.acquired) + 1.0)
    assert auto.beta == pytest.approx(auto_beta(inp.uncertainty[sel], h[sel]))
    assert 1e-6 < auto.beta < 1e-3
    np.testing.assert_allclose(auto.to_frame()["beta"], auto.beta)  # recorded with every pick
    assert np.median(auto.ratio) > 0.2  # BALD is a real part of the score (about 0.002 at β = 0.01)


def test_auto_is_the_fixed_greedy_at_the_chosen_beta_and_deterministic():
    inp = _tiny_bald_input(seed=3)
    auto = get_policy("bal-pm", beta="auto").select(inp, 12, 0)
    again = get_policy("bal-pm", beta="AUTO").select(inp, 12, 99)  # no randomness: the rng is not used
    same = get_policy("bal-pm", beta=auto.beta).select(inp, 12, 0)
    np.testing.assert_array_equal(auto.indices, again.indices)
    np.testing.assert_array_equal(auto.indices, same.indices)
    np.testing.assert_array_equal(auto.score, same.score)
    assert auto.params["beta"] == "auto" and same.beta == auto.beta
    u, bh, s = get_policy("bal-pm", beta="auto").pool_scores(inp)  # the pool view uses the same β
    assert bh[auto.indices[0]] == auto.entropy_term[0] and s[auto.indices[0]] == auto.score[0]


def test_fixed_beta_records_its_beta_and_other_policies_none():
    inp = _tiny_bald_input(seed=1)
    assert get_policy("bal-pm", beta=0.1).select(inp, 4, 0).beta == 0.1
    assert get_policy("entropy").select(inp, 4, 0).beta is None
    assert np.isnan(get_policy("bald").select(inp, 4, 0).to_frame()["beta"]).all()


def test_beta_parameter_accepts_auto_and_names_it_in_errors():
    assert get_policy("bal-pm", beta=" Auto ").beta == "auto"
    with pytest.raises(ValueError, match=r"parameter 'beta' must be float or 'auto', got 'sometimes'"):
        get_policy("bal-pm", beta="sometimes")
    with pytest.raises(ValueError, match="≥ 0"):
        get_policy("bal-pm", beta=-1)


# ------------------------------------------------------------------------------------- CLI and the run folder


def test_cli_parses_beta_auto_and_refuses_other_words(capsys):
    from balpm.cli import build_parser, config_from_namespace

    ns = build_parser().parse_args(["run", "--policy", "bal-pm", "--beta", "auto"])
    cfg = config_from_namespace(ns)
    assert cfg.acquisition.params["beta"] == "auto" and cfg.acquisition.policy_params()["beta"] == "auto"
    assert config_from_namespace(build_parser().parse_args(["run", "--beta", "0.1"])).acquisition.params["beta"] == 0.1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--beta", "often"])
    assert "--beta: must be a number or 'auto', got 'often'" in capsys.readouterr().err


def test_run_with_beta_auto_records_the_beta_of_each_round(tmp_path, monkeypatch):
    """``balpm run --beta auto``: acquired.csv has the β each batch was picked with (one per round, from the
    scores), metrics.csv the same per round, config.json the rule; load_runs names the rule for the plot."""
    from balpm.cli import main
    from balpm.report import load_runs

    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample
    out = tmp_path / "auto"
    argv = ["run", "--quiet", "--dataset", "hh-rlhf:harmless-base", "--max-pairs", "240", "--max-length", "64",
            "--policy", "bal-pm", "--beta", "auto", "--initial", "16", "--batch-size", "16", "--rounds", "2",
            "--seed", "0", "--n-members", "3", "--hidden", "64,16", "--max-epochs", "6", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["config"]["acquisition"]["params"]["beta"] == "auto"
    a = pd.read_csv(out / "acquired.csv", dtype={"id": str})
    assert a.loc[a["round"] == 0, "beta"].isna().all()
    per_round = a[a["round"] > 0].groupby("round")["beta"]
    assert (per_round.nunique() == 1).all() and (per_round.first() > 0).all()
    picked = a[a["round"] > 0]
    np.testing.assert_allclose(picked["entropy_term"] / picked["beta"],  # β·Ĥ over β: a plausible Ĥ (nats)
                               np.clip(picked["entropy_term"] / picked["beta"], -20, 20))
    m = pd.read_csv(out / "metrics.csv")
    np.testing.assert_allclose(m.set_index("round").loc[[1, 2], "beta"], per_round.first().loc[[1, 2]])
    assert np.isnan(m.loc[m["round"] == 0, "beta"]).all()
    _, acq = load_runs([out])
    assert set(acq["beta_rule"]) == {"auto"}


# ------------------------------------------------------------------------------------------ plot and the page


def test_ratio_plot_names_the_beta_rule_of_each_run():
    acq = pd.DataFrame({"round": [1, 1, 2, 2] * 2, "ratio": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                        "beta": [0.01] * 4 + [2e-4, 2e-4, 5e-3, 5e-3],
                        "beta_rule": ["0.01"] * 4 + ["auto"] * 4})
    fig = ratio_over_rounds(acq)
    names = [t.name for t in fig.data]
    assert names == ["q25–q75 · β 0.01 (fixed)", "median · β 0.01 (fixed)", "q25–q75 · β auto", "median · β auto"]
    assert "β auto" in fig.layout.title.text and "β 0.01 (fixed)" in fig.layout.title.text
    np.testing.assert_allclose(fig.data[3].y, [0.55, 0.75])
    np.testing.assert_allclose(np.asarray(fig.data[3].customdata)[:, 2], [2e-4, 5e-3])  # β per round, in the hover
    one = ratio_over_rounds(acq[acq["beta_rule"] == "auto"])
    assert [t.name for t in one.data] == ["q25–q75", "median"] and one.layout.title.text == "U / score, β auto"
    assert beta_rule_label("") == "" and beta_rule_label(0.1) == "β 0.1 (fixed)" and beta_rule_label(float("nan")) == ""


def test_acquire_page_offers_beta_auto_and_saves_it(sessions: Path) -> None:  # noqa: F811
    """The Acquire page's β input: a rule (fixed / auto) and, under ``fixed``, the number; before, only a number
    (``auto`` could not be chosen)."""
    from balpm.session import Session

    s = _session(sessions)
    at = _app("pages/3_acquire.py")
    at.selectbox(key="acq_policy").set_value("bal-pm").run()
    assert at.selectbox(key="acq_beta_rule").value == "fixed"
    assert any(w.key == "acq_beta" for w in at.number_input)
    at.selectbox(key="acq_beta_rule").set_value("auto").run()
    assert not at.exception, at.exception
    assert not any(w.key == "acq_beta" for w in at.number_input)  # no number to type under a rule
    assert Session.open(s.folder).config.acquisition.params["beta"] == "auto"
    again = _app("pages/3_acquire.py")  # a fresh page shows the saved rule
    assert again.selectbox(key="acq_beta_rule").value == "auto"
    again.selectbox(key="acq_beta_rule").set_value("fixed").run()
    assert Session.open(s.folder).config.acquisition.params["beta"] == 0.01
