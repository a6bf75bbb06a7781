"""ActiveLearner and the held-out metrics: hand-computed numbers, exact resume, labels from people and stores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from balpm.data import PreferencePool
from balpm.embed import PoolEmbeddings
from balpm.learner import ActiveLearner, knn_cache_path
from balpm.metrics import expected_calibration_error, preference_metrics
from balpm.store import LabelStore

MODEL = {"n_members": 3, "hidden": (32, 8), "max_epochs": 8, "lr": 3e-3}


def synthetic(n: int = 240, d: int = 12, seed: int = 0, name: str = "synthetic"):
    """A pool whose labels follow a linear reward of the pair embeddings (learnable), prompts in 6 clusters."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, d)) * 3
    cluster = rng.integers(0, 6, size=n)
    prompt = (centers[cluster] + rng.normal(size=(n, d))).astype(np.float32)
    a = (prompt + rng.normal(size=(n, d))).astype(np.float32)
    b = (prompt + rng.normal(size=(n, d))).astype(np.float32)
    w = rng.normal(size=d)
    label = (a @ w > b @ w).astype(int)
    ids = np.array([f"p{i:04d}" for i in range(n)])
    pairs = pd.DataFrame({
        "id": ids, "prompt": [f"prompt {c} #{i}" for i, c in enumerate(cluster)],
        "completion_a": [f"a{i}" for i in range(n)], "completion_b": [f"b{i}" for i in range(n)],
        "label": label, "source": name, "group": ids,
    })
    return PreferencePool(pairs, name=name), PoolEmbeddings(ids, prompt, a, b, model_id="synthetic@0")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These fits are tiny: on a shared 2-core machine, torch's intra-op threads only add spin-waiting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    pool, emb = synthetic()
    test_pool, test_emb = synthetic(seed=0)  # same reward w (same seed): an i.i.d.-like held-out copy
    return pool, emb, test_pool, test_emb


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_hand_computed():
    # two members; predictive p = [0.9, 0.3, 0.6, 0.5]
    probs = np.array([[0.8, 0.2, 0.6, 0.5], [1.0, 0.4, 0.6, 0.5]])
    y = np.array([1, 0, 0, np.nan])
    m = preference_metrics(probs, y)
    assert m["n"] == 3
    assert m["log_likelihood"] == pytest.approx((math.log(0.9) + math.log(0.7) + math.log(0.4)) / 3)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["brier"] == pytest.approx((0.01 + 0.09 + 0.36) / 3)
    # top-label confidences 0.9 (right), 0.7 (right), 0.6 (wrong): bins 9, 7, 6
    assert m["ece"] == pytest.approx((0.1 + 0.3 + 0.6) / 3)
    h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0  # noqa: E731
    bald = [h(0.9) - (h(0.8) + h(1.0)) / 2, h(0.3) - (h(0.2) + h(0.4)) / 2, 0.0]
    assert m["mean_bald"] == pytest.approx(np.mean(bald))


def test_ece_bins_and_edges():
    # confidences 0.95, 0.95 (bin 9: one right one wrong: |0.5-0.95|), 0.55 right (bin 5: |1-0.55|)
    p = np.array([0.95, 0.05, 0.55])
    y = np.array([1, 1, 1])
    assert expected_calibration_error(p, y) == pytest.approx((2 / 3) * 0.45 + (1 / 3) * 0.45)
    # perfectly calibrated at confidence 1
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0])) == pytest.approx(0.0)
    assert math.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_log_likelihood_is_clipped():
    m = preference_metrics(np.array([[1.0, 0.0]]), np.array([0, 1]))
    assert np.isfinite(m["log_likelihood"]) and m["log_likelihood"] == pytest.approx(math.log(1e-7))


# ------------------------------------------------------------------------------------------------ learner
def test_initialize_suggest_label(data, tmp_path):
    pool, emb, test_pool, test_emb = data
    learner = ActiveLearner(pool, emb, policy="bal-pm", model_params=MODEL, batch_size=10, seed=3,
                            knn_cache_dir=tmp_path)
    first = learner.initialize(20)
    assert len(first) == 20 and learner.n_labeled_ == 20 and learner.last_round_ == 0
    sel = learner.suggest()
    assert list(sel.columns[:4]) == ["pick", "round", "row", "id"]
    assert {"uncertainty", "entropy_term", "score", "ratio", "prompt", "completion_a"} <= set(sel.columns)
    assert len(sel) == 10 and sel["round"].eq(1).all() and sel["pick"].tolist() == list(range(10))
    assert not set(sel["id"]) & set(first)
    np.testing.assert_allclose(sel["score"], sel["uncertainty"] + sel["entropy_term"], rtol=1e-9)
    np.testing.assert_allclose(sel["ratio"], sel["uncertainty"] / sel["score"], rtol=1e-9)
    assert knn_cache_path(emb, 13, tmp_path).exists()  # the graph is cached beside the other caches
    # asking again without new labels (a page rerun) gives the same batch and does not refit
    model = learner.ensemble_
    assert learner.suggest()["id"].tolist() == sel["id"].tolist() and learner.ensemble_ is model
    # a person answers: a, b, a tie and a skip; ties/skips are decided but are no labels for the model
    ids = sel["id"].tolist()
    learner.label(ids[:4], ["a", 0, "tie", None])
    assert learner.n_labeled_ == 22 and learner.decided_mask.sum() == 24
    assert learner.labels_dict()[ids[0]] == 1 and learner.labels_dict()[ids[1]] == 0
    assert learner.acquired_round_[learner.rows_of(ids[:4])].tolist() == [1, 1, 1, 1]
    assert learner.is_stale
    nxt = learner.suggest()
    assert nxt["round"].eq(2).all() and not set(nxt["id"]) & set(ids[:4])
    learner.unlabel(ids[:1])
    assert learner.n_labeled_ == 21 and ids[0] not in learner.labels_dict()
    with pytest.raises(KeyError):
        learner.label(["nope"], [1])
    with pytest.raises(ValueError):
        learner.label(ids[5:6], [2])


def test_cold_start_is_a_seeded_random_batch_for_every_policy(data, tmp_path):
    """No label yet: nothing to fit, so every policy draws the same seeded random batch, flagged, scores NaN."""
    from balpm.acquisition import policy_names

    pool, emb, _, _ = data
    batches = {}
    for policy in policy_names():
        learner = ActiveLearner(pool, emb, policy=policy, model_params=MODEL, batch_size=12, seed=4,
                                knn_cache_dir=tmp_path)
        sel = learner.suggest()
        assert len(sel) == 12 and sel["cold_start"].all() and sel["round"].eq(0).all()
        assert sel[["uncertainty", "entropy_term", "score", "ratio"]].isna().all().all()
        assert learner.ensemble_ is None and learner.knn_graph_ is None  # no fit, no graph
        assert learner.suggest()["id"].tolist() == sel["id"].tolist()  # a rerun gives the same batch
        batches[policy] = sel["id"].tolist()
    assert len({tuple(b) for b in batches.values()}) == 1
    assert len(set(batches["bal-pm"])) == 12

    other_seed = ActiveLearner(pool, emb, policy="bal-pm", model_params=MODEL, batch_size=12, seed=5)
    assert other_seed.suggest()["id"].tolist() != batches["bal-pm"]

    # a tie is decided but is no label: still a cold start, for the next round, never offering the tied pair;
    # candidates restrict the draw as usual
    learner = ActiveLearner(pool, emb, policy="bald", model_params=MODEL, batch_size=12, seed=4)
    tied = batches["bald"][0]
    learner.label([tied], ["tie"], round=0)
    only = np.zeros(len(pool), dtype=bool)
    only[:40] = True
    sel = learner.suggest(candidates=only)
    assert sel["cold_start"].all() and sel["round"].eq(1).all()
    assert tied not in set(sel["id"]) and (sel["row"] < 40).all()

    # once a pair is labelled the policy scores: no flag, finite BALD
    truth = pool.labels
    learner.label(sel["id"], truth[sel["row"].to_numpy()])
    nxt = learner.suggest()
    assert not nxt["cold_start"].any() and np.isfinite(nxt["uncertainty"]).all()
    assert learner.ensemble_ is not None and nxt["round"].eq(2).all()


def test_rows_of_maps_ids_and_names_unknown_ones(data):
    pool, emb, _, _ = data
    learner = ActiveLearner(pool, emb, policy="random", model_params=MODEL, seed=0)
    ids = pool.ids
    np.testing.assert_array_equal(learner.rows_of([ids[7], ids[2]]), [7, 2])
    np.testing.assert_array_equal(learner.rows_of(ids[3]), [3])
    with pytest.raises(KeyError, match="nope.*nada|nada.*nope"):
        learner.rows_of([ids[0], "nope", "nada"])


def test_learning_happens_and_evaluate(data):
    pool, emb, test_pool, test_emb = data
    learner = ActiveLearner(pool, emb, policy="random", model_params=MODEL, batch_size=40, seed=0)
    learner.initialize(20)
    before = learner.evaluate(test_pool, test_emb)
    for _ in range(3):
        learner.oracle_step()
    after = learner.evaluate(test_pool, test_emb)
    assert learner.n_labeled_ == 140
    assert set(after) == {"log_likelihood", "accuracy", "brier", "ece", "mean_bald", "n"}
    assert after["accuracy"] > 0.75 and after["log_likelihood"] > before["log_likelihood"]


@pytest.mark.parametrize("policy", ["bal-pm", "softmax-bald", "bald", "random"])
def test_resume_is_exact(data, tmp_path, policy):
    """3 rounds straight == 1 round + save + load + 2 rounds: same picks, same model."""
    pool, emb, _, _ = data
    kw = dict(policy=policy, model_params=MODEL, batch_size=8, seed=11, knn_cache_dir=tmp_path / "knn")
    straight = ActiveLearner(pool, emb, **kw)
    straight.initialize(12)
    for _ in range(3):
        straight.oracle_step()

    first = ActiveLearner(pool, emb, **kw)
    first.initialize(12)
    first.oracle_step()
    first.save(tmp_path / "session")
    resumed = ActiveLearner.load(tmp_path / "session", pool, emb)
    assert resumed.get_params() == first.get_params()
    np.testing.assert_array_equal(resumed.labels_, first.labels_)
    for _ in range(2):
        resumed.oracle_step()
    pd.testing.assert_frame_equal(straight.acquired(), resumed.acquired())
    assert straight.labeled_ids() == resumed.labeled_ids()
    np.testing.assert_array_equal(straight.member_proba(), resumed.member_proba())


def test_saved_ensemble_is_reused(data, tmp_path):
    pool, emb, _, _ = data
    learner = ActiveLearner(pool, emb, policy="bald", model_params=MODEL, batch_size=8, seed=1)
    learner.initialize(16)
    learner.fit()
    learner.save(tmp_path / "s")
    loaded = ActiveLearner.load(tmp_path / "s", pool, emb)
    assert not loaded.is_stale  # no refit needed
    np.testing.assert_array_equal(loaded.member_proba(), learner.member_proba())


def test_load_refuses_another_pool(data, tmp_path):
    pool, emb, _, _ = data
    learner = ActiveLearner(pool, emb, policy="random", model_params=MODEL, seed=0)
    learner.initialize(5)
    learner.save(tmp_path / "s")
    other, other_emb = synthetic(n=100, seed=5, name="other")
    with pytest.raises(ValueError, match="another pool"):
        ActiveLearner.load(tmp_path / "s", other, other_emb)


def test_embeddings_must_match_pool(data):
    pool, emb, _, _ = data
    with pytest.raises(ValueError):
        ActiveLearner(pool, emb.subset(np.arange(10)))


def test_sync_from_store(data, tmp_path):
    pool, emb, _, _ = data
    store = LabelStore(tmp_path / "s.db")
    ids = pool.ids
    store.record(ids[0], "a", "ann", False, 1, "r0")
    store.record(ids[1], "b", "ann", True, 1, "r1")
    store.record(ids[2], "skip", "ann", False, 2, "r2")
    store.record(ids[3], "a", "ann", False, None, "r3")
    store.undo_last("ann")
    store.record("not-in-pool", "a", "ann", False, 1, "r4")
    learner = ActiveLearner(pool, emb, policy="random", model_params=MODEL, seed=0)
    learner.sync_from_store(store)
    assert learner.labels_dict() == {ids[0]: 1, ids[1]: 0}
    assert learner.decided_mask.sum() == 3 and learner.acquired_round_[2] == 2
    assert ids[2] not in set(learner.suggest(5)["id"])


# ------------------------------------------------------------------------------------- damaged state (issue 10, case 9)
def _flip(path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def _saved(directory, stem: str):
    """The one file of a saved learner whose name starts with ``stem`` (state / ensemble)."""
    (path,) = sorted(directory.glob(f"{stem}*.npz"))
    return path


@pytest.mark.parametrize("part", ["state", "ensemble", "learner.json"])
@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_learner_state_is_a_learner_state_error(data, tmp_path, part, how):
    """Used to be a raw BadZipFile / JSONDecodeError (or a silently wrong learner) in the page."""
    from balpm.learner import LearnerStateError

    pool, emb, _, _ = data
    learner = ActiveLearner(pool, emb, policy="bald", model_params=MODEL, batch_size=8, seed=1)
    learner.initialize(16)
    learner.fit()
    learner.save(tmp_path / "s")
    path = tmp_path / "s" / "learner.json" if part == "learner.json" else _saved(tmp_path / "s", part)
    if how == "flip":
        _flip(path, 0.3 if part == "learner.json" else 0.5)
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(LearnerStateError) as e:
        ActiveLearner.load(tmp_path / "s", pool, emb)
    assert str(tmp_path / "s") in str(e.value)
    assert isinstance(e.value, ValueError)  # callers that caught ValueError still do


def test_session_refits_from_the_store_when_the_learner_state_is_damaged(data, tmp_path):
    """Session.make_learner quarantines a damaged state, rebuilds from the database's labels and says so."""
    from balpm.safeio import QUARANTINE_DIR, DamagedFileWarning
    from balpm.session import Session, SessionConfig

    pool, emb, _, _ = data
    session = Session.create(tmp_path / "sess", SessionConfig.from_settings(policy="bald", policy_params={}, **MODEL,
                                                                      batch_size=8))
    for i, pid in enumerate(pool.ids[:12]):
        session.record(str(pid), "a" if i % 3 else "b", annotator="alice", shown_swapped=False,
                       request_id=f"r{i}", round=0)
    learner = session.make_learner(pool, emb)
    session.propose(learner)  # fits and saves the learner
    assert session.last_warning is None
    ens = _saved(session.learner_dir, "ensemble")
    ens.write_bytes(ens.read_bytes()[:100])  # truncated: BadZipFile out of make_learner before the fix
    session.close()

    again = Session.open(tmp_path / "sess")
    with pytest.warns(DamagedFileWarning, match="refit from the labels in the database") as rec:
        healed = again.make_learner(pool, emb)
    assert len([w for w in rec if issubclass(w.category, DamagedFileWarning)]) == 1
    assert healed.labels_dict() == learner.labels_dict()  # the labels come from the database
    msg = again.last_warning
    assert msg is not None and "damaged" in msg and "refit from the 12 labels in the database" in msg
    assert "labelling" in msg.lower()
    moved = list((tmp_path / "sess" / QUARANTINE_DIR).iterdir())
    assert len(moved) == 1 and moved[0].name.endswith("learner")
    assert not again.learner_dir.exists()
    batch = again.propose(healed)  # labelling goes on, and the state saved again is sound
    assert len(batch.ids) == 8
    np.testing.assert_array_equal(ActiveLearner.load(again.learner_dir, pool, emb).labels_, healed.labels_)
    again.close()


def test_learner_saved_before_manifests_still_loads(data, tmp_path):
    """A learner folder written by an older balpm (learner.json, state.npz, ensemble.npz) still resumes."""
    import json

    pool, emb, _, _ = data
    learner = ActiveLearner(pool, emb, policy="bald", model_params=MODEL, batch_size=8, seed=1)
    learner.initialize(16)
    learner.fit()
    d = tmp_path / "old"
    d.mkdir()
    meta = {"format_version": 1, "params": learner.get_params(), "pool_name": pool.name, "n_pairs": len(pool.ids),
            "ids_sha256": __import__("balpm.safeio", fromlist=["ids_digest"]).ids_digest(learner.ids),
            "embeddings_model_id": emb.model_id, "fitted_key": learner._fitted_key, "fit_round": learner._fit_round,
            "timings": {}}
    (d / "learner.json").write_text(json.dumps(meta, default=list))
    np.savez(d / "state.npz", labels=learner.labels_, acquired_round=learner.acquired_round_)
    np.savez(d / "ensemble.npz", **learner.ensemble_.state_dict())
    loaded = ActiveLearner.load(d, pool, emb)
    assert not loaded.is_stale
    np.testing.assert_array_equal(loaded.member_proba(), learner.member_proba())


# ---------------------------------------------------------------------------------------- torn save (issue 10, case 10)
def _save_forever(variants, folder, ready) -> None:
    """Child process: save the variants in turn as fast as possible until killed (bounded in case nobody does)."""
    import os
    import time

    deadline = time.monotonic() + 60
    i = 0
    while time.monotonic() < deadline:
        variants[i % len(variants)].save(folder)
        if i == 0:
            ready.set()
        i += 1
    os._exit(0)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs kill -9 (POSIX)")
def test_kill_minus_9_during_save_never_leaves_a_mixed_state(data, tmp_path):
    """A process saving learners of three different rounds is killed with SIGKILL at seeded random moments;
    every load afterwards is one complete save (round, labels, ensemble and last selection together)."""
    import multiprocessing
    import os
    import signal
    import time

    pool, emb, _, _ = data
    kw = dict(policy="bald", model_params=MODEL, batch_size=8, seed=3)
    variants, refs = [], {}
    for rounds in range(3):
        learner = ActiveLearner(pool, emb, **kw)
        learner.initialize(12)
        for _ in range(rounds):
            learner.oracle_step()
        learner.suggest()  # fits on this round's labels and keeps the selection
        variants.append(learner)
        refs[learner._labels_key()] = (learner._fit_round, learner.ensemble_.predict_member_proba(emb.a, emb.b))
    assert len(refs) == 3
    folder = tmp_path / "learner"
    ctx = multiprocessing.get_context("fork")
    rng = np.random.default_rng(2024)
    seen = set()
    for kill in range(10):
        ready = ctx.Event()
        child = ctx.Process(target=_save_forever, args=(variants, folder, ready), daemon=True)
        child.start()
        assert ready.wait(60), "the saving process never finished a first save"
        time.sleep(float(rng.uniform(0.0, 0.15)))
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        loaded = ActiveLearner.load(folder, pool, emb)
        key = loaded._labels_key()
        assert key in refs, f"kill {kill}: labels from no save"
        fit_round, proba = refs[key]
        assert not loaded.is_stale, f"kill {kill}: fitted key and labels from different saves"
        assert loaded._fit_round == fit_round, f"kill {kill}: round from another save"
        np.testing.assert_array_equal(loaded.ensemble_.predict_member_proba(emb.a, emb.b), proba,
                                      err_msg=f"kill {kill}: ensemble from another save")
        seen.add(key)
    assert len(seen) >= 2  # the kills landed at different points of the loop
    variants[0].save(folder)  # the next complete save clears what the killed ones left behind
    assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == [  # a selection is no part of the state
        "ensemble", "learner.json", "state"]


def test_acquire_page_says_what_happens_to_a_damaged_learner_state_and_goes_on(tmp_path, monkeypatch):
    """The page showed the raw BadZipFile; now a warning says the state is refit from the database's labels."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from balpm.session import Session, SessionConfig

    root = tmp_path / "sessions"
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(root))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample
    s = Session.create("t", SessionConfig.from_settings(dataset="hh-rlhf:harmless-base", max_pairs=60, max_length=64,
                                                      batch_size=6, n_members=2, hidden=(16,), max_epochs=3),
                       root=root)
    (root / ".last_session").write_text(str(s.folder))
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    step = "Step: fit, score and propose a batch"

    def acquire_page() -> AppTest:
        at = AppTest.from_file(app, default_timeout=600)
        at.run()
        at.switch_page("pages/3_acquire.py").run()
        assert not at.exception, at.exception
        embed_now = [b for b in at.button if b.label == "Embed now"]
        if embed_now:  # the page never embeds by itself (issue 11 item 7)
            embed_now[0].click()
            at.run()
            assert not at.exception, at.exception
        return at

    at = acquire_page()
    next(b for b in at.button if b.label == step).click()
    at.run()
    assert not at.exception, at.exception
    batch = s.current_batch()
    for pid in batch.ids:
        s.record(pid, "a", annotator="t", shown_swapped=False, request_id=f"r-{pid}", round=0)
    state = _saved(s.learner_dir, "state")
    state.write_bytes(state.read_bytes()[:50])

    at = acquire_page()  # a new tab: the learner is made from the saved state
    warned = [w.value for w in at.warning if "damaged" in w.value]
    assert len(warned) == 1 and "refit from the 6 labels in the database" in warned[0], [w.value for w in at.warning]
    next(b for b in at.button if b.label == step).click()
    at.run()  # labelling goes on: the next batch is scored by an ensemble fitted on the database's labels
    assert not at.exception, at.exception
    assert np.isfinite(s.current_batch().table["score"]).all()


@pytest.mark.parametrize("policy", ["bal-pm", "entropy", "bald", "softmax-bald"])
def test_score_pool_gives_the_numbers_suggest_picks_by(data, tmp_path, policy):
    """Issue 13 item 1: ActiveLearner.score_pool() is BALD, β·Ĥ and score of every pair before the next pick (the
    Feature space page colours by it); the first pick of suggest() has exactly these numbers."""
    pool, emb, _, _ = data
    params = {"bal-pm": {"beta": 0.5, "k": 7}, "entropy": {"k": 7}}.get(policy, {})
    learner = ActiveLearner(pool, emb, policy=policy, policy_params=params, model_params=MODEL, batch_size=6, seed=2,
                            knn_cache_dir=tmp_path)
    learner.initialize(20)
    scores = learner.score_pool()
    sel = learner.suggest()
    assert len(scores) == len(pool) and scores["id"].tolist() == pool.pairs["id"].astype(str).tolist()
    assert scores["candidate"].sum() == len(pool) - 20
    first = scores.iloc[int(sel["row"].iloc[0])]
    for col in ("uncertainty", "entropy_term", "score"):
        np.testing.assert_array_equal(first[col], sel[col].iloc[0])  # bit for bit
    np.testing.assert_array_equal(scores["uncertainty"].to_numpy()[sel["row"]], sel["uncertainty"])
    cand = scores[scores["candidate"]]
    if policy == "softmax-bald":  # a draw: only the scores agree
        np.testing.assert_array_equal(cand["score"], cand["uncertainty"])
    else:  # greedy: the first pick is the best candidate
        assert first["score"] == cand["score"].max()
    if policy in ("bald", "softmax-bald"):
        assert scores["entropy_term"].isna().all()
    else:
        assert np.isfinite(scores["entropy_term"]).all()
    if policy == "bal-pm":
        np.testing.assert_array_equal(scores["score"], scores["uncertainty"] + scores["entropy_term"])
