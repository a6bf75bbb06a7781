"""Issue 12 section 2: the model candidates of the model study (balpm.model_variants, bootstrapped members)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from balpm import uncertainty as unc
from balpm.ensemble_training import split_member
from balpm.metrics import preference_metrics
from balpm.model import PreferenceEnsemble
from balpm.model_variants import HeldOutWeightDecay, LinearLaplacePreference, held_out_split


def _linear_pairs(n: int, d: int = 8, seed: int = 0, signal: float = 3.0):
    """Pairs whose labels follow a Bradley-Terry model linear in a − b (``signal`` 0: pure coin flips)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    w = np.zeros(d)
    w[0] = signal
    y = (rng.random(n) < 1 / (1 + np.exp(-(a - b) @ w))).astype(float)
    return a, b, y


def test_held_out_split_is_seeded_disjoint_and_keeps_rows_on_both_sides():
    fit, val = held_out_split(50, 0.2, seed=3)
    assert len(val) == 10 and len(fit) == 40 and not set(fit) & set(val)
    assert np.array_equal(held_out_split(50, 0.2, seed=3)[1], val)
    assert not np.array_equal(held_out_split(50, 0.2, seed=4)[1], val)
    assert len(held_out_split(4, 0.01, seed=0)[1]) == 2 and len(held_out_split(4, 0.99, seed=0)[0]) == 2
    with pytest.raises(ValueError, match="at least 4 labels"):
        held_out_split(3, 0.2, seed=0)


def test_held_out_weight_decay_rejects_a_decay_that_erases_the_signal():
    a, b, y = _linear_pairs(300, seed=1)
    model = HeldOutWeightDecay(grid=(0.0, 3000.0), seed=0, n_members=2, hidden=(8,), max_epochs=10,
                               init_std=0.1, lr=1e-2).fit(a, b, y)
    assert set(model.scores_) == {0.0, 3000.0} and model.scores_[0.0] > model.scores_[3000.0]
    assert model.weight_decay_ == 0.0 and model.ensemble_.weight_decay == 0.0
    assert model.ensemble_.n_train_ == 300  # refitted on every label, not only the fit part
    assert model.predict_member_proba(a[:5], b[:5]).shape == (2, 5)
    few = HeldOutWeightDecay(grid=(5.0, 0.0), n_members=1, hidden=(4,), max_epochs=2).fit(a[:6], b[:6], y[:6])
    assert few.weight_decay_ == 5.0 and few.scores_ == {}  # too few labels to hold out: the first value


def test_linear_laplace_learns_a_linear_preference_and_tunes_its_prior_by_the_evidence():
    a, b, y = _linear_pairs(2000, seed=2)
    model = LinearLaplacePreference(seed=0).fit(a, b, y)
    assert abs(model.w_[0] - 3.0) < 0.5 and np.all(np.abs(model.w_[1:]) < 0.3)
    ta, tb, ty = _linear_pairs(500, seed=9)
    assert preference_metrics(model.predict_member_proba(ta, tb), ty)["accuracy"] > 0.75
    noise = LinearLaplacePreference(seed=0).fit(*_linear_pairs(2000, seed=2, signal=0.0))
    assert noise.alpha_ > 10 * model.alpha_  # no signal: the evidence asks for a much tighter prior
    assert np.abs(noise.predict_proba(ta, tb) - 0.5).max() < 0.1


def test_linear_laplace_bald_falls_with_labels_and_draws_are_seeded():
    a, b, y = _linear_pairs(1000, seed=3)
    ta, tb, _ = _linear_pairs(200, seed=4)
    few = LinearLaplacePreference(n_samples=32, seed=5).fit(a[:20], b[:20], y[:20])
    many = LinearLaplacePreference(n_samples=32, seed=5).fit(a, b, y)
    probs = few.predict_member_proba(ta, tb)
    assert probs.shape == (32, 200)
    assert unc.bald(probs).mean() > 3 * unc.bald(many.predict_member_proba(ta, tb)).mean()
    assert np.array_equal(probs, few.predict_member_proba(ta, tb))
    other = LinearLaplacePreference(n_samples=32, seed=6).fit(a[:20], b[:20], y[:20])
    assert not np.array_equal(probs, other.predict_member_proba(ta, tb))
    with pytest.raises(ValueError, match="labels must be"):
        LinearLaplacePreference().fit(a[:3], b[:3], [0, 1, 2])
    with pytest.raises(ValueError, match="not fitted"):
        LinearLaplacePreference().predict_member_proba(ta, tb)


def test_bootstrap_split_resamples_the_training_part_only():
    g = torch.Generator().manual_seed(0)
    train, val = split_member(g, 100, 10, bootstrap=True)
    assert len(train) == 90 and len(val) == 10 and not set(train.tolist()) & set(val.tolist())
    assert len(set(train.tolist())) < 90  # drawn with replacement: some rows twice, some not at all
    g0, g1 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    plain = split_member(g0, 100, 10)
    assert torch.equal(plain[0], split_member(g1, 100, 10, bootstrap=False)[0])
    assert torch.equal(plain[1], val) and len(set(plain[0].tolist())) == 90


def test_bootstrapped_members_train_seeded_and_persist():
    a, b, y = _linear_pairs(120, d=6, seed=7)
    kw = dict(n_members=3, hidden=(8,), max_epochs=3, seed=2, device="cpu")
    boot = PreferenceEnsemble(bootstrap=True, **kw).fit(a, b, y)
    again = PreferenceEnsemble(bootstrap=True, **kw).fit(a, b, y)
    plain = PreferenceEnsemble(bootstrap=False, **kw).fit(a, b, y)
    assert np.array_equal(boot.predict_member_proba(a, b), again.predict_member_proba(a, b))
    assert not np.allclose(boot.predict_member_proba(a, b), plain.predict_member_proba(a, b))
    loaded = PreferenceEnsemble.from_state_dict(boot.state_dict())
    assert loaded.bootstrap is True
    assert np.array_equal(loaded.predict_member_proba(a, b), boot.predict_member_proba(a, b))


def test_random_prior_networks_are_fixed_seeded_and_persist():
    a, b, y = _linear_pairs(120, d=6, seed=8)
    kw = dict(n_members=3, hidden=(8,), max_epochs=3, seed=2, device="cpu")
    prior = PreferenceEnsemble(prior_scale=1.0, **kw).fit(a, b, y)
    plain = PreferenceEnsemble(**kw).fit(a, b, y)
    assert len(prior.weights_) == 4 and len(plain.weights_) == 2  # head layers, then the prior network's
    assert np.array_equal(prior.weights_[0], plain.weights_[0]) is False
    w_prior = prior.weights_[2]
    again = PreferenceEnsemble(prior_scale=1.0, **kw).fit(a[:60], b[:60], y[:60])
    assert np.array_equal(again.weights_[2], w_prior)  # never trained: the same draw whatever the labels
    assert abs(float(np.std(w_prior)) - 1.0) < 0.2  # unit scale on the first layer, not init_std
    assert abs(float(np.std(prior.weights_[3])) - 1 / np.sqrt(8)) < 0.15  # LeCun after it
    # untrained members disagree through their priors: round-one BALD is far larger than without them
    u = dict(kw, max_epochs=1, lr=1e-9)
    untrained = PreferenceEnsemble(prior_scale=3.0, **u).fit(a[:5], b[:5], y[:5])
    bare = PreferenceEnsemble(**u).fit(a[:5], b[:5], y[:5])
    assert unc.bald(untrained.predict_member_proba(a, b)).mean() > 100 * unc.bald(bare.predict_member_proba(a, b)).mean()
    loaded = PreferenceEnsemble.from_state_dict(prior.state_dict())
    assert np.array_equal(loaded.predict_member_proba(a, b), prior.predict_member_proba(a, b))
    with pytest.raises(ValueError, match="prior_scale"):
        PreferenceEnsemble(prior_scale=-1.0, **kw).fit(a, b, y)


def test_last_layer_laplace_draws_around_each_trained_member():
    from balpm.model_variants import LastLayerLaplace

    a, b, y = _linear_pairs(200, d=6, seed=10)
    kw = dict(n_members=2, hidden=(8,), max_epochs=4, lr=1e-2, init_std=0.1, device="cpu")
    lla = LastLayerLaplace(n_samples=16, seed=3, **kw).fit(a, b, y)
    ens = PreferenceEnsemble(seed=3, **kw).fit(a, b, y)
    assert np.array_equal(lla.ensemble_.predict_member_logits(a, b), ens.predict_member_logits(a, b))
    probs = lla.predict_member_proba(a, b)
    assert probs.shape == (32, 200) and lla.deltas_.shape == (2, 16, 8)
    # the draws scatter around each member: their mean logit stays near the member's, their BALD is larger
    member_mean = probs.reshape(2, 16, 200).mean(axis=1)
    assert np.abs(member_mean - ens.predict_member_proba(a, b)).mean() < 0.05
    assert unc.bald(probs).mean() > unc.bald(ens.predict_member_proba(a, b)).mean()
    assert np.array_equal(probs, LastLayerLaplace(n_samples=16, seed=3, **kw).fit(a, b, y).predict_member_proba(a, b))
    feats = ens.last_hidden(a[:5])
    assert feats.shape == (2, 5, 8) and np.all(np.abs(feats) <= 1)  # tanh activations
    assert PreferenceEnsemble(n_members=2, hidden=(), max_epochs=1).fit(a, b, y).last_hidden(a[:3]).shape == (2, 3, 6)
