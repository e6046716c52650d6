"""The graph learner alone: the crl stage's prior fitted to the numeric benchmark's *true* latents.

    .venv/bin/python experiments/crl_benchmark/graph_on_true_latents.py --seeds 0 1

The full model's SHD mixes two errors: latents that are not quite the planted ones, and the
graph the prior learns from them. Here the latents are the planted ones (training rows), so any
SHD left is the graph learner's: the causal prior of the stage's objective (additive edges,
proximal L1 on A) fitted by ``personax.crl._orient.fit_prior``, full batch,

- with its within-block order learned, as ``fit`` does (``within_block_order: learned``);
- with the order fixed to each within-block permutation in turn, scored by the prior's
  log-likelihood per person on the validation rows: does the likelihood pick the planted order?

Writes ``results/graph_on_true_latents[_<tag>].md``. Development seeds only so far (0-4): these
runs choose no setting of the model, and no fresh seed was spent on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import run as benchmark  # noqa: E402  (the benchmark's data and the stage's objective)

RESULTS = Path(__file__).parent / "results"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps of each prior fit")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    return parser


def stage_config_and_splits(modalities, dims: dict[str, int], shared: int, seed: int):
    """The config and splits ``personax.crl.fit`` builds for the stage's objective on these data (one
    epoch, restarts 1), without fitting: only they are used here, not a fit (whose compile took most of
    this script's time on a small ``--n``)."""
    from personax.crl._fit import CRLConfig, _data_fields, _split, _typed_options

    n, fields = _data_fields(modalities, dims, shared, seed)
    options = {**benchmark.MODEL_VARIANTS["personax-stage-oriented"], "max_epochs": 1, "restarts": 1}
    config = CRLConfig(**fields, **_typed_options(options))
    return config, _split(n, config)


def graph_on_true_latents(seed: int, *, n: int, steps: int) -> list[dict]:
    """One row per prior fit on the true latents: the order (learned, or a fixed permutation),
    the validation log-likelihood per person, and the SHDs against the planted graph."""
    import jax
    import jax.numpy as jnp

    from personax.crl import diagnostics as D
    from personax.crl._fit import FittedCRL, _init_params, standardised_edge_effects
    from personax.crl._orient import _prior_log_lik, fit_prior

    bench, dims, shared, _ = benchmark._data("numeric", n, seed, 16)
    config, splits = stage_config_and_splits(bench.modalities, dims, shared, seed)
    true = np.concatenate([bench.latents[b] for b in ["shared", *dims]], axis=1)
    planted = bench.graph.to_numpy()
    train, val = splits["train"], splits["val"]
    blocks = [list(range(s.start, s.stop)) for name, s in config.block_slices().items() if name != "shared"]
    candidates = {"learned": (config, list(range(true.shape[1])))}
    fixed = dataclasses.replace(config, within_block_order="fixed")
    for orders in itertools.product(*(itertools.permutations(block) for block in blocks)):
        permutation = list(range(shared)) + [i for order in orders for i in order]
        label = "fixed " + "; ".join(" < ".join(config.latent_names[i] for i in order) for order in orders)
        candidates[label] = (fixed, permutation)
    rows = []
    for label, (config, permutation) in candidates.items():
        latents = true[:, permutation]
        params = fit_prior(config, _init_params(config, jax.random.key(seed)), jnp.asarray(latents[train], jnp.float32),
                           steps=steps)
        back = np.argsort(permutation)  # the fitted graph in the planted latents' order
        weights = FittedCRL(config, params, {}).adjacency()
        effects = standardised_edge_effects(params, weights, latents[train])[np.ix_(back, back)]
        weights = weights[np.ix_(back, back)]
        rows.append({"seed": seed, "order": label,
                     "val_log_lik": float(_prior_log_lik(config, params, jnp.asarray(latents[val], jnp.float32))),
                     "shd_nonzero": D.shd(weights, planted), "shd_effect": D.shd(D.strong_edges(effects), planted != 0),
                     # the generator's order is the index order: a parent's index is below its child's
                     "planted_order": None if label == "learned" else permutation == sorted(permutation)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    args = argument_parser().parse_args()
    rows = [row for seed in args.seeds for row in graph_on_true_latents(seed, n=args.n, steps=args.steps)]
    lines = [f"# The graph learner on the true latents (numeric, n = {args.n}, {args.steps} steps per prior fit, "
             f"seeds {args.seeds})", "",
             "The crl stage's causal prior fitted to the planted latents (training rows); SHD against the planted "
             "graph, `shd_nonzero` counting every nonzero entry, `shd_effect` the edges with standardised effect "
             f"> {benchmark.EFFECT_THRESHOLD}. `fixed ...`: the within-block order fixed to that permutation "
             "(`planted order`: whether it is the generator's); `val_log_lik`: the prior's "
             "log-likelihood per person on the validation rows, the score an order search would use.", "",
             "| seed | order | planted order | val_log_lik | shd_nonzero | shd_effect |", "|---|---|---|---|---|---|"]
    for row in rows:
        planted = {None: "—", True: "yes", False: "no"}[row["planted_order"]]
        lines.append(f"| {row['seed']} | {row['order']} | {planted} | "
                     f"{row['val_log_lik']:.4f} | {row['shd_nonzero']} | {row['shd_effect']} |")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"graph_on_true_latents{'_' + args.tag if args.tag else ''}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
