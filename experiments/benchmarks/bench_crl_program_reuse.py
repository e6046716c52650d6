"""Benchmark: a second fit of the same configuration in one process, with and without reusing the
first fit's programs.

``personax.crl.fit`` keeps the jitted programs of recent configurations for the process
(``personax.crl._fit._cached_program``), so a later fit of the same model and number of training
rows, any seed, skips tracing and compiling them. This measures three fits (seeds 0, 1, 2) of the
crl stage's default objective with the stage's search of the shared axes (20 epochs, 2 of training
on; 1,000 people of the numeric benchmark with the covariates of ``bench_crl_training.py``), twice
in the same process: once with the programs kept ("reused"), once with them dropped before every fit
(``_PROGRAMS.clear()``: every fit traces and compiles afresh, as before the programs were kept).
The models must be the same, bit for bit; the script fails otherwise.

    .venv/bin/python experiments/benchmarks/bench_crl_program_reuse.py

Writes experiments/benchmarks/results/crl_program_reuse.json (wall seconds per fit, compile
included). Run it on an otherwise idle machine. The first fit of each mode compiles in a process
that has compiled nothing of the model yet, except that the second mode runs after the first:
the modes alternate order with ``--reversed`` to show that this does not decide the result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from personax.crl import _fit, fit
from personax.crl.stage import default_objective
from personax.data.synthetic import make_multimodal_numeric

RESULTS = Path(__file__).parent / "results" / "crl_program_reuse.json"
N = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reversed", action="store_true", help="measure 'fresh' before 'reused'")
    order = ("fresh", "reused") if parser.parse_args().reversed else ("reused", "fresh")
    bench = make_multimodal_numeric(N, seed=0)
    rng = np.random.default_rng(0)
    covariates = np.hstack([rng.integers(2, size=(N, 1)), rng.normal(size=(N, 1)),
                            np.eye(8)[rng.integers(8, size=N)][:, 1:]]).astype(np.float32)
    options = {**default_objective(), **default_objective(("sparse_decoder", "sparse_decoder_inputs")),
               "orient_shared": True, "orient_epochs": 2, "orient_steps": 50}
    runs, elbos = [], {}
    for mode in order:
        for seed in (0, 1, 2):
            if mode == "fresh":
                _fit._PROGRAMS.clear()
            start = time.perf_counter()
            model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=seed,
                        auxiliary=covariates, max_epochs=20, patience=10_000, **options)
            seconds = time.perf_counter() - start
            elbos.setdefault(seed, []).append(model.best_val_elbo)
            runs.append({"mode": mode, "seed": seed, "wall_seconds_including_compile": round(seconds, 2),
                         "best_val_elbo": model.best_val_elbo})
            print(runs[-1], flush=True)
    for seed, values in elbos.items():
        if values[0] != values[1]:
            raise SystemExit(f"seed {seed}: the two modes returned different models ({values})")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "measured": time.strftime("%Y-%m-%d %H:%M"), "order": list(order), "n": N, "epochs": 20,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__,
                    "backend": jax.default_backend(), "xla_flags": os.environ.get("XLA_FLAGS", "")},
        "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
