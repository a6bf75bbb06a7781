"""The learnability check (balpm.check): synthetic pools whose truth is known, the embedded samples, the CLI.

Synthetic pools: features a, b drawn at random, labels either from a Bradley-Terry model linear in a − b (there is
a signal to learn) or from a fair coin (there is none). The real preference model and the real baselines run on
them; nothing is mocked.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from balpm.check import (
    CHANCE_LL,
    MIN_LABELS,
    MODEL_NAMES,
    USEFUL_GAIN,
    VERDICTS,
    _fit_logistic,
    _verdict,
    check_session,
    fit_saturating_curve,
    group_folds,
    learnability_check,
    random_labelled_ids,
    saturating_curve,
)
from balpm.data import PreferencePool
from balpm.embed import PoolEmbeddings

FAST = {"n_members": 3}  # the default head and training, fewer members: a test need not be a benchmark


def synthetic(n: int = 1200, d: int = 16, signal: float = 3.0, seed: int = 0, group_size: int = 1
              ) -> tuple[PreferencePool, PoolEmbeddings]:
    """A pool of ``n`` pairs; label ~ Bernoulli(σ(signal · w·(a − b))), or a fair coin when ``signal`` is 0."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=d) / np.sqrt(2 * d)
    p = 1 / (1 + np.exp(-signal * (a - b) @ w))
    y = (rng.random(n) < p).astype(int)
    ids = [f"p{i}" for i in range(n)]
    pairs = pd.DataFrame({"id": ids, "prompt": [f"prompt {i // group_size}" for i in range(n)],
                          "completion_a": ["x" * int(k) for k in rng.integers(5, 50, n)],
                          "completion_b": ["y" * int(k) for k in rng.integers(5, 50, n)],
                          "label": y, "source": "synthetic", "group": [f"g{i // group_size}" for i in range(n)]})
    pool = PreferencePool(pairs, name="synthetic")
    emb = PoolEmbeddings(ids=np.array(ids), prompt=rng.normal(size=(n, d)).astype(np.float32), a=a, b=b,
                         model_id="synthetic")
    return pool, emb


# ---------------------------------------------------------------------------------------------------- verdicts
def test_labels_linear_in_a_minus_b_are_learnable() -> None:
    pool, emb = synthetic(signal=3.0)
    ids = random_labelled_ids(pool, 256, seed=0)
    rep = learnability_check(pool, emb, ids, budget=1200, ensemble_params=FAST)
    assert rep.verdict in VERDICTS[1:], rep.summary()
    pm = rep.model_row("preference model")
    assert pm["gain"] > 0.05 and pm["z"] > 4 and pm["accuracy"] > 0.7, rep.summary()
    # a − b holds the whole signal, so its logistic regression is at least as good as the constant by far
    assert rep.model_row("logistic on a − b")["gain"] > 0.05
    # the curve rises with more training pairs, and so does its fit
    pts = rep.curve[rep.curve["model"] == "preference model"]
    assert pts["log_likelihood"].iloc[-1] > pts["log_likelihood"].iloc[0]
    assert rep.forecast_budget >= rep.forecast_now - 1e-9
    assert rep.forecast_budget_lo <= rep.forecast_budget <= rep.forecast_budget_hi


def test_coin_flip_labels_have_no_usable_signal() -> None:
    """Enough coin-flip labels rule out a useful gain: "no usable signal", with the bound it rules out."""
    pool, emb = synthetic(signal=0.0, seed=1)
    ids = random_labelled_ids(pool, 1000, seed=0)
    rep = learnability_check(pool, emb, ids, budget=1200, ensemble_params=FAST)
    assert rep.verdict == VERDICTS[0], rep.summary()
    assert any("no preference signal" in r for r in rep.reasons)
    pm = rep.model_row("preference model")
    upper = pm["gain"] + 2 * pm["gain_se"]
    assert abs(pm["gain"]) < 0.01 and pm["z"] < 2 and upper < USEFUL_GAIN
    assert f"rule out a preference-model gain above {upper:.4f} nats" in rep.reasons[-1]


def test_few_coin_flip_labels_are_too_few_to_tell() -> None:
    """Issue 12 section 1: 256 coin-flip labels cannot rule out a useful gain (their interval reaches above
    USEFUL_GAIN), so the check says so and how many labels would tell, instead of "no usable signal" (what it said
    before, also on hh-rlhf:harmless-base at 128-256 labels, which does learn: −0.6572 with 1,842 labels)."""
    pool, emb = synthetic(signal=0.0, seed=1)
    rep = learnability_check(pool, emb, random_labelled_ids(pool, 256, seed=0), budget=1200, ensemble_params=FAST)
    pm = rep.model_row("preference model")
    upper = pm["gain"] + 2 * pm["gain_se"]
    assert upper >= USEFUL_GAIN and pm["z"] < 2, rep.summary()
    assert rep.verdict == VERDICTS[3] == "too few labels to tell", rep.summary()
    assert f"cannot rule out a preference-model gain of up to {upper:.4f} nats" in rep.reasons[-1]
    assert "label more than the budget of 1,200 allows" in rep.reasons[-1] or "more (≈" in rep.reasons[-1]


def _models(gain: float, se: float) -> pd.DataFrame:
    """A CV table whose preference model gains ``gain`` ± ``se`` and whose baselines show nothing."""
    rows = []
    for m in MODEL_NAMES:
        g, s = (gain, se) if m == MODEL_NAMES[0] else ((0.0, float("nan")) if m == MODEL_NAMES[1] else (0.0, se))
        rows.append({"model": m, "log_likelihood": CHANCE_LL + g, "ll_se": se, "accuracy": 0.5, "accuracy_se": 0.03,
                     "gain": g, "gain_se": s, "z": g / s if s == s and s > 0 else float("nan")})
    return pd.DataFrame(rows)


def test_no_signal_verdict_rules_out_or_asks_for_the_labels_that_would_tell() -> None:
    """The two no-signal verdicts on constructed CV tables: the interval's top (gain + 2 s.e.) below USEFUL_GAIN
    rules a useful gain out; above it, the labels that would tell are n·(2·se / (USEFUL_GAIN / 2))²."""
    now = at_budget = CHANCE_LL
    verdict, reasons = _verdict(_models(0.001, 0.002), now, at_budget, now, now, 256, 2000)
    assert verdict == VERDICTS[0] and "rule out a preference-model gain above 0.0050 nats" in reasons[-1]
    verdict, reasons = _verdict(_models(0.001, 0.008), now, at_budget, now, now, 256, 5000)
    need = int(np.ceil(256 * (2 * 0.008 / (USEFUL_GAIN / 2)) ** 2))
    assert verdict == VERDICTS[3] and "gain of up to 0.0170 nats" in reasons[-1]
    assert f"label about {need - 256:,} more (≈{need:,} in all)" in reasons[-1]
    verdict, reasons = _verdict(_models(0.001, 0.008), now, at_budget, now, now, 256, 1000)
    assert verdict == VERDICTS[3] and "more than the budget of 1,000 allows" in reasons[-1]
    verdict, _ = _verdict(_models(0.02, 0.005), now, CHANCE_LL + 0.03, now, now, 256, 1000)
    assert verdict in VERDICTS[1:3]  # a signal shown is never "too few labels to tell"


def test_a_weak_signal_that_is_still_rising_with_few_labels() -> None:
    """Same features, weaker signal: 128 labels show it but are far from its ceiling (the budget buys a lot)."""
    pool, emb = synthetic(n=3000, signal=1.5, seed=2)
    strong = learnability_check(pool, emb, random_labelled_ids(pool, 128, seed=0), budget=3000,
                                ensemble_params=FAST)
    assert strong.verdict != VERDICTS[0], strong.summary()
    assert strong.forecast_budget > strong.forecast_now, strong.summary()


def test_same_seed_same_report_and_numbers_agree_with_each_other() -> None:
    pool, emb = synthetic(n=300, group_size=3)
    ids = random_labelled_ids(pool, 120, seed=3)
    r1 = learnability_check(pool, emb, ids, budget=300, seed=4, ensemble_params=FAST, n_boot=50)
    r2 = learnability_check(pool, emb, ids, budget=300, seed=4, ensemble_params=FAST, n_boot=50)
    pd.testing.assert_frame_equal(r1.models, r2.models)
    pd.testing.assert_frame_equal(r1.forecast, r2.forecast)
    m = r1.models.set_index("model")
    assert list(r1.models["model"]) == list(MODEL_NAMES)
    for name in MODEL_NAMES:  # gain is the paired difference with the constant on the same held-out pairs
        assert m.loc[name, "gain"] == pytest.approx(m.loc[name, "log_likelihood"] - m.loc["constant P(A)",
                                                                                          "log_likelihood"])
    assert r1.n_labels == 120 and r1.n_groups == len({f"g{int(i[1:]) // 3}" for i in ids})
    # the fitted curve is the forecast's middle line
    assert np.allclose(r1.forecast["log_likelihood"], saturating_curve(r1.forecast["n"], **r1.fit))
    text = r1.summary()
    assert r1.verdict in text and "logistic on a − b" in text and "300" in text
    json.dumps(r1.to_dict(), default=float)


# ---------------------------------------------------------------------------------------------------- pieces
def test_group_folds_keep_groups_whole_and_balanced() -> None:
    groups = np.array([f"g{i}" for i in [0] * 6 + [1] * 5 + list(range(2, 40))])
    folds = group_folds(groups, 5, seed=0)
    for g in set(groups):
        assert len(set(folds[groups == g])) == 1
    counts = np.bincount(folds, minlength=5)
    assert counts.max() - counts.min() <= 6 and counts.sum() == len(groups)
    assert np.array_equal(folds, group_folds(groups, 5, seed=0))
    with pytest.raises(ValueError, match="5 folds need at least 5 prompt groups; the labels cover 3"):
        group_folds(np.array(["a", "b", "c", "a"]), 5)


def test_saturating_fit_recovers_a_known_curve() -> None:
    n = np.array([30.0, 60, 120, 240, 480])
    c, a, b = fit_saturating_curve(n, saturating_curve(n, -0.65, 0.5, 0.5))
    assert (c, a, b) == pytest.approx((-0.65, 0.5, 0.5), abs=1e-6)
    c, a, b = fit_saturating_curve(n, saturating_curve(n, -0.70, -0.3, 0.8))  # a falling curve (overfitting)
    assert a < 0 and saturating_curve(4000, c, a, b) < saturating_curve(480, c, a, b)


def test_newton_logistic_matches_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 40))
    y = (x[:, 0] + rng.normal(size=150) > 0).astype(float)
    for c in (1e-3, 0.1, 1.0):
        w = _fit_logistic(x, y, c)
        ref = sklearn.LogisticRegression(C=c, max_iter=10_000, tol=1e-12).fit(x, y)
        assert np.allclose(w[:-1], ref.coef_[0], atol=1e-5) and w[-1] == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_bad_inputs_are_named() -> None:
    pool, emb = synthetic(n=200)
    with pytest.raises(ValueError, match=f"at least {MIN_LABELS} labelled pairs"):
        learnability_check(pool, emb, pool.ids[:30])
    with pytest.raises(ValueError, match="same side"):
        learnability_check(pool, emb, pool.ids[:60], np.ones(60))
    with pytest.raises(ValueError, match=r"not in the embeddings, e\.g\. 'p0'"):
        learnability_check(pool, emb.subset(np.arange(100, 200)), pool.ids[:60])
    with pytest.raises(ValueError, match="pair 'p1' has 2"):
        learnability_check(pool, emb, pool.ids[:60], [0, 2] + [1, 0] * 29)
    with pytest.raises(ValueError, match="budget 50 is below the 60 labels"):
        learnability_check(pool, emb, pool.ids[:60], budget=50)
    with pytest.raises(ValueError, match="has only 200 labelled pairs"):
        random_labelled_ids(pool, 500)


def test_ties_are_left_out_and_a_label_mapping_is_read() -> None:
    pool, emb = synthetic(n=200)
    labels = {pid: int(v) for pid, v in zip(pool.ids[:80], pool.labels[:80])}
    labels["p0"] = None  # a tie / skip: not a preference
    rep = learnability_check(pool, emb, labels=labels, ensemble_params=FAST, n_boot=20)
    assert rep.n_labels == 79 and rep.budget == 200


def test_check_session_uses_the_session_labels(tmp_path) -> None:
    """A session with 60 stored labels: the check sees those 60 (the label database is the truth)."""
    from balpm.session import Session, SessionConfig

    pool, emb = synthetic(n=150)
    path = tmp_path / "pool.jsonl"
    pool.pairs.drop(columns=["source"]).to_json(path, orient="records", lines=True)
    s = Session.create("s", SessionConfig.from_settings(dataset=str(path), max_pairs=None, max_epochs=5),
                       root=tmp_path / "sessions")
    loaded = s.load_pool()
    order = {pid: i for i, pid in enumerate(pool.ids)}
    ids = loaded.ids[:60]
    for pid in ids:
        verdict = "a" if pool.labels[order[pid]] == 1 else "b"
        s.record(str(pid), verdict, annotator="ann", shown_swapped=False, request_id=f"r-{pid}")
    rows = [order[p] for p in loaded.ids]
    emb_loaded = PoolEmbeddings(ids=loaded.ids, prompt=emb.prompt[rows], a=emb.a[rows], b=emb.b[rows],
                                model_id="synthetic")
    rep = check_session(s, loaded, emb_loaded, n_boot=20)
    assert rep.n_labels == 60 and rep.settings["ensemble_params"]["max_epochs"] == 5
    s.close()


# ---------------------------------------------------------------------------------------------------- samples
@pytest.fixture(scope="module")
def sample_checks() -> dict[str, object]:
    """The check from 256 random labels of each embedded sample (only those pairs are embedded)."""
    from balpm.check import embed_labelled
    from balpm.data import load_pool
    from balpm.embed import Embedder

    embedder = Embedder("default")
    out = {}
    for name in ("sample:hh-rlhf:harmless-base", "sample:qa-feedback"):
        pool = load_pool(name)
        ids = random_labelled_ids(pool, 256, seed=0)
        out[name] = learnability_check(pool, embed_labelled(pool, ids, embedder), ids, budget=len(pool))
    return out


def test_sample_harmless_base_learns(sample_checks: dict) -> None:
    """HH-RLHF harmless-base learns from MiniLM features (benchmarks/README.md: −0.6572 with all labels)."""
    rep = sample_checks["sample:hh-rlhf:harmless-base"]
    assert rep.verdict != VERDICTS[0], rep.summary()
    pm = rep.model_row("preference model")
    assert pm["gain"] > 0 and pm["log_likelihood"] > CHANCE_LL, rep.summary()


def test_sample_qa_feedback_is_not_worth_more_labels(sample_checks: dict) -> None:
    """QA-Feedback barely learns from these features and the ensemble gets worse with more labels (README)."""
    rep = sample_checks["sample:qa-feedback"]
    assert rep.verdict != VERDICTS[1], rep.summary()


def test_report_keeps_the_per_pair_held_out_numbers_behind_its_table(sample_checks: dict) -> None:
    """pair_ll: one value per labelled pair the check used, whose means are the table's log-likelihoods."""
    rep = sample_checks["sample:qa-feedback"]
    assert len(rep.pair_ids) == rep.n_labels and set(rep.pair_ll) == set(MODEL_NAMES)
    for m in MODEL_NAMES:
        assert rep.pair_ll[m].shape == (rep.n_labels,)
        assert rep.pair_ll[m].mean() == pytest.approx(rep.model_row(m)["log_likelihood"], abs=1e-12)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_check_simulation_and_errors(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from balpm.cli import main

    pool, _ = synthetic(n=120)
    path = tmp_path / "pool.jsonl"
    pool.pairs.drop(columns=["source"]).to_json(path, orient="records", lines=True)
    assert main(["check", str(path), "--labels", "60", "--budget", "120", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_labels"] == 60 and out["budget"] == 120 and out["verdict"] in VERDICTS
    assert [m["model"] for m in out["models"]] == list(MODEL_NAMES)
    assert main(["check", str(path), "--labels", "500"]) == 2
    assert "has only 120 labelled pairs" in capsys.readouterr().err
    assert main(["check"]) == 2
    assert "give a POOL" in capsys.readouterr().err


def test_cli_check_session_reads_the_labels_given_so_far(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """`balpm check --session FOLDER`: the check runs on the session's 50 stored labels, not the pool's own."""
    from balpm.cli import main
    from balpm.session import Session, SessionConfig

    pool, _ = synthetic(n=90)
    path = tmp_path / "pool.jsonl"
    pool.pairs.drop(columns=["source"]).to_json(path, orient="records", lines=True)
    s = Session.create("s", SessionConfig.from_settings(dataset=str(path), max_pairs=None, n_members=2,
                                                      max_epochs=5), root=tmp_path / "sessions")
    for i, pid in enumerate(s.load_pool().ids[:50]):
        s.record(str(pid), "ab"[i % 2], annotator="ann", shown_swapped=False, request_id=f"r{pid}")
    s.close()
    assert main(["check", "--session", str(s.folder), "--json", "--budget", "90"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_labels"] == 50 and out["budget"] == 90
    assert out["settings"]["ensemble_params"]["n_members"] == 2
    assert main(["check", "--session", str(tmp_path / "sessions" / "nope")]) == 2
    assert "balpm check:" in capsys.readouterr().err


def test_check_runs_on_imported_vectors(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """A session whose model is ``file:PATH`` (vectors imported, balpm.vectors) is checked on those vectors, by the
    library and by ``balpm check --session``; before, both tried to load ``file:...`` as a model and failed.

    The vectors are real: MiniLM's, of the embedded harmless-base sample, written in the documented Parquet layout.
    """
    from balpm.cli import main
    from balpm.embed import Embedder, embed_pool
    from balpm.session import Session, SessionConfig

    s = Session.create("s", SessionConfig.from_settings(dataset="sample:hh-rlhf:harmless-base", max_pairs=70,
                                                      n_members=2, max_epochs=5), root=tmp_path / "sessions")
    pool = s.load_pool()
    emb = embed_pool(pool, Embedder("default", device="cpu", max_length=64), cache_dir=False)
    vectors = s.folder / "vectors" / "minilm.parquet"  # where the Embed page's import saves a file
    vectors.parent.mkdir()
    order = np.random.default_rng(0).permutation(len(pool))  # any row order
    pd.DataFrame({"id": emb.ids[order], **{v: list(getattr(emb, v)[order]) for v in ("prompt", "a", "b")}}
                 ).to_parquet(vectors)
    assert PoolEmbeddings.from_file(vectors, pool).model_id.startswith("file:minilm.parquet@")  # the import's check
    s.update(embedding_model="file:vectors/minilm.parquet")
    for pid, y in zip(pool.ids[:50], pool.labels[:50]):
        s.record(str(pid), "a" if y == 1 else "b", annotator="ann", shown_swapped=False, request_id=f"r-{pid}")
    rep = check_session(s, n_boot=20)
    assert rep.n_labels == 50 and rep.verdict in VERDICTS
    # the same numbers as the check on MiniLM's vectors handed over directly: the file's vectors were used
    direct = check_session(s, pool, emb, n_boot=20)
    pd.testing.assert_frame_equal(rep.models, direct.models)
    s.close()
    assert main(["check", "--session", str(s.folder), "--json", "--budget", "70"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_labels"] == 50 and out["budget"] == 70
    assert [m["model"] for m in out["models"]] == list(MODEL_NAMES)
    # simulation with `--model file:PATH` reads the file too: here it lacks most of the 50 pairs drawn, and says so
    assert main(["check", "sample:hh-rlhf:harmless-base", "--labels", "50", "--model", f"file:{vectors}"]) == 2
    assert "minilm.parquet: field 'id':" in capsys.readouterr().err
