"""Does Vuong's test of a within-block edge's direction tell the decided directions from the wrong ones?

``personax.crl.edge_direction_evidence`` asks, for every learned edge inside a modality block,
whether the validation rows prefer its direction over the reverse (Vuong's test between the best
order of the block with the edge's parent first and the best with its child first, level 0.05,
declared before any seed was scored). The crl stage reports its verdicts next to the graph. This
script checks them against the planted graph on the numeric benchmark: the crl stage's fit
(``personax-stage-converged``, 1000-epoch cap, 1 restart), its latents matched to the planted
ones as the benchmark matches them, and each learned within-block edge classed as the planted
edge in its direction, the planted edge reversed, or not planted.

    .venv/bin/python experiments/crl_benchmark/edge_directions.py fits --seeds 1080 1081 1082 1083 1084 1085 1086 1087 1088 1089

``--dataset digits`` (with ``--n 10000``, the variant digits records' size) does the same on variant
digits, whose planted graph has an edge inside each block (digit1 -> digit2, fashion1 -> fashion2).

Appends one JSON line per learned within-block edge to ``results/edge_directions_fits[_<tag>].jsonl``,
and from 2026-12-07 on one line per seed with the fit's held-out MCC and SHDs as ``run.py`` scores
them (``scores``), and prints them; ``summary`` rewrites ``results/edge_directions_fits[_<tag>].md``
from it. Nothing here tunes the model or the test.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from run import RESULTS, _score, _training_effects, append_records, diagnostic_parser, fit_and_encode  # noqa: E402

from personax.crl import diagnostics as D  # noqa: E402
from personax.crl import edge_direction_evidence  # noqa: E402
from personax.crl._order import DIRECTION_LEVEL, DIRECTION_MIN_MARGIN, direction_verdict  # noqa: E402


def planted_index(assignment, learned: int) -> int:
    """The planted latent a learned latent is matched to: ``assignment`` (``diagnostics.mcc``) gives
    the learned index of each planted latent, so this is its inverse.

    Example:
        >>> planted_index([2, 0, 1], 0)  # planted 1 is matched to learned 0
        1
    """
    return int(list(assignment).index(learned))


def fits(seed: int, *, n: int, epochs: int, method: str, dataset: str = "numeric") -> list[dict]:
    """One fit; its held-out scores, and its within-block edges' verdicts against the planted graph."""
    bench, model, encoded, planted, learned = fit_and_encode(dataset, n, seed, epochs=epochs, method=method)
    train, test = model.splits["train"], model.splits["test"]
    assignment = D.mcc(learned[train], planted[train], learned[test], planted[test])["assignment"]
    true = bench.graph.to_numpy()
    names = model.config.latent_names
    blocks = list(model.config.latent_dims)
    scores = _score(encoded, bench, model.splits, blocks, np.asarray(model.adjacency()),
                    effects=_training_effects(model, encoded, train))
    scores.pop("_graphs", None)
    records = [{"seed": seed, "method": method, "dataset": dataset,
                "scores": {k: round(float(v), 4) for k, v in scores.items()}}]
    edges = edge_direction_evidence(model, bench.modalities, key=jax.random.key(seed))
    for edge in edges:
        i, j = names.index(edge["parent"]), names.index(edge["child"])
        a, b = planted_index(assignment, i), planted_index(assignment, j)  # the planted nodes they are matched to
        truth = "planted" if true[a, b] != 0 else "planted reversed" if true[b, a] != 0 else "not planted"
        records.append({"seed": seed, "method": method, **edge, "planted_parent": a, "planted_child": b,
                        "truth": truth})
    if not edges:
        records.append({"seed": seed, "method": method, "edge": None})  # no within-block edge learned
    return records


def summary(path: Path) -> str:
    """The verdicts against the truth, counted over the record's edges."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # Every verdict by the rule of today's code, from the recorded margin and z (z is recorded to 2 decimals):
    # records made before the margin floor (2026-12-07 11:00) were judged by z alone, and say so in brackets.
    edges = [{**r, "recorded": r["verdict"], "verdict": r["verdict"] if r["vuong_z"] is None  # "not tested"
              else direction_verdict(r["margin_per_person"], r["vuong_z"])} for r in rows if r.get("parent")]
    counts = Counter((r["verdict"], r["truth"]) for r in edges)
    verdicts = ["decided", "undetermined", "reverse preferred",
                *(["not tested"] if any(r["verdict"] == "not tested" for r in edges) else [])]
    truths = ["planted", "planted reversed", "not planted"]
    lines = [f"# Within-block edge directions: Vuong's verdict against the planted graph ({path.stem})", "",
             f"Seeds {sorted({r['seed'] for r in rows})}; {len(edges)} learned within-block edges "
             f"({sum(1 for r in rows if 'edge' in r and r['edge'] is None)} seeds learned none). Verdicts by the "
             f"rule of today's code: Vuong's z beyond the two-sided {DIRECTION_LEVEL:g} level and a margin of at "
             f"least {DIRECTION_MIN_MARGIN:g} nats per person; [the recorded verdict] where it differs (records "
             "made before the margin floor, 2026-12-07 11:00, were judged by z alone).", "",
             "| verdict | " + " | ".join(truths) + " |", "|---|" + "---|" * len(truths)]
    for verdict in verdicts:
        lines.append(f"| {verdict} | " + " | ".join(str(counts[(verdict, t)]) for t in truths) + " |")
    lines += ["", "| seed | edge | margin per person | Vuong z | verdict | truth |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['parent']} → {r['child']} | {r['margin_per_person']} | {r['vuong_z']} | "
              f"{r['verdict']}{'' if r['recorded'] == r['verdict'] else ' [' + r['recorded'] + ']'} | {r['truth']} |"
              for r in edges]
    scored = [r for r in rows if "scores" in r]
    if scored:  # records from 2026-12-07 on: each fit's held-out scores, as run.py computes them
        columns = [c for c in scored[0]["scores"] if c.split("_")[0] in ("mcc", "shd")]  # run.py's order
        lines += ["", "Each fit's held-out scores (test split; `shd*` as in `run.py`'s tables):", "",
                  "| seed | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [f"| {r['seed']} | " + " | ".join(f"{r['scores'][c]:g}" for c in columns) + " |" for r in scored]
        lines.append("| median | " + " | ".join(f"{np.median([r['scores'][c] for r in scored]):.4g}" for c in columns)
                     + " |")
    return "\n".join(lines) + "\n"


def argument_parser():
    """The command line (a test parses every command the docs show with it)."""
    parser = diagnostic_parser(__doc__.splitlines()[0], ["fits", "summary"])
    parser.add_argument("--dataset", choices=["numeric", "digits"], default="numeric", help="fits: the benchmark")
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    path = RESULTS / f"edge_directions_fits{'_' + args.tag if args.tag else ''}.jsonl"
    if args.part == "fits":
        append_records("edge_directions", args, lambda seed: fits(seed, n=args.n, epochs=args.epochs,
                                                                   method=args.method, dataset=args.dataset))
    path.with_suffix(".md").write_text(summary(path))
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
