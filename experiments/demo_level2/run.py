"""The default run's Level II on fresh seeds: does the crl stage recover the demo's planted latents?

Runs the default pipeline (``python -m personax.run``, stages ingest, traits, embeddings, crl)
once per seed in a fresh run directory and records, per latent block, the held-out MCC of
personax, the best linear baseline on the same split, the verdict, and the SHD of the learned
graph (the demo plants e, a | face_length -> nose_length | o, c -> n).

    .venv/bin/python experiments/demo_level2/run.py --seeds 1000 1001 1002 1003 1004

Writes ``results/recovery.csv`` (a row per seed and block, written after every seed) and
``results/recovery.md`` (median and [min, max] over seeds, targets met / not met). Seeds 1000+
were not used while developing the design (development used seed 0 and, in tests, seed 3).
Extra Hydra overrides for every run go after ``--``, e.g. ``-- crl.fit.contrastive=1.0``.
``--faces VARIANT`` draws the faces differently (an ablation; ``faces_variant.py`` says how).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results"
TARGET_MCC = 0.8  # issue 12: every block >= 0.8 and above every baseline on the same split


def run_pipeline(seed: int, overrides: list[str], workdir: Path, faces: str = "drawn",
                 stages: str = "ingest,traits,embeddings,crl") -> Path:
    """Runs the default pipeline's ``stages`` (up to crl) for ``seed`` under ``workdir``; returns the run directory."""
    launcher = ["-m", "personax.run"] if faces == "drawn" else [str(Path(__file__).parent / "faces_variant.py"), faces]
    run_dir = Path(workdir) / "run"
    command = [sys.executable, *launcher, f"seed={seed}", f"stages=[{stages}]",
               f"hydra.run.dir={run_dir}", f"embeddings.cache_dir={workdir}/cache", *overrides]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return run_dir


def run_seed(seed: int, overrides: list[str], faces: str = "drawn") -> list[dict]:
    from personax import artifacts as A
    from personax.pipeline import RunDir
    from personax.report._collect import compared_scores

    with tempfile.TemporaryDirectory() as tmp:
        metrics = RunDir(run_pipeline(seed, overrides, Path(tmp), faces)).read(A.CRL_METRICS)
    rows = []
    for block, result in metrics["recovery"].items():
        if block == "all":
            continue
        rows.append({"seed": seed, "block": block, "mcc": result["mcc"], "best_baseline": result["best_baseline"],
                     "best_baseline_mcc": result["best_baseline_mcc"], "verdict": result["verdict"],
                     **{key: result.get(key) for key in ("supervised_readout_mcc", "r2_own_block", "r2_all_latents",
                                                          "r2_measurements", "diagnosis")},
                     # both by Spearman's correlation (2026-12-07 on; docs/crl.md): compared only with each other
                     **{key: result.get(key) for key in ("mcc_spearman", "best_baseline_mcc_spearman")},
                     "shd_learned_graph": metrics["recovery"].get("all", {}).get("shd_learned_graph"),
                     # the same, counting only the edges with a standardised effect above 0.2 (2026-12-04 on)
                     "shd_strong_graph": metrics["recovery"].get("all", {}).get("shd_strong_graph"),
                     "epochs": metrics["epochs"], "stopped": metrics["stopped"],
                     # the fit's own epochs, before the training on after the search of the shared axes
                     # (metrics.json from 2026-12-04 06:30 on; "stopped" is the fit's own stop since then too)
                     **({"fit_epochs": metrics["fit_epochs"]} if "fit_epochs" in metrics else {}),
                     # crl.fit.orient_shared: whether the turned shared block was kept
                     **({"shared_axes": metrics["orientation"]["decision"]} if "orientation" in metrics else {}),
                     # ... and the margin the gate (crl.fit.orient_tolerance) decided by, turned minus given
                     # (2026-12-05 evening on): the branches' scores it compared (means over draws, 2026-12-05
                     # late on; before, the best validation ELBOs of the fixed key)
                     **({"shared_axes_margin": round(scores["turned"] - scores["given"], 4)}
                        if (scores := compared_scores(metrics.get("orientation") or {})[0]) else {}),
                     # crl.fit.order_search: whether the reordered within-block orders were kept
                     **({"block_orders": metrics["reordering"]["decision"]} if "reordering" in metrics else {}),
                     # crl.fit.lr_schedule: plateau (the stage's default since 2026-12-05): the epochs that
                     # began at a lower learning rate, space-separated
                     **({"learning_rate_cuts": " ".join(map(str, metrics["learning_rate_cuts"]))}
                        if "learning_rate_cuts" in metrics else {}),
                     # crl.fit.shared_posterior: learned_mixture (2026-12-06 on): each measurement's weight in s
                     **({"mixture_weights": " ".join(f"{name}={weight:.3f}" for name, weight in
                                                     metrics["mixture_weights"].items())}
                        if "mixture_weights" in metrics else {}),
                     "overrides": " ".join(overrides), "faces": faces})
    return rows


DEVELOPMENT_SEEDS = {0, 3}  # the design was developed on seed 0; its test uses seed 3


def summarise(frame: pd.DataFrame) -> str:
    seeds = sorted(int(s) for s in frame.seed.unique())
    used = sorted(set(seeds) & DEVELOPMENT_SEEDS)
    provenance = ("not used while developing" if not used else "all used while developing: not evidence"
                  if len(used) == len(seeds) else f"used while developing among them: {used}")
    lines = ["# Demo Level II recovery" + (" on fresh seeds" if not used else ""), "",
             f"Seeds: {', '.join(str(s) for s in seeds)} ({provenance}). "
             f"Overrides: `{frame.overrides.fillna('').iloc[0] or 'none'}`. "
             f"Faces: {frame.faces.iloc[0]}. Held-out (test split) MCC, median [min, max].", "",
             "| block | personax MCC | best baseline MCC (which) | recovered | target (MCC >= 0.8 and above every baseline) |",
             "|---|---|---|---|---|"]
    for block, rows in frame.groupby("block", sort=False):
        mcc, base = rows.mcc, rows.best_baseline_mcc
        met = bool(((rows.mcc >= TARGET_MCC) & (rows.mcc >= rows.best_baseline_mcc)).all())
        lines.append(f"| {block} | {mcc.median():.3f} [{mcc.min():.3f}, {mcc.max():.3f}] | "
                     f"{base.median():.3f} [{base.min():.3f}, {base.max():.3f}] ({', '.join(sorted(set(rows.best_baseline)))}) | "
                     f"{int((rows.verdict == 'recovered').sum())} of {len(rows)} seeds | {'met' if met else 'not met'} |")
    if "supervised_readout_mcc" in frame and frame.supervised_readout_mcc.notna().all():
        lines += ["", "How high a linear estimate can score from these measurements: the MCC of a ridge readout "
                      "fitted to the planted latents on the training split (a reference, not a baseline: it "
                      "knows the truth), median [min, max]:", "",
                  "| block | personax MCC | best baseline MCC | supervised linear readout MCC |", "|---|---|---|---|"]
        for block, rows in frame.groupby("block", sort=False):
            cells = [f"{rows[c].median():.3f} [{rows[c].min():.3f}, {rows[c].max():.3f}]"
                     for c in ("mcc", "best_baseline_mcc", "supervised_readout_mcc")]
            lines.append(f"| {block} | {' | '.join(cells)} |")
    if "r2_measurements" in frame and frame.r2_measurements.notna().all():
        lines += ["", "Where each planted block's information is (held-out linear R² of the planted latents, "
                      "median [min, max]) and the stage's diagnosis:", "",
                  "| block | from the learned block | from all learned latents | from the measurements | diagnosis (seeds) |",
                  "|---|---|---|---|---|"]
        for block, rows in frame.groupby("block", sort=False):
            cells = [f"{rows[c].median():.2f} [{rows[c].min():.2f}, {rows[c].max():.2f}]"
                     for c in ("r2_own_block", "r2_all_latents", "r2_measurements")]
            diagnoses = rows.diagnosis.fillna("recovered").value_counts()
            lines.append(f"| {block} | {' | '.join(cells)} | "
                         f"{'; '.join(f'{text} ({count})' for text, count in diagnoses.items())} |")
    stops = frame.drop_duplicates("seed")  # one row per run
    shd = stops.shd_learned_graph.dropna()
    if len(shd):
        lines += ["", f"SHD of the learned graph (7 latents, 2 planted edges): median {shd.median():g} "
                      f"[{shd.min():g}, {shd.max():g}]."]
    strong = stops.get("shd_strong_graph", pd.Series(dtype=float)).dropna()
    if len(strong) and len(strong) == len(shd):
        lines[-1] += (f" Counting only the learned edges with a standardised effect above 0.2: median "
                      f"{strong.median():g} [{strong.min():g}, {strong.max():g}].")
    if "fit_epochs" in stops and stops.fit_epochs.notna().all():
        lines += ["", f"The fit stopped early on validation in {int((stops.stopped != 'epoch cap').sum())} of "
                      f"{len(stops)} runs (its epochs: {', '.join(str(int(e)) for e in stops.fit_epochs)}; with the "
                      f"training on after the search of the shared axes: {', '.join(str(e) for e in stops.epochs)})."]
    else:  # records before 2026-12-04 06:30: "stopped" is the last training's (after a search, the training on's)
        lines += ["", f"Training stopped early on validation in {int((stops.stopped != 'epoch cap').sum())} of "
                      f"{len(stops)} runs (epochs: {', '.join(str(e) for e in stops.epochs)}; after a search of the "
                      "shared axes, the stop of the training on that followed it)."]
    if "shared_axes" in stops:  # crl.fit.orient_shared
        margins = stops.shared_axes_margin if "shared_axes_margin" in stops else [None] * len(stops)
        lines += ["", "Shared axes turned after the fit (`orient_shared`): "
                      + ", ".join(f"seed {seed} {decision}" + ("" if margin is None or pd.isna(margin) else
                                                               f" (turned minus given, the scores the gate compared: {margin:+.3f})")
                                  for seed, decision, margin in zip(stops.seed, stops.shared_axes, margins)) + "."]
    if "block_orders" in stops and stops.block_orders.notna().all():  # crl.fit.order_search
        lines += ["", "Within-block orders changed after the fit (`order_search`): "
                      + ", ".join(f"seed {seed} {decision}" for seed, decision in zip(stops.seed, stops.block_orders))
                      + "."]
    return "\n".join(lines) + "\n"


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--tag", default="recovery")
    parser.add_argument("--faces", default="drawn", choices=["drawn", "no_other_attributes", "plain", "second_rendering"],
                        help="how the cohort's faces are drawn (faces_variant.py; default: as the cohort draws them)")
    parser.add_argument("overrides", nargs="*", help="personax.run overrides, after `--`")
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict] = []
    for seed in args.seeds:
        rows += run_seed(seed, args.overrides, args.faces)
        frame = pd.DataFrame(rows)
        frame.to_csv(RESULTS / f"{args.tag}.csv", index=False)
        (RESULTS / f"{args.tag}.md").write_text(summarise(frame))
        print(frame[frame.seed == seed].to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
