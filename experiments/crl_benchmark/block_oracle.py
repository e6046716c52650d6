"""Would the ELBO keep a modality block turned to its planted axes? (an oracle, not a method)

The numeric benchmark's remaining misses are modality blocks found but turned (block R² about
0.98, block MCC 0.77-0.83: ``README.md``, the seventh set of fresh seeds). A search of a
modality block's axes, like the crl stage's search of the shared block's (``personax/crl/_orient.py``),
can only help if the model's own objective prefers the planted axes to the fitted ones. This
checks that with an oracle: after a fit of the crl stage's method (``personax-stage-converged``),

1. the image block's posterior means are mapped to the planted latents by least squares on the
   training rows (a general linear map, since the block's latents are dependent), with the
   block's spread kept; the map is written into the model as the shared search writes its turn
   (the image encoders' last layer, the image decoders' first layer by its inverse, the posterior
   log-variances approximately). The block's posterior is the product of its measurements'
   experts, whose precisions the map changes, so the written model's means follow the map only
   approximately (``written_map_error``: the relative root-mean-square difference);
2. the prior-only score a search would use: the prior fitted from a fresh start to the training
   rows' standardised posterior means, scored on the validation rows, given axes against the
   oracle's (the oracle's score corrected by log|det| of the map between the two coordinates, so
   both are densities of the same points);
3. the ELBO: both models' priors refitted by the ELBO on posterior draws with the same key, then
   trained on side by side for ``orient_epochs`` with the same batches and noise, and compared by
   the validation ELBO averaged over ``orient_draws`` draws, as the stage's gate compares a turn.

``--train-on converged`` trains both branches on as the fit trains (``lr_schedule: plateau``, to
early stopping) instead of for the stage's short cosine training on, so that the map's approximate
write (above) is not what the comparison sees. ``--part grid`` asks instead whether a search would
find the oracle's axes: ``axes_search.py``'s 28 pairs of directions on the standardised block, each
scored as the search scores the oracle (step 2).

Only the image block: the text block's decoders are the stage objective's sparse decoder, which
takes each of the block's latents through its own nonlinear edge functions, so a linear map of
the block cannot be written into them exactly (the shared search is refused there for the same
reason, ``orientable``).

    .venv/bin/python experiments/crl_benchmark/block_oracle.py --seeds 1064 1066 1067 1068 1069 1060
    .venv/bin/python experiments/crl_benchmark/block_oracle.py --seeds 1064 1068 1067 --train-on converged --tag converged
    .venv/bin/python experiments/crl_benchmark/block_oracle.py --part grid --seeds 1064 1066 1067 1068 1069 1060
    .venv/bin/python experiments/crl_benchmark/block_oracle.py --part grid --grid-step 11.25 --seeds 1060 1066 --tag fine

Spent seeds (the seventh set, 1060-1069, where the image block missed on 1064 and 1066-1069):
this looks for a cause, it spends no fresh seed. Appends one JSON line per seed to
``results/block_oracle_<part>[_<tag>].jsonl`` and rewrites its ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np

from personax.crl import diagnostics as D
from personax.crl import fit
from personax.crl._fit import _init_params
from personax.crl._orient import (REFIT_STREAM, _prior_log_lik, _stacked_latents, fit_prior, refit_prior, search_rows,
                                  start_scores, train_on_side_by_side, with_block_map)
from axes_search import mapped  # this folder
from run import RESULTS, append_records, fit_and_encode  # this folder

BLOCK = "image"


def block_mcc(latents: np.ndarray, planted: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    return float(D.mcc(latents[train], planted[train], latents[test], planted[test])["mcc"])


def prior_score(config, latents: np.ndarray, train: np.ndarray, val: np.ndarray, *, steps: int,
                key) -> tuple[float, float]:
    """The search's score: the prior fitted from a fresh start to standardised training latents,
    its log-likelihood per person on the validation rows (in those standardised coordinates), and
    the sum of the log standard deviations the latents were divided by."""
    centre, scale = latents[train].mean(0), latents[train].std(0)
    standardised = jnp.asarray((latents - centre) / scale, jnp.float32)
    params = fit_prior(config, _init_params(config, key), standardised[train], steps=steps)
    return float(_prior_log_lik(config, params, standardised[val])), float(np.log(scale).sum())


def trained_to_convergence(model, candidate, modalities):
    """``train_on_side_by_side``, but each branch trained on as the fit trains (``lr_schedule:
    plateau`` from the fit's learning rate, its epoch cap): both to convergence, not for the
    stage's short cosine training on. Returns what ``train_on_side_by_side`` returns."""
    config = model.config
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
               if f.name not in ("shared_dim", "latent_dims", "measurements", "input_dims", "auxiliary_dim", "seed")}
    options.update(orient_shared=False, orient_rounds=1, order_search=False, lr_schedule="plateau")
    tuned = fit(modalities, latent_dims=config.latent_dims, shared_dim=config.shared_dim, seed=config.seed,
                initial_params=[jax.device_get(model.params), candidate], restart_preference=[0.0, 1e6],
                restart_draws=config.orient_draws, **options)
    trained = np.max([entry["val_elbo_restarts"] for entry in tuned.history], axis=0)
    best = np.maximum(trained, tuned.start_val_elbo)
    return tuned, best if tuned.selection_val_elbo is None else np.asarray(tuned.selection_val_elbo)


def grid_pairs(step: float) -> list[tuple[float, float]]:
    """Every unordered pair of distinct directions on a grid of ``step`` degrees over [0, 180), in
    radians (``axes_search.direction_pairs`` at 22.5)."""
    degrees = np.arange(0.0, 180.0, step)
    return [(float(np.deg2rad(a)), float(np.deg2rad(b))) for i, a in enumerate(degrees) for b in degrees[i + 1:]]


def grid_scores(config, stacked: np.ndarray, fitted: np.ndarray, val: np.ndarray, pairs, *, steps: int,
                key) -> np.ndarray:
    """``axes_search.py``'s candidates on this fit: the standardised image block re-expressed on each
    pair of grid directions, the prior fitted from a fresh start and scored on the validation rows,
    plus log|det| of the map (so that every score is a density of the same standardised points)."""
    ds, dm = config.shared_dim, config.latent_dims[BLOCK]
    standardised = (stacked - stacked[fitted].mean(0)) / stacked[fitted].std(0)
    candidates = []
    for pair in pairs:
        latents = standardised.copy()
        latents[:, ds : ds + dm] = mapped(standardised[:, ds : ds + dm], pair)
        candidates.append(latents)
    candidates = jnp.asarray(np.stack(candidates), jnp.float32)
    initial = _init_params(config, key)

    @jax.jit
    def scored(candidates):
        def one(latents):
            params = fit_prior(config, initial, latents[fitted], steps=steps)
            return _prior_log_lik(config, params, latents[val])
        return jax.lax.map(one, candidates)

    log_det = np.log(np.abs(np.sin(np.array([b - a for a, b in pairs]))))
    return np.asarray(scored(candidates), np.float64) + log_det


def records_of_seed(seed: int, *, n: int, epochs: int, train_on: str = "stage", part: str = "elbo",
                    grid_step: float = 22.5) -> list[dict]:
    bench, model, encoded, planted_all, _ = fit_and_encode("numeric", n, seed, epochs=epochs,
                                                           method="personax-stage-converged")
    config, splits = model.config, model.splits
    train, val, test = splits["train"], splits["val"], splits["test"]
    planted = bench.latents[BLOCK]
    given_block = encoded[BLOCK].astype(np.float64)
    # the oracle: standardised planted latents ≈ (block - centre) @ coefficients, least squares on the training rows
    centre = given_block[train].mean(0)
    target = (planted - planted[train].mean(0)) / planted[train].std(0)
    coefficients, *_ = np.linalg.lstsq(given_block[train] - centre, target[train], rcond=None)
    matrix = coefficients.T  # new block = matrix @ (z - centre)
    # keep the block's spread (the contrastive term sets the latents' scale): the same total variance
    spread = np.sqrt(np.trace(np.cov(given_block[train].T)) / np.trace(np.cov(((given_block[train] - centre) @ matrix.T).T)))
    matrix = spread * matrix
    oracle_params = with_block_map(model.params, config, matrix, -matrix @ centre, BLOCK)
    oracle = dataclasses.replace(model, params=oracle_params)
    oracle_block = oracle.encode(bench.modalities)[BLOCK]
    record = {"seed": seed, "block": BLOCK, "stopped": model.stopped, "train_on": train_on,
              "shared_axes": (model.orientation or {}).get("decision"),
              "given_block_mcc": round(block_mcc(given_block, planted, train, test), 4),
              # the map applied to the given block's means, and the model it was written into: the block's
              # posterior is a product of its measurements' experts, whose weights (precisions) the map
              # changes, so the written model's means follow the map only approximately
              "mapped_block_mcc": round(block_mcc((given_block - centre) @ matrix.T, planted, train, test), 4),
              "oracle_block_mcc": round(block_mcc(oracle_block, planted, train, test), 4),
              "written_map_error": round(float(np.sqrt(np.mean((oracle_block - (given_block - centre) @ matrix.T) ** 2)
                                                       / np.mean(oracle_block**2))), 4),
              "map_log_abs_det": round(float(np.linalg.slogdet(matrix)[1]), 4)}
    # 2. the prior-only score a search of the block's axes would use
    key = jax.random.key(seed)
    stacked_given = _stacked_latents(model, bench.modalities).astype(np.float64)
    stacked_oracle = _stacked_latents(oracle, bench.modalities).astype(np.float64)
    fitted = search_rows(model)
    score_given, log_scale_given = prior_score(config, stacked_given, fitted, val, steps=config.orient_steps, key=key)
    score_oracle, log_scale_oracle = prior_score(config, stacked_oracle, fitted, val, steps=config.orient_steps, key=key)
    # both as densities of the given standardised coordinates: + log|det| of the map between the two
    log_det_between = np.linalg.slogdet(matrix)[1] + log_scale_given - log_scale_oracle
    record.update(search_score_given=round(score_given, 4),
                  search_score_oracle=round(score_oracle + float(log_det_between), 4))
    if part == "grid":  # would axes_search.py's grid find the oracle's axes on this fit?
        pairs = grid_pairs(grid_step)
        scores = grid_scores(config, stacked_given, fitted, val, pairs, steps=config.orient_steps, key=key)
        best = int(np.argmax(scores))
        standardised_block = (given_block - given_block[fitted].mean(0)) / given_block[fitted].std(0)
        record.update(grid_keep_score=round(float(scores[pairs.index((0.0, float(np.deg2rad(90.0))))]), 4),
                      grid_best_score=round(float(scores[best]), 4),
                      grid_best_degrees=[round(float(np.rad2deg(t)), 1) for t in pairs[best]],
                      grid_best_block_mcc=round(block_mcc(mapped(standardised_block, pairs[best]), planted, train,
                                                          test), 4),
                      grid_pairs_above_oracle=int(np.sum(scores > record["search_score_oracle"])),
                      grid_pairs=len(pairs), grid_step=grid_step)
        return [record]
    # 3. the ELBO: both priors refitted alike, then trained on side by side (the gate's comparison)
    refit_key = jax.random.fold_in(key, REFIT_STREAM)
    steps = 4 * config.orient_steps
    given = dataclasses.replace(model, params=refit_prior(model, bench.modalities, fitted, steps=steps, auxiliary=None,
                                                          key=refit_key))
    oracle_refit = refit_prior(oracle, bench.modalities, fitted, steps=steps, auxiliary=None, key=refit_key)
    # candidate_preference: return the oracle's branch whatever the scores, to see where its training on went
    if train_on == "converged":
        tuned, best = trained_to_convergence(given, oracle_refit, bench.modalities)
    else:
        tuned, best = train_on_side_by_side(given, oracle_refit, bench.modalities, auxiliary=None, progress=False,
                                            candidate_preference=1e6)
    scores = start_scores(tuned, ("given", "oracle"))
    record.update(scores, oracle_minus_given=round(float(best[1] - best[0]), 4),
                  trained_on_epochs=len(tuned.history), trained_on_stopped=tuned.stopped,
                  oracle_trained_on_block_mcc=round(block_mcc(tuned.encode(bench.modalities)[BLOCK], planted, train,
                                                              test), 4))
    return [record]


def summary(records: list[dict], command: str) -> str:
    if records and "grid_best_score" in records[0]:
        return grid_summary(records, command)
    lines = ["# The image block turned to its planted axes: would the ELBO keep it? (oracle; numeric benchmark)", "",
             "Spent seeds of the seventh set. `search score`: the prior fitted to the standardised posterior means, "
             "validation log-likelihood per person (the oracle's in the given coordinates). `compared`: the validation "
             "ELBO per person averaged over the stage's draws after both branches' priors were refitted and both were "
             "trained on side by side (the gate's comparison; `train on`: the stage's short training on, or each "
             f"branch to convergence). Command: `{command}`.", "",
             "| seed | train on | block MCC, given | oracle | oracle trained on | search score, given | oracle | "
             "ELBO at start, given | oracle | compared, given | oracle | oracle − given |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        start, compared = r["start_val_elbo"], r.get("compared_val_elbo", r["trained_on_val_elbo"])
        lines.append(f"| {r['seed']} | {r.get('train_on', 'stage')} | {r['given_block_mcc']:.3f} | "
                     f"{r['oracle_block_mcc']:.3f} | {r['oracle_trained_on_block_mcc']:.3f} | "
                     f"{r['search_score_given']:.3f} | {r['search_score_oracle']:.3f} | {start['given']:.3f} | "
                     f"{start['oracle']:.3f} | {compared['given']:.3f} | {compared['oracle']:.3f} | "
                     f"{r['oracle_minus_given']:+.3f} |")
    return "\n".join(lines)


def grid_summary(records: list[dict], command: str) -> str:
    lines = ["# Would a search of the image block's axes find the planted ones? (numeric benchmark)", "",
             "Spent seeds of the seventh set. Each of `axes_search.py`'s direction pairs, and the oracle's map to "
             "the planted axes, scored as a search scores a candidate: the prior fitted from a fresh start to the "
             "standardised posterior means of the search's rows, validation log-likelihood per person plus log|det| "
             f"of the map (every score a density of the same points). Command: `{command}`.", "",
             "| seed | block MCC, given | oracle | score, given axes | oracle | best pair | its degrees | its block MCC "
             "| pairs scored above the oracle |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['seed']} | {r['given_block_mcc']:.3f} | {r['oracle_block_mcc']:.3f} | "
                     f"{r['grid_keep_score']:.3f} | {r['search_score_oracle']:.3f} | {r['grid_best_score']:.3f} | "
                     f"{r['grid_best_degrees']} | {r['grid_best_block_mcc']:.3f} | "
                     f"{r['grid_pairs_above_oracle']} of {r['grid_pairs']} |")
    return "\n".join(lines)


def argument_parser() -> argparse.ArgumentParser:
    """The command line (a test parses every command the docs show with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1000, help="the fit's epoch cap (the stage's)")
    parser.add_argument("--part", choices=["elbo", "grid"], default="elbo",
                        help="elbo: the gate's comparison of the oracle and the given model; grid: instead, "
                             "axes_search.py's grid of direction pairs scored as a search would score them")
    parser.add_argument("--train-on", choices=["stage", "converged"], default="stage",
                        help="the side-by-side training on: the stage's (orient_epochs of a cosine decay) or each "
                             "branch to convergence as the fit trains (lr_schedule plateau)")
    parser.add_argument("--grid-step", type=float, default=22.5,
                        help="--part grid: the directions' grid, degrees (22.5: axes_search.py's 28 pairs)")
    parser.add_argument("--tag", default="", help="suffix of the record's name")
    return parser


def main(argv=None) -> None:
    args = argument_parser().parse_args(argv)
    append_records("block_oracle", args, lambda seed: records_of_seed(seed, n=args.n, epochs=args.epochs,
                                                                      train_on=args.train_on, part=args.part,
                                                                      grid_step=args.grid_step))
    name = f"block_oracle_{args.part}{'_' + args.tag if args.tag else ''}"
    records = [json.loads(line) for line in (RESULTS / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    options = "" if args.part == "elbo" else f" --part {args.part}"
    options += f" --seeds {' '.join(str(r['seed']) for r in records)}"
    options += "" if args.train_on == "stage" else f" --train-on {args.train_on}"
    options += "" if args.grid_step == 22.5 else f" --grid-step {args.grid_step:g}"
    options += f" --tag {args.tag}" if args.tag else ""
    text = summary(records, f".venv/bin/python experiments/crl_benchmark/block_oracle.py{options}")
    (RESULTS / f"{name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
