"""How much does the gate of the shared axes' turn move with the random stream alone, on the demo?

The demo's counterpart of ``experiments/crl_benchmark/gate_noise.py``. ``orient_shared``
(personax/crl/_orient.py) searches the axes of the shared block ``s`` that the causal prior fits
best, turns the model to them, and trains the turned model and the given one on side by side with
one random stream (a paired comparison); the gate keeps the turn unless the given one scores a
validation ELBO higher by more than ``orient_tolerance`` (0.5 nats per person, set on the numeric
benchmark's spent seeds). This measures how much that paired difference moves on the demo when
only the random stream changes. For each seed: the default run's stages up to embeddings, then the
crl stage's own fit of its inputs (``personax.crl.stage.crl_inputs``, its ``crl.fit`` options)
without the search, then one search and paired training on per stream. Stream k trains on with
config seed ``seed + 100000 k`` (its batches, its sampling noise and its validation noise) on the
fit's own split rows; stream 0 is what the stage does.

    .venv/bin/python experiments/demo_level2/gate_noise.py --seeds 1002 --streams 0 1 2

Appends one JSON line per stream to ``results/gate_noise_<tag>.jsonl``: the chosen angle, both
branches' best validation ELBO after the training on (``tov``, the fixed key's single draw) and
where they started, the margin (turned minus given), the means over ``crl.fit.orient_draws`` draws
the gate compared and their margin, the stage's decision, and the shared block's MCC (test rows) of the fit, of
the candidate before training on and of the returned model. Spent seeds only: this looks for a
cause, not a score.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import tempfile
from pathlib import Path
from unittest import mock

import jax
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import personax.crl._fit as fit_module
from personax.crl import _orient, fit
from personax.crl import diagnostics as D
from personax.crl.stage import crl_inputs
from personax.data.truth import planted_truth
from personax.pipeline import RunDir
from personax.run import config_dir

# run.py of this folder (the pipeline up to a stage), by its path: the benchmark's folder has a run.py too
_spec = importlib.util.spec_from_file_location("demo_level2_run", Path(__file__).with_name("run.py"))
demo_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_run)
RESULTS = demo_run.RESULTS


def shared_mcc(model, data, planted) -> float:
    """The shared block's MCC against the planted shared latents on the test rows (matched on the training rows)."""
    encoded, train, test = model.encode(data)["shared"], model.splits["train"], model.splits["test"]
    return round(float(D.mcc(encoded[train], planted[train], encoded[test], planted[test])["mcc"]), 4)


def records_of_seed(seed: int, streams: list[int], overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        config = compose(config_name="config", overrides=[f"seed={seed}", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = RunDir(demo_run.run_pipeline(seed, overrides, Path(tmp), stages="ingest,traits,embeddings"), stage="crl")
        inputs = crl_inputs(config.crl, run_dir)
        planted = planted_truth(run_dir).latent_blocks(inputs.persons, np.flatnonzero(inputs.complete))["shared"]
    options = {**OmegaConf.to_container(config.crl.fit, resolve=True), "orient_shared": False}
    base = fit(inputs.data, latent_dims=inputs.latent_dims, shared_dim=int(config.crl.shared_dim),
               seed=int(config.crl.seed), auxiliary=inputs.auxiliary, **options)
    key = jax.random.fold_in(jax.random.split(jax.random.key(int(config.crl.seed)))[0], 1)  # the key fit gives the search
    candidates = []
    spy_target = _orient.train_on_side_by_side

    def spy(model, candidate, *args, **kwargs):  # the turned candidate, before any training on
        candidates.append(dataclasses.replace(model, params=candidate))
        return spy_target(model, candidate, *args, **kwargs)

    same_rows = {k: np.asarray(v) for k, v in base.splits.items()}
    given_mcc = shared_mcc(base, inputs.data, planted)  # one fit for every stream
    for stream in streams:
        model = dataclasses.replace(base, config=dataclasses.replace(base.config, seed=int(config.crl.seed) + 100000 * stream))
        with mock.patch.object(_orient, "train_on_side_by_side", spy), \
                mock.patch.object(fit_module, "_split", lambda rows, config: same_rows):
            oriented = _orient._orient_once(model, inputs.data, auxiliary=inputs.auxiliary,
                                            steps=model.config.orient_steps, key=key, progress=False)
        record = oriented.orientation
        scores = record.get("trained_on_val_elbo")
        yield {"seed": seed, "stream": stream, "fit_epochs": len(base.history), "fit_stopped": base.stopped,
               "fit_val_elbo": round(base.best_val_elbo, 4), "tolerance": record.get("tolerance"),
               "chosen": [entry["chosen"] for entry in record["search"]],
               "search_gain": [round(max(e["val_prior_log_lik"]) - e["val_prior_log_lik"][0], 4) for e in record["search"]],
               "tov": scores, "start_val_elbo": record.get("start_val_elbo"), "best_at_start": record.get("best_at_start"),
               # both branches' starts have their priors refitted (2026-12-06 on): the given start is not the fit
               "prior_refit": record.get("prior_refit"),
               "turned_minus_given": None if scores is None else round(scores["turned"] - scores["given"], 4),
               # what the gate compared: each branch's best parameters scored over `draws` draws (their mean)
               "draws": record.get("draws"), "compared": (compared := record.get("compared_val_elbo")),
               "compared_turned_minus_given": None if compared is None else
               round(compared["turned"] - compared["given"], 4),
               "trained_on_epochs": record.get("epochs"), "trained_on_stopped": record.get("trained_on_stopped"),
               "decision": record["decision"], "given_mcc_shared": given_mcc,
               "returned_mcc_shared": shared_mcc(oriented, inputs.data, planted),
               "candidate_mcc_shared": shared_mcc(candidates.pop(), inputs.data, planted) if candidates else None,
               "overrides": " ".join(overrides)}


def argument_parser() -> argparse.ArgumentParser:
    """The command line (a test parses every command the docs show with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--streams", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tag", default="spent", help="suffix of the record's name")
    parser.add_argument("overrides", nargs="*", help="personax.run overrides, after `--`")
    return parser


def main(argv=None) -> None:
    args = argument_parser().parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"gate_noise_{args.tag}.jsonl", "a") as out:
        for seed in args.seeds:
            for record in records_of_seed(seed, args.streams, args.overrides):
                print(json.dumps(record), flush=True)
                out.write(json.dumps(record) + "\n")
                out.flush()


if __name__ == "__main__":
    main()
