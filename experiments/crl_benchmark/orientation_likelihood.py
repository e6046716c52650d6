"""How much does the model's prior prefer the planted orientation of a modality block?

The numeric benchmark's misses are modality blocks found but turned (``block_diagnosis.py``). A
flexible decoder absorbs any invertible map of a block, so what fixes a block's orientation is the
prior alone: the fitted model prefers the planted axes only as far as the causal prior (additive
mechanisms, sinh-arcsinh noise, sparse graph) gives the planted latents a higher likelihood than
turned ones. This measures that preference directly, without encoders or decoders:

for each modality block and each angle t, the planted latents u (s, image, text) with that block
turned by t are fitted by the model's own prior (:meth:`CausalMultimodalVAE.prior_logpdf`, the
library's settings, trained as in ``fit``: Adam, cosine schedule, the proximal L1 step on A, weight
decay on the mechanisms; several initialisations, the best training objective kept). Reported: the
held-out log-likelihood per person (test rows) against the planted orientation's (t = 0), and the
MCC a fit at that angle would score on the block. t = 90 degrees is a swap of the two axes (MCC 1):
its likelihood should equal t = 0's, which checks the fitting.

    .venv/bin/python experiments/crl_benchmark/orientation_likelihood.py --seeds 0 1 2

Appends one JSON line per seed to ``results/orientation_likelihood.jsonl`` and rewrites
``results/orientation_likelihood.md``. Development seeds (0-4): this looks for a cause.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
from personax.crl import diagnostics as D
from personax.crl._fit import _init_params, _split, mechanism_decay
from personax.crl._model import CausalMultimodalVAE, CRLConfig
from personax.crl._orient import PRIOR_PARAMS
from personax.crl._orient import fit_prior as library_fit_prior
from run import RESULTS, _data  # this folder: the benchmark's data, block sizes and results folder

ANGLES = (0, 10, 20, 30, 45, 90)  # degrees


def turned(latents: np.ndarray, block: slice, degrees: float) -> np.ndarray:
    """The latents with the two columns of ``block`` turned by ``degrees``."""
    t = np.deg2rad(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    out = latents.copy()
    out[:, block] = latents[:, block] @ rotation.T
    return out


def fit_prior(config: CRLConfig, train: jnp.ndarray, test: jnp.ndarray, *, steps: int, key: jax.Array):
    """Fits the prior's parameters to fixed latents from a fresh start (the library's
    ``personax.crl._orient.fit_prior``); returns (train objective, held-out log-likelihood)."""
    module = CausalMultimodalVAE(config)
    params = library_fit_prior(config, _init_params(config, key), train, steps=steps)

    def log_lik(u):
        return jnp.mean(module.apply({"params": params}, u, method=CausalMultimodalVAE.prior_logpdf))

    prior = {k: v for k, v in params.items() if k in PRIOR_PARAMS}
    objective = log_lik(train) - config.weight_decay * mechanism_decay(prior) - config.l1_graph * jnp.sum(
        jnp.abs(params["adjacency"]))
    return objective, log_lik(test)


def planted_setting(seed: int, *, n: int, train_rows: int):
    """The numeric benchmark for prior-only fits: the benchmark, a config of its latent blocks, its
    planted latents [s, z(1), ...] (float32), at most ``train_rows`` training rows (a subsample keeps
    the fits affordable on a CPU) and the test rows."""
    bench, dims, shared_dim, _ = _data("numeric", n, seed, image_size=0)
    config = CRLConfig(shared_dim, dict(dims), {m: 1 for m in dims}, {m: 1 for m in dims}, seed=seed)
    planted = np.concatenate([bench.latents[b] for b in ("shared", *dims)], axis=1).astype(np.float32)
    splits = _split(n, config)
    return bench, config, planted, splits["train"][:train_rows], splits["test"]


def best_start_scorer(config: CRLConfig, *, steps: int, inits: int, seed: int):
    """One compiled scorer of variants of the latents (variants x rows x latents): each variant's
    prior fitted from ``inits`` fresh starts on the training rows, and the held-out log-likelihood
    per person of the start with the best training objective (model selection on the training
    objective, as restarts do on ELBO)."""
    fitted = jax.jit(jax.vmap(jax.vmap(lambda tr, te, k: fit_prior(config, tr, te, steps=steps, key=k),
                                       in_axes=(None, None, 0)), in_axes=(0, 0, None)))
    keys = jax.random.split(jax.random.key(seed), inits)

    def score(variants: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        objective, held_out = (np.asarray(v) for v in fitted(jnp.asarray(variants[:, train]),
                                                              jnp.asarray(variants[:, test]), keys))
        return held_out[np.arange(len(variants)), objective.argmax(axis=1)]
    return score


def diagnose(seed: int, *, n: int = 5000, steps: int = 1500, inits: int = 2, train_rows: int = 2000) -> dict:
    _, config, planted, train, test = planted_setting(seed, n=n, train_rows=train_rows)
    row: dict = {"seed": seed, "n": n, "train_rows": train_rows, "steps": steps, "inits": inits}
    score = best_start_scorer(config, steps=steps, inits=inits, seed=seed)
    for block, where in config.block_slices().items():
        if block == "shared":
            continue
        variants = np.stack([turned(planted, where, a) for a in ANGLES])
        chosen = score(variants, train, test)
        row[block] = {
            "angles": list(ANGLES),
            "mcc": [round(D.mcc(v[:, where], planted[:, where])["mcc"], 3) for v in variants],
            "held_out_vs_planted": [round(float(c - chosen[0]), 4) for c in chosen],
            "held_out_planted": round(float(chosen[0]), 4),
        }
    return row


def table(rows: list[dict]) -> str:
    lines = ["# How much the prior prefers each block's planted orientation (numeric benchmark)", "",
             "Held-out log-likelihood per person of the planted latents with one modality block turned by the "
             "angle, fitted by the model's own prior, minus that of the planted orientation (0 degrees); "
             "negative: the prior prefers the planted axes by that much. MCC: what a fit at that angle scores "
             "on the block. Command: `.venv/bin/python experiments/crl_benchmark/orientation_likelihood.py "
             "--seeds ...` (development seeds).", ""]
    for row in rows:
        for block in ("image", "text"):
            if block not in row:
                continue
            entry = row[block]
            lines += [f"## seed {row['seed']}, block {block} (planted: {entry['held_out_planted']} nats per person)", "",
                      "| angle (degrees) | " + " | ".join(str(a) for a in entry["angles"]) + " |",
                      "|---|" + "---|" * len(entry["angles"]),
                      "| block MCC | " + " | ".join(f"{v:.3f}" for v in entry["mcc"]) + " |",
                      "| held-out log-lik vs planted | " + " | ".join(f"{v:+.4f}" for v in entry["held_out_vs_planted"]) + " |",
                      ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / "orientation_likelihood.jsonl"
    for seed in args.seeds:
        row = diagnose(seed, steps=args.steps)
        print(json.dumps(row), flush=True)
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    (RESULTS / "orientation_likelihood.md").write_text(table(rows) + "\n")


if __name__ == "__main__":
    main()
