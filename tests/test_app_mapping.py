"""Issue 11 items 2 and 3 in the app: a session remembers its column mapping, the Pool page's mapping form (shown
when a file's layout is not recognised), and the Embed page's *Import vectors* choice.

Files are real pairs of the embedded HH-RLHF sample rewritten into the shapes teams keep (a CSV with their own
column names, a Parquet file of their own vectors); the app runs through its real router (``app.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_app import _app, _button, _shown  # the page-test helpers of tests/test_app.py

from balpm.data import load_pool
from balpm.session import Session, SessionConfig

FIXTURES = Path(__file__).parent / "fixtures"
MAPPING = "prompt=question,completion_a=response_1,completion_b=response_2,label=human_pref"
CORE = ["id", "prompt", "completion_a", "completion_b", "label"]


@pytest.fixture()
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sessions"
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(root))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
    return root


def _real_pairs(n: int = 40) -> pd.DataFrame:
    return load_pool("sample:hh-rlhf:harmless-base").pairs.head(n)[CORE[1:]]


def _mapped_csv(folder: Path, n: int = 40) -> Path:
    """Real pairs under a team's own column names (what the issue's user brought)."""
    path = folder / "team.csv"
    _real_pairs(n).set_axis(["question", "response_1", "response_2", "human_pref"], axis=1).to_csv(path, index=False)
    return path


def _session(root: Path, **settings) -> Session:
    s = Session.create("t", SessionConfig.from_settings(**{"max_pairs": None, "max_length": 32, **settings}),
                       root=root)
    (root / ".last_session").write_text(str(s.folder))
    return s


# ---------------------------------------------------------------------------------------------- session
def test_a_session_remembers_its_column_mapping(sessions: Path, tmp_path: Path) -> None:
    src = _mapped_csv(tmp_path)
    plain = tmp_path / "plain.csv"
    _real_pairs().to_csv(plain, index=False)
    s = _session(sessions, dataset=str(src), columns=MAPPING)
    again = Session.open(s.folder)
    assert again.config.pool.columns == MAPPING
    pd.testing.assert_frame_equal(again.load_pool().pairs[CORE],
                                  Session(s.folder, again.config.with_settings(dataset=str(plain), columns=""))
                                  .load_pool().pairs[CORE])
    assert Session(s.folder, again.config.with_settings(columns="")).pool_identity() != again.pool_identity()
    old = Session.open(FIXTURES / "session_before_issue13")  # written before the field existed: no mapping
    assert old.config.pool.columns == ""


# ---------------------------------------------------------------------------------------------- Pool page
def test_pool_page_asks_for_a_mapping_prefilled_with_guesses_and_saves_it(sessions: Path, tmp_path: Path) -> None:
    src = _mapped_csv(tmp_path)
    s = _session(sessions, dataset="sample:hh-rlhf:harmless-base")
    at = _app()
    at.radio(key="pool_source_kind").set_value("Path").run()
    at.text_input(key="pool_path").set_value(str(src))
    at.number_input(key="pool_max_pairs").set_value(0)
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception
    assert any("unknown record layout" in _shown(e.value) for e in at.error), [e.value for e in at.error]
    assert Session.open(s.folder).config.pool.dataset == "sample:hh-rlhf:harmless-base"  # the good pool is kept
    # the form, pre-filled with guess_columns: prompt=question; the responses are not guessed as A/B
    assert at.selectbox(key="pool_map_prompt").value == "question"
    assert at.selectbox(key="pool_map_chosen").value == "(none)"
    at.selectbox(key="pool_map_completion_a").set_value("response_1")
    at.selectbox(key="pool_map_completion_b").set_value("response_1")  # a slip: one column twice
    _button(at, "Load with this mapping").click()
    at.run()
    assert not at.exception
    assert any("'response_1' is mapped twice" in _shown(e.value) for e in at.error), [e.value for e in at.error]
    assert Session.open(s.folder).config.pool.dataset == "sample:hh-rlhf:harmless-base"
    assert at.selectbox(key="pool_map_completion_a").value == "response_1"  # the form stays, as the user left it
    at.selectbox(key="pool_map_completion_b").set_value("response_2")
    at.selectbox(key="pool_map_label").set_value("human_pref")
    _button(at, "Load with this mapping").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    cfg = Session.open(s.folder).config
    assert (cfg.pool.dataset, cfg.pool.columns) == (str(src), MAPPING)
    assert next(m.value for m in at.metric if m.label == "Pairs") == "40"
    assert any(MAPPING in _shown(c.value) for c in at.caption), [c.value for c in at.caption]  # says the mapping
    _button(at, "Load pool").click()  # reloading the same file keeps its mapping
    at.run()
    assert not at.exception and not at.error and Session.open(s.folder).config.pool.columns == MAPPING


# ---------------------------------------------------------------------------------------------- Embed page
def _vectors_parquet(path: Path, ids, dim: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Vectors as a team would write them (one row per pair id, fixed-length float lists): balpm.vectors' layout."""
    rng = np.random.default_rng(seed)
    views = {k: rng.normal(size=(len(ids), dim)).astype(np.float32) for k in ("prompt", "a", "b")}
    pd.DataFrame({"id": list(ids), **{k: list(v) for k, v in views.items()}}).to_parquet(path)
    return views


def test_embed_page_imports_vectors_and_the_session_uses_them(sessions: Path, tmp_path: Path) -> None:
    s = _session(sessions, dataset="sample:hh-rlhf:harmless-base", max_pairs=40)
    pool = s.load_pool()
    at = _app("pages/2_embed.py")
    at.radio(key="embed_how").set_value("Import vectors").run()
    short = tmp_path / "short.parquet"  # a pair missing: a located error, the session keeps its model
    _vectors_parquet(short, pool.ids[1:])
    at.text_input(key="vectors_path").set_value(str(short))
    _button(at, "Import vectors").click()
    at.run()
    assert not at.exception
    assert any("short.parquet" in _shown(e.value) and "not in the file" in _shown(e.value) for e in at.error), \
        [e.value for e in at.error]
    assert Session.open(s.folder).config.embedding.embedding_model == "default"

    good = tmp_path / "ours.parquet"
    views = _vectors_parquet(good, pool.ids[::-1], seed=1)  # any row order
    at.text_input(key="vectors_path").set_value("")
    at.file_uploader(key="vectors_upload").set_value(("ours.parquet", good.read_bytes(), "application/octet-stream"))
    _button(at, "Import vectors").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    model = Session.open(s.folder).config.embedding.embedding_model
    assert model == "file:vectors/ours.parquet" and (s.folder / "vectors" / "ours.parquet").is_file()
    assert next(m.value for m in at.metric if m.label == "Pairs embedded") == str(len(pool))
    assert any("file:ours.parquet@" in _shown(e.value) for e in at.success), [e.value for e in at.success]

    import appkit  # the session's embeddings are the file's vectors, in the pool's row order

    emb = appkit.cached_embeddings(Session.open(s.folder))
    np.testing.assert_array_equal(emb.a, views["a"][::-1])
    at.switch_page("pages/3_acquire.py").run()  # no embedding work offered: the imported vectors are used
    assert not at.exception and not any(b.label == "Embed now" for b in at.button)
