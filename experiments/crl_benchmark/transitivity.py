"""Are the numeric benchmark's missed modality latents their planted selves plus some of their parents?

The per-block MCC (``run.py``'s ``mcc_shared``/``mcc_image``/``mcc_text``) puts the numeric
benchmark's misses in the modality blocks; ``s`` is recovered. Every planted modality latent has
parents (at least one shared latent), and a latent model with flexible additive mechanisms cannot
tell ``z_j`` from ``z_j + c * z_p`` for a parent ``p``: the second is again an additive-noise
mechanism of the same parents with the same noise (``f_j + c * id``), and the decoders absorb the
linear map. This is the "transitivity" indeterminacy of Liu et al. (2022, "Identifying
Weight-Variant Latent Causal Models", arXiv:2208.14153); they break it with causal weights that
change with an observed variable, which this benchmark does not plant. Two measurements:

* ``likelihood`` (planted latents, no encoder): each modality latent sheared along each of its
  planted parents, ``z_j + c * z_p`` re-standardised on the training rows, fitted by the model's
  own prior from a fresh start (``orientation_likelihood.fit_prior``: the library's prior fit, two
  initialisations, the better training objective kept), scored on the test rows with the
  re-standardisation's log|det| (the change of the ELBO's entropy term). Reported: the held-out
  log-likelihood per person against the planted latent's (c = 0) and the sheared latent's
  correlation with the planted one.
* ``fits``: the crl stage's fit (``personax-stage-converged``, 1000-epoch cap, 1 restart; or another
  of ``run.py``'s methods with ``--method``, on ``--dataset numeric-auxiliary``), matched to
  the planted latents as the benchmark matches them; for each planted modality latent, the held-out
  linear R² of its matched learned latent from the planted latent alone (its squared correlation),
  from the planted latent and its planted parents, and from every planted latent (least squares on
  the training rows), and its coefficients on every planted latent (standardised). Where the second
  is near the third and above the first, the learned latent is the planted one plus a mix of its
  parents: a transitivity move, not information lost.

    .venv/bin/python experiments/crl_benchmark/transitivity.py likelihood --seeds 0 1021
    .venv/bin/python experiments/crl_benchmark/transitivity.py fits --seeds 1021 1027 1025 1023
    .venv/bin/python experiments/crl_benchmark/transitivity.py fits --dataset numeric-auxiliary \
        --method personax-auxiliary --epochs 150 --seeds 1000 1001 --tag auxiliary

Appends one JSON line per latent (``likelihood``) or per seed (``fits``) to
``results/transitivity_<part>[_<tag>].jsonl``. The seeds: development seed 0, fresh seeds of the
third set (1020-1029), scored on 2026-12-05, and of ``numeric-auxiliary``'s set (1000-1009), scored
on 2026-12-02: all spent. Nothing here tunes the model.
"""

from __future__ import annotations

import numpy as np

from personax.crl import diagnostics as D
from orientation_likelihood import best_start_scorer, planted_setting  # this folder
from run import append_records, diagnostic_parser, fit_and_encode  # this folder

SHEARS = (0.0, -0.6, -0.3, 0.3, 0.6)  # c, in units of the parent's standard deviation (both are standardised)


def likelihood(seed: int, *, n: int = 5000, steps: int = 1500, inits: int = 2, train_rows: int = 2000) -> list[dict]:
    """One record per (modality latent, planted parent): the prior's held-out preference for each shear."""
    bench, config, planted, train, test = planted_setting(seed, n=n, train_rows=train_rows)
    names, weights = list(bench.graph.index), bench.graph.to_numpy()
    score = best_start_scorer(config, steps=steps, inits=inits, seed=seed)
    records = []
    for child in range(config.shared_dim, len(names)):
        for parent in np.flatnonzero(weights[:, child]):
            variants, log_det = [], []
            for c in SHEARS:
                sheared = planted[:, child] + c * planted[:, parent]
                centre, scale = sheared[train].mean(), sheared[train].std()
                variant = planted.copy()
                variant[:, child] = (sheared - centre) / scale
                variants.append(variant)
                log_det.append(-np.log(scale))
            variants = np.stack(variants)
            chosen = score(variants, train, test) + np.asarray(log_det)
            records.append({
                "seed": seed, "n": n, "child": names[child], "parent": names[parent],
                "planted_weight": round(float(weights[parent, child]), 3), "shear": list(SHEARS),
                "correlation": [round(float(np.corrcoef(v[test, child], planted[test, child])[0, 1]), 3) for v in variants],
                "held_out_vs_planted": [round(float(x - chosen[0]), 4) for x in chosen],
                "steps": steps, "inits": inits, "train_rows": len(train)})
    return records


def _r2(features_train, target_train, features_test, target_test) -> float:
    design = np.column_stack([features_train, np.ones(len(features_train))])
    coef, *_ = np.linalg.lstsq(design, target_train, rcond=None)
    predicted = np.column_stack([features_test, np.ones(len(features_test))]) @ coef
    return float(1 - np.var(target_test - predicted) / np.var(target_test))


def decompose(found: np.ndarray, planted: np.ndarray, child: int, parents: list[int], train: np.ndarray,
              test: np.ndarray) -> dict[str, float]:
    """Held-out linear R² of one learned latent from its planted counterpart alone, from it and its
    planted parents, and from every planted latent (least squares on the training rows)."""
    def r2(columns):
        return round(_r2(planted[train][:, columns], found[train], planted[test][:, columns], found[test]), 4)
    # which planted latents the learned one is made of: least squares on standardised columns (training rows)
    scaled = (planted[train] - planted[train].mean(0)) / planted[train].std(0)
    target = (found[train] - found[train].mean()) / found[train].std()
    coefficients, *_ = np.linalg.lstsq(scaled, target, rcond=None)
    if coefficients[child] < 0:  # the matching ignores the sign
        coefficients = -coefficients
    return {"r2_from_itself": r2([child]), "r2_with_parents": r2([child, *parents]),
            "r2_from_all": r2(list(range(planted.shape[1]))),
            "coefficients": [round(float(c), 3) for c in coefficients]}


def fits(seed: int, *, n: int = 5000, epochs: int = 1000, dataset: str = "numeric",
         method: str = "personax-stage-converged") -> dict:
    """One fit (a benchmark method, 1 restart) on one seed, each modality latent's miss split into
    parents and the rest."""
    bench, model, encoded, planted, learned = fit_and_encode(dataset, n, seed, epochs=epochs, method=method)
    order, shared_dim = ["shared", *model.config.latent_dims], model.config.shared_dim
    train, test = model.splits["train"], model.splits["test"]
    matched = D.mcc(learned[train], planted[train], learned[test], planted[test])
    names, weights = list(bench.graph.index), bench.graph.to_numpy()
    learned_names = [f"learned {block}{i + 1}" for block in order for i in range(encoded[block].shape[1])]
    row: dict = {"dataset": dataset, "seed": seed, "n": n, "method": method, "epochs": len(model.history),
                 "mcc": round(matched["mcc"], 4), "planted": names, "latents": []}
    for child in range(shared_dim, len(names)):
        parents = [int(p) for p in np.flatnonzero(weights[:, child])]
        row["latents"].append({"latent": names[child], "parents": [names[p] for p in parents],
                               # the learned latent the benchmark's matching (over all blocks at once) gave it
                               "matched_to": learned_names[matched["assignment"][child]],
                               "matched_correlation": round(float(matched["per_latent"][child]), 4),
                               **decompose(learned[:, matched["assignment"][child]], planted, child, parents,
                                           train, test)})
    return row


def main() -> None:
    parser = diagnostic_parser(__doc__.splitlines()[0], ["likelihood", "fits"])
    parser.add_argument("--steps", type=int, default=1500, help="likelihood: optimiser steps of each prior fit")
    parser.add_argument("--dataset", choices=["numeric", "numeric-auxiliary"], default="numeric", help="fits")
    args = parser.parse_args()
    append_records("transitivity", args, lambda seed: (
        likelihood(seed, n=args.n, steps=args.steps) if args.part == "likelihood"
        else [fits(seed, n=args.n, epochs=args.epochs, dataset=args.dataset, method=args.method)]))


if __name__ == "__main__":
    main()
