"""What turns Vuong's test of a within-block direction against the planted graph on variant digits?

On variant digits (fresh seeds 1010-1019, ``edge_directions.py``) 5 of the test's 13 definite
verdicts contradicted the planted direction, at |z| up to 16. The test compares orders of the
encoded latents, and a learned latent differs from its planted one in three ways: a nonlinear
map of its own planted latent, a mix of the block's planted latents, and encoding noise. This
script refits the crl stage's model (``personax-stage-converged``, as ``edge_directions.py`` does)
and runs the test's own computation (the prior fitted per order of the block, Vuong's test on
the validation rows) on stand-ins for the latents that add these differences one at a time:

- ``planted``: the planted latents, each in its matched learned latent's place and sign;
- ``own map``: each learned latent's cubic least-squares fit on its matched planted latent alone
  (a smooth map of one planted latent, no mixing, no noise);
- ``linear mix``: each learned latent's linear fit on its block's planted latents (mixing, no
  nonlinearity, no noise);
- ``smooth mix``: its cubic fit on its block's planted latents, cross terms included (the smooth
  part of the encoding; what is left is noise);
- ``learned``: the posterior means the test itself uses (its recorded verdict).

Every fit is on the training rows, and every variant replaces all latents at once, so a block's
parents in the other block come from the same variant. Each planted edge inside a block is
reported oriented: a positive margin and z favour the planted direction.

    .venv/bin/python experiments/crl_benchmark/direction_maps.py fits --n 10000 --seeds 1013 1015 1016 1017 1019

Appends one JSON line per seed, block and variant to ``results/direction_maps_fits[_<tag>].jsonl``
and rewrites ``results/direction_maps_fits[_<tag>].md``. Nothing here tunes the model or the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

sys.path.insert(0, str(Path(__file__).parent))
from edge_directions import planted_index  # noqa: E402
from run import RESULTS, append_records, diagnostic_parser, fit_and_encode  # noqa: E402

from personax.crl import diagnostics as D  # noqa: E402
from personax.crl._order import _block_order_scores, _order_inputs, direction_test  # noqa: E402

VARIANTS = ("planted", "own map", "linear mix", "smooth mix", "learned")


def latent_variants(planted: np.ndarray, learned: np.ndarray, assignment, blocks: dict[str, slice],
                    train: np.ndarray) -> dict[str, np.ndarray]:
    """Stand-ins for the learned latents (rows, latents), each adding one way the encoding differs
    from the planted latents (the module docstring lists them); column ``l`` stands for learned
    latent ``l``, and every fit is on the ``train`` rows.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> planted = rng.uniform(-1, 1, (200, 2))
        >>> learned = np.column_stack([planted[:, 1] ** 3 + planted[:, 1], -planted[:, 0]])
        >>> out = latent_variants(planted, learned, [1, 0], {"b": slice(0, 2)}, np.arange(150))
        >>> bool(np.allclose(out["own map"], learned, atol=1e-6)), bool(np.allclose(out["planted"][:, 1], -planted[:, 0]))
        (True, True)
    """
    out = {name: np.empty_like(learned, dtype=np.float64) for name in VARIANTS}
    out["learned"] = np.asarray(learned, np.float64)
    for block in blocks.values():
        own_block = planted[:, block]
        for column in range(block.start, block.stop):
            source = planted[:, planted_index(assignment, column)]
            target = learned[:, column]
            sign = np.sign(np.corrcoef(source[train], target[train])[0, 1]) or 1.0
            out["planted"][:, column] = sign * source
            out["own map"][:, column] = _polynomial_fit(source[:, None], target, train, degree=3)
            out["linear mix"][:, column] = _polynomial_fit(own_block, target, train, degree=1)
            out["smooth mix"][:, column] = _polynomial_fit(own_block, target, train, degree=3)
    return out


def _polynomial_fit(features: np.ndarray, target: np.ndarray, train: np.ndarray, *, degree: int) -> np.ndarray:
    """Least squares of ``target`` on the polynomial of ``features`` (cross terms included), fitted
    on the ``train`` rows, predicted on every row."""
    model = make_pipeline(PolynomialFeatures(degree, include_bias=False), LinearRegression())
    return model.fit(features[train], target[train]).predict(features)


def monotone_in(values: np.ndarray, source: np.ndarray) -> bool:
    """Whether ``values`` rise, or fall, with ``source`` over every row.

    Example:
        >>> x = np.linspace(-1, 1, 9)
        >>> monotone_in(x ** 3, x), monotone_in(-x, x), monotone_in(x ** 2, x)
        (True, True, False)
    """
    steps = np.diff(values[np.argsort(source)])
    return bool(np.all(steps >= 0) or np.all(steps <= 0))


def fits(seed: int, *, n: int, epochs: int, method: str) -> list[dict]:
    """One fit on variant digits; for each block with a planted edge inside it, the test's margin
    and z for the planted direction on each variant of the latents."""
    bench, model, encoded, planted, learned = fit_and_encode("digits", n, seed, epochs=epochs, method=method)
    config = model.config
    train = model.splits["train"]
    assignment = D.mcc(learned[train], planted[train], learned[model.splits["test"]], planted[model.splits["test"]])
    assignment = assignment["assignment"]
    blocks = {b: s for b, s in config.block_slices().items() if b in config.latent_dims}
    # The test's inputs: its rows, and its potentials (only the latents are replaced below).
    test_latents, val, rows, _, given = _order_inputs(model, bench.modalities, None, "direction_maps")
    if not np.allclose(test_latents, (learned - learned[train].mean(0)) / learned[train].std(0), atol=1e-4):
        raise RuntimeError("the test's latents are not the stacked encoded blocks this script matches")
    true = bench.graph.to_numpy()
    standard = (planted - planted[train].mean(0)) / planted[train].std(0)
    # each learned latent's linear fit on its block's standardised planted latents, planted order (which
    # planted latent leaks into which learned one; variant digits stacks its planted latents in the learned
    # blocks' order, so one slice serves both): the same for every variant, so computed once
    mix = {block: [np.round(np.linalg.lstsq(np.column_stack([standard[train][:, span], np.ones(len(train))]),
                                            (learned[train, c] - learned[train, c].mean()) / learned[train, c].std(),
                                            rcond=None)[0][:-1], 3).tolist() for c in range(span.start, span.stop)]
           for block, span in blocks.items()}
    records = []
    for variant, raw in latent_variants(planted, learned, assignment, blocks, train).items():
        latents = (raw - raw[train].mean(0)) / raw[train].std(0)  # standardised as the test does
        scored = _block_order_scores(config, given, latents[rows], latents[val], steps=4 * config.orient_steps,
                                     key=jax.random.key(seed), blocks=list(blocks))
        for block, orders, per_row in scored:
            columns = range(blocks[block].start, blocks[block].stop)
            # how much of each learned latent the stand-in reproduces (validation rows), and for the own
            # map whether it is monotone in its planted latent (a cubic fit can fold)
            r2 = [round(float(np.corrcoef(raw[val, c], learned[val, c])[0, 1] ** 2), 3) for c in columns]
            monotone = [monotone_in(raw[:, c], planted[:, planted_index(assignment, c)]) for c in columns]
            for a in columns:
                for b in columns:
                    pa, pb = planted_index(assignment, a), planted_index(assignment, b)
                    if a != b and true[pa, pb] != 0:  # learned a, b stand for the planted edge's parent, child
                        result = direction_test(per_row, orders, a, b)
                        records.append({"seed": seed, "block": block, "variant": variant,
                                        "planted_edge": f"{bench.graph.index[pa]} -> {bench.graph.index[pb]}",
                                        "learned_edge": f"{config.latent_names[a]} -> {config.latent_names[b]}",
                                        **result, "r2_with_learned": r2, "monotone_in_own_planted": monotone,
                                        "linear_mix": mix[block]})
    return records


def summary(path: Path) -> str:
    """Per seed and block, each variant's margin and z for the planted direction."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keys = list(dict.fromkeys((r["seed"], r["block"]) for r in rows))
    cell = {(r["seed"], r["block"], r["variant"]): r for r in rows}
    lines = [f"# Vuong's test of the planted within-block edges on stand-ins for the latents ({path.stem})", "",
             "Margin (nats per person) and z for the planted direction: positive favours it. Verdicts by the "
             "test's rule (`decided` = planted direction, `reverse preferred` = its reverse).", "",
             "| seed | block | planted edge | " + " | ".join(VARIANTS) + " |", "|---|---|---|" + "---|" * len(VARIANTS)]
    for seed, block in keys:
        first = next(r for r in rows if (r["seed"], r["block"]) == (seed, block))
        cells = [f"{c['margin_per_person']:+.4f} / {c['vuong_z']:+.2f} ({c['verdict']})"
                 if (c := cell.get((seed, block, v))) else "" for v in VARIANTS]
        lines.append(f"| {seed} | {block} | {first['planted_edge']} | " + " | ".join(cells) + " |")
    if any("r2_with_learned" in r for r in rows):
        lines += ["", "How much of each learned latent of the block each stand-in reproduces (R² on the validation "
                  "rows, the block's latents in order); * marks an own map that is not monotone in its planted latent "
                  "(a cubic fit can fold):", "",
                  "| seed | block | " + " | ".join(VARIANTS[:-1]) + " |", "|---|---|" + "---|" * (len(VARIANTS) - 1)]
        for seed, block in keys:
            cells = [" / ".join(f"{r2:.2f}{'' if ok or v != 'own map' else '*'}" for r2, ok in zip(c["r2_with_learned"],
                                                                             c["monotone_in_own_planted"]))
                     if (c := cell.get((seed, block, v))) and "r2_with_learned" in c else "" for v in VARIANTS[:-1]]
            lines.append(f"| {seed} | {block} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def argument_parser():
    """The command line (a test parses every command the docs show with it)."""
    return diagnostic_parser(__doc__.splitlines()[0], ["fits", "summary"])


def main() -> None:
    args = argument_parser().parse_args()
    path = RESULTS / f"direction_maps_fits{'_' + args.tag if args.tag else ''}.jsonl"
    if args.part == "fits":
        append_records("direction_maps", args, lambda seed: fits(seed, n=args.n, epochs=args.epochs,
                                                                 method=args.method))
    path.with_suffix(".md").write_text(summary(path))
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
