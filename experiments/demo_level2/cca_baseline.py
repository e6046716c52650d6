"""The CCA -> ICA baseline of the demo's shared block, before and after its views are reduced.

The demo's image modality has 1,088 columns (a 64-dimensional CLIP embedding and a 1,024-pixel
thumbnail) and its fits train on 1,400 rows, so a CCA between the image and text views fits
noise: on seed 1003 its shared-block MCC was 0.846 in one recorded run and 0.838 in another on
the same data and split, and a perturbation of the inputs of 1e-9 moves it to 0.820. Since
2026-12-06 the baseline reduces a view wider than a tenth of the training rows by PCA, to the
size its validation canonical correlations choose (``personax/crl/_baselines.py``).

Per seed this runs the default pipeline up to the embeddings (no fit: the baselines need only
the measurements and the fit's split, which depends on the seed and the number of people) and
gives every baseline's held-out MCC per block, with the CCA as it was (``cca_ica_unreduced``) and
that same CCA on inputs perturbed by 1e-9 (``cca_ica_unreduced_perturbed``), beside the baseline
as it is now (``cca_ica``):

    .venv/bin/python experiments/demo_level2/cca_baseline.py --seeds 1000 1001 1002 1003 1004 1005 1006 1007 1008 1009

Spends no fresh seed (the seeds of the recorded runs; nothing is fitted). Appends one JSON line
per seed to ``results/cca_baseline.jsonl`` and rewrites ``results/cca_baseline.md``, which sets
the recorded personax MCCs of ``results/recovery_prior_refit.csv`` (1000-1004) and
``results/fresh2_prior_refit.csv`` (1005-1009) against the new best baseline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
RECORDS = ("recovery_prior_refit.csv", "fresh2_prior_refit.csv")


def baseline_scores(seed: int) -> dict:
    from omegaconf import OmegaConf

    import run as demo  # this folder
    from personax.crl import _baselines as B
    from personax.crl import diagnostics as D
    from personax.crl._fit import _split
    from personax.crl._model import CRLConfig
    from personax.crl.stage import crl_inputs, planted_truth
    from personax.pipeline import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = demo.run_pipeline(seed, [], Path(tmp), stages="ingest,traits,embeddings")
        options = OmegaConf.load(run_dir / ".hydra" / "config.yaml").crl
        inputs = crl_inputs(options, RunDir(run_dir))
        truth = planted_truth(RunDir(run_dir)).latent_blocks(inputs.persons, np.flatnonzero(inputs.complete))
    # the fit's split: the stage's seed and the number of people kept (CRLConfig's default fractions)
    splits = _split(int(inputs.complete.sum()), CRLConfig(0, {}, {}, {}, seed=seed))
    train, test = splits["train"], splits["test"]
    dims = {"shared": int(options.shared_dim), **{m: int(d) for m, d in options.latent_dims.items()}}

    def scores(data, **options) -> dict:
        estimates = B.baseline_latents(data, dims, train, seed=seed, **options)
        return {method: {block: D.mcc(estimate[train], truth[block][train], estimate[test], truth[block][test])["mcc"]
                         for block, estimate in blocks.items() if block in truth and estimate.shape[1]}
                for method, blocks in estimates.items()}

    now = scores(inputs.data, val=splits["val"])
    rng = np.random.default_rng(0)
    perturbation = {m: [x + 1e-9 * rng.normal(size=x.shape) for x in xs] for m, xs in inputs.data.items()}
    unreduced, perturbed = {}, {}
    with mock.patch.object(B, "_cca_views", lambda first, rest, *args: (first, rest)):
        for data, out in ((inputs.data, unreduced), (perturbation, perturbed)):
            try:
                out.update(scores(data)["cca_ica"])
            except np.linalg.LinAlgError as error:  # the unreduced CCA's SVD can fail outright
                out["failed"] = str(error)
    return {"seed": seed, "rows": {"train": len(train), "val": len(splits["val"]), "test": len(test)},
            "image_columns": int(sum(np.asarray(x).reshape(len(x), -1).shape[1] for x in inputs.data["image"])),
            **{method: blocks for method, blocks in now.items()},
            "cca_ica_unreduced": unreduced, "cca_ica_unreduced_perturbed": perturbed}


def summarise(records: list[dict]) -> str:
    recorded = pd.concat([pd.read_csv(RESULTS / name) for name in RECORDS if (RESULTS / name).exists()])
    lines = ["# The CCA -> ICA baseline of the demo, before and after its views are reduced", "",
             "No fit: every baseline on the recorded runs' data and splits. `unreduced`: the CCA on the 1,088 image "
             "columns as it was until 2026-12-06, and on inputs perturbed by 1e-9; `reduced`: the baseline now. "
             "`personax`: the recorded MCC (`" + "`, `".join(RECORDS) + "`), and its verdict against the best baseline "
             "now (MCC >= 0.8 and above every baseline).", "",
             "| seed | block | CCA -> ICA unreduced | unreduced, perturbed | reduced (now) | best baseline now | personax (recorded) | verdict now |",
             "|---|---|---|---|---|---|---|---|"]
    for record in sorted(records, key=lambda r: r["seed"]):
        for block in record["cca_ica"]:
            baselines = {m: record[m][block] for m in ("pca", "fastica", "rater_mean", "cca_ica") if block in record[m]}
            best = max(baselines, key=baselines.get)
            row = recorded[(recorded.seed == record["seed"]) & (recorded.block == block)]
            ours = float(row.mcc.iloc[0]) if len(row) else None
            verdict = ("—" if ours is None else "recovered" if ours >= 0.8 and ours >= baselines[best]
                       else "not recovered")
            old = [f"{record[key][block]:.3f}" if block in record[key] else "failed (SVD)"
                   for key in ("cca_ica_unreduced", "cca_ica_unreduced_perturbed")]
            lines.append(f"| {record['seed']} | {block} | {old[0]} | {old[1]} | {record['cca_ica'][block]:.3f} | "
                         f"{baselines[best]:.3f} ({best}) | {'—' if ours is None else f'{ours:.3f}'} | {verdict} |")
    return "\n".join(lines) + "\n"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "cca_baseline.jsonl", "a") as out:
        for seed in args.seeds:
            record = baseline_scores(seed)
            print(json.dumps(record), flush=True)
            out.write(json.dumps(record) + "\n")
    records = [json.loads(line) for line in (RESULTS / "cca_baseline.jsonl").read_text().splitlines() if line]
    (RESULTS / "cca_baseline.md").write_text(summarise(records))


if __name__ == "__main__":
    main()
