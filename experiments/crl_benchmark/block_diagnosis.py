"""Where the numeric benchmark's MCC is lost: a rotation inside a modality block, or the block's
part not explained by s?

Fits personax (the library defaults, as ``run.py`` does) on the numeric benchmark and, for each
modality block, compares on the test split:

* ``mcc_vs_z``: MCC of the learned block against the planted block;
* ``block_r2``: held-out linear R² of the planted block from the learned block (1 when the block
  is found, whatever its rotation);
* ``mcc_vs_residual``: MCC against ``z - E[z | s]``, the planted block's part that the shared
  latents do not explain (E estimated by 50-nearest-neighbour regression on the planted s). A
  decoder that sees s fits the data as well from that residual as from z, so a fit that took the
  residual would match it better than z.

    .venv/bin/python experiments/crl_benchmark/block_diagnosis.py --seeds 0 1

Appends one JSON line per seed to ``results/block_diagnosis.jsonl``. Development seeds (0-4) are
the right ones here: this looks for a cause, it does not score the model.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.neighbors import KNeighborsRegressor

from personax.crl import diagnostics as D
from personax.crl import fit
from run import RESULTS, _data, _score  # this folder: the benchmark's data, block sizes, overall MCC, results


def diagnose(seed: int, *, n: int = 5000, epochs: int = 150) -> dict:
    bench, dims, shared_dim, settings = _data("numeric", n, seed, image_size=0)
    shared = bench.latents["shared"]
    model = fit(bench.modalities, latent_dims=dims, shared_dim=shared_dim, seed=seed, max_epochs=epochs,
                restarts=1, **settings)
    learned = model.encode(bench.modalities)
    train, test = model.splits["train"], model.splits["test"]
    row: dict = {"seed": seed, "n": n, "epochs": epochs, "stopped": model.stopped}
    for block in dims:
        planted = bench.latents[block]
        residual = planted - KNeighborsRegressor(50).fit(shared[train], planted[train]).predict(shared)
        found = learned[block]
        row[block] = {
            "r2_of_z_from_s": np.round(1 - residual[test].var(0) / planted[test].var(0), 3).tolist(),
            "mcc_vs_z": round(D.mcc(found[train], planted[train], found[test], planted[test])["mcc"], 3),
            "block_r2": round(D.block_r2(found[train], planted[train], found[test], planted[test])["mean"], 3),
            "mcc_vs_residual": round(D.mcc(found[train], residual[train], found[test], residual[test])["mcc"], 3),
        }
    row["mcc_all"] = round(_score(learned, bench, model.splits, list(dims))["mcc"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for seed in args.seeds:
        row = diagnose(seed)
        print(json.dumps(row), flush=True)
        with open(RESULTS / "block_diagnosis.jsonl", "a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
