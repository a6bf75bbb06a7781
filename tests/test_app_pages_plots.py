"""AppTest of the Feature space and Diagnostics pages on a small simulated HH-RLHF session.

The session (100 pairs, 64 tokens, 2 tiny members, 3 simulated rounds) is built once per module with the engine,
as the Acquire page would, so these tests only pay for the pages themselves. Run folders for the comparison are
written by hand in ``balpm run``'s format (fast and with known answers).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from balpm.session import Session, SessionConfig

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 600
SMALL = dict(dataset="hh-rlhf:harmless-base", max_pairs=100, max_length=64, batch_size=6, n_members=2,
             hidden=(32,), max_epochs=5, lr=1e-3, initial=8, mode="simulation")
ROUNDS = 3


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulation session with ROUNDS rounds done and their picks on disk; returns the sessions root."""
    from balpm.embed import Embedder, embed_pool

    root = tmp_path_factory.mktemp("sessions")
    mp = pytest.MonkeyPatch()
    mp.setenv("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
    s = Session.create("sim", SessionConfig.from_settings(**SMALL), root=root)
    pool = s.load_pool()
    emb = embed_pool(pool, Embedder("default", max_length=64))
    train, test = s.split_masks(pool)
    learner = s.make_learner(pool.subset(train), emb.subset(train))
    for _ in range(ROUNDS + 1):  # round 0 (random initial set) + ROUNDS acquisitions
        s.simulate_round(learner, pool.subset(test), emb.subset(test))
    s.close()
    (root / ".last_session").write_text(str(s.folder))
    yield root
    mp.undo()


@pytest.fixture()
def app_env(sim_session: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(sim_session))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")
    monkeypatch.chdir(tmp_path)  # the Diagnostics page searches ./runs: never the checkout's own run folders
    return sim_session


def _page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _arr(v: object) -> np.ndarray:
    """A figure array as sent to the browser: plotly ≥ 6 packs numpy arrays as ``{dtype, bdata}`` (base64)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape(v["shape"]) if "shape" in v and isinstance(v["shape"], list) else a
    return np.asarray(v)


def _figure(at: AppTest, i: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def _n(trace: dict) -> int:
    return len(_arr(trace["x"]))


def _load_embeddings(at: AppTest) -> None:
    """Fresh server: the page offers to load the embeddings (a disk-cache hit after the fixture)."""
    buttons = [b for b in at.button if b.key == "fs_load"]
    if buttons:
        buttons[0].click()
        at.run()
    assert not at.exception, at.exception


# ---------------------------------------------------------------------------------------------- Feature space
def test_feature_space_map_colours_and_batch(app_env: Path) -> None:
    at = _page("pages/5_feature_space.py")
    _load_embeddings(at)
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    fig = _figure(at)
    names = [t["name"] for t in fig["data"]]
    # default colouring: acquisition rounds (categorical) with the unacquired points in grey
    assert "not acquired" in names and "round 0" in names and f"round {ROUNDS}" in names
    s = Session.open(app_env / "sim")
    pool = s.load_pool()
    n_train = int(s.split_masks(pool)[0].sum())
    assert sum(_n(t) for t in fig["data"] if t["name"] != "current batch") == n_train
    n_decided = len(s.store)
    acquired_points = sum(_n(t) for t in fig["data"] if t["name"].startswith("round"))
    assert acquired_points == n_decided
    # every point carries its pool row, so a selection maps back to pairs
    rows = np.concatenate([_arr(t["customdata"]) for t in fig["data"]])
    assert sorted(rows.tolist()) == list(range(n_train))
    assert "Hover a point" in " ".join(c.value for c in at.caption)

    for option, expect in [("BALD", "pairs"), ("entropy term (β·Ĥ)", "pairs"), ("label", "A preferred"),
                           ("labelled or not", "labelled")]:
        at.radio(key="fs_color").set_value(option).run()
        assert not at.exception and not at.error, (option, at.exception, [e.value for e in at.error])
        fig = _figure(at)
        assert expect in [t["name"] for t in fig["data"]], (option, [t["name"] for t in fig["data"]])
        if expect == "pairs":
            values = _arr(fig["data"][0]["marker"]["color"]).astype(float)
            assert len(values) == n_train and np.isfinite(values).all() and values.std() > 0


def test_feature_space_selection_lists_pairs(app_env: Path) -> None:
    at = _page("pages/5_feature_space.py")
    _load_embeddings(at)
    fig = _figure(at)
    trace = next(t for t in fig["data"] if t["name"] == "not acquired")
    rows = [int(r) for r in _arr(trace["customdata"])[:3]]
    # what the browser sends back after a lasso over three points of that trace
    points = [{"curve_number": fig["data"].index(trace), "point_index": i, "point_number": i,
               "x": float(_arr(trace["x"])[i]), "y": float(_arr(trace["y"])[i]), "customdata": rows[i]} for i in range(3)]
    at.session_state["fs_chart"] = {"selection": {"points": points, "point_indices": [0, 1, 2], "box": [],
                                                  "lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}}
    at.run()
    assert not at.exception, at.exception
    assert any(h.value == "Selected pairs (3)" for h in at.subheader), [h.value for h in at.subheader]
    table = at.dataframe[0].value
    s = Session.open(app_env / "sim")
    pool = s.load_pool()
    train_ids = pool.pairs["id"].astype(str).to_numpy()[s.split_masks(pool)[0]]
    assert sorted(table["id"]) == sorted(train_ids[rows])
    assert (table["round"] == -1).all()
    # BALD in significant digits (issue 11 item 8): what the browser shows is format_sig's text, never 0.0000
    import pyarrow as pa

    from balpm.render import format_sig

    styler = at.dataframe[0].proto.arrow_data.styler
    assert styler.display_values, "the selection table is not styled"
    shown = pa.ipc.open_stream(styler.display_values).read_all().to_pandas()
    shown.columns = list(table.columns)
    assert shown["BALD"].tolist() == [format_sig(v, 2) or "–" for v in table["BALD"]]


def test_feature_space_samples_past_max_points(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALPM_MAP_MAX_POINTS", "30")
    at = _page("pages/5_feature_space.py")
    _load_embeddings(at)
    assert any("random sample of 30" in w.value for w in at.warning), [w.value for w in at.warning]
    fig = _figure(at)
    assert sum(_n(t) for t in fig["data"] if t["name"] != "current batch") == 30


# ---------------------------------------------------------------------------------------------- Diagnostics
def test_diagnostics_session_ratio_and_curves(app_env: Path) -> None:
    at = _page("pages/6_diagnostics.py")
    assert not at.error, [e.value for e in at.error]
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    # ratio figure (band + median) and the log-likelihood / accuracy curves of the simulated rounds
    ratio = next(f for f in figs if [t["name"] for t in f["data"]] == ["q25–q75", "median"])
    assert all(0 <= y <= 1 for y in _arr(ratio["data"][1]["y"]))
    curves = [f for f in figs if f["layout"].get("xaxis", {}).get("title", {}).get("text") == "labelled pairs"]
    assert len(curves) == 2
    metrics = Session.open(app_env / "sim").metrics()
    line = next(t for t in curves[0]["data"] if t.get("mode") == "lines+markers")
    assert _arr(line["x"]).tolist() == metrics["n_labeled"].tolist()
    np.testing.assert_allclose(_arr(line["y"]), metrics["log_likelihood"], rtol=1e-9)
    table = next(d.value for d in at.dataframe if "ratio median" in d.value.columns)
    assert len(table) >= 1 and (table["ratio median"].between(0, 1)).all()


def _write_run(folder: Path, policy: str, seed: int, ll: list[float]) -> None:
    folder.mkdir(parents=True)
    rows = [{"dataset": "toy", "policy": policy, "seed": seed, "round": r, "n_labeled": 32 * (r + 1),
             "split": "test", "log_likelihood": v, "accuracy": 0.5 + r / 20, "brier": 0.25, "ece": 0.1,
             "mean_bald": 0.01, "n_eval": 100} for r, v in enumerate(ll)]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    acq = pd.DataFrame({"round": [1, 1, 2, 2], "pick": [0, 1, 0, 1], "id": list("abcd"), "label": [1, 0, 1, 0],
                        "uncertainty": [0.1, 0.2, 0.3, 0.3],
                        "entropy_term": [0.3, 0.2, 0.1, 0.1] if policy == "bal-pm" else [np.nan] * 4,
                        "score": [0.4, 0.4, 0.4, 0.4], "ratio": [0.25, 0.5, 0.75, 0.75]})
    acq.to_csv(folder / "acquired.csv", index=False)
    (folder / "config.json").write_text(json.dumps({"config": {"dataset": "toy", "seed": seed, "policy": policy},
                                                    "policy_label": policy}))


def test_diagnostics_compares_runs_with_labels_saved(app_env: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _write_run(runs / f"random-{seed}", "random", seed, [-0.69, -0.68, -0.67, -0.66])
        _write_run(runs / f"balpm-{seed}", "bal-pm", seed, [-0.69, -0.67, -0.66, -0.65])
    at = _page("pages/6_diagnostics.py")
    at.text_input(key="dg_runs_root").set_value(str(runs / "random-0")).run()  # first one run folder...
    assert at.multiselect(key="dg_runs_chosen").value == [str(runs / "random-0")]
    at.text_input(key="dg_runs_root").set_value(str(runs)).run()  # ...then the folder of all four: all selected
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert len(at.multiselect(key="dg_runs_chosen").value) == 4
    table = next(d.value for d in at.dataframe if "labels_saved" in d.value.columns)
    row = table[(table["policy"] == "bal-pm") & (table["reference"] == "random")].iloc[0]
    # random ends at -0.66 with 128 labels; bal-pm reaches -0.66 at 96 labels: 32 saved (25 %)
    assert row["reached"] and row["labels_needed"] == pytest.approx(96) and row["percent_saved"] == pytest.approx(25)
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    compare = next(f for f in figs if {"random", "bal-pm"} <= {t["name"] for t in f["data"]})
    assert compare
    assert any(t["type"] == "bar" for f in figs for t in f["data"])  # labels-saved bar chart
    ratio = [f for f in figs if [t["name"] for t in f["data"]] == ["q25–q75", "median"]]
    assert ratio and _arr(ratio[-1]["data"][1]["y"]).tolist() == [pytest.approx(0.375), pytest.approx(0.75)]

    at.text_area(key="dg_runs_extra").set_value(str(tmp_path / "nowhere")).run()
    assert any("not a run folder" in w.value for w in at.warning)


def test_diagnostics_learnability_check_on_the_session_labels(app_env: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The Learnability tab: refused below 40 labels (the simulated session has 26); on a session with 60 labels
    *Run the check* shows the verdict, its reasons, the learning-curve figure and the CV table of that session."""
    at = _page("pages/6_diagnostics.py")
    assert at.button(key="dg_check_run").disabled  # 8 + 3 × 6 = 26 labels < MIN_LABELS

    root = tmp_path / "sessions"
    s = Session.create("sixty", SessionConfig.from_settings(**(SMALL | {"mode": "human"})), root=root)
    pool = s.load_pool()
    labelled = [(pid, lab) for pid, lab in zip(pool.ids, pool.labels) if not np.isnan(lab)][:60]
    for pid, lab in labelled:
        s.record(str(pid), "a" if lab == 1 else "b", annotator="ann", shown_swapped=False, request_id=f"r{pid}")
    s.close()
    (root / ".last_session").write_text(str(s.folder))
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(root))
    at = _page("pages/6_diagnostics.py")
    assert not at.button(key="dg_check_run").disabled
    at.button(key="dg_check_run").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    verdicts = [h.value for h in at.subheader if h.value.startswith("Verdict: ")]
    from balpm.check import VERDICTS

    assert len(verdicts) == 1 and verdicts[0].removeprefix("Verdict: ") in VERDICTS  # 60 labels: most often too few
    models = next(d.value for d in at.dataframe if "gain_se" in d.value.columns)
    assert models["model"].tolist()[:2] == ["preference model", "constant P(A)"]
    fig = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
               if json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "").startswith("verdict: "))
    names = [t["name"] for t in fig["data"]]
    assert names[:3] == ["forecast band (10-90%)", "fitted curve", "preference model"]
    curve = fig["data"][2]
    assert len(_arr(curve["x"])) == 4 and _arr(curve["x"]).max() == pytest.approx(48)  # 4/5 of 60 per fold
    assert any("A/B label(s)" in c.value and "60" in c.value for c in at.caption)
