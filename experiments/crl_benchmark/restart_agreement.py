"""Does the agreement of independent restarts tell, without ground truth, which blocks are recovered?

A user's own cohort has no planted latents, so nothing in a run says whether a block's axes are
the true ones. What the data identify, every restart should find (Duan et al. 2020's
unsupervised disentanglement ranking rests on this); a block whose axes the data leave free
should come out turned differently by each restart. This script fits the crl stage's model
(``personax-stage-converged``) with several restarts side by side, as ``run.py`` can, keeps every
restart's parameters (``FittedCRL.restart_params``, before the search of the shared axes) and
records for every block:

- the restarts' agreement (``personax.crl.diagnostics.restart_agreement``: ``axes``, the MCC
  between two restarts' latents of the block; ``content``, how much of one's block the other's
  predicts linearly; the median over the pairs, on the test rows);
- each restart's recovery of the planted block (MCC matched within the block, test rows), and the
  returned model's (after the search of the shared axes and its training on).

The rule was declared before any seed was run: a block whose restarts' axes agree below
``FLAG_BELOW`` (median over the pairs) is flagged "axes not reproducible". The summary counts how
the flag sorts the returned model's modality blocks by their recovery (MCC below 0.85 or not),
gives the rank correlation between agreement and recovery over them, and how often the validation
ELBO chose the restart that recovers the block best, and where a floor on any average of the pairs
(their median, the returned restart's agreement with the others) would have to lie to flag every
badly recovered block, with what it would flag besides. The shared block is tabled but not counted:
the search of its axes after the fit turns the returned restart's alone.

    .venv/bin/python experiments/crl_benchmark/restart_agreement.py fits --seeds 1050 1051 1052 1053 1054 1055

Appends one JSON line per seed to ``results/restart_agreement_fits[_<tag>].jsonl`` and rewrites
``results/restart_agreement_fits[_<tag>].md``. Nothing here tunes the model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from run import _data, diagnostic_parser, fit_options, record_and_summarise  # noqa: E402

from personax.crl import diagnostics as D  # noqa: E402
from personax.crl import fit  # noqa: E402

FLAG_BELOW = D.AXES_AGREEMENT_FLOOR  # 0.9, declared before the first seed ran: the axes agreement that flags a block
RECOVERED = 0.85  # a block's recovery (the benchmark's every-seed target) that counts as recovered


def within_block_mcc(learned: dict[str, np.ndarray], planted: dict[str, np.ndarray], train: np.ndarray,
                     test: np.ndarray) -> dict[str, float]:
    """Each learned block's MCC against its planted block (matched within the block)."""
    return {block: round(D.mcc(learned[block][train], planted[block][train], learned[block][test],
                               planted[block][test])["mcc"], 4)
            for block in learned if block in planted and planted[block].shape[1]}


def fits(seed: int, *, dataset: str, n: int, epochs: int, method: str, restarts: int) -> list[dict]:
    start = time.perf_counter()
    bench, dims, shared_dim, settings = _data(dataset, n, seed, image_size=16)
    model = fit(bench.modalities, latent_dims=dims, shared_dim=shared_dim, seed=seed, max_epochs=epochs,
                restarts=restarts, **{**settings, **fit_options(method, bench)})
    train, test = model.splits["train"], model.splits["test"]
    every = model.encode_restarts(bench.modalities)
    agreement = D.restart_agreement(every, train, test)
    return [{"seed": seed, "dataset": dataset, "method": method, "n": n, "restarts": restarts,
             "chosen_restart": model.chosen_restart, "stopped": model.stopped,
             "returned": within_block_mcc(model.encode(bench.modalities), bench.latents, train, test),
             "per_restart": [within_block_mcc(latents, bench.latents, train, test) for latents in every],
             "agreement": {block: {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
                           for block, values in agreement.items()},
             "seconds": round(time.perf_counter() - start, 1)}]


def summary(path: Path) -> str:
    """Per seed and block: the restarts' agreement beside the recovery; then how the declared flag
    sorts the blocks."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [f"# Restarts' agreement against recovery ({path.stem})", "",
             f"Agreement: median over the pairs of restarts (min), test rows. Recovery: MCC against the planted "
             f"block, matched within the block (test rows). Flag: axes agreement below {FLAG_BELOW} (declared "
             f"before the first seed ran).", "",
             "| seed | block | axes agreement | content agreement | returned model's recovery | each restart's recovery "
             "| flagged |", "|---|---|---|---|---|---|---|"]
    # the shared block is tabled but not counted below: the search of its axes after the fit turns the returned
    # restart's alone, so its restarts' agreement does not describe the returned s
    table = []
    for row, block in _blocks(rows):
        a, recovered = row["agreement"][block], row["returned"][block]
        flagged = a["axes"] < FLAG_BELOW
        per_restart = [r[block] for r in row["per_restart"]]
        if block != "shared":
            table.append((a["axes"], recovered, flagged, per_restart, a["axes_min"]))
        lines.append(f"| {row['seed']} | {block} | {a['axes']:.3f} ({a['axes_min']:.3f}) | "
                     f"{a['content']:.3f} ({a['content_min']:.3f}) | {recovered:.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in per_restart)} | {'yes' if flagged else ''} |")
    if table:
        axes, recovered, flagged, per_restart, lowest_pair = zip(*table)
        low = np.asarray(recovered) < RECOVERED
        flagged = np.asarray(flagged)
        lines += ["", "The modality blocks (the shared block left out: the search of its axes after the fit turns the "
                  "returned restart's alone):", "",
                  f"| returned model's block | flagged | not flagged |", "|---|---|---|",
                  f"| recovery below {RECOVERED} | {int((low & flagged).sum())} | {int((low & ~flagged).sum())} |",
                  f"| recovery {RECOVERED} or above | {int((~low & flagged).sum())} | {int((~low & ~flagged).sum())} |"]
        if len(table) > 2:
            rho = stats.spearmanr(axes, recovered).statistic
            worst = [min(v) for v in per_restart]
            rho_worst = stats.spearmanr(axes, worst).statistic
            lines += ["", f"Spearman's rank correlation over the {len(table)} blocks: axes agreement with the returned "
                      f"model's recovery {rho:+.2f}; with the worst restart's recovery {rho_worst:+.2f}."]
        # does the validation ELBO, which chose the returned restart, pick the restart that recovers the block best?
        best_chosen = sum(int(np.argmax([r[block] for r in row["per_restart"]])) == row["chosen_restart"]
                          for row, block in _blocks(rows) if block != "shared")
        spread = [max(v) - min(v) for v in per_restart]
        lines += ["", f"The restart with the best validation ELBO (the one returned) recovered its modality block best of "
                      f"the {rows[0]['restarts']} restarts in {best_chosen} of {len(table)} blocks; the restarts' "
                      f"recoveries of a modality block spread over {np.median(spread):.3f} (median; max "
                      f"{np.max(spread):.3f})."]
        lines += _lowest_pair_floor(np.asarray(axes), np.asarray(lowest_pair), low)
    return "\n".join(lines) + "\n"


def _lowest_pair_floor(axes: np.ndarray, lowest_pair: np.ndarray, low: np.ndarray) -> list[str]:
    """Could another average of the pairs flag the badly recovered blocks? Every average over some of
    the pairs (their median, the returned restart's mean agreement with the others) is at least the
    lowest pair's agreement, so a floor on it that flags each badly recovered block lies above the
    highest lowest pair among them; on the median, above the highest median among them, and this counts
    the recovered blocks such a floor flags too."""
    if not low.any() or low.all():
        return []
    floor, median_floor = float(lowest_pair[low].max()), float(axes[low].max())
    return ["", f"Every average over some of the pairs (their median; the returned restart's mean agreement with the "
                f"others) is at least the lowest pair's agreement. The lowest pairs of the {int(low.sum())} modality "
                f"blocks recovered below {RECOVERED} agreed at up to {floor:.3f}, so a floor on such an average that "
                f"flags them all lies above {floor:.3f}; on the median, above {median_floor:.3f}, where it also flags "
                f"{int((axes[~low] <= median_floor).sum())} of the {int((~low).sum())} blocks recovered at {RECOVERED} "
                f"or above."]


def _blocks(rows: list[dict]) -> list[tuple[dict, str]]:
    """(record, block) in the summary table's order."""
    return [(row, block) for row in rows for block in row["agreement"] if block in row["returned"]]


def restarts_parser(description: str, datasets: list[str]):
    """The command line of a diagnostic of restarts side by side (this script's, ``noise_independence.py``'s)."""
    parser = diagnostic_parser(description, ["fits", "summary"])
    parser.add_argument("--dataset", choices=datasets, default=datasets[0])
    parser.add_argument("--restarts", type=int, default=3, help="fits: restarts side by side (at least 2)")
    return parser


def argument_parser():
    """The command line (a test parses every command the docs show with it)."""
    return restarts_parser(__doc__.splitlines()[0], ["numeric", "digits"])


def main() -> None:
    args = argument_parser().parse_args()
    record_and_summarise("restart_agreement", args, lambda seed: fits(
        seed, dataset=args.dataset, n=args.n, epochs=args.epochs, method=args.method, restarts=args.restarts), summary)


if __name__ == "__main__":
    main()
