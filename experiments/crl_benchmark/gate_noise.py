"""How much does the gate of the shared axes' turn move with the random stream alone?

``orient_shared`` (personax/crl/_orient.py) searches the axes of the shared block ``s`` that the
causal prior fits best, turns the model to them, and trains the turned model and the given one on
side by side with one random stream (a paired comparison); the gate then keeps or rejects the turn
by their validation ELBOs. This measures how much that paired difference moves when only the random
stream changes. For each seed: the crl stage's converged fit without the search (``orient_shared``
off, the same fit the stage's search starts from), then one search and paired training on per
stream. Stream k trains on with config seed ``seed + 100000 k`` (its batches, its sampling noise and
its validation noise) on the fit's own split rows; stream 0 is what the stage does. The gate here is
the one the records before 2026-12-05 evening used (``run.OLD_GATE``: the higher single-draw score wins).

    .venv/bin/python experiments/crl_benchmark/gate_noise.py --seeds 1046 --streams 0 2

Appends one JSON line per stream to ``results/gate_noise_spent.jsonl``: the chosen angle, the
search's gain in the prior's validation log-likelihood per person, both branches' best validation
ELBO after the training on (``tov``), the decision, and the shared block's MCC (test rows) of the
candidate before training on and of the returned model. Spent seeds only: this looks for a cause.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from unittest import mock

import jax
import numpy as np

import personax.crl._fit as fit_module
from personax.crl import _orient, fit
from personax.crl import diagnostics as D
from run import OLD_GATE, RESULTS, _data, fit_options  # this folder: the benchmark's data and method options


def shared_mcc(model, bench) -> float:
    """The shared block's MCC against the planted s on the test rows (matched on the training rows)."""
    encoded, train, test = model.encode(bench.modalities)["shared"], model.splits["train"], model.splits["test"]
    planted = bench.latents["shared"]
    return round(float(D.mcc(encoded[train], planted[train], encoded[test], planted[test])["mcc"]), 4)


def records_of_seed(seed: int, streams: list[int], *, n: int, epochs: int):
    bench, dims, shared_dim, settings = _data("numeric", n, seed, image_size=0)
    options = {**settings, **fit_options("personax-stage-converged", bench), "orient_shared": False,
               **OLD_GATE}
    base = fit(bench.modalities, latent_dims=dims, shared_dim=shared_dim, seed=seed, max_epochs=epochs, restarts=1,
               **options)
    key = jax.random.fold_in(jax.random.split(jax.random.key(seed))[0], 1)  # the key fit gives the search
    candidates = []
    spy_target = _orient.train_on_side_by_side

    def spy(model, candidate, *args, **kwargs):  # the turned candidate, before any training on
        candidates.append(dataclasses.replace(model, params=candidate))
        return spy_target(model, candidate, *args, **kwargs)

    same_rows = {k: np.asarray(v) for k, v in base.splits.items()}
    given_mcc = shared_mcc(base, bench)  # one fit for every stream
    for stream in streams:
        model = dataclasses.replace(base, config=dataclasses.replace(base.config, seed=seed + 100000 * stream))
        with mock.patch.object(_orient, "train_on_side_by_side", spy), \
                mock.patch.object(fit_module, "_split", lambda rows, config: same_rows):
            oriented = _orient._orient_once(model, bench.modalities, auxiliary=None, steps=model.config.orient_steps,
                                            key=key, progress=False)
        record = oriented.orientation
        scores = record.get("trained_on_val_elbo")
        yield {"seed": seed, "stream": stream, "fit_epochs": len(base.history), "fit_stopped": base.stopped,
               "chosen": [entry["chosen"] for entry in record["search"]],
               "search_gain": [round(max(e["val_prior_log_lik"]) - e["val_prior_log_lik"][0], 4) for e in record["search"]],
               "tov": scores, "turned_minus_given": None if scores is None else round(scores["turned"] - scores["given"], 4),
               "trained_on_stopped": record.get("trained_on_stopped"), "decision": record["decision"],
               "given_mcc_shared": given_mcc, "returned_mcc_shared": shared_mcc(oriented, bench),
               "candidate_mcc_shared": shared_mcc(candidates.pop(), bench) if candidates else None}


def argument_parser() -> argparse.ArgumentParser:
    """The command line (a test parses every command the docs show with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--streams", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1000, help="the fit's epoch cap (the stage's)")
    parser.add_argument("--tag", default="spent", help="suffix of the record's name")
    return parser


def main(argv=None) -> None:
    args = argument_parser().parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"gate_noise_{args.tag}.jsonl", "a") as out:
        for seed in args.seeds:
            for record in records_of_seed(seed, args.streams, n=args.n, epochs=args.epochs):
                print(json.dumps(record), flush=True)
                out.write(json.dumps(record) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
