"""Where the default run's Level II loses what its measurements hold: each measurement's own proposal.

The crl stage's posterior combines one proposal per measurement: for a modality block z(m), the
product of experts over that modality's measurements (weighted by each proposal's precision); for
``s``, the uniform mixture over every measurement (encoded ``s`` is its mean, an equal-weight
average of the proposals). This runs the default pipeline (``python -m personax.run``, the stages
``run.py`` runs) once per seed and, per planted block, gives the held-out (test split) linear R² of
the planted latents:

* ``encoded``: from the block as the stage encodes it;
* ``proposal <measurement>``: from one measurement's own encoder mean for the block, next to
  ``scores <measurement>``, ridge from that measurement's values (missing entries at the training
  mean, plus an indicator per column) and that proposal's mean precision (its weight in the
  product of experts; for ``s`` each proposal weighs the same);
* ``proposals side by side``: ridge from every measurement's proposal at once (the best linear
  combination of them, which the product or the mixture would have to match);
* ``measurements``: ridge from all the block's measurements, with indicators.

and, for ``s``, the MCC of the encoded mean and of the same average with each measurement's
proposal left out. Every regression is fitted on the training split. Default seeds 0 and 3 (those
used while developing the demo), so that nothing learned here spends the fresh seeds.

    .venv/bin/python experiments/demo_level2/experts.py --seeds 0 3

Writes ``results/<tag>.jsonl`` (one line per seed) and ``results/<tag>.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np


def _sibling(name: str):
    """A script of this folder as a module (not a package; loaded by path, under its own name, so that
    another folder's ``run.py`` cannot stand in for it)."""
    spec = importlib.util.spec_from_file_location(f"demo_level2_{name}", Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_run = _sibling("run")
RESULTS, run_pipeline = _run.RESULTS, _run.run_pipeline


def ridge_r2(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from personax.crl import diagnostics as D

    return float(D.block_r2(x[train], y[train], x[test], y[test], alphas=np.logspace(-3, 4, 15))["mean"])


def with_indicators(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    from personax.crl._baselines import _standardised

    missing = np.isnan(x).astype(float)
    return np.hstack([_standardised(x, train), missing[:, missing[train].any(0)]])


def diagnose(run_path: Path) -> dict:
    """The numbers above for one finished run directory (ingest, traits, embeddings, crl)."""
    import jax.numpy as jnp

    from personax import artifacts as A
    from personax.crl import diagnostics as D
    from personax.crl import load_pretrained
    from personax.crl._fit import _split, usable_rows
    from personax.crl._model import CausalMultimodalVAE, block_inputs, measurement_keys
    from personax.crl.stage import load_measurements
    from personax.data.truth import planted_truth
    from personax.pipeline import RunDir

    run_dir = RunDir(run_path)
    persons = run_dir.read(A.PERSONS)
    names = run_dir.read(A.CRL_METRICS)["measurements"]  # modality -> the references the stage loaded, in order
    modalities = {m: [load_measurements(run_dir, ref, persons)[0][1] for ref in refs] for m, refs in names.items()}
    usable = usable_rows(modalities)  # as the stage: the people it fitted
    data = {m: [a[usable] for a in arrays] for m, arrays in modalities.items()}
    model = load_pretrained(run_dir.locate(A.CRL_MODEL))
    splits = _split(int(usable.sum()), model.config)  # the stage's split (seeded by the model's config)
    train, test = splits["train"], splits["test"]
    truth = planted_truth(run_dir).latent_blocks(persons, np.flatnonzero(usable))
    encoded = model.encode(data)
    standardised = {k: jnp.asarray(v) for k, v in model._standardise(data).items()}
    proposals = model.module.apply({"params": model.params}, standardised,
                                   method=CausalMultimodalVAE.measurement_posteriors)
    config = model.config
    label = {f"{m}_{k}": names[m][k] for m, k in measurement_keys(config)}
    out: dict = {"blocks": {}}
    for block, true in truth.items():
        keys = {f"{m}_{k}": (m, k) for m, k in measurement_keys(config) if block in ("shared", m)}
        # each proposal's latents are [s, z(m), eta(m,k)], the layout its decoders read
        columns = {key: slice(0, config.shared_dim) if block == "shared" else slice(*block_inputs(config, m))
                   for key, (m, _) in keys.items()}
        own = {key: np.asarray(proposals[key][0])[:, columns[key]] for key in keys}
        precision = {key: float(np.exp(-np.asarray(proposals[key][1])[:, columns[key]]).mean()) for key in keys}
        values = {key: data[m][k] for key, (m, k) in keys.items()}
        row = {"encoded": ridge_r2(encoded[block], true, train, test),
               "encoded_mcc": D.mcc(encoded[block][train], true[train], encoded[block][test], true[test])["mcc"],
               "proposals_side_by_side": ridge_r2(np.hstack(list(own.values())), true, train, test),
               "measurements": ridge_r2(np.hstack([with_indicators(v, train) for v in values.values()]), true, train, test),
               "per_measurement": {label[key]: {"proposal": ridge_r2(own[key], true, train, test),
                                                "scores": ridge_r2(with_indicators(values[key], train), true, train, test),
                                                "mean_precision": precision[key]} for key in keys}}
        if block == "shared":
            present = {key: np.asarray(proposals[key][2]) for key in keys}
            left_out = {}
            for drop in keys:
                kept = [k for k in keys if k != drop]
                mean = sum(own[k] * present[k] for k in kept) / np.maximum(sum(present[k] for k in kept), 1.0)
                left_out[label[drop]] = D.mcc(mean[train], true[train], mean[test], true[test])["mcc"]
            row["mcc_without"] = left_out
        out["blocks"][block] = row
    return out


def markdown(records: list[dict]) -> str:
    lines = ["# Each measurement's proposal, default run", "",
             f"Seeds: {', '.join(str(r['seed']) for r in records)} (used while developing the demo). Held-out linear "
             "R² of the planted latents; `precision`: the proposal's mean precision for the block.", ""]
    for record in records:
        for block, row in record["blocks"].items():
            lines += [f"## Seed {record['seed']}, block {block}", "",
                      f"Encoded: R² {row['encoded']:.3f} (MCC {row['encoded_mcc']:.3f}); proposals side by side "
                      f"{row['proposals_side_by_side']:.3f}; all its measurements {row['measurements']:.3f}.", "",
                      "| measurement | its proposal | its values | precision |" + (" MCC of s without it |"
                                                                                   if "mcc_without" in row else ""),
                      "|---|---|---|---|" + ("---|" if "mcc_without" in row else "")]
            for name, cells in row["per_measurement"].items():
                extra = f" {row['mcc_without'][name]:.3f} |" if "mcc_without" in row else ""
                lines.append(f"| {name} | {cells['proposal']:.3f} | {cells['scores']:.3f} | "
                             f"{cells['mean_precision']:.2f} |{extra}")
            lines.append("")
    return "\n".join(lines)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 3])
    parser.add_argument("--tag", default="experts")
    parser.add_argument("overrides", nargs="*", help="personax.run overrides, after `--`")
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    RESULTS.mkdir(exist_ok=True)
    records = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            run_path = run_pipeline(seed, args.overrides, Path(tmp))
            records.append({"seed": seed, "overrides": " ".join(args.overrides), **diagnose(run_path)})
        (RESULTS / f"{args.tag}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (RESULTS / f"{args.tag}.md").write_text(markdown(records))
        print(markdown(records[-1:]), flush=True)


if __name__ == "__main__":
    main()
