"""The real app in a real browser: ``streamlit run app.py`` driven by Debian's Chromium through Playwright.

What only a browser shows: keyboard shortcuts, what the page acknowledges versus what is on disk, and survival of
a server restart or a ``kill -9`` mid-labelling. Every page is screenshotted into ``tests/artifacts/`` (gitignored)
for a person to look at.

Never downloads a browser: ``/usr/bin/chromium`` (Debian package) or the test is skipped. Every wait is bounded
and every server is stopped by a fixture finalizer. The helpers here are reused by ``benchmarks/app.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("BALPM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DWELL_S = 0.45  # a little over the Label page's default 0.3 s guard against held keys
PAIR_RE = re.compile(r"Pair ([0-9a-f]{16})")
PAIRS = 120  # a harmless-base subset: every prompt is its own group, so exactly this many pairs

pytestmark = pytest.mark.browser


# ---------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``streamlit run app.py`` subprocess (the process itself, so ``kill -9`` hits the server)."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None,
                 address: str | None = "127.0.0.1") -> None:
        """``address=None`` leaves the listening address to ``.streamlit/config.toml`` (what a user gets)."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        where = ["--server.address", address] if address else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
             "--server.port", str(self.port), *where, "--browser.gatherUsageStats",
             "false", "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}: see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"streamlit not healthy after {timeout:.0f} s: see {self.log}")

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log_file.close()


def app_env(sessions: Path, cache: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BALPM_SESSIONS_DIR=str(sessions), BALPM_CACHE_DIR=str(cache), PYTHONUNBUFFERED="1",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **extra)
    env.setdefault("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
    return env


# ---------------------------------------------------------------------------------------------- page helpers
def main_text(page: Any) -> str:
    return page.locator("[data-testid='stMain']").inner_text(timeout=10_000)


def wait_idle(page: Any, timeout: float = 60.0) -> None:
    """Until the script (or fragment) run has finished: the app root says ``notRunning``."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout * 1000)


def wait_text(page: Any, pattern: str, timeout: float = 60.0) -> None:
    """Until the main area's text matches ``pattern`` (a regex), bounded."""
    page.wait_for_function(
        "([p]) => { const m = document.querySelector(\"[data-testid='stMain']\");"
        " return m && new RegExp(p).test(m.innerText); }", arg=[pattern], timeout=timeout * 1000, polling="raf")


def goto(page: Any, title: str, timeout: float = 120.0) -> float:
    """Click a page in the sidebar navigation; seconds until its title shows and its script has finished."""
    t0 = time.perf_counter()
    page.locator("[data-testid='stSidebarNavLink']", has_text=title).first.click(timeout=10_000)
    page.wait_for_function(
        "([t]) => { const h = document.querySelector(\"[data-testid='stMain'] h1\");"
        " const app = document.querySelector(\"[data-testid='stApp']\");"
        " return h && h.innerText.trim() === t && app && app.dataset.testScriptState === 'notRunning'; }",
        arg=[title], timeout=timeout * 1000, polling="raf")
    return time.perf_counter() - t0


def open_label(page: Any, url: str) -> None:
    """Open the app at its entry page, then go to Label through the sidebar, as a person finding it would
    (``test_deep_link_on_a_fresh_server_runs_the_router`` covers opening ``/label`` directly)."""
    page.goto(url, timeout=60_000)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    wait_idle(page)
    goto(page, "Label")


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def current_pair(page: Any) -> str | None:
    m = PAIR_RE.search(main_text(page))
    return m.group(1) if m else None


def set_annotator(page: Any, name: str) -> None:
    """Type the annotator name in the Label page's name form and press Enter; wait until the page shows it."""
    box = page.locator("[data-testid='stMain']").get_by_label("Annotator name")
    box.fill(name)
    box.press("Enter")
    wait_text(page, "Labelling as " + re.escape(name), timeout=60)
    wait_idle(page)


BUTTONS = {"a": "A is better", "b": "B is better", "t": "Tie", "s": "Skip"}


def press_label(page: Any, key: str, timeout: float = 60.0, *, click: bool = False) -> tuple[str, str, float]:
    """Press a shortcut (or click its button) on the shown pair; wait until the page acknowledges it and shows
    the next pair.

    Returns (labelled pair id, next pair id or "", seconds from key press / click to the next pair on screen).
    """
    before = current_pair(page)
    assert before, "no pair on screen"
    button = page.locator("[data-testid='stMain']").get_by_role("button", name=BUTTONS[key]).first if click else None
    time.sleep(DWELL_S)
    t0 = time.perf_counter()
    if button is not None:
        button.click()
    else:
        page.keyboard.press(key)
    try:
        page.wait_for_function(
        "([old]) => { const m = document.querySelector(\"[data-testid='stMain']\"); if (!m) return false;"
        " const t = m.innerText; const p = t.match(/Pair ([0-9a-f]{16})/);"
            " return t.includes('Saved:') && t.includes(old) && (!p || p[1] !== old) || /Batch of round|decided/.test(t); }",
            arg=[before], timeout=timeout * 1000, polling="raf")
    except Exception:
        shoot(page, f"failed_label_{key}")
        raise
    dt = time.perf_counter() - t0
    wait_idle(page, timeout)
    return before, current_pair(page) or "", dt


def launch(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    pw = sync_api.sync_playwright().start()
    b = launch(pw)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def embed_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the module: the second test's embedding is a disk-cache hit."""
    return tmp_path_factory.mktemp("browser-cache")


@pytest.fixture()
def servers() -> Iterator[list[Server]]:
    """Every server a test starts is stopped, whatever happens."""
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


def _start(servers: list[Server], env: dict[str, str], log: Path) -> Server:
    s = Server(env, log)
    servers.append(s)
    s.wait_ready()
    return s


def _store_labels(session_dir: Path) -> Any:
    from balpm.store import LabelStore

    with LabelStore(session_dir / "labels.sqlite") as store:
        return store.active_labels(), store.events()


def _labelling_session(servers: list[Server], tmp_path: Path, embed_cache: Path, name: str,
                       **env: str) -> tuple[Any, Server, dict[str, str]]:
    """A human session on a PAIRS-pair harmless-base subset, made the last-opened one, and a server on it."""
    from balpm.session import Session, SessionConfig

    sessions = tmp_path / "sessions"
    s = Session.create(name, SessionConfig.from_settings(dataset="hh-rlhf:harmless-base", max_pairs=PAIRS,
                                                         max_length=64, batch_size=16, mode="human"), root=sessions)
    (sessions / ".last_session").write_text(str(s.folder))
    s.close()
    server_env = app_env(sessions, embed_cache, BALPM_DATA_DIR="none", **env)
    return s, _start(servers, server_env, tmp_path / "server1.log"), server_env


def _start_labelling(page: Any, url: str, annotator: str) -> None:
    """Open Label, give the annotator name, propose the first batch and wait for its first pair."""
    open_label(page, url)
    set_annotator(page, annotator)
    page.locator("[data-testid='stMain']").get_by_role("button", name="Propose a batch").first.click()
    wait_text(page, r"Pair 1 of \d+", timeout=600)  # embeds (disk cache) and draws the random first batch
    wait_idle(page)


# ---------------------------------------------------------------------------------------------- tests
def test_label_by_hand_undo_restart_and_screenshots(page: Any, servers: list[Server], tmp_path: Path,
                                                    embed_cache: Path) -> None:
    from balpm.session import Session

    sessions = tmp_path / "sessions"
    env = app_env(sessions, embed_cache, BALPM_DATA_DIR="none")
    srv = _start(servers, env, tmp_path / "server1.log")
    page.goto(srv.url, timeout=60_000)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    wait_idle(page)

    # Pool: the built-in harmless-base split, a small subset
    main = page.locator("[data-testid='stMain']")
    main.get_by_label(re.compile(r"^Max pairs")).fill(str(PAIRS))
    main.get_by_role("button", name="Load pool").click()
    wait_text(page, rf"Pairs\s*\n?\s*{PAIRS}\b", timeout=60)
    wait_idle(page)
    shoot(page, "1_pool")

    # Embed (short texts keep this test quick on a shared CPU)
    goto(page, "Embed")
    main.get_by_label("Max length (tokens)").fill("64")
    main.get_by_role("button", name="Embed pool").click()
    wait_text(page, rf"Embedded {PAIRS} pairs", timeout=600)
    wait_idle(page)
    shoot(page, "2_embed")

    # Acquire: Step proposes the first (random) batch
    goto(page, "Acquire")
    main.get_by_role("button", name=re.compile("^Step")).click()
    wait_text(page, r"Proposed batch: round 0", timeout=300)
    wait_idle(page)
    shoot(page, "3_acquire")

    # Label three pairs with the keyboard (A, B, A), then undo the last one (U)
    goto(page, "Label")
    set_annotator(page, "tester")
    wait_text(page, r"Pair 1 of \d+", timeout=60)
    shoot(page, "4_label")
    done = [press_label(page, k) for k in ("a", "b", "a")]
    labelled = [d[0] for d in done]
    assert len(set(labelled)) == 3
    time.sleep(DWELL_S)
    page.keyboard.press("u")
    wait_text(page, rf"Undid the label of pair {labelled[2]}", timeout=30)
    wait_idle(page)
    assert current_pair(page) == labelled[2], "the undone pair is shown again"
    shoot(page, "4_label_after_undo")

    active, events = _store_labels(sessions / "demo")
    assert sorted(active["pair_id"]) == sorted(labelled[:2])
    assert len(events) == 3 and int(events["undone"].sum()) == 1
    s = Session.open(sessions / "demo")
    for pid, key in zip(labelled[:2], ("a", "b")):  # the key names the side shown; the store the pool's side
        swapped = s.side_swapped(pid)
        want = {"a": "b" if swapped else "a", "b": "a" if swapped else "b"}[key]
        row = active[active["pair_id"] == pid].iloc[0]
        assert row["verdict"] == want and row["annotator"] == "tester" and bool(row["shown_swapped"]) == swapped
    s.close()

    # the two plot pages
    goto(page, "Feature space", timeout=300)
    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=120_000)
    assert "Hover a point" in main_text(page)
    time.sleep(1.0)  # WebGL draw
    shoot(page, "5_feature_space")
    goto(page, "Diagnostics")
    shoot(page, "6_diagnostics")

    # restart the server: the two remaining labels are on the page and in the store
    srv.stop()
    srv2 = _start(servers, env, tmp_path / "server2.log")
    open_label(page, srv2.url)
    wait_text(page, r"\b2 labelled in total", timeout=120)
    page.wait_for_function(  # the sidebar's count, read from the store by the new server
        "() => { const s = document.querySelector(\"[data-testid='stSidebarUserContent']\");"
        " return s && /Labelled:\\s*2 pairs/.test(s.innerText); }", timeout=60_000, polling="raf")
    assert current_pair(page) not in labelled[:2]
    active, _ = _store_labels(sessions / "demo")
    assert sorted(active["pair_id"]) == sorted(labelled[:2])
    shoot(page, "4_label_after_restart")


def test_kill9_mid_labelling_keeps_every_acknowledged_label(page: Any, servers: list[Server], tmp_path: Path,
                                                            embed_cache: Path) -> None:
    s, srv, env = _labelling_session(servers, tmp_path, embed_cache, "crash")
    _start_labelling(page, srv.url, "crash-tester")

    acknowledged: list[str] = []
    for key in ("a", "b", "a", "b"):
        pid, _, _ = press_label(page, key)
        acknowledged.append(pid)
    # one more press, and the server dies before (or while) it answers
    in_flight = current_pair(page)
    time.sleep(DWELL_S)
    page.keyboard.press("a")
    time.sleep(0.05)
    srv.kill9()

    active, _ = _store_labels(s.folder)
    stored = set(active["pair_id"])
    assert set(acknowledged) <= stored, f"acknowledged but lost: {set(acknowledged) - stored}"
    assert stored <= set(acknowledged) | {in_flight}  # nothing else, and never twice (unique index)

    srv2 = _start(servers, env, tmp_path / "server2.log")
    open_label(page, srv2.url)
    wait_text(page, rf"\b{len(stored)} labelled in total", timeout=120)
    active2, _ = _store_labels(s.folder)
    assert set(active2["pair_id"]) == stored
    assert current_pair(page) not in stored
    shoot(page, "4_label_after_kill9")


def test_deep_link_on_a_fresh_server_runs_the_router(page: Any, servers: list[Server], tmp_path: Path,
                                                    embed_cache: Path) -> None:
    """A bookmark of /label opened on a just-started server shows the Label page inside the app's router, with
    the session sidebar (Streamlit alone would run pages/4_label.py without app.py)."""
    env = app_env(tmp_path / "sessions", embed_cache, BALPM_DATA_DIR="none")
    srv = _start(servers, env, tmp_path / "server.log")
    page.goto(f"{srv.url}/label", timeout=60_000)
    page.wait_for_function(
        "() => { const s = document.querySelector(\"[data-testid='stSidebarUserContent']\");"
        " return s && /Session:/.test(s.innerText); }", timeout=120_000, polling="raf")
    wait_idle(page)
    assert page.locator("[data-testid='stMain'] h1").first.inner_text() == "Label"
    links = page.locator("[data-testid='stSidebarNavLink']").all_inner_texts()
    assert any("Feature space" in t for t in links)
    assert not any(t.strip().lower() == "app" for t in links)  # the file-name navigation of pages/ is not used
    assert page.url.endswith("/label")
    # a private app: no Deploy button (client.toolbarMode = "viewer"), even for a browser on this machine
    assert page.get_by_role("button", name="Deploy").count() == 0


def test_two_tabs_on_one_session_never_duplicate_or_lose_a_label(page: Any, servers: list[Server], tmp_path: Path,
                                                                 embed_cache: Path) -> None:
    """Two tabs show the same pair; the first verdict wins, the stale tab is told so and moves on."""
    s, srv, _ = _labelling_session(servers, tmp_path, embed_cache, "tabs")
    tab1, tab2 = page, page.context.new_page()
    _start_labelling(tab1, srv.url, "tab-one")
    open_label(tab2, srv.url)
    set_annotator(tab2, "tab-two")
    wait_text(tab2, r"Pair 1 of \d+", timeout=120)
    first = current_pair(tab1)
    assert first and current_pair(tab2) == first  # both tabs show the batch's first pair

    labelled, _, _ = press_label(tab1, "a")  # tab one decides it
    assert labelled == first
    time.sleep(DWELL_S)
    tab2.keyboard.press("b")  # tab two still shows it and answers too
    wait_text(tab2, rf"That pair \({first}\) was already labelled", timeout=60)
    wait_idle(tab2)
    second = current_pair(tab2)
    assert second and second != first

    labelled2, _, _ = press_label(tab2, "a")  # now tab two is first on the next pair; tab one is stale
    assert labelled2 == second
    assert current_pair(tab1) == second  # tab one moved on to the same next pair, and is now the stale one
    time.sleep(DWELL_S)
    tab1.keyboard.press("b")
    wait_text(tab1, rf"That pair \({second}\) was already labelled", timeout=60)

    active, events = _store_labels(s.folder)
    assert sorted(active["pair_id"]) == sorted([first, second]) and active["pair_id"].is_unique
    by_pair = dict(zip(active["pair_id"], active["annotator"]))
    assert by_pair == {first: "tab-one", second: "tab-two"}
    assert len(events) == 2  # the stale tabs' answers wrote nothing


def test_held_key_and_double_click_record_one_label_each(page: Any, servers: list[Server], tmp_path: Path,
                                                         embed_cache: Path) -> None:
    """Key auto-repeat (a press every 40 ms for 0.4 s) and a double click each record exactly one label."""
    s, srv, _ = _labelling_session(servers, tmp_path, embed_cache, "held",
                                   BALPM_LABEL_DWELL_S="0.3")  # the default guard, whatever this shell sets
    _start_labelling(page, srv.url, "holder")

    held = current_pair(page)
    time.sleep(DWELL_S)
    for _ in range(10):  # what a held key sends: repeated keydowns
        page.keyboard.press("a")
        time.sleep(0.04)
    time.sleep(1.0)
    wait_idle(page)
    active, events = _store_labels(s.folder)
    assert active["pair_id"].tolist() == [held] and len(events) == 1

    clicked = current_pair(page)
    assert clicked and clicked != held
    time.sleep(DWELL_S)
    page.locator("[data-testid='stMain']").get_by_role("button", name="B is better").first.dblclick()
    time.sleep(1.0)
    wait_idle(page)
    active, events = _store_labels(s.folder)
    assert sorted(active["pair_id"]) == sorted([held, clicked]) and len(events) == 2
    assert current_pair(page) not in (held, clicked)


# ---------------------------------------------------------------------------------------------- a private server
def _listening_addresses(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of the sockets in state LISTEN on ``port``, read from /proc/net/tcp and tcp6 (Linux)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            hex_addr, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(hex_addr)  # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(ipaddress.ip_address(raw) if width == 8 else ipaddress.IPv6Address(raw))
    return found


def _non_loopback_local_ip() -> str | None:
    """An address of this machine that is not loopback, or None (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ipaddress.ip_address(ip).is_loopback else ip


def test_default_server_listens_on_loopback_only(servers: list[Server], tmp_path: Path, embed_cache: Path) -> None:
    """``streamlit run app.py`` with the repository's config answers on 127.0.0.1 and nowhere else (issue 10,
    case 12): the Pool page's Path box reads the server's files, so the default must be a private server."""
    if not Path("/proc/net/tcp").is_file():
        pytest.skip("needs Linux /proc/net/tcp to list listening sockets")
    env = app_env(tmp_path / "sessions", embed_cache, BALPM_DATA_DIR="none")
    srv = Server(env, tmp_path / "server.log", address=None)
    servers.append(srv)
    srv.wait_ready()  # answers on 127.0.0.1
    addresses = _listening_addresses(srv.port)
    assert addresses, f"no listening socket found on port {srv.port}"
    exposed = [a for a in addresses if not (a.is_loopback or (a.version == 6 and a.ipv4_mapped is not None
                                                               and a.ipv4_mapped.is_loopback))]
    assert not exposed, f"listening on {exposed} (every interface): set server.address in .streamlit/config.toml"
    other = _non_loopback_local_ip()
    if other is not None:  # this machine's own non-loopback address: the connection must be refused
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(5)
            s.connect((other, srv.port))


def test_config_hides_developer_options_and_tracebacks() -> None:
    """The browser gets no Deploy button and no traceback; errors go to the server's log (issue 10, case 12)."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "localhost"
    assert config["client"]["toolbarMode"] == "viewer"  # no Deploy, Rerun or Clear cache in the menu
    assert config["client"]["showErrorDetails"] in ("type", "none")  # no message or traceback in the browser


# ---------------------------------------------------------------------------------------------- user strings are text
@pytest.fixture()
def pixel_server() -> Iterator[tuple[str, list[str]]]:
    """A local http.server on 127.0.0.1 standing in for a tracker: (its pixel URL, the paths it was asked for)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    hits: list[str] = []

    class Pixel(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/pixel.png", hits
    httpd.shutdown()
    httpd.server_close()


def test_markdown_in_ids_names_and_files_is_never_fetched(page: Any, servers: list[Server], tmp_path: Path,
                                                          embed_cache: Path,
                                                          pixel_server: tuple[str, list[str]]) -> None:
    """A pair id, an annotator name and a file name holding a Markdown image are shown as text: the browser
    never requests the image's URL (issue 10, case 5), on the Label page (caption, flash messages), the sidebar
    and the Pool page."""
    from balpm.session import Session, SessionConfig

    url, hits = pixel_server
    data = tmp_path / "![f](pixel.png).jsonl"
    rows = [{"id": f"x`![x]({url}?id={i})`", "prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No."}
            for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    sessions = tmp_path / "sessions"
    s = Session.create("evil", SessionConfig.from_settings(dataset=str(data), max_pairs=None, mode="human"),
                       root=sessions)
    s.set_batch(pd.DataFrame({"id": [r["id"] for r in rows[:3]]}))
    (sessions / ".last_session").write_text(str(s.folder))
    s.close()
    srv = _start(servers, app_env(sessions, embed_cache, BALPM_DATA_DIR="none"), tmp_path / "server.log")
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    open_label(page, srv.url)
    set_annotator(page, f"![n]({url}?name)")
    wait_text(page, r"Pair 1 of 3", timeout=120)
    texts = [main_text(page)]
    time.sleep(DWELL_S)
    page.keyboard.press("a")
    wait_text(page, "Saved:", timeout=60)
    wait_idle(page)
    texts.append(main_text(page))
    time.sleep(DWELL_S)
    page.keyboard.press("u")
    wait_text(page, "Undid the label", timeout=60)
    wait_idle(page)
    texts.append(main_text(page))
    sidebar = page.locator("[data-testid='stSidebarUserContent']").inner_text()
    goto(page, "Pool")
    time.sleep(1.0)  # any image the page holds would have been requested by now
    shoot(page, "user_strings_as_text")
    assert not [u for u in requested if "pixel.png" in u], requested
    assert hits == []
    # and each string is shown, character for character
    assert f"Pair {rows[0]['id']}" in texts[0]
    assert f"Saved: left is better (pair {rows[0]['id']})" in texts[1]
    assert f"Undid the label of pair {rows[0]['id']}" in texts[2]
    assert data.name in sidebar and data.name in main_text(page)


# ---------------------------------------------------------------------------------------------- who gave the label
def _tiny_session(sessions: Path, name: str, n: int = 8) -> Any:
    """A human session on an ``n``-pair JSONL file with its first six pairs as the current batch (no embedding)."""
    import hashlib

    from balpm.session import Session, SessionConfig

    data = sessions.parent / f"{name}.jsonl"
    rows = [{"id": hashlib.sha256(f"{name}{i}".encode()).hexdigest()[:16], "prompt": f"{name}: question {i}?",
             "chosen": f"Answer {i}.", "rejected": "No."} for i in range(n)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    s = Session.create(name, SessionConfig.from_settings(dataset=str(data), max_pairs=None, mode="human"),
                       root=sessions)
    s.set_batch(pd.DataFrame({"id": [r["id"] for r in rows[:6]]}))
    return s


def _tiny_server(servers: list[Server], tmp_path: Path, embed_cache: Path, shared_data: Path,
                 *names: str) -> tuple[list[Any], Server]:
    """Tiny sessions ``names`` (the first one is the one the app opens) and a server (the default 0.3 s guard)."""
    sessions = tmp_path / "sessions"
    made = [_tiny_session(sessions, n) for n in names]
    (sessions / ".last_session").write_text(str(made[0].folder))
    for s in made:
        s.close()
    env = app_env(sessions, embed_cache, BALPM_DATA_DIR=str(shared_data), BALPM_LABEL_DWELL_S="0.3")
    return made, _start(servers, env, tmp_path / "server.log")


def _name_boxes(page: Any) -> int:
    return page.locator("[data-testid='stMain']").get_by_label("Annotator name").count()


def test_key_right_after_enter_in_the_name_box_never_edits_the_name(page: Any, servers: list[Server],
                                                                    tmp_path: Path, embed_cache: Path,
                                                                    shared_data: Path) -> None:
    """Issue 10, case 1: Enter in the name box, then `A` at once: the name stays "alice" (it became "alicea")
    and no label is ever stored under another name."""
    (s,), srv = _tiny_server(servers, tmp_path, embed_cache, shared_data, "focus")
    open_label(page, srv.url)
    wait_text(page, r"Pair 1 of 6", timeout=60)
    box = page.locator("[data-testid='stMain']").get_by_label("Annotator name")
    box.fill("alice")
    box.press("Enter")
    page.keyboard.press("a")  # the person goes straight on to label
    time.sleep(1.0)
    wait_idle(page)
    shoot(page, "name_then_key")
    text = main_text(page)
    assert "Labelling as alice in session focus" in text, text
    assert _name_boxes(page) == 0, "a name box is left on the page for shortcut keys to type into"
    labelled, _, _ = press_label(page, "a")  # a deliberate press labels under the settled name
    active, events = _store_labels(s.folder)
    assert labelled in set(active["pair_id"])
    assert set(events["annotator"]) == {"alice"}, events[["pair_id", "annotator"]]


def _open_in_sidebar(page: Any, name: str) -> None:
    """Open session ``name`` through the sidebar's Sessions expander, as a person would."""
    side = page.locator("[data-testid='stSidebarUserContent']")
    box = side.get_by_role("combobox", name="Open or resume a session")
    if not box.is_visible():
        side.get_by_text("Sessions", exact=True).click()
    option = page.get_by_role("option", name=name, exact=True)
    for _ in range(5):  # a rerun landing right after the click (a settled name, the live count) can close the list
        wait_idle(page)
        box.click()
        try:
            option.wait_for(state="visible", timeout=10_000)
            break
        except Exception:  # playwright's TimeoutError: open the list again
            page.keyboard.press("Escape")
    option.click()
    side.get_by_role("button", name="Open session").click()
    page.wait_for_function(
        "([n]) => { const s = document.querySelector(\"[data-testid='stSidebarUserContent']\");"
        " return s && s.innerText.includes('Session: ' + n + ' '); }", arg=[name], timeout=60_000, polling="raf")
    wait_idle(page)


def test_switching_sessions_asks_for_the_name_again(page: Any, servers: list[Server], tmp_path: Path,
                                                    embed_cache: Path, shared_data: Path) -> None:
    """Issue 10, case 2: a name given in one session never labels in another the tab switches to; coming back
    shows this tab's name for that session again."""
    (first, other), srv = _tiny_server(servers, tmp_path, embed_cache, shared_data, "first", "other")
    open_label(page, srv.url)
    set_annotator(page, "alice")
    _open_in_sidebar(page, "other")
    wait_text(page, r"Pair 1 of 6", timeout=60)
    shoot(page, "switched_session")
    assert "Labelling as alice" not in main_text(page)
    assert _name_boxes(page) == 1  # asked again
    page.locator("[data-testid='stMain'] h1").first.click()  # focus out of the box: letters are shortcuts
    time.sleep(DWELL_S)
    page.keyboard.press("a")  # no name settled here: nothing is recorded
    time.sleep(1.0)
    wait_idle(page)
    assert len(_store_labels(other.folder)[1]) == 0
    set_annotator(page, "bob")
    press_label(page, "a")
    _open_in_sidebar(page, "first")
    wait_text(page, "Labelling as alice in session first", timeout=60)  # restored for this tab, and shown
    press_label(page, "b")
    assert list(_store_labels(other.folder)[1]["annotator"]) == ["bob"]
    assert list(_store_labels(first.folder)[1]["annotator"]) == ["alice"]


def test_double_press_after_two_undos_records_one_label(page: Any, servers: list[Server], tmp_path: Path,
                                                        embed_cache: Path, shared_data: Path) -> None:
    """Issue 10, case 4: U, U, then A twice 150 ms apart records exactly one new label (the pair that comes
    back into view after the first A gets a fresh dwell window; it kept its first display time)."""
    (s,), srv = _tiny_server(servers, tmp_path, embed_cache, shared_data, "undo")
    open_label(page, srv.url)
    set_annotator(page, "ulla")
    first, _, _ = press_label(page, "a")
    second, _, _ = press_label(page, "b")
    for undone in (second, first):
        time.sleep(DWELL_S)
        page.keyboard.press("u")
        wait_text(page, f"Undid the label of pair {undone}", timeout=60)
        wait_idle(page)
    assert len(_store_labels(s.folder)[0]) == 0 and current_pair(page) == first
    time.sleep(DWELL_S)
    page.keyboard.press("a")
    time.sleep(0.15)
    page.keyboard.press("a")
    time.sleep(1.5)
    wait_idle(page)
    shoot(page, "double_press_after_undo")
    active, events = _store_labels(s.folder)
    assert list(active["pair_id"]) == [first], active[["pair_id", "created_at"]]
    assert len(events) == 3  # two labels undone, one new


# ---------------------------------------------------------------------------------------------- issue 11
def _chat_session(sessions: Path, name: str, pixel: str, n: int = 12, batch: int = 6) -> Any:
    """A human session on an ``n``-pair trl-style file of HH dialogues whose completions hold Markdown, a remote
    image and HTML; its first ``batch`` pairs are the current batch (no embedding needed to label)."""
    from balpm.session import Session, SessionConfig

    rows = [{
        "prompt": f"\n\nHuman: How do I store tomatoes {i}?\n\nAssistant: On the counter, out of the sun."
                  f"\n\nHuman: And once they are cut {i}?\n\nAssistant:",
        "chosen": f" Keep **cut** tomatoes in the fridge, covered {i}.\n\n- wrap them\n- eat them within 2 days",
        "rejected": f" Keep them on the counter {i}. ![pixel]({pixel}?c={i}) <img src='{pixel}?h={i}'> $5",
    } for i in range(n)]
    data = sessions.parent / f"{name}.jsonl"
    sessions.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    s = Session.create(name, SessionConfig.from_settings(dataset=str(data), max_pairs=None, mode="human",
                                                         batch_size=4, max_length=64), root=sessions)
    s.set_batch(pd.DataFrame({"id": [str(i) for i in s.load_pool().ids[:batch]]}))
    (sessions / ".last_session").write_text(str(s.folder))
    return s


def _sidebar_text(page: Any) -> str:
    return page.locator("[data-testid='stSidebarUserContent']").inner_text(timeout=10_000)


def test_chat_label_view_history_edit_and_live_count(page: Any, servers: list[Server], tmp_path: Path,
                                                     embed_cache: Path, pixel_server: tuple[str, list[str]]) -> None:
    """Issue 11 items 4-6 in a browser: the dialogue as chat bubbles and completions as Markdown (bold and lists
    render; the remote image and HTML never load), the differences highlight, the sidebar's count following the
    labels given, `?` showing the shortcuts, and a label changed with a note in the History view."""
    url, hits = pixel_server
    sessions = tmp_path / "sessions"
    s = _chat_session(sessions, "chat", url)
    srv = _start(servers, app_env(sessions, embed_cache, BALPM_DATA_DIR="none"), tmp_path / "server.log")
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    open_label(page, srv.url)
    set_annotator(page, "ann")
    wait_text(page, r"Pair 1 of 6", timeout=120)
    main = page.locator("[data-testid='stMain']")
    assert main.locator("[data-testid='stChatMessage']").count() == 5  # 3 dialogue turns + the two completions
    assert main.locator("strong", has_text="cut").count() == 1  # Markdown renders ...
    assert main.locator("li", has_text="wrap them").count() == 1
    assert main.locator("img").count() == 0  # ... but no image, and the HTML shows as text
    assert "<img src=" in main_text(page) and "$5" in main_text(page)
    shoot(page, "label_chat_view")

    main.get_by_text("Highlight differences").click()
    wait_idle(page)
    page.wait_for_function("() => [...document.querySelectorAll(\"[data-testid='stMain'] span\")]"
                           ".some(e => /fridge|counter/.test(e.innerText) && getComputedStyle(e).backgroundColor"
                           " !== 'rgba(0, 0, 0, 0)')", timeout=30_000, polling="raf")
    shoot(page, "label_chat_diff")
    main.get_by_text("Highlight differences").click()
    wait_idle(page)
    # no click elsewhere: the toggle gives the focus back, so the shortcut keys work at once

    done = [press_label(page, k) for k in ("a", "b")]
    page.wait_for_function(  # the sidebar is outside the Label page's fragment: it follows on its own
        "() => /Labelled:\\s*2 pairs/.test(document.querySelector(\"[data-testid='stSidebarUserContent']\")"
        ".innerText)", timeout=30_000, polling="raf")

    page.evaluate("document.activeElement && document.activeElement.blur()")  # focus on the page, not a widget
    page.keyboard.press("Shift+Slash")  # '?'
    wait_text(page, "show or hide this list", timeout=30)
    wait_idle(page)
    shoot(page, "label_shortcuts")

    # History: change the FIRST label (not the last) to the other side, with a note
    main.get_by_text("History: change or withdraw a label").click()
    wait_text(page, r"2 of 2 labels, newest first", timeout=60)
    wait_idle(page)
    main.locator("[data-testid='stSelectbox']").filter(has_text="Label to change").locator("input").click()
    page.get_by_role("option", name=re.compile(re.escape(done[0][0]))).click()
    wait_text(page, "shown as you saw it", timeout=60)
    wait_idle(page)
    main.get_by_role("radiogroup", name="Your choice").get_by_text("Right is better").click()
    wait_idle(page)
    note = main.get_by_label("Note (optional)")
    note.fill("the left one ignores the cut")
    note.press("Enter")
    wait_idle(page)
    main.get_by_role("button", name="Save change").click()
    wait_text(page, "Changed: Right is better", timeout=60)
    wait_idle(page)
    shoot(page, "label_history_edit")

    active, events = _store_labels(s.folder)
    changed = events[events["supersedes"].notna()]
    assert len(changed) == 1 and changed["pair_id"].iloc[0] == done[0][0]
    swapped = s.side_swapped(done[0][0])
    assert changed["verdict"].iloc[0] == ("a" if swapped else "b")
    assert changed["note"].iloc[0] == "the left one ignores the cut"
    assert len(active) == 2 and len(events) == 3  # one active label per pair, the first verdict kept
    assert not [u for u in requested if "pixel.png" in u], requested
    assert hits == []


def test_step_asks_before_replacing_a_batch_and_the_caption_follows_labels(page: Any, servers: list[Server],
                                                                          tmp_path: Path, embed_cache: Path,
                                                                          pixel_server: tuple[str, list[str]]
                                                                          ) -> None:
    """Issue 11 items 6-7: Acquire offers Embed now; its caption follows labels given elsewhere without a click;
    Step with unlabelled pairs asks, and replaces the batch only when told."""
    url, _ = pixel_server
    sessions = tmp_path / "sessions"
    s = _chat_session(sessions, "acq", url, n=20, batch=4)
    first = s.current_batch()
    srv = _start(servers, app_env(sessions, embed_cache, BALPM_DATA_DIR="none"), tmp_path / "server.log")
    page.goto(srv.url, timeout=60_000)
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    wait_idle(page)
    goto(page, "Acquire")
    main = page.locator("[data-testid='stMain']")
    assert main.get_by_role("button", name=re.compile("^Step")).count() == 0
    main.get_by_role("button", name="Embed now").click()
    wait_text(page, r"0 labelled · next round", timeout=600)
    wait_idle(page)
    s.record(first.ids[0], "a", annotator="other-tab", shown_swapped=False, request_id="elsewhere")
    wait_text(page, r"1 labelled · next round", timeout=30)  # no click: the caption re-reads the store
    wait_text(page, r"3 still to label", timeout=30)
    main.get_by_role("button", name=re.compile("^Step")).click()
    wait_text(page, rf"3 pairs of round {first.round} are unlabelled", timeout=120)
    wait_idle(page)
    shoot(page, "acquire_step_confirm")
    assert s.current_batch().batch_id == first.batch_id
    main.get_by_role("button", name="Replace the batch").click()
    page.wait_for_function("() => !/are unlabelled/.test(document.querySelector(\"[data-testid='stMain']\")"
                           ".innerText)", timeout=300_000, polling="raf")
    wait_idle(page, 300)
    assert s.current_batch().batch_id != first.batch_id
    assert s.store.label_map() == {first.ids[0]: 1}
    shoot(page, "acquire_after_replace")
