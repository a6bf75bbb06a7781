"""BALD and friends on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from balpm import uncertainty as unc

LOG2 = math.log(2.0)


def h(p: float) -> float:
    """Binary entropy written out, for the hand computations."""
    return -sum(q * math.log(q) for q in (p, 1 - p) if q > 0)


def test_agreeing_coin_flips_have_no_epistemic_uncertainty():
    probs = np.array([[0.5], [0.5]])
    assert unc.bald(probs)[0] == pytest.approx(0.0, abs=1e-15)
    assert unc.predictive_entropy(probs)[0] == pytest.approx(LOG2)
    assert unc.expected_entropy(probs)[0] == pytest.approx(LOG2)


def test_confident_disagreement_is_log2_and_safe_at_0_and_1():
    probs = np.array([[0.0], [1.0]])
    with np.errstate(all="raise"):
        out = unc.summarize(probs)
    assert out["bald"][0] == pytest.approx(LOG2)
    assert out["expected_entropy"][0] == 0.0
    assert out["predictive_entropy"][0] == pytest.approx(LOG2)
    assert out["variance"][0] == pytest.approx(0.25)


def test_three_members_by_hand():
    p = [0.1, 0.4, 0.9]
    mean = (0.1 + 0.4 + 0.9) / 3  # 0.4666...
    pred = h(mean)
    expct = (h(0.1) + h(0.4) + h(0.9)) / 3
    # written-out numbers, so that a wrong h() above cannot hide a wrong implementation
    assert pred == pytest.approx(0.690923, abs=1e-6)
    assert expct == pytest.approx(0.441059, abs=1e-6)
    probs = np.array(p, dtype=np.float32)[:, None]
    assert unc.mean_probability(probs)[0] == pytest.approx(mean)
    assert unc.predictive_entropy(probs)[0] == pytest.approx(pred, rel=1e-6)
    assert unc.expected_entropy(probs)[0] == pytest.approx(expct, rel=1e-6)
    assert unc.bald(probs)[0] == pytest.approx(pred - expct, rel=1e-5)
    var = sum((q - mean) ** 2 for q in p) / 3
    assert unc.variance(probs)[0] == pytest.approx(var, rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float64_out_shapes_and_bounds(dtype):
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=(5, 200)).astype(dtype)
    s = unc.summarize(probs)
    for key, v in s.items():
        assert v.dtype == np.float64 and v.shape == (200,), key
    assert (s["bald"] >= 0).all()
    assert (s["bald"] <= LOG2 + 1e-12).all()
    np.testing.assert_allclose(s["bald"], np.maximum(s["predictive_entropy"] - s["expected_entropy"], 0))
    np.testing.assert_allclose(s["bald"], unc.bald(probs))


def test_identical_members_give_zero_up_to_round_off_never_negative():
    probs = np.tile(np.random.default_rng(1).uniform(size=(1, 1000)), (7, 1))
    b = unc.bald(probs)
    assert (b >= 0).all() and b.max() < 1e-12


def test_bad_inputs():
    with pytest.raises(ValueError):
        unc.bald(np.array([0.2, 0.3]))  # 1-D is ambiguous
    with pytest.raises(ValueError):
        unc.bald(np.array([[1.5]]))
    with pytest.raises(ValueError):
        unc.bald(np.array([[np.nan]]))
