"""Do the model's own assumptions tell, without ground truth, which restart recovers a block?

The restarts' agreement cannot (``restart_agreement.py``): it says whether a block is
reproducible, not which restart is right. A check without ground truth has to come from what
the model assumes. Its prior says that every latent is its parents' mechanism plus its own
exogenous noise, independent of every other latent's (``personax.crl._model``: ``u_j =
f_j(A[:, j] * u) + sigma_j * h_j(n_j)``). A restart whose block is turned away from the truth
might show it as noises that are no longer independent. The analysis of the two moves inside a
block (``docs/crl.md``, "What the numeric benchmark identifies inside a modality block")
predicts that they do not: a latent plus a multiple of its parent keeps its noise, and the
benchmark's Gaussian noises, turned, stay independent. This script measures it.

It fits the crl stage's model (``personax-stage-converged``) with several restarts side by
side, as ``restart_agreement.py`` does (same seeds, same fits), and for every restart and block
computes the model's exogenous noises ``n_j`` of the posterior means on the test rows (the
inverse of the prior's flow, ``CausalMultimodalVAE.exogenous_noise``), then:

- ``within``: HSIC between the block's noises (each pair of the block's latents; the
  benchmark's blocks have two, so one pair): normalised HSIC (``effect_size``) and p-value;
- ``across``: HSIC between the block's noises and every other latent's noise;

beside each restart's recovery of the planted block (MCC matched within the block). The summary
gives Spearman's rank correlation of each statistic with recovery over the restarts' modality
blocks, and how often the restart with the least dependent noises recovers the block best, and
what choosing it would have changed against the validation ELBO's choice.

    .venv/bin/python experiments/crl_benchmark/noise_independence.py fits --seeds 1050 1051 1052 1053 1054 1055 1056 1057 1058 1059

Appends one JSON line per seed to ``results/noise_independence_fits[_<tag>].jsonl`` and rewrites
``results/noise_independence_fits[_<tag>].md``. Nothing here tunes the model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from restart_agreement import RECOVERED, restarts_parser, within_block_mcc  # noqa: E402
from run import _data, fit_options, record_and_summarise  # noqa: E402

from personax.crl import fit  # noqa: E402
from personax.crl._model import CausalMultimodalVAE  # noqa: E402
from personax.independence import test_pair  # noqa: E402


def noise_dependence(noise: np.ndarray, blocks: dict[str, slice]) -> dict[str, dict[str, float]]:
    """Per block: HSIC within its noises (the first pair of its latents) and between them and the rest."""
    out = {}
    for block, columns in blocks.items():
        own = noise[:, columns]
        rest = np.delete(noise, np.arange(noise.shape[1])[columns], axis=1)
        within = test_pair(own[:, 0], own[:, 1], test="hsic")
        across = test_pair(own, rest, test="hsic")
        out[block] = {"within": round(float(within.effect_size), 5), "within_p": round(float(within.p_value), 4),
                      "across": round(float(across.effect_size), 5), "across_p": round(float(across.p_value), 4)}
    return out


def fits(seed: int, *, dataset: str, n: int, epochs: int, method: str, restarts: int) -> list[dict]:
    start = time.perf_counter()
    bench, dims, shared_dim, settings = _data(dataset, n, seed, image_size=16)
    if not shared_dim or any(d < 2 for d in dims.values()):
        raise SystemExit("needs a shared block and modality blocks of at least two latents (the numeric benchmark)")
    model = fit(bench.modalities, latent_dims=dims, shared_dim=shared_dim, seed=seed, max_epochs=epochs,
                restarts=restarts, **{**settings, **fit_options(method, bench)})
    train, test = model.splits["train"], model.splits["test"]
    blocks = model.config.block_slices()
    names = list(blocks)
    dependence = []
    every = model.encode_restarts(bench.modalities)
    for params, latents in zip(model.restart_params, every):
        u = np.concatenate([latents[b] for b in names], axis=1)[test]
        noise = np.asarray(model.module.apply({"params": params}, jnp.asarray(u),
                                              method=CausalMultimodalVAE.exogenous_noise))
        dependence.append(noise_dependence(noise, blocks))
    return [{"seed": seed, "dataset": dataset, "method": method, "n": n, "restarts": restarts,
             "chosen_restart": model.chosen_restart, "test_rows": int(len(test)),
             "per_restart": [within_block_mcc(latents, bench.latents, train, test) for latents in every],
             "dependence": dependence, "seconds": round(time.perf_counter() - start, 1)}]


STATISTICS = ("within", "across")


def summary(path: Path) -> str:
    """Per seed, block and restart: the noises' dependence beside the recovery; then whether the
    least dependent restart is the best recovered."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [f"# The model's exogenous noises against recovery ({path.stem})", "",
             "Normalised HSIC (p-value) of the model's exogenous noises of the posterior means, test rows: within a "
             "block (between its latents' noises) and across (between them and every other latent's). Recovery: "
             "MCC against the planted block, matched within the block. `*`: the restart the validation ELBO chose.",
             "", "| seed | block | restart | recovery | within | across |", "|---|---|---|---|---|---|"]
    table = []  # modality blocks only: the search of the shared axes after the fit turns the returned s
    for row in rows:
        for block in row["dependence"][0]:
            for r, (recovery, dependence) in enumerate(zip(row["per_restart"], row["dependence"])):
                d = dependence[block]
                chosen = "*" if r == row["chosen_restart"] else ""
                lines.append(f"| {row['seed']} | {block} | {r}{chosen} | {recovery[block]:.3f} | "
                             f"{d['within']:.4f} ({d['within_p']:.3f}) | {d['across']:.4f} ({d['across_p']:.3f}) |")
                if block != "shared":
                    table.append((row["seed"], block, r, recovery[block], d, r == row["chosen_restart"]))
    if not table:
        return "\n".join(lines) + "\n"
    recovery = [t[3] for t in table]
    lines += ["", f"Over the {len(table)} restarts' modality blocks (the shared block left out: the search of its "
                  "axes after the fit turns the returned restart's alone):", ""]
    for statistic in STATISTICS:
        values = [t[4][statistic] for t in table]
        rho = stats.spearmanr(values, recovery).statistic
        low = [t[4][f"{statistic}_p"] < 0.05 for t in table]
        bad = [t[3] < RECOVERED for t in table]
        lines.append(f"- `{statistic}`: Spearman's rank correlation with recovery {rho:+.2f}; p below 0.05 in "
                     f"{sum(a and b for a, b in zip(low, bad))} of the {sum(bad)} restarts' blocks recovered below "
                     f"{RECOVERED} and in {sum(a and not b for a, b in zip(low, bad))} of the "
                     f"{len(bad) - sum(bad)} recovered at {RECOVERED} or above.")
    blocks: dict[tuple[int, str], list[tuple]] = {}  # (seed, block) -> its restarts' rows of the table
    for t in table:
        blocks.setdefault((t[0], t[1]), []).append(t)
    best = {key: max(t[3] for t in restarts) for key, restarts in blocks.items()}
    chosen = {key: next(t[3] for t in restarts if t[5]) for key, restarts in blocks.items()}
    elbo_best = sum(chosen[key] == best[key] for key in blocks)
    lines.append(f"- The restart the validation ELBO chose recovered the block best in {elbo_best} of {len(blocks)} "
                 f"blocks.")
    for statistic in STATISTICS:
        least = {key: min(restarts, key=lambda t: t[4][statistic])[3] for key, restarts in blocks.items()}
        picked_best = sum(least[key] == best[key] for key in blocks)
        change = [least[key] - chosen[key] for key in blocks]
        lines.append(f"- The restart whose noises are least dependent (`{statistic}`) recovered the block best in "
                     f"{picked_best} of {len(blocks)} blocks; choosing it instead of the ELBO's choice would have "
                     f"changed the block's recovery by {np.median(change):+.3f} (median; from {min(change):+.3f} "
                     f"to {max(change):+.3f}).")
    return "\n".join(lines) + "\n"


def argument_parser():
    """The command line (a test parses every command the docs show with it)."""
    return restarts_parser(__doc__.splitlines()[0], ["numeric"])


def main() -> None:
    args = argument_parser().parse_args()
    record_and_summarise("noise_independence", args, lambda seed: fits(
        seed, dataset=args.dataset, n=args.n, epochs=args.epochs, method=args.method, restarts=args.restarts), summary)


if __name__ == "__main__":
    main()
