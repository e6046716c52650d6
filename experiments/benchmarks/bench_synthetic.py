"""Benchmark: time to generate the synthetic cohort and to ingest it.

Target (issue 2): 10,000 people generate "in well under a minute" on 2 CPU cores.

    .venv/bin/python experiments/benchmarks/bench_synthetic.py

Writes experiments/benchmarks/results/synthetic.json.
"""

from __future__ import annotations

import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import personax
from personax.data.synthetic import make_cohort
from personax.pipeline import run_pipeline
from omegaconf import OmegaConf

RESULTS = Path(__file__).parent / "results" / "synthetic.json"


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return round(time.perf_counter() - start, 2)


def main() -> None:
    rows = []
    for kind in ("celeb", "athlete"):
        for n, images in ((2_000, True), (10_000, True), (10_000, False)):
            seconds = _time(lambda: make_cohort(n, kind=kind, seed=0, images=images))
            rows.append({"what": "make_cohort", "kind": kind, "n": n, "images": images, "seconds": seconds})
            print(rows[-1])
    with tempfile.TemporaryDirectory() as tmp:
        config = OmegaConf.load(Path(personax.__file__).parent.parent / "conf/data/synthetic.yaml")
        cfg = OmegaConf.create({"stages": ["ingest"], "force": False, "seed": 0, "data": config})
        for n in (2_000, 10_000):
            cfg.data.n = n
            seconds = _time(lambda: run_pipeline(cfg, Path(tmp) / f"run{n}"))
            rows.append({"what": "ingest stage (generate, draw and save faces, validate, write)", "kind": "celeb",
                         "n": n, "images": True, "seconds": seconds})
            print(rows[-1])
    result = {
        "target": "10,000 people generate in well under a minute on 2 CPU cores",
        "machine": {"cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
