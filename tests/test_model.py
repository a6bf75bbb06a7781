"""Tests of balpm.model: the batched Bradley-Terry deep ensemble.

Small synthetic tasks with small heads keep each test to about a second on a 2-core CPU; one test uses the
paper's (2048, 256) heads on a few pairs to cover the default architecture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from balpm.model import NotFittedError, PreferenceEnsemble
from fit_loop_oracle import fit_loop_reference  # tests/fit_loop_oracle.py: fit, one member at a time


def bt_task(n: int, d: int = 16, seed: int = 0, scale: float = 6.0):
    """Pairs from a Bradley-Terry model with a linear reward w·x: (a, b, sampled labels, true preference)."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(1234).normal(size=d)
    w /= np.linalg.norm(w)
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = rng.normal(size=(n, d)).astype(np.float32)
    logit = scale * (a - b) @ w
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return a, b, labels, (logit > 0).astype(np.int64)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny heads gain nothing from intra-op threads, and on a shared, oversubscribed CPU OpenMP's spinning threads
    made a 0.1 s fit take 2 to 8 s; restored after each test so other modules keep torch's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = dict(hidden=(32,), max_epochs=15, device="cpu")


def test_fit_returns_self_and_learns_linear_bradley_terry():
    a, b, y, _ = bt_task(500)
    ta, tb, _, truth = bt_task(1000, seed=1)
    model = PreferenceEnsemble(**SMALL)
    assert model.fit(a, b, y) is model
    acc = ((model.predict_proba(ta, tb) > 0.5) == truth).mean()
    assert acc > 0.9, acc
    assert model.d_in_ == 16 and model.n_train_ == 500


def test_constructor_only_stores_parameters():
    model = PreferenceEnsemble(n_members=3, lr=0.5, hidden=[8, 4])
    assert model.get_params()["hidden"] == [8, 4]
    assert not hasattr(model, "history_")
    with pytest.raises(NotFittedError):
        model.predict_proba(np.zeros((2, 3)), np.zeros((2, 3)))


def test_shapes_and_dtypes():
    a, b, y, _ = bt_task(60)
    model = PreferenceEnsemble(n_members=4, **SMALL).fit(a, b, y)
    member = model.predict_member_proba(a[:7], b[:7])
    assert member.shape == (4, 7) and member.dtype == np.float64
    assert model.predict_proba(a[:7], b[:7]).shape == (7,)
    np.testing.assert_allclose(model.predict_proba(a[:7], b[:7]), member.mean(0))
    rewards_a, rewards_b = model.reward(a[:7]), model.reward(b[:7])
    assert rewards_a.shape == (4, 7)
    np.testing.assert_allclose(model.predict_member_logits(a[:7], b[:7]), rewards_a - rewards_b, atol=1e-5)
    assert model.predict_member_proba(a[:0], b[:0]).shape == (4, 0)


def test_antisymmetry():
    a, b, y, _ = bt_task(200)
    model = PreferenceEnsemble(**SMALL).fit(a, b, y)
    ab = model.predict_member_proba(a, b)
    ba = model.predict_member_proba(b, a)
    np.testing.assert_allclose(ab, 1.0 - ba, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(a, a), 0.5)


@pytest.mark.parametrize("n", [200, 7])  # with early stopping on held-out slices; fixed epochs below 10 labels
def test_batched_equals_per_member_loop(n):
    a, b, y, _ = bt_task(n, seed=3, scale=1.0)  # noisy labels: members overfit and stop at different epochs
    params = dict(n_members=3, hidden=(24, 8), batch_size=16, lr=3e-3, max_epochs=12, weight_decay=0.01, device="cpu")
    batched = PreferenceEnsemble(**params).fit(a, b, y)
    loop = fit_loop_reference(PreferenceEnsemble(**params), a, b, y)
    ta, tb, _, _ = bt_task(100, seed=4)
    np.testing.assert_array_equal(batched.history_["epochs_trained"], loop.history_["epochs_trained"])
    np.testing.assert_array_equal(batched.history_["best_epoch"], loop.history_["best_epoch"])
    np.testing.assert_allclose(batched.history_["best_val_loss"], loop.history_["best_val_loss"], rtol=1e-4)
    np.testing.assert_allclose(batched.predict_member_proba(ta, tb), loop.predict_member_proba(ta, tb), atol=1e-4)
    if n >= 10:  # the test must exercise members stopping at different epochs or with different best epochs
        assert batched.history_["epochs_trained"].min() < 12


def test_members_disagree_out_of_distribution():
    a, b, y, _ = bt_task(300)
    model = PreferenceEnsemble(**SMALL).fit(a, b, y)
    rng = np.random.default_rng(9)
    far_a, far_b = (8 * rng.normal(size=(200, 16))).astype(np.float32), (8 * rng.normal(size=(200, 16))).astype(
        np.float32
    )
    spread_far = model.predict_member_proba(far_a, far_b).std(axis=0).mean()
    assert spread_far > 0.01, spread_far
    weights = model.weights_[0]
    assert not np.allclose(weights[0], weights[1])


def test_seeded_determinism_and_refit_from_scratch():
    a, b, y, _ = bt_task(200)
    ta, tb, _, _ = bt_task(50, seed=5)
    params = {**SMALL, "max_epochs": 5}
    p1 = PreferenceEnsemble(seed=7, **params).fit(a, b, y).predict_member_proba(ta, tb)
    model = PreferenceEnsemble(seed=7, **params)
    model.fit(a[:50], b[:50], 1 - y[:50])  # a different fit first: the next fit must not depend on it
    p2 = model.fit(a, b, y).predict_member_proba(ta, tb)
    np.testing.assert_array_equal(p1, p2)
    p3 = PreferenceEnsemble(seed=8, **params).fit(a, b, y).predict_member_proba(ta, tb)
    assert not np.allclose(p1, p3)


def test_member_streams_do_not_depend_on_ensemble_size():
    a, b, y, _ = bt_task(120)
    params = {**SMALL, "max_epochs": 5}
    three = PreferenceEnsemble(n_members=3, **params).fit(a, b, y).predict_member_proba(a, b)
    two = PreferenceEnsemble(n_members=2, **params).fit(a, b, y).predict_member_proba(a, b)
    np.testing.assert_allclose(three[:2], two, atol=1e-6)


def test_global_rng_untouched():
    a, b, y, _ = bt_task(50)
    torch.manual_seed(0)
    np.random.seed(0)
    expected_t, expected_np = torch.rand(3), np.random.rand(3)
    torch.manual_seed(0)
    np.random.seed(0)
    PreferenceEnsemble(**SMALL).fit(a, b, y)
    np.testing.assert_array_equal(torch.rand(3), expected_t)
    np.testing.assert_array_equal(np.random.rand(3), expected_np)


def test_state_dict_round_trip(tmp_path):
    a, b, y, _ = bt_task(150)
    model = PreferenceEnsemble(n_members=3, hidden=(16, 8), activation="gelu", seed=3, max_epochs=5, device="cpu")
    model.fit(a, b, y)
    path = tmp_path / "ensemble.npz"
    np.savez(path, **model.state_dict())
    with np.load(path) as saved:
        restored = PreferenceEnsemble(device="cpu").load_state_dict(saved)  # device is not restored
    assert restored.get_params() == {**model.get_params(), "hidden": (16, 8)}
    np.testing.assert_array_equal(restored.predict_member_proba(a, b), model.predict_member_proba(a, b))
    np.testing.assert_array_equal(restored.history_["epochs_trained"], model.history_["epochs_trained"])
    torch.save(model.state_dict(), tmp_path / "ensemble.pt")
    again = PreferenceEnsemble(device="cpu").load_state_dict(torch.load(tmp_path / "ensemble.pt", weights_only=False))
    np.testing.assert_array_equal(again.reward(a), model.reward(a))
    unfitted = PreferenceEnsemble(n_members=2).state_dict()
    with pytest.raises(NotFittedError):
        PreferenceEnsemble.from_state_dict(unfitted).predict_proba(a, b)


def test_early_stopping_on_noise_labels():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    y = rng.integers(0, 2, size=300)
    model = PreferenceEnsemble(hidden=(64,), lr=3e-3, max_epochs=60, patience=3, device="cpu").fit(a, b, y)
    h = model.history_
    assert (h["epochs_trained"] < 60).all(), h["epochs_trained"]
    assert (h["epochs_trained"] == h["best_epoch"] + 3).all()
    assert h["n_val"] == 30 and h["n_train"] == 270
    assert np.isfinite(h["best_val_loss"]).all()
    assert h["val_loss"].shape == h["train_loss"].shape == (h["epochs_trained"].max(), 5)


def test_few_labels_train_fixed_epochs_without_held_out_slice():
    a, b, y, _ = bt_task(6)
    model = PreferenceEnsemble(max_epochs=4, **{k: v for k, v in SMALL.items() if k != "max_epochs"})
    h = model.fit(a, b, y).history_
    assert h["n_val"] == 0 and h["n_train"] == 6
    assert (h["epochs_trained"] == 4).all() and np.isnan(h["best_val_loss"]).all()
    model.fit(a[:1], b[:1], y[:1])  # a single label still trains


def test_paper_architecture_and_half_precision_inputs():
    a, b, y, _ = bt_task(40, d=384)
    model = PreferenceEnsemble(hidden=(2048, 256), max_epochs=2, device="cpu")
    model.fit(a.astype(np.float16), b.astype(np.float16), y)
    assert [w.shape for w in model.weights_] == [(5, 384, 2048), (5, 2048, 256), (5, 256, 1)]
    p = model.predict_member_proba(a.astype(np.float16), b)
    assert p.shape == (5, 40) and np.isfinite(p).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, a, b, y: m.fit(a[0], b[0], y[:1]), "2-D"),
        (lambda m, a, b, y: m.fit(a, b[:, :5], y), "same shape"),
        (lambda m, a, b, y: m.fit(a, b, y[:-1]), "entries"),
        (lambda m, a, b, y: m.fit(a, b, y[:, None]), "1-D"),
        (lambda m, a, b, y: m.fit(a, b, np.full(len(y), 0.5)), "0 or 1"),
        (lambda m, a, b, y: m.fit(a, b, np.full(len(y), np.nan)), "0 or 1"),
        (lambda m, a, b, y: m.fit(a[:0], b[:0], y[:0]), "at least one"),
        (lambda m, a, b, y: m.fit(np.full_like(a, np.nan), b, y), "NaN"),
        (lambda m, a, b, y: m.fit(a.astype(str), b, y), "numbers"),
        (lambda m, a, b, y: m.set_params(activation="swish").fit(a, b, y), "activation"),
        (lambda m, a, b, y: m.set_params(n_members=0).fit(a, b, y), "n_members"),
        (lambda m, a, b, y: m.set_params(val_fraction=1.5).fit(a, b, y), "val_fraction"),
        (lambda m, a, b, y: m.set_params(nope=1), "unknown parameter"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(call, message):
    a, b, y, _ = bt_task(20)
    with pytest.raises(ValueError, match=message):
        call(PreferenceEnsemble(**SMALL), a, b, y)


def test_predict_checks_width():
    a, b, y, _ = bt_task(30)
    model = PreferenceEnsemble(**SMALL).fit(a, b, y)
    with pytest.raises(ValueError, match="width"):
        model.predict_proba(a[:, :8], b[:, :8])
    with pytest.raises(ValueError, match="width"):
        model.reward(a[:, :8])
    with pytest.raises(ValueError, match="2-D"):
        model.reward(a[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    a, b, y, _ = bt_task(200)
    gpu = PreferenceEnsemble(hidden=(32,), max_epochs=5, device=None).fit(a, b, y)
    assert gpu.device_.type == "cuda" and gpu._params_[0][0].is_cuda
    cpu = PreferenceEnsemble(hidden=(32,), max_epochs=5, device="cpu").fit(a, b, y)
    np.testing.assert_allclose(gpu.predict_member_proba(a, b), cpu.predict_member_proba(a, b), atol=1e-3)
    restored = PreferenceEnsemble(device="cpu").load_state_dict(gpu.state_dict())
    np.testing.assert_allclose(restored.predict_member_proba(a, b), gpu.predict_member_proba(a, b), atol=1e-5)
