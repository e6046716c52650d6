"""Benchmark: wall time of one CRL training run on 10,000 samples (compilation included).

Target (issue 12): a 10,000-sample, 150-epoch training run with the new objectives (learned
order potentials, proximal L1 in Adam's metric, masked likelihood; and with the multiview
InfoNCE term on) in at most 90 s on 2 CPU cores, compilation included (issue 6's was 180 s). The data is
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
    for restarts, extra in ((1, {}), (1, {"contrastive": 1.0}), (3, {})):
        start = time.perf_counter()
        model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                    max_epochs=150, patience=10_000, restarts=restarts, **extra)  # all 150 epochs
        seconds = time.perf_counter() - start
        rows.append({"n": 10_000, "restarts": restarts, "options": extra, "epochs_run": len(model.history),
                     "wall_seconds_including_compile": round(seconds, 1),
                     "training_loop_seconds": round(model.fit_seconds, 1), "target_seconds": 90,
                     "status": "met" if seconds <= 90 else "not met"})
        print(rows[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                               "jax": jax.__version__, "backend": jax.default_backend()},
                                   "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
