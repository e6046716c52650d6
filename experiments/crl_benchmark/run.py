"""CRL benchmark: our model against the study's design, a multimodal beta-VAE, PCA and FastICA.

    .venv/bin/python experiments/crl_benchmark/run.py --dataset numeric --seeds 0 1 2 3 4
    .venv/bin/python experiments/crl_benchmark/run.py --dataset digits --seeds 0 1 2 3 4 --n 3000

Writes experiments/crl_benchmark/results/<dataset>.csv and <dataset>.md (mean ± sd over seeds,
and the median MCC). All numbers are on the held-out test split; matchings are fitted on the
training split; every method sees the same splits. ``crl_reference`` is the original study's
design (personax.crl.fit_reference, its defects kept) with personax's split protocol.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA, FastICA

from personax.crl import diagnostics as D
from personax.crl import fit, fit_reference
from personax.crl._fit import _split
from personax.crl._model import CRLConfig
from personax.data.synthetic import make_multimodal_numeric, make_variant_digits

RESULTS = Path(__file__).parent / "results"


def _data(dataset: str, n: int, seed: int, image_size: int):
    """The benchmark, its block sizes and shared size, and model settings specific to it."""
    if dataset == "numeric":
        bench = make_multimodal_numeric(n, seed=seed)
        return bench, {"image": 2, "text": 2}, 2, {}
    bench = make_variant_digits(n, seed=seed, image_size=image_size)
    # eta carries each rendering's exemplar and translation: more than one number.
    return bench, {"digit": 2, "fashion": 2}, 0, {"noise_dim": 3}


def _score(latents: dict[str, np.ndarray], bench, splits, blocks, graph=None, threshold=0.05) -> dict[str, float]:
    order = ["shared", *blocks]
    true = np.concatenate([bench.latents[b] for b in order], axis=1)
    learned = np.concatenate([latents[b] for b in order if b in latents], axis=1)
    train, test = splits["train"], splits["test"]
    result = D.mcc(learned[train], true[train], learned[test], true[test])
    row = {"mcc": result["mcc"]}
    for block in order:
        if bench.latents[block].shape[1] == 0:
            continue
        source = latents.get(block, learned)
        r2 = D.block_r2(source[train][:3000], bench.latents[block][train][:3000], source[test], bench.latents[block][test])
        row[f"r2_{block}"] = r2["mean"]
    if graph is not None:
        matched = D.permute_graph(graph, result["assignment"])
        row["shd"] = D.shd(matched, bench.graph.to_numpy(), threshold=threshold)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=["numeric", "digits"], default="numeric")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=16, help="variant digits: pixels per side")
    parser.add_argument("--restarts", type=int, default=3, help="personax and beta-VAE: initialisations, best validation ELBO kept")
    parser.add_argument("--methods", nargs="+", default=["personax", "crl_reference", "beta-vae", "pca", "fastica"])
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        bench, dims, shared, settings = _data(args.dataset, args.n, seed, args.image_size)
        blocks = list(dims)
        for method in args.methods:
            start = time.perf_counter()
            if method in ("personax", "beta-vae"):
                extra = {} if method == "personax" else {"prior": "gaussian", "beta": 2.0}
                model = fit(bench.modalities, latent_dims=dims, shared_dim=shared, seed=seed,
                            max_epochs=args.epochs, restarts=args.restarts, **settings, **extra)
                latents, splits = model.encode(bench.modalities), model.splits
                graph = model.graph().to_numpy() if method == "personax" else None
            elif method == "crl_reference":  # the study's own settings, our splits and model selection
                model = fit_reference(bench.modalities, latent_dims=dims, shared_dim=shared, seed=seed)
                latents, splits, graph = model.encode(bench.modalities), model.splits, model.graph().to_numpy()
            else:
                splits = _split(len(bench.latents["shared"]), CRLConfig(0, {}, {}, {}, seed=seed))  # the models' splits
                flat = np.concatenate([x for arrays in bench.modalities.values() for x in arrays], axis=1)
                k = shared + sum(dims.values())
                reducer = PCA(k, random_state=seed) if method == "pca" else FastICA(k, random_state=seed, max_iter=1000)
                mean, std = flat[splits["train"]].mean(0), flat[splits["train"]].std(0) + 1e-8
                reducer.fit((flat[splits["train"]] - mean) / std)
                latents, graph = {"all": reducer.transform((flat - mean) / std)}, None
            seconds = time.perf_counter() - start
            if "all" in latents:
                latents = {"shared": latents["all"]}  # one unstructured block: MCC over all latents
            row = {"dataset": args.dataset, "seed": seed, "method": method, "seconds": round(seconds, 1),
                   **_score(latents, bench, splits, blocks, graph)}
            rows.append(row)
            print(row, flush=True)
    RESULTS.mkdir(exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(RESULTS / f"{args.dataset}.csv", index=False)
    metrics = [c for c in frame.columns if c not in ("dataset", "seed", "method")]
    summary = frame.groupby("method", sort=False)[metrics].agg(["mean", "std"])
    size = f", {args.image_size}x{args.image_size} px" if args.dataset == "digits" else ""
    size += f", {args.epochs} epochs, {args.restarts} restarts"
    lines = [f"# CRL benchmark: {args.dataset} (n = {args.n}{size}, seeds {args.seeds}, test split)", "",
             "| method | median MCC | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for method, group in frame.groupby("method", sort=False):
        cells = [f"{summary.loc[method, (m, 'mean')]:.3f} ± {summary.loc[method, (m, 'std')]:.3f}"
                 if pd.notna(summary.loc[method, (m, 'mean')]) else "—" for m in metrics]
        lines.append(f"| {method} | {group.mcc.median():.3f} | " + " | ".join(cells) + " |")
    (RESULTS / f"{args.dataset}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
