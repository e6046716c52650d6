"""Benchmark: wall time of ``python -m personax.run +experiment=smoke`` (the install check).

Target (issue 14): under 60 s on 2 CPU cores. Each run is a fresh process in a fresh
run directory with a fresh embedding cache (nothing reused), on seeds not used while
developing the experiment (11, 12, 13; development used seed 0). The machine is
shared, so the load average before and after each run is recorded with it, and the
CPU time (user + system, the process and its children): on an idle machine the wall
time is at most about the CPU time (the run is mostly single-threaded, plus start-up).

    .venv/bin/python experiments/benchmarks/bench_smoke.py [--seeds 11 12 13]

Writes experiments/benchmarks/results/smoke.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "smoke.json"
TARGET_S = 60.0


def one_run(seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "personax.run", "+experiment=smoke", f"seed={seed}", f"hydra.run.dir={tmp}/run",
             f"embeddings.cache_dir={tmp}/cache"],
            capture_output=True, text=True, env={**os.environ, "PERSONAX_CACHE_DIR": f"{tmp}/cache"}, timeout=900)
        wall = time.perf_counter() - start
        after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"seed {seed} failed:\n{result.stderr[-3000:]}")
        manifest = json.loads((Path(tmp) / "run/manifest.json").read_text())
        return {
            "seed": seed, "wall_s": round(wall, 1),
            "cpu_s": round((after_cpu.ru_utime - before_cpu.ru_utime) + (after_cpu.ru_stime - before_cpu.ru_stime), 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "stages_s": {name: record.get("duration_s") for name, record in manifest["stages"].items()},
            "last_line": result.stdout.strip().splitlines()[-1].replace(tmp, "<tmp>"),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        runs.append(one_run(seed))
        print(runs[-1], flush=True)
    walls = [r["wall_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    summary = {
        "command": "python -m personax.run +experiment=smoke seed=<seed>",
        "target": f"under {TARGET_S:g} s wall on 2 CPU cores",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine(),
                    "note": "shared machine: see load_before / load_after (1-minute load average) per run"},
        "seeds": args.seeds,
        "wall_s": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "cpu_s": {"median": statistics.median(cpus), "min": min(cpus), "max": max(cpus)},
        "target_met_wall": "met" if statistics.median(walls) < TARGET_S else "not met (on this load; see cpu_s)",
        "target_met_cpu": "met" if statistics.median(cpus) < TARGET_S else "not met",
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("wall_s", "cpu_s", "target_met_wall", "target_met_cpu")}))


if __name__ == "__main__":
    main()
