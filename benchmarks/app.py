"""App speed on the full HH-RLHF harmless-base split: what a person waits for.

Measures, on one machine, with the default embedding model:

1. first embedding of the pool (cold disk cache; model load counted separately): goal < 3 min;
2. one Step (fit + score + select, as the Acquire page's button) after 32 and after 64 labels: goal < 10 s;
3. a page switch after the first load, in a real browser (Chromium via Playwright): goal < 1 s;
4. label key press (and click) → next pair on screen, timed inside the page: goal < 200 ms.

Writes the numbers, the command and the machine (with its load average: the dev machines are shared) into the
"App speed" section of ``benchmarks/README.md``.

    python benchmarks/app.py                 # everything (about 5-10 minutes on 2 CPU cores)
    python benchmarks/app.py --no-browser    # engine timings only
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import cpu_model  # benchmarks/_common.py (run as python benchmarks/<name>.py)

REPO = Path(__file__).resolve().parents[1]
README = Path(__file__).resolve().parent / "README.md"
SECTION = "## App speed"
INTRO = """\
`benchmarks/app.py`: what a person waits for in the app on the full HH-RLHF harmless-base split with the default
embedding model. Engine timings call what the pages call (`embed_pool` with a cold cache, `Session.propose` =
fit + score + select); browser timings drive `streamlit run app.py` with Debian's Chromium (Playwright), from the
click or key press to the new content on screen with the script finished. The dev machines are shared: the load
average is printed with each block.
"""
PAGES = ["Pool", "Embed", "Acquire", "Label", "Feature space", "Diagnostics"]
# Latency as the page sees it: from the key press or pointer press (capture phase, before Streamlit handles it) to
# the moment the next pair's id is in the DOM; Playwright's own round trips are not in it.
IN_PAGE_LATENCY_JS = """() => {
  window.__balpmLatency = []; let t0 = null;
  const mark = () => { t0 = performance.now(); };
  document.addEventListener('keydown', mark, true);
  document.addEventListener('pointerdown', mark, true);
  const main = document.querySelector("[data-testid='stMain']");
  const shown = () => { const m = main.textContent.match(/Pair ([0-9a-f]{16})/); return m && m[1]; };
  let last = shown();
  new MutationObserver(() => {
    const id = shown();
    if (id && id !== last) { if (t0 !== null) { window.__balpmLatency.push(performance.now() - t0); t0 = null; } last = id; }
  }).observe(main, {subtree: true, childList: true, characterData: true});
}"""


def _browser_kit() -> Any:
    """The browser helpers of tests/test_app_browser.py (one implementation for the test and the benchmark)."""
    spec = importlib.util.spec_from_file_location("balpm_browser_kit", REPO / "tests" / "test_app_browser.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def machine() -> dict[str, str]:
    import torch

    return {"cpu": cpu_model(), "cores": str(os.cpu_count()), "torch": torch.__version__,
            "torch threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def load() -> str:
    try:
        return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def engine(args: argparse.Namespace, root: Path) -> tuple[list[tuple[str, float, str, str]], Any]:
    """Embedding and Step timings; returns table rows and the session (ready for the browser part)."""
    from balpm.embed import Embedder, embed_pool
    from balpm.session import Session, SessionConfig

    rows: list[tuple[str, float, str, str]] = []
    sessions = root / "sessions"
    cfg = SessionConfig.from_settings(dataset=args.pool, max_pairs=None, mode="human", batch_size=args.batch_size)
    s = Session.create("bench", cfg, root=sessions)
    (sessions / ".last_session").write_text(str(s.folder))
    pool = s.load_pool()
    print(f"pool {args.pool}: {len(pool)} pairs", flush=True)

    t0 = time.perf_counter()
    embedder = Embedder(cfg.embedding.embedding_model, max_length=cfg.embedding.max_length,
                        batch_size=cfg.embedding.embed_batch_size)
    embedder.encode(["warm up"])
    t_model = time.perf_counter() - t0
    rows.append(("load embedding model", t_model, "", ""))
    t0 = time.perf_counter()
    emb = embed_pool(pool, embedder, cache_dir=root / "cache")
    t_embed = time.perf_counter() - t0
    rows.append((f"first embedding, {len(pool)} pairs ({emb.stats['texts']} texts, cold cache)", t_embed,
                 "< 180 s", "yes" if t_embed < 180 else "NO"))
    print(rows[-1], flush=True)
    t0 = time.perf_counter()
    embed_pool(pool, embedder, cache_dir=root / "cache")
    rows.append(("same pool again (disk cache hit)", time.perf_counter() - t0, "", ""))

    learner = s.make_learner(pool, emb, knn_cache_dir=root / "cache" / "knn")
    truth = np.asarray(pool.labels)
    rng = np.random.default_rng(0)
    for n_labels in (32, 64):
        have = s.n_labelled()
        undecided = [i for i in np.flatnonzero(~np.isnan(truth)) if pool.ids[i] not in s.store.decided_ids()]
        for i in rng.choice(undecided, size=n_labels - have, replace=False):
            s.record(str(pool.ids[i]), "a" if truth[i] == 1 else "b", annotator="bench", shown_swapped=False,
                     request_id=f"bench:{pool.ids[i]}", round=learner.last_round_ + 1)
        t0 = time.perf_counter()
        batch = s.propose(learner)
        dt = time.perf_counter() - t0
        t = learner.timings_
        note = ", ".join(f"{k} {v:.2f} s" for k, v in t.items())
        first = " (first: builds the kNN graph)" if n_labels == 32 else ""
        rows.append((f"Step after {n_labels} labels{first}: {len(batch.ids)} picks; {note}", dt, "< 10 s",
                     "yes" if dt < 10 else "NO"))
        print(rows[-1], flush=True)
    s.close()
    return rows, sessions


def browser(args: argparse.Namespace, root: Path, sessions: Path) -> list[tuple[str, float, str, str]]:
    """Page switches and label → next pair, in Chromium against a real server (embeddings in the disk cache)."""
    from playwright.sync_api import sync_playwright

    kit = _browser_kit()
    env = kit.app_env(sessions, root / "cache")
    srv = kit.Server(env, root / "server.log")
    rows: list[tuple[str, float, str, str]] = []
    try:
        srv.wait_ready()
        with sync_playwright() as pw:
            b = kit.launch(pw)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(600_000)
            t0 = time.perf_counter()
            page.goto(srv.url, timeout=120_000)
            page.wait_for_selector("[data-testid='stMain'] h1", timeout=120_000)
            kit.wait_idle(page, 300)
            first = {"Pool": time.perf_counter() - t0}
            for name in PAGES[1:]:  # first visits: the Embed page loads the embeddings, Feature space fits UMAP
                first[name] = kit.goto(page, name, timeout=900)
            rows.append(("first load of each page: " + ", ".join(f"{k} {v:.1f} s" for k, v in first.items()),
                         float("nan"), "", ""))
            switches: dict[str, list[float]] = {p: [] for p in PAGES}
            for _ in range(args.repeats):
                for name in PAGES:
                    switches[name].append(kit.goto(page, name, timeout=120))
            allv = [v for vs in switches.values() for v in vs]
            med = statistics.median(allv)
            rows.append((f"page switch after first load: median of {len(allv)} (" + ", ".join(
                f"{k} {statistics.median(v):.2f}" for k, v in switches.items()) + f"; max {max(allv):.2f} s)",
                med, "< 1 s", "yes" if med < 1 else "NO"))
            print(rows[-1], flush=True)

            kit.open_label(page, srv.url)  # a fresh page load, as a person starting to label
            kit.set_annotator(page, "bench")
            kit.wait_text(page, r"Pair \d+ of \d+", timeout=120)
            page.evaluate(IN_PAGE_LATENCY_JS)
            for how, click in (("key press", False), ("click", True)):
                page.evaluate("window.__balpmLatency = []")
                outside = [kit.press_label(page, k, click=click)[2] for k in ("a", "b") * (args.labels // 2)]
                inside = [v / 1000 for v in page.evaluate("window.__balpmLatency.slice()")]
                med = statistics.median(inside)
                rows.append((
                    f"label {how} → next pair in the page ({'keydown' if not click else 'pointerdown'} to the new "
                    f"pair id in the DOM): median of {len(inside)} (p90 {np.quantile(inside, 0.9) * 1000:.0f} ms, "
                    f"max {max(inside) * 1000:.0f} ms); seen from Python through Playwright: median "
                    f"{statistics.median(outside) * 1000:.0f} ms", med, "< 0.2 s", "yes" if med < 0.2 else "NO"))
                print(rows[-1], flush=True)
            b.close()
    finally:
        srv.stop()
    return rows


def block(rows: list[tuple[str, float, str, str]], info: dict[str, str], command: str, loads: tuple[str, str]) -> str:
    lines = [f"### CPU ({info['cores']} cores), {time.strftime('%Y-%m-%d')}", "",
             f"Command: `{command}`", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".", "",
             f"Load average (1/5/15 min) at start {loads[0]}, at end {loads[1]} (other engineers' jobs share the "
             "CPU; numbers move with it).", "",
             "| what | seconds | goal | met |", "|---|---:|---|---|"]
    for what, sec, goal, met in rows:
        lines.append(f"| {what} | {'' if not np.isfinite(sec) else f'{sec:.2f}'} | {goal} | {met} |")
    return "\n".join(lines) + "\n"


def write_readme(path: Path, body: str) -> None:
    """Replace the App speed section (only it), adding it at the end if missing."""
    text = path.read_text() if path.exists() else "# balpm benchmarks\n"
    new = SECTION + "\n\n" + INTRO + "\n" + body
    start = text.find(SECTION + "\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + new)
        return
    m = re.compile(r"^(## |<!-- )", re.M).search(text, start + len(SECTION))  # next section or generated block
    end = m.start() if m else len(text)
    path.write_text(text[:start] + new + ("\n" + text[end:] if m else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", default="hh-rlhf:harmless-base")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="rounds over all pages for the switch timing")
    p.add_argument("--labels", type=int, default=12,
                   help="labels given per input (key, then click) for the → next pair timing; both fit in one batch")
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--readme", type=Path, default=README)
    p.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    command = "python benchmarks/app.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    loads0 = load()
    with tempfile.TemporaryDirectory(prefix="balpm-app-bench-") as d:
        root = Path(d)
        os.environ["BALPM_CACHE_DIR"] = str(root / "cache")
        rows, sessions = engine(args, root)
        if not args.no_browser:
            rows += browser(args, root, sessions)
    body = block(rows, machine(), command.strip(), (loads0, load()))
    print(body)
    if not args.no_readme:
        write_readme(args.readme, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
