"""CRL benchmark: our model against ablations, the study's design and linear baselines.

    .venv/bin/python experiments/crl_benchmark/run.py --dataset numeric --tag fresh
    .venv/bin/python experiments/crl_benchmark/run.py --dataset digits --n 3000 --epochs 100 --tag fresh
    .venv/bin/python experiments/crl_benchmark/run.py --dataset numeric-auxiliary --tag fresh --restarts 1 \
        --methods personax personax-auxiliary personax-stage personax-stage-auxiliary pca fastica rater_mean cca_ica

The default seeds, 1000-1009, were never used while developing the model (development used
seeds 0-4). Writes experiments/crl_benchmark/results/<dataset>[_<tag>].csv and .md: the median
and range (min-max) over seeds of every metric. All numbers are on the held-out test split;
matchings are fitted on the training split; every method sees the same splits.

Methods: ``personax`` (the defaults); ``gaussian-beta1`` (the matched ablation: the same model
and training with a standard-normal prior, beta = 1); ``personax-contrastive`` (plus the
multiview InfoNCE term, weight 1); ``personax-stage`` (the crl stage's default objective, read
from conf/crl/default.yaml); ``personax-stage-oriented`` (the same, then the shared block's axes
searched by the prior's fit and kept if the validation ELBO says so: ``orient_shared``);
``personax-stage-converged`` (the crl stage's fit as it runs since 2026-12-05: the same, trained to
convergence, ``lr_schedule: plateau``; run it with ``--epochs 1000``, the stage's cap);
``personax-stage-converged-drawsearch`` (the same, with the search's angles scored on posterior
draws, ``orient_search_latents: draws``); ``personax-stage-ordered`` (the same, then each modality block's within-block order searched the
same way: ``order_search``);
``personax-stage-oriented-rounds2`` (the same, searching again once from a kept turn: ``orient_rounds: 2``); ``personax-auxiliary`` and ``personax-stage-auxiliary`` (the same,
with the benchmark's observed groups one-hot in the prior, iVAE, and under the stage's objective
in the decoders too, as the stage does: only on ``numeric-auxiliary``,
the numeric benchmark whose latents' noise an observed group shifts and scales); ``crl_reference`` (the original study's design,
personax.crl.fit_reference, its defects kept); ``beta-vae`` (Gaussian prior, beta = 2); and the
linear baselines of personax.crl._baselines on the same split: ``pca``, ``fastica``,
``rater_mean`` (each modality's mean measurement) and ``cca_ica`` (block-respecting CCA then ICA).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA, FastICA

from personax import enable_compilation_cache
from personax.crl import diagnostics as D
from personax.crl import fit, fit_reference
from personax.crl._baselines import BASELINES, baseline_latents
from personax.crl._fit import _split, standardised_edge_effects
from personax.crl._model import CRLConfig
from personax.crl._orient import fit_stop
from personax.data.synthetic import make_multimodal_numeric, make_variant_digits
from personax.crl.stage import OBJECTIVE_FIELDS, default_objective

RESULTS = Path(__file__).parent / "results"
# the crl stage's objective, from its config (auxiliary_in_decoders acts only where covariates are given:
# on the "-auxiliary" methods)
STAGE = default_objective()
# the crl stage's fit as it runs by default (since 2026-12-05 it trains to convergence: lr_schedule plateau;
# run it with --epochs 1000, the stage's safety cap), with the stage's gate of the shared axes' turn
CONVERGED = default_objective((*OBJECTIVE_FIELDS, "orient_shared", "lr_schedule", "orient_tolerance", "orient_draws"))
# the gate the records before 2026-12-05 evening were made with: the higher validation ELBO (one draw, the
# fixed key) after the training on wins. (A training on that only lost returned its last best epoch then,
# not its start; on every numeric record that logs both, an epoch beat the start, so none differs by it.)
# (Every search refits both branches' priors by the ELBO on posterior draws since 2026-12-06; the
# records made before then refitted the candidate's alone, to posterior means, and no option brings
# that back: a record's commit reproduces it.)
OLD_GATE = {"orient_tolerance": 0.0, "orient_draws": 1}
# personax and its ablations: method -> fit options on top of the defaults
MODEL_VARIANTS = {"personax": {}, "beta-vae": {"prior": "gaussian", "beta": 2.0},
                  "gaussian-beta1": {"prior": "gaussian", "beta": 1.0},
                  "personax-contrastive": {"contrastive": 1.0},
                  "personax-stage": STAGE,
                  # the stage's objective with InfoNCE only across modalities, on s (Daunhawer et al. 2023)
                  "personax-stage-crossmodal": {**STAGE, "contrastive_pairs": "cross_modal"},
                  # the stage's objective, then the shared block turned to the axes its prior fits best
                  # (CRLConfig.orient_shared, personax/crl/_orient.py)
                  # (the "-oriented" variants keep the gate they were recorded with, OLD_GATE; the stage's
                  # tolerance and draws came later)
                  "personax-stage-oriented": {**STAGE, "orient_shared": True, **OLD_GATE},
                  # the same, searching again from a kept turn (at most two rounds: orient_rounds)
                  # the same, then each modality block's within-block order searched by the prior's fit and
                  # kept if the validation ELBO says so (CRLConfig.order_search, personax/crl/_order.py)
                  "personax-stage-ordered": {**STAGE, "orient_shared": True, "order_search": True, **OLD_GATE},
                  "personax-stage-oriented-rounds2": {**STAGE, "orient_shared": True, "orient_rounds": 2, **OLD_GATE},
                  # the same, training on from the rate the fit's schedule ended at (a tenth of learning_rate)
                  # instead of restarting at learning_rate
                  "personax-stage-oriented-gentle": {**STAGE, "orient_shared": True, "orient_learning_rate": 2e-4,
                                                     **OLD_GATE},
                  # the crl stage's fit as it runs by default (CONVERGED, above)
                  "personax-stage-converged": CONVERGED,
                  # the same with the gate of the shared axes' turn it was recorded with until 2026-12-05
                  # evening: the higher validation ELBO after the training on wins (OLD_GATE)
                  "personax-stage-converged-strict": {**CONVERGED, **OLD_GATE},
                  # the same with the search's angles scored on posterior draws, not the means
                  # (CRLConfig.orient_search_latents), as the ELBO and the branches' prior refits score the prior
                  "personax-stage-converged-drawsearch": {**CONVERGED, "orient_search_latents": "draws"},
                  # the same with the L1 on each edge's standardised effect, not |A| (CRLConfig.l1_graph_on)
                  "personax-stage-converged-effectl1": {**CONVERGED, "l1_graph_on": "effect"},
                  # "-auxiliary": plus the benchmark's observed groups, one-hot, in the prior (iVAE)
                  # (and, through STAGE's auxiliary_in_decoders, in the stage objective's decoders)
                  "personax-auxiliary": {},
                  "personax-stage-auxiliary": STAGE}


def fit_options(method: str, bench) -> dict:
    """The fit options of one of MODEL_VARIANTS on a benchmark: the "-auxiliary" methods get its
    observed groups, one-hot."""
    extra = dict(MODEL_VARIANTS[method])
    if method.endswith("-auxiliary"):
        if bench.auxiliary is None:
            raise SystemExit(f"{method} needs a benchmark with observed groups (--dataset numeric-auxiliary)")
        extra["auxiliary"] = np.eye(int(bench.auxiliary.max()) + 1, dtype=np.float32)[bench.auxiliary]
    return extra


def _data(dataset: str, n: int, seed: int, image_size: int):
    """The benchmark, its block sizes and shared size, and model settings specific to it."""
    if dataset in ("numeric", "numeric-auxiliary"):
        # numeric-auxiliary: an observed group (13 = 2 x 6 latents + 1, iVAE's count) shifts and scales
        # every latent's exogenous noise
        bench = make_multimodal_numeric(n, seed=seed, auxiliary_groups=13 if dataset == "numeric-auxiliary" else 0)
        return bench, {"image": 2, "text": 2}, 2, {}
    bench = make_variant_digits(n, seed=seed, image_size=image_size)
    # eta carries each rendering's exemplar and translation: more than one number.
    return bench, {"digit": 2, "fashion": 2}, 0, {"noise_dim": 3}


SHD_THRESHOLD = 0.05  # the `shd` column: a learned edge counts where |weight| exceeds this
# the `shd_effect` column: a learned edge counts where its standardised effect (the sd of its term over the
# child's sd, on the training rows) exceeds this; unlike |weight| it does not depend on the latents' scale.
# Declared before any seed was scored with it (personax.crl.diagnostics.STRONG_EFFECT); the .md's
# sensitivity table gives the SHD at other thresholds (results/numeric_dev_effects.md: development seeds).
EFFECT_THRESHOLD = D.STRONG_EFFECT


def _without_matrices(record):
    """A search record without its turn matrices (every round's), for the graphs' JSON lines."""
    if not record:
        return record
    return {k: ([_without_matrices(r) for r in v] if k == "rounds" else v) for k, v in record.items() if k != "matrix"}


def _score(latents: dict[str, np.ndarray], bench, splits, blocks, graph=None,
           threshold=SHD_THRESHOLD, effects=None) -> dict[str, float]:
    order = ["shared", *blocks]
    true = np.concatenate([bench.latents[b] for b in order], axis=1)
    learned = np.concatenate([latents[b] for b in order if b in latents], axis=1)
    train, test = splits["train"], splits["test"]
    result = D.mcc(learned[train], true[train], learned[test], true[test])
    row = {"mcc": result["mcc"]}
    # each planted block's share of it (the mean matched correlation of its latents; runs from 2026-12-05 on)
    start = 0
    for block in order:
        width = bench.latents[block].shape[1]
        if width:
            row[f"mcc_{block}"] = float(np.mean(result["per_latent"][start:start + width]))
        start += width
    for block in order:
        if bench.latents[block].shape[1] == 0:
            continue
        source = latents.get(block, learned)
        r2 = D.block_r2(source[train][:3000], bench.latents[block][train][:3000], source[test], bench.latents[block][test])
        row[f"r2_{block}"] = r2["mean"]
    if graph is not None:
        matched = D.permute_graph(graph, result["assignment"])
        row["shd"] = D.shd(matched, bench.graph.to_numpy(), threshold=threshold)
        # the model's own graph: every nonzero entry is an edge its likelihood uses (as the crl stage counts)
        row["shd_nonzero"] = D.shd(matched, bench.graph.to_numpy(), threshold=0.0)
        if effects is not None:
            matched_effects = D.permute_graph(effects, result["assignment"])
            strong = D.strong_edges(matched_effects, threshold=EFFECT_THRESHOLD)
            row["shd_effect"] = D.shd(strong, bench.graph.to_numpy() != 0)
            row["_graphs"] = {"assignment": [int(i) for i in result["assignment"]],
                              "weights": matched.tolist(),
                              "effects": [[None if np.isnan(e) else float(e) for e in line]  # strict JSON
                                          for line in matched_effects],
                              "true": bench.graph.to_numpy().tolist()}
    return row


def _training_effects(model, latents: dict[str, np.ndarray], train: np.ndarray) -> np.ndarray | None:
    """Each edge's standardised effect on the training rows (None without additive edges)."""
    if not model.config.additive_edges:
        return None
    ordered = np.concatenate([latents[block][train] for block in model.config.block_slices() if block in latents],
                             axis=1)
    return standardised_edge_effects(model.params, model.adjacency(), ordered)


def fit_and_encode(dataset: str, n: int, seed: int, *, epochs: int, method: str, image_size: int = 16):
    """One fit of ``method`` (1 restart) for this folder's diagnostics: the benchmark, the model, its
    encoded blocks, and the planted and learned latents stacked [s, z(1), ...]. ``image_size``: variant
    digits' pixels per side (the records' 16, as ``run.py``'s default)."""
    bench, dims, shared_dim, settings = _data(dataset, n, seed, image_size=image_size)
    model = fit(bench.modalities, latent_dims=dims, shared_dim=shared_dim, seed=seed, max_epochs=epochs, restarts=1,
                **{**settings, **fit_options(method, bench)})
    encoded = model.encode(bench.modalities)
    order = ["shared", *dims]
    planted = np.concatenate([bench.latents[b] for b in order], axis=1)
    learned = np.concatenate([encoded[b] for b in order], axis=1)
    return bench, model, encoded, planted, learned


def diagnostic_parser(description: str, parts: list[str]) -> argparse.ArgumentParser:
    """The command line of this folder's diagnostics of fits (``transitivity.py``,
    ``mechanism_sparsity.py``): a part, the seeds, the benchmark's size, the fit's epoch cap and
    method, and a tag for the record's name."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("part", choices=parts)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=1000, help="fits: the epoch cap (the stage's)")
    parser.add_argument("--method", choices=list(MODEL_VARIANTS), default="personax-stage-converged", help="fits")
    parser.add_argument("--tag", default="", help="suffix of the record's name")
    return parser


def append_records(name: str, args: argparse.Namespace, records_of_seed) -> None:
    """Appends ``records_of_seed(seed)``'s records, one JSON line each, to
    ``results/<name>_<part>[_<tag>].jsonl`` as each seed finishes (and prints them)."""
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{name}_{args.part}{'_' + args.tag if args.tag else ''}.jsonl", "a") as out:
        for seed in args.seeds:
            for record in records_of_seed(seed):
                print(json.dumps(record), flush=True)
                out.write(json.dumps(record) + "\n")
                out.flush()


def record_and_summarise(name: str, args: argparse.Namespace, records_of_seed, summary) -> None:
    """A diagnostic's two parts: ``fits`` appends ``records_of_seed(seed)``'s records
    (:func:`append_records`); then either part rewrites ``results/<name>_fits[_<tag>].md`` with
    ``summary`` of the whole record and prints it."""
    path = RESULTS / f"{name}_fits{'_' + args.tag if args.tag else ''}.jsonl"
    if args.part == "fits":
        append_records(name, args, records_of_seed)
    path.with_suffix(".md").write_text(summary(path))
    print(path.with_suffix(".md").read_text())


def argument_parser() -> argparse.ArgumentParser:
    """The command line (a test parses every command the docs show with it)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=["numeric", "numeric-auxiliary", "digits"], default="numeric")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1000, 1010)))
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=16, help="variant digits: pixels per side")
    parser.add_argument("--restarts", type=int, default=3, help="personax and beta-VAE: initialisations, best validation ELBO kept")
    parser.add_argument("--methods", nargs="+", choices=[*MODEL_VARIANTS, "crl_reference", *BASELINES],
                        default=["personax", "gaussian-beta1", *BASELINES])
    parser.add_argument("--summarise", action="store_true",
                        help="only rewrite the .md summary from the recorded .csv (e.g. after an interrupted run)")
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    # as `python -m personax.run` does: with $PERSONAX_COMPILATION_CACHE set, the seeds after the first
    # load their training programs (the same shapes) instead of compiling them
    enable_compilation_cache(os.environ.get("PERSONAX_COMPILATION_CACHE"))
    if args.summarise:
        name = args.dataset + (f"_{args.tag}" if args.tag else "")
        frame = pd.read_csv(RESULTS / f"{name}.csv")
        (RESULTS / f"{name}.md").write_text(summarise(frame, args) + "\n")
        print(summarise(frame, args))
        return
    rows = []
    cached: dict[int, dict] = {}
    RESULTS.mkdir(exist_ok=True)
    name = args.dataset + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}_graphs.jsonl").unlink(missing_ok=True)  # this run's graphs only, as in the .csv
    for seed in args.seeds:
        bench, dims, shared, settings = _data(args.dataset, args.n, seed, args.image_size)
        blocks = list(dims)
        for method in args.methods:
            start = time.perf_counter()
            splits = _split(len(bench.latents["shared"]), CRLConfig(0, {}, {}, {}, seed=seed))  # the models' splits
            if method in MODEL_VARIANTS:
                extra = fit_options(method, bench)
                model = fit(bench.modalities, latent_dims=dims, shared_dim=shared, seed=seed,
                            max_epochs=args.epochs, restarts=args.restarts, **{**settings, **extra})
                latents, splits = model.encode(bench.modalities), model.splits
                graph = model.graph().to_numpy() if method.startswith("personax") else None
                effects = _training_effects(model, latents, splits["train"]) if graph is not None else None
                stopped = fit_stop(model)[0]  # the fit's own stop (model.stopped is the training on's after a search)
                if model.orientation:  # orient_shared: what the search of the shared axes decided
                    stopped += f"; shared axes {model.orientation['decision']}"
                    if "rounds" in model.orientation:
                        stopped += f" (rounds: {', '.join(r['decision'] for r in model.orientation['rounds'])})"
                if model.reordering:  # order_search: what the search of the within-block orders decided
                    stopped += f"; block orders {model.reordering['decision']}"
            elif method == "crl_reference":  # the study's own settings, our splits and model selection
                model = fit_reference(bench.modalities, latent_dims=dims, shared_dim=shared, seed=seed)
                latents, splits, graph = model.encode(bench.modalities), model.splits, model.graph().to_numpy()
                stopped, effects = "", None
            else:
                if seed not in cached:  # one fit of every linear baseline per seed
                    cached.clear()
                    cached[seed] = baseline_latents(bench.modalities, {"shared": shared, **dims}, splits["train"],
                                                    seed=seed, val=splits.get("val"))
                blocks_of = cached[seed][method]
                if method in ("pca", "fastica"):
                    latents = {"all": blocks_of[blocks[0]]}
                else:
                    latents = {b: blocks_of[b] for b in ["shared", *blocks] if b in blocks_of and (b != "shared" or shared)}
                graph, stopped, effects = None, "", None
            seconds = time.perf_counter() - start
            if "all" in latents:
                latents = {"shared": latents["all"]}  # one unstructured block: MCC over all latents
            row = {"dataset": args.dataset, "seed": seed, "method": method, "seconds": round(seconds, 1),
                   **_score(latents, bench, splits, blocks, graph, effects=effects), "stopped": stopped}
            graphs = row.pop("_graphs", None)
            if graphs is not None:  # every learned graph, matched: SHD at any threshold without refitting
                with open(RESULTS / f"{name}_graphs.jsonl", "a") as handle:
                    # what the searches after the fit decided (runs from 2026-12-05 evening on record the
                    # orientation too: the paired training on's scores decide its gate)
                    searches = {k: v for k, v in (("orientation", _without_matrices(getattr(model, "orientation", None))),
                                                  ("reordering", getattr(model, "reordering", None))) if v}
                    handle.write(json.dumps({"seed": seed, "method": method, **graphs, **searches}) + "\n")
            rows.append(row)
            print(row, flush=True)
            pd.DataFrame(rows).to_csv(RESULTS / f"{name}.csv", index=False)  # partial results survive an interruption
    frame = pd.DataFrame(rows)
    frame.to_csv(RESULTS / f"{name}.csv", index=False)
    (RESULTS / f"{name}.md").write_text(summarise(frame, args) + "\n")
    print(summarise(frame, args))


SHD_NOTE = ("`shd`: structural Hamming distance to the true graph after matching latents, counting an edge where "
            f"the learned |weight| > {SHD_THRESHOLD}. `shd_nonzero` (runs from 2026-12-03 on): every nonzero entry is an edge, "
            "the model's own graph, as the crl stage's `recovery.json` counts it. `shd_effect` (runs from 2026-12-04 on): "
            f"an edge where its standardised effect (the sd of its term over the child's sd, training rows) > {EFFECT_THRESHOLD}, "
            "a measure that, unlike |weight|, does not depend on the fitted latents' scale.")
DEVELOPMENT_SEEDS = set(range(5))  # the seeds the model was developed on; a table says when it uses them
TARGETS = {"numeric": {"median MCC": 0.93, "min MCC": 0.85, "median SHD": 1},
           "digits": {"median MCC": 0.90, "median SHD": 1}}
TARGETS["numeric-auxiliary"] = TARGETS["numeric"]


EFFECT_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)  # the sensitivity table's columns


def effect_threshold_table(graphs: Path) -> str:
    """Median [min, max] SHD over seeds when an edge counts at standardised effect above each of
    ``EFFECT_THRESHOLDS``, per method, from a run's ``<name>_graphs.jsonl``: how much the
    ``shd_effect`` column depends on its threshold ("" when the run recorded no graphs)."""
    if not graphs.exists():
        return ""
    records = [json.loads(line) for line in graphs.read_text().splitlines() if line.strip()]
    lines = ["SHD by the standardised-effect threshold (median [min, max] over seeds; the `shd_effect` column "
             f"uses {EFFECT_THRESHOLD}):", "",
             "| method | " + " | ".join(f"> {t}" for t in EFFECT_THRESHOLDS) + " |",
             "|---" * (len(EFFECT_THRESHOLDS) + 1) + "|"]
    for method in dict.fromkeys(r["method"] for r in records):
        ours = [r for r in records if r["method"] == method]
        cells = []
        for t in EFFECT_THRESHOLDS:
            values = [D.shd(D.strong_edges(np.asarray(r["effects"], float), threshold=t), np.asarray(r["true"]) != 0)
                      for r in ours]
            cells.append(f"{np.median(values):g} [{min(values)}, {max(values)}]")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(frame: pd.DataFrame, args) -> str:
    """Median and range over seeds per method, and the issue's targets for personax (met / not met)."""
    metrics = [c for c in frame.columns if c not in ("dataset", "seed", "method", "stopped")
               and frame[c].notna().any()]
    size = f", {args.image_size}x{args.image_size} px" if args.dataset == "digits" else ""
    seeds = sorted(int(seed) for seed in frame.seed.unique())
    used = sorted(set(seeds) & DEVELOPMENT_SEEDS)
    provenance = ("not used in development" if not used else
                  "all used in development" if len(used) == len(seeds) else f"development seeds among them: {used}")
    lines = [f"# CRL benchmark: {args.dataset} (n = {args.n}{size}, {args.epochs} epoch cap, {args.restarts} restarts, "
             f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} seeds, {provenance}), test split)", "",
             "Each cell: median [min, max] over seeds.", "",
             *([SHD_NOTE, ""] if "shd" in metrics else []),
             "| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for method, group in frame.groupby("method", sort=False):
        cells = []
        for m in metrics:
            values = group[m].dropna()
            cells.append(f"{values.median():.3f} [{values.min():.3f}, {values.max():.3f}]" if len(values) else "—")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    ours_methods = [m for m in frame.method.unique() if m.startswith("personax")] if args.dataset in TARGETS else []
    for method in ours_methods:  # the targets, for every personax variant in the table
        ours = frame[frame.method == method]
        caveat = "" if not used else ", development seeds: not evidence"
        if args.dataset == "numeric-auxiliary":
            caveat += ", the numeric benchmark's thresholds"
        lines += ["", f"| target ({method}{caveat}) | value | status |", "|---|---|---|"]
        observed = {"median MCC": ours.mcc.median(), "min MCC": ours.mcc.min(),
                    "median SHD": ours.shd.median() if "shd" in ours else float("nan")}
        targets = dict(TARGETS[args.dataset])
        if "shd_nonzero" in ours and ours.shd_nonzero.notna().any():
            # the stricter count, next to the one earlier records were judged by
            observed["median SHD (every nonzero edge)"] = ours.shd_nonzero.median()
            targets["median SHD (every nonzero edge)"] = targets["median SHD"]
        if "shd_effect" in ours and ours.shd_effect.notna().any():
            observed[f"median SHD (standardised effect > {EFFECT_THRESHOLD})"] = ours.shd_effect.median()
            targets[f"median SHD (standardised effect > {EFFECT_THRESHOLD})"] = targets["median SHD"]
        for label, goal in targets.items():
            value = observed[label]
            ok = value <= goal if "SHD" in label else value >= goal
            lines.append(f"| {label} {'<=' if 'SHD' in label else '>='} {goal} | {value:.3f} | {'met' if ok else 'not met'} |")
        if "stopped" in ours:
            lines.append(f"\nStopping ({method}): {ours.stopped.value_counts().to_dict()}")
    name = args.dataset + (f"_{args.tag}" if getattr(args, "tag", "") else "")
    sensitivity = effect_threshold_table(RESULTS / f"{name}_graphs.jsonl")
    if sensitivity:
        lines += ["", sensitivity]
    if len(seeds) < len(args.seeds):
        lines.append(f"\n**Incomplete: {len(seeds)} of the {len(args.seeds)} planned seeds were run.**")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
