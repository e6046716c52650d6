"""A/B timing of one short CRL fit: two source trees on the same data, interleaved.

Wall time on a shared 2-core machine moved by up to 1.6x between back-to-back runs of one
configuration on 2026-12-01, so a code change's effect on speed is measured here as the
process's CPU time (user + system; data generation and compilation included, the same for
both trees), alternating the trees so that slow minutes hit both. Prints one line per run:

    git worktree add /tmp/old <commit>
    for rep in 1 2 3; do for tree in /tmp/old .; do
      PYTHONPATH=$tree .venv/bin/python experiments/benchmarks/ab_crl_training.py 30 stage_default
    done; done

Configurations: ``bench_crl_training.py``'s (10,000 people of the numeric benchmark).
"""

from __future__ import annotations

import resource
import sys
import time

from bench_crl_training import benchmark_setup  # this folder: the benchmark's data and configurations

from personax.crl import fit


def main() -> None:
    epochs, names = int(sys.argv[1]), sys.argv[2:]
    bench, configurations = benchmark_setup()
    for name in names:
        start = time.perf_counter()
        model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                    max_epochs=epochs, patience=10_000, restarts=configurations[name][0], **configurations[name][1])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(name, "wall", round(time.perf_counter() - start, 1), "loop", round(model.fit_seconds, 1),
              "process_cpu", round(usage.ru_utime + usage.ru_stime, 1), flush=True)


if __name__ == "__main__":
    main()
