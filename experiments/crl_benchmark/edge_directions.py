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

Appends one JSON line per learned within-block edge to ``results/edge_directions_fits[_<tag>].jsonl``
and prints them; ``summary`` rewrites ``results/edge_directions_fits[_<tag>].md`` from it.
Nothing here tunes the model or the test.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from run import RESULTS, append_records, diagnostic_parser, fit_and_encode  # noqa: E402

from personax.crl import diagnostics as D  # noqa: E402
from personax.crl import edge_direction_evidence  # noqa: E402


def fits(seed: int, *, n: int, epochs: int, method: str) -> list[dict]:
    """One fit; its within-block edges' verdicts against the planted graph."""
    bench, model, _, planted, learned = fit_and_encode("numeric", n, seed, epochs=epochs, method=method)
    train, test = model.splits["train"], model.splits["test"]
    assignment = D.mcc(learned[train], planted[train], learned[test], planted[test])["assignment"]
    true = bench.graph.to_numpy()
    names = model.config.latent_names
    records = []
    for edge in edge_direction_evidence(model, bench.modalities, key=jax.random.key(seed)):
        i, j = names.index(edge["parent"]), names.index(edge["child"])
        a, b = int(assignment[i]), int(assignment[j])  # the planted nodes these latents are matched to
        truth = "planted" if true[a, b] != 0 else "planted reversed" if true[b, a] != 0 else "not planted"
        records.append({"seed": seed, "method": method, **edge, "planted_parent": a, "planted_child": b,
                        "truth": truth})
    if not records:
        records.append({"seed": seed, "method": method, "edge": None})  # no within-block edge learned
    return records


def summary(path: Path) -> str:
    """The verdicts against the truth, counted over the record's edges."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    edges = [r for r in rows if r.get("parent")]
    counts = Counter((r["verdict"], r["truth"]) for r in edges)
    verdicts = ["decided", "undetermined", "reverse preferred"]
    truths = ["planted", "planted reversed", "not planted"]
    lines = [f"# Within-block edge directions: Vuong's verdict against the planted graph ({path.stem})", "",
             f"Seeds {sorted({r['seed'] for r in rows})}; {len(edges)} learned within-block edges "
             f"({sum(1 for r in rows if not r.get('parent'))} seeds learned none).", "",
             "| verdict | " + " | ".join(truths) + " |", "|---|" + "---|" * len(truths)]
    for verdict in verdicts:
        lines.append(f"| {verdict} | " + " | ".join(str(counts[(verdict, t)]) for t in truths) + " |")
    lines += ["", "| seed | edge | margin per person | Vuong z | verdict | truth |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['parent']} → {r['child']} | {r['margin_per_person']} | {r['vuong_z']} | "
              f"{r['verdict']} | {r['truth']} |" for r in edges]
    return "\n".join(lines) + "\n"


def argument_parser():
    """The command line (a test parses every command the docs show with it)."""
    return diagnostic_parser(__doc__.splitlines()[0], ["fits", "summary"])


def main() -> None:
    args = argument_parser().parse_args()
    path = RESULTS / f"edge_directions_fits{'_' + args.tag if args.tag else ''}.jsonl"
    if args.part == "fits":
        append_records("edge_directions", args, lambda seed: fits(seed, n=args.n, epochs=args.epochs,
                                                                   method=args.method))
    path.with_suffix(".md").write_text(summary(path))
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
