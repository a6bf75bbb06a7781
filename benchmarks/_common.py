"""What every benchmark prints about the machine it ran on (imported by the scripts beside it)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# Measurements that need a fresh process (peak memory, cold caches) print one "RESULT {json}" line; the driver
# runs them one by one and collects the dicts.
RESULT_PREFIX = "RESULT "


def print_result(result: dict) -> None:
    """Hand a measurement back to the driver (:func:`run_measurement`)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_measurement(cmd: list[str], label: str) -> dict | None:
    """Run one measurement in its own process; its result dict, or None (with its stderr tail printed)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        print(f"{label} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def write_json(path: str | Path, machine: str, rows: list[dict]) -> None:
    """The rows of a benchmark with the machine line, for later tables."""
    Path(path).write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
