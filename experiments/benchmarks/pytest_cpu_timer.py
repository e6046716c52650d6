"""A pytest plugin that records each test's CPU time (setup + call + teardown) and wall time.

On a shared machine wall times depend on the load; CPU time (user + system of the test
process and the subprocesses it waited for) much less so. Used by the test-suite timing
recorded in ``results/test_suite.json``:

    PYTHONPATH=.:experiments/benchmarks .venv/bin/python -m pytest -n 0 -p pytest_cpu_timer \\
        --cpu-timer-out=experiments/benchmarks/results/test_suite_raw.json

Written by hand: pytest's ``--durations`` reports wall time only.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import pytest

_TIMES: dict[str, dict[str, float]] = {}


def pytest_addoption(parser):
    parser.addoption("--cpu-timer-out", default=None, help="write per-test CPU and wall seconds to this JSON file")


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall, load = _cpu(), time.perf_counter(), os.getloadavg()[0]
    yield
    _TIMES[item.nodeid] = {"cpu_s": round(_cpu() - cpu, 2), "wall_s": round(time.perf_counter() - wall, 2),
                           "load": round(load, 2), "skipped": any(m.name == "skip" for m in item.iter_markers())}
    out = item.config.getoption("--cpu-timer-out")
    if out:  # one line per test as it finishes, so that an interrupted run still tells something
        with open(f"{out}.lines", "a") as lines:
            lines.write(json.dumps({"test": item.nodeid, **_TIMES[item.nodeid]}) + "\n")


def pytest_sessionfinish(session, exitstatus):
    out = session.config.getoption("--cpu-timer-out")
    if not out:
        return
    ran = {k: v for k, v in _TIMES.items()}
    Path(out).write_text(json.dumps({
        "exitstatus": int(exitstatus), "tests": len(ran),
        "cpu_s_total": round(sum(v["cpu_s"] for v in ran.values()), 1),
        "wall_s_total": round(sum(v["wall_s"] for v in ran.values()), 1),
        "per_test": dict(sorted(ran.items(), key=lambda kv: -kv[1]["cpu_s"])),
    }, indent=1) + "\n")
