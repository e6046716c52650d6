"""Benchmark: wall time of one CRL training run on 10,000 samples (compilation included).

Target (issue 6): a 10,000-sample training run in under 3 minutes on 2 CPU cores. The data is
the numeric benchmark (`make_multimodal_numeric(10_000)`: 2 shared + 2 + 2 latents, 3
measurements of 10 dimensions per modality) with the benchmark's settings (150 epochs).

    .venv/bin/python experiments/benchmarks/bench_crl_training.py

Writes experiments/benchmarks/results/crl_training.json. Run it on an otherwise idle machine:
the number is wall time.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import jax

from personax.crl import fit
from personax.data.synthetic import make_multimodal_numeric

RESULTS = Path(__file__).parent / "results" / "crl_training.json"


def main() -> None:
    bench = make_multimodal_numeric(10_000, seed=0)
    rows = []
    for restarts in (1, 3):
        start = time.perf_counter()
        model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                    max_epochs=150, restarts=restarts)
        seconds = time.perf_counter() - start
        rows.append({"n": 10_000, "restarts": restarts, "epochs_run": len(model.history),
                     "wall_seconds_including_compile": round(seconds, 1),
                     "training_loop_seconds": round(model.fit_seconds, 1), "target_seconds": 180})
        print(rows[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                               "jax": jax.__version__, "backend": jax.default_backend()},
                                   "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
