"""Acquisition policies; BAL-PM against a from-scratch brute-force reference."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.special import digamma

from balpm.acquisition import (
    POLICIES,
    AcquisitionInput,
    Selection,
    balpm_greedy,
    balpm_select,
    get_policy,
)
from balpm.neighbors import build_knn_graph


def reference_balpm(pool, acquired, U, B, beta=0.01, k=13, d=1.0, eps=1e-4):
    """The definition, recomputed from scratch for every pick: all-pairs float64 distances, r_k, n by ≤, greedy."""
    X = np.concatenate([pool, acquired]).astype(np.float64)
    npool = len(pool)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    r = np.sort(D, axis=1)[:, k - 1]
    acq = np.zeros(len(X), bool)
    acq[npool:] = True
    avail = np.ones(npool, bool)
    picks, us, bhs, scores = [], [], [], []
    for _ in range(B):
        best, best_s = -1, -np.inf
        for x in range(npool):
            if not avail[x]:
                continue
            n = int(np.sum(acq & (D[x] <= r[x])))
            H = np.log(2 * r[x] + eps) - digamma(n + 1) / d
            s = U[x] + beta * H
            if s > best_s:  # strict: the lowest index wins ties
                best, best_s, best_bh = x, s, beta * H
        picks.append(best)
        us.append(U[best])
        bhs.append(best_bh)
        scores.append(best_s)
        avail[best] = False
        acq[best] = True
    return np.array(picks), np.array(us), np.array(bhs), np.array(scores)


def clustered(n, d, seed, clusters=6):
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=2.0, size=(clusters, d))
    return (c[rng.integers(clusters, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def repeated(n_unique, d, seed):
    """Prompts repeated like QA-Feedback (6x) and some more (up to 30x): ties at r_k and distance-0 balls."""
    rng = np.random.default_rng(seed)
    base = clustered(n_unique, d, seed)
    X = np.repeat(base, rng.choice([1, 3, 6, 6, 30], size=n_unique), axis=0)
    return X[rng.permutation(len(X))]


def split(X, frac_acquired, seed):
    rng = np.random.default_rng(seed)
    is_acq = rng.uniform(size=len(X)) < frac_acquired
    return X[~is_acq], X[is_acq]


CASES = [("random", s) for s in (0, 1, 2)] + [("repeats", s) for s in (0, 1, 2)]


def make_case(kind, seed):
    X = clustered(250, 5, seed) if kind == "random" else repeated(50, 5, seed)
    pool, acquired = split(X, 0.1, seed)
    U = np.random.default_rng(100 + seed).uniform(0, 0.05, size=len(pool))
    return pool, acquired, U


@pytest.mark.parametrize("kind,seed", CASES)
@pytest.mark.parametrize("beta", [0.01, 1.0])
def test_balpm_select_matches_reference(kind, seed, beta):
    pool, acquired, U = make_case(kind, seed)
    ref = reference_balpm(pool, acquired, U, 40, beta=beta)
    got = balpm_select(pool, acquired, U, 40, beta=beta)
    np.testing.assert_array_equal(got, ref[0])


@pytest.mark.parametrize("kind,seed", CASES)
@pytest.mark.parametrize("method", ["argmax", "heap"])
def test_policy_records_match_reference(kind, seed, method):
    pool, acquired, U = make_case(kind, seed)
    beta = 0.5
    ref_i, ref_u, ref_bh, ref_s = reference_balpm(pool, acquired, U, 30, beta=beta, k=7)
    X = np.concatenate([pool, acquired])
    n = len(X)
    cand = np.arange(n) < len(pool)
    inp = AcquisitionInput(np.concatenate([U, np.full(len(acquired), 9.0)]), cand, ~cand, X,
                           build_knn_graph(X, k=7))
    sel = get_policy("bal-pm", beta=beta, k=7, method=method).select(inp, 30, rng=0)
    np.testing.assert_array_equal(sel.indices, ref_i)
    np.testing.assert_allclose(sel.uncertainty, ref_u)
    np.testing.assert_allclose(sel.entropy_term, ref_bh, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sel.score, ref_s, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sel.ratio, ref_u / ref_s, rtol=1e-5)
    frame = sel.to_frame()
    assert list(frame.columns) == ["pick", "row", "uncertainty", "entropy_term", "score", "ratio", "beta"]
    assert len(frame) == 30


def test_heap_and_argmax_agree_with_exact_score_ties():
    X = repeated(200, 4, 11)
    g = build_knn_graph(X, k=13)
    U = np.round(np.random.default_rng(0).uniform(0, 0.02, len(X)), 3)  # many equal U
    acq = np.random.default_rng(1).uniform(size=len(X)) < 0.05
    a = balpm_greedy(g, U, ~acq, acq, 150, method="argmax")
    h = balpm_greedy(g, U, ~acq, acq, 150, method="heap")
    np.testing.assert_array_equal(a[0], h[0])


def test_beta_zero_is_top_b_bald():
    pool, acquired, U = make_case("repeats", 3)
    got = balpm_select(pool, acquired, U, 25, beta=0.0)
    np.testing.assert_array_equal(got, np.argsort(-U, kind="stable")[:25])


def bald_input(n=500, seed=0, acquired_frac=0.1):
    rng = np.random.default_rng(seed)
    X = clustered(n, 8, seed)
    acq = rng.uniform(size=n) < acquired_frac
    U = rng.uniform(0, 0.3, size=n)
    return AcquisitionInput(U, ~acq, acq, X, None)


def test_bald_policy_is_top_b_with_lowest_index_ties():
    inp = bald_input()
    inp.uncertainty[:] = np.round(inp.uncertainty, 1)
    sel = get_policy("bald").select(inp, 20)
    pool = np.flatnonzero(inp.selectable())
    expect = pool[np.argsort(-inp.uncertainty[pool], kind="stable")[:20]]
    np.testing.assert_array_equal(sel.indices, expect)
    assert np.all(sel.ratio == 1) and np.isnan(sel.entropy_term).all()


@pytest.mark.parametrize("name", ["random", "softmax-bald", "power-bald", "softrank-bald"])
def test_stochastic_policies_repeat_under_a_seed_and_differ_across_seeds(name):
    inp = bald_input()
    p = get_policy(name)
    a = p.select(inp, 30, np.random.default_rng(1)).indices
    b = p.select(inp, 30, np.random.default_rng(1)).indices
    c = p.select(inp, 30, np.random.default_rng(2)).indices
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(set(a.tolist())) == 30 and inp.selectable()[a].all()
    np.testing.assert_array_equal(a, p.select(inp, 30, 1).indices)  # an int seed is accepted


@pytest.mark.parametrize("name", ["softmax-bald", "power-bald", "softrank-bald"])
def test_very_low_temperature_is_top_b(name):
    inp = bald_input(seed=4)
    top = get_policy("bald").select(inp, 25).indices
    for seed in range(3):
        got = get_policy(name, temperature=1e-9).select(inp, 25, seed).indices
        np.testing.assert_array_equal(got, top)
    np.testing.assert_array_equal(get_policy(name, temperature=0).select(inp, 25, 0).indices, top)


def test_softmax_high_temperature_is_close_to_uniform():
    inp = bald_input(n=2000, seed=5)
    got = get_policy("softmax-bald", temperature=1e3).select(inp, 500, 0).indices
    top = set(get_policy("bald").select(inp, 500).indices.tolist())
    assert len(top & set(got.tolist())) < 250  # uniform would share ~ 500 * 500/1800


def _picks_in_earlier_balls(graph, picks):
    seen: set[int] = set()
    hits = 0
    for i in picks:
        hits += len(seen & set(graph.ball(i).tolist()))
        seen.add(int(i))
    return hits


def test_entropy_policy_picks_spread_out_prompts_away_from_labelled_ones():
    rng = np.random.default_rng(6)
    X = np.concatenate([rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 30]).astype(np.float32)
    region = np.repeat([0, 1], 300)
    acq = np.zeros(600, bool)
    acq[rng.choice(300, 150, replace=False)] = True  # half of region 0 already labelled
    g = build_knn_graph(X, k=13)
    U = np.where(region == 0, 0.3, 0.1)  # the model is most uncertain where it already has labels
    inp = AcquisitionInput(U, ~acq, acq, X, g)
    ent = get_policy("entropy").select(inp, 20)
    assert (region[ent.indices] == 1).all()  # goes where nothing is labelled
    assert _picks_in_earlier_balls(g, ent.indices) == 0  # and no pick is a near neighbour of an earlier one
    assert _picks_in_earlier_balls(g, get_policy("random").select(inp, 20, 0).indices) > 0
    assert np.isnan(ent.ratio).all()
    np.testing.assert_allclose(ent.score, ent.entropy_term)
    assert (region[get_policy("bald").select(inp, 20).indices] == 0).all()
    assert (region[get_policy("bal-pm", beta=1.0).select(inp, 20).indices] == 1).all()


def test_policies_never_pick_acquired_or_non_candidates():
    inp = bald_input(seed=7, acquired_frac=0.5)
    inp.candidates[:100] = False
    for name in POLICIES:
        sel = get_policy(name).select(inp, 50, 0)
        assert isinstance(sel, Selection)
        assert inp.selectable()[sel.indices].all(), name
        assert len(np.unique(sel.indices)) == 50


def test_batch_larger_than_pool_is_clipped():
    inp = bald_input(n=60, seed=8, acquired_frac=0.5)
    for name in POLICIES:
        assert len(get_policy(name).select(inp, 1000, 0)) == inp.selectable().sum()


def test_registry_and_errors():
    assert set(POLICIES) == {"random", "bald", "softmax-bald", "power-bald", "softrank-bald", "entropy", "bal-pm"}
    assert get_policy("BAL_PM").name == "bal-pm"
    assert {n for n in POLICIES if get_policy(n).needs_knn} == {"bal-pm", "entropy"}
    with pytest.raises(ValueError, match="unknown acquisition policy"):
        get_policy("nope")
    inp = bald_input()
    inp.uncertainty = None
    with pytest.raises(ValueError):
        get_policy("bald").select(inp, 3)
    with pytest.raises(ValueError):
        get_policy("bal-pm").select(inp, 3)


def test_prebuilt_graph_with_other_k_is_rebuilt_with_a_warning():
    inp = bald_input(n=200)
    inp.knn = build_knn_graph(inp.prompt_embeddings, k=5)
    with pytest.warns(UserWarning):
        a = get_policy("bal-pm").select(inp, 10).indices
    inp.knn = build_knn_graph(inp.prompt_embeddings, k=13)
    np.testing.assert_array_equal(a, get_policy("bal-pm").select(inp, 10).indices)


def test_any_float_dtype_in():
    pool, acquired, U = make_case("random", 0)
    a = balpm_select(pool.astype(np.float64), acquired.astype(np.float64), U, 10)
    b = balpm_select(pool, acquired, U.astype(np.float32), 10)
    assert len(a) == 10 and len(b) == 10
    c = balpm_select(pool, np.empty((0, pool.shape[1])), U, 10)
    assert len(c) == 10


# ------------------------------------------------------------------ issue 14: the faster selection, same picks

from greedy_oracle import greedy_oracle  # noqa: E402  (tests/greedy_oracle.py: balpm_greedy before issue 14)


def _assert_same_as_oracle(g, U, cand, acq, B, **kw):
    want = greedy_oracle(g, U, cand, acq, B, **kw)
    for method in ("heap", "argmax"):
        got = balpm_greedy(g, U, cand, acq, B, method=method, **kw)
        for w, h in zip(want, got):
            np.testing.assert_array_equal(h, w)  # bit for bit: picks, U, β·Ĥ and scores


@pytest.mark.parametrize("kind,seed", CASES)
@pytest.mark.parametrize("beta,weight", [(0.01, 1.0), (0.5, 1.0), (0.0, 1.0), (1.0, 0.0)])
def test_selection_equals_the_pre_issue_14_oracle_on_the_oracle_cases(kind, seed, beta, weight):
    pool, acquired, U = make_case(kind, seed)
    X = np.concatenate([pool, acquired])
    cand = np.arange(len(X)) < len(pool)
    U = np.concatenate([U, np.full(len(acquired), 9.0)])
    g = build_knn_graph(X, k=7)
    for B in (1, 30, int(cand.sum())):  # the whole pool: the sorted prefix must be extended several times
        _assert_same_as_oracle(g, U, cand, ~cand, B, beta=beta, uncertainty_weight=weight)


@pytest.mark.parametrize("seed", range(8))
def test_selection_equals_the_oracle_with_many_exact_ties(seed):
    rng = np.random.default_rng(seed)
    X = repeated(int(rng.integers(40, 120)), int(rng.integers(2, 6)), seed)  # distance-0 balls, ties at r_k
    g = build_knn_graph(X, k=int(rng.integers(3, 14)))
    U = np.round(rng.uniform(0, 0.02, len(X)), int(rng.integers(1, 4)))  # many equal U
    acq = rng.uniform(size=len(X)) < rng.uniform(0, 0.3)
    cand = rng.uniform(size=len(X)) < 0.9
    cand[: int(rng.integers(0, 5))] = False
    beta = float(rng.choice([0.0, 0.01, 0.3, 2.0]))
    B = int(rng.integers(1, len(X) + 5))
    _assert_same_as_oracle(g, U, cand, acq, B, beta=beta, d=float(rng.choice([1.0, 3.0])))
    _assert_same_as_oracle(g, None, cand, acq, B, beta=1.0, uncertainty_weight=0.0)  # entropy: ties everywhere


def test_sorted_prefix_reads_the_full_order_block_by_block_with_ties():
    from balpm.acquisition import _SortedPrefix

    rng = np.random.default_rng(3)
    s = np.round(rng.uniform(0, 1, 500), 1)  # 11 distinct values: ties across every block cut
    s[rng.uniform(size=500) < 0.2] = -np.inf  # non-candidates
    full = [int(i) for i in np.lexsort((np.arange(500), -s)) if s[i] > -np.inf]
    skip = np.zeros(500, bool)
    skip[rng.choice(500, 100, replace=False)] = True  # changed scores, read from elsewhere
    expect = [i for i in full if not skip[i]]
    pre = _SortedPrefix(s, block=1)
    got = []
    while (j := pre.peek(skip)) >= 0:
        got.append(j)
        skip[j] = True  # picked
    assert got == expect  # the full sort's order (score down, index up), read one doubling block at a time


@pytest.mark.parametrize("seed", range(4))
def test_selection_with_a_one_point_first_block_still_equals_the_oracle(seed, monkeypatch):
    """The prefix extended many times over (block 1, doubling), against the oracle, with ties."""
    import balpm.acquisition as acquisition

    monkeypatch.setattr(acquisition, "_prefix_block", lambda batch_size: 1)
    rng = np.random.default_rng(seed)
    X = repeated(80, 3, seed)
    g = build_knn_graph(X, k=5)
    U = np.round(rng.uniform(0, 0.02, len(X)), 2)
    acq = rng.uniform(size=len(X)) < 0.1
    for B in (1, 7, 60, len(X)):
        _assert_same_as_oracle(g, U, ~acq, acq, B, beta=0.3)


def test_declared_parameters_drive_get_policy_validation_and_the_experiment_config():
    """Issue 13 item 1: each policy declares its parameters; get_policy checks type, range, choices and names
    against them (before: no declarations; a negative beta passed, bald(beta=…) was a bare TypeError)."""
    from balpm.acquisition import PolicyParam, all_policy_parameters, policy_parameters, policy_params_from

    for name in POLICIES:
        declared = policy_parameters(name)
        assert all(isinstance(p, PolicyParam) and p.help for p in declared)
        pol = get_policy(name, **{p.name: p.default for p in declared})  # every default is valid
        for p in declared:
            assert getattr(pol, p.name) == p.default
    assert [p.name for p in policy_parameters("bal_pm", advanced=False)] == ["beta", "k"]
    assert [p.name for p in policy_parameters("entropy", advanced=False)] == ["k"]
    assert [p.name for p in policy_parameters("power-bald")] == ["temperature"]
    assert policy_parameters("bald") == [] and policy_parameters("random") == []
    assert sorted(p.name for p in all_policy_parameters()) == ["beta", "k", "temperature"]
    for name, bad, match in [("bal-pm", {"beta": -0.1}, "'beta' must be ≥ 0"), ("bal-pm", {"k": 2.5}, "'k' must be int"),
                             ("entropy", {"k": 0}, "'k' must be ≥ 1"), ("bal-pm", {"method": "scan"}, "heap, argmax"),
                             ("softmax-bald", {"temperature": "hot"}, "'temperature' must be float"),
                             ("bald", {"beta": 0.1}, "'bald' has no parameter 'beta'; it takes no parameters"),
                             ("entropy", {"beta": 0.1}, "it takes k, d, eps, method")]:
        with pytest.raises(ValueError, match=re.escape(match)):
            get_policy(name, **bad)
    assert get_policy("bal-pm", beta="0.5", k=7.0).k == 7  # converted to the declared type
    # the config and the CLI read the same declarations: balpm run's --beta/--k/--temperature and what it passes on
    from balpm.cli import build_parser, config_from_namespace
    from balpm.config import AcquisitionConfig

    acq = AcquisitionConfig(policy="Entropy", params={"beta": 0.3, "k": 9, "temperature": 2.0})
    assert acq.policy_params() == policy_params_from("entropy", acq.params) == {"k": 9}
    with pytest.raises(ValueError, match="'k' must be ≥ 1"):
        AcquisitionConfig(policy="bal-pm", params={"k": -3}).policy_params()
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    options = {a.dest: a for a in run._actions}
    for p in all_policy_parameters():
        assert options[p.name].default == p.default
        assert options[p.name].type is p.type or (p.words and options[p.name].type("1.5") == p.type("1.5"))
        assert p.help in options[p.name].help
    cfg = config_from_namespace(run.parse_args(["--dataset", "x.jsonl", "--policy", "softrank_bald",
                                                "--temperature", "2"]))
    assert cfg.acquisition.policy_params() == {"temperature": 2.0}


def test_policies_live_in_balpm_policies_and_the_old_import_path_still_works():
    """Issue 13 (sizes): the policies moved to balpm.policies; balpm.acquisition gives the very same objects."""
    import balpm.acquisition as acquisition
    import balpm.policies as policies

    for name in policies.__all__:
        assert getattr(acquisition, name) is getattr(policies, name), name
    with pytest.raises(AttributeError):
        acquisition.no_such_name  # noqa: B018
