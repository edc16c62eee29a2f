"""Where the suite's time goes: each test's CPU, its own and its servers' (opt-in plugin).

    make test PYTEST_ARGS="-p tests.cpu_report"        # or: pytest -p tests.cpu_report tests/...

Writes test-artifacts/cpu-<worker>.jsonl, one line per test: its id, CPU seconds of the test's
process and of the child processes it started and waited for (real servers, run.py commands,
the browser), and wall seconds. Summed and sorted at the end of the run (the 15 costliest).
CPU, not wall time, is what the suite's workers share on a 2-core machine, and it does not move
with the load the way wall time does.
"""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
_lines = None


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def pytest_configure(config):
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller: no file of an earlier run
        for path in ARTIFACTS.glob("cpu-*.jsonl"):
            path.unlink()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _lines
    if _lines is None:
        ARTIFACTS.mkdir(exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _lines = (ARTIFACTS / f"cpu-{worker}.jsonl").open("w", encoding="utf-8")
    own, children, wall = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), time.monotonic()
    yield
    own = _cpu(resource.RUSAGE_SELF) - own
    children = _cpu(resource.RUSAGE_CHILDREN) - children
    _lines.write(json.dumps({"id": item.nodeid, "cpu": round(own + children, 3), "own": round(own, 3),
                             "wall": round(time.monotonic() - wall, 3)}) + "\n")
    _lines.flush()


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller (or a run without workers) sums every worker's file
    rows = []
    for path in ARTIFACTS.glob("cpu-*.jsonl"):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        return
    rows.sort(key=lambda r: -r["cpu"])
    print(f"\nCPU: {sum(r['cpu'] for r in rows):.0f} s in {len(rows)} tests; the costliest:")
    for r in rows[:15]:
        print(f"  {r['cpu']:7.1f} s cpu {r['wall']:7.1f} s wall  {r['id']}")
