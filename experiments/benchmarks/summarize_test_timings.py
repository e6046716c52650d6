"""Summarises a test-suite timing (``pytest_cpu_timer.py`` output) into ``results/test_suite.json``.

The default run skips tests marked ``slow``; this adds up, from one timed run, the CPU
and wall time of the tests the default run keeps (collected now, so marks added after the
timed run count), and lists the largest ones.

    PYTHONPATH=. .venv/bin/python experiments/benchmarks/summarize_test_timings.py TIMES.jsonl [NOTE]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "test_suite.json"


def slow_ids() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow", "-p", "no:cacheprovider"],
                         capture_output=True, text=True, timeout=900).stdout
    return {line.strip() for line in out.splitlines() if "::" in line}


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
    note = sys.argv[2] if len(sys.argv) > 2 else ""
    slow = slow_ids()
    kept = [r for r in rows if r["test"] not in slow and not r["skipped"]]
    total = lambda rs, k: round(sum(r[k] for r in rs), 1)  # noqa: E731
    by_dir: dict[str, dict[str, float]] = {}
    for r in kept:
        top = r["test"].split("::")[0].rsplit("/", 1)[0] if "/" in r["test"].split("::")[0] else "."
        entry = by_dir.setdefault(top, {"tests": 0, "cpu_s": 0.0, "wall_s": 0.0})
        entry["tests"] += 1
        entry["cpu_s"] = round(entry["cpu_s"] + r["cpu_s"], 1)
        entry["wall_s"] = round(entry["wall_s"] + r["wall_s"], 1)
    summary = {
        "command": "python -m pytest (README's command; no CI, no PERSONAX_SLOW: slow tests skipped)",
        "target": "default run under 8 minutes on an idle 2-core machine",
        "note": note,
        "timed_tests": len(rows),
        "default_run_tests_timed": len(kept),
        "default_run_cpu_s": total(kept, "cpu_s"),
        "default_run_wall_s_under_load": total(kept, "wall_s"),
        "now_marked_slow_cpu_s": total([r for r in rows if r["test"] in slow], "cpu_s"),
        "load_1min": {"min": min(r["load"] for r in rows), "max": max(r["load"] for r in rows)},
        "by_folder": by_dir,
        "largest_kept": sorted(({"test": r["test"], "cpu_s": r["cpu_s"], "wall_s": r["wall_s"]} for r in kept),
                               key=lambda r: -r["cpu_s"])[:15],
    }
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("by_folder", "largest_kept")}, indent=1))


if __name__ == "__main__":
    main()
