"""The ``independence`` pipeline stage (Level I).

Reads ``data/persons.parquet``, runs :func:`personax.independence.test_matrix` on every
(feature, trait column) pair and writes, under the run directory:

* ``level1/pvalues.parquet`` — the tidy table (feature, trait, test, n, statistic, p_value,
  q_value, effect_size, status, params, rater);
* ``level1/heatmap_<test>.png`` — features x trait columns p-value matrix per test,
  annotated to 3 decimals, one column group per rater separated by dashed lines;
* ``level1/summary.md`` — dependent pairs per feature at q < alpha;
* ``level1/recovery.json`` — on the synthetic cohort only: precision / recall / F1 of the
  q < alpha decisions against the planted ``marginal_dependence`` matrix, per test and rater.

Example:
    >>> # python -m personax.run stages=[ingest,independence] +independence=default
    >>> from personax.independence.stage import trait_columns
    >>> trait_columns(["trait_gpt4o_o", "trait_o", "x"], r"^trait_[a-z0-9]+_[ocean]$", r"^trait_[ocean]$")
    ['trait_gpt4o_o']
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from personax.independence._chunks import chunk_features, chunk_slice, data_digest, mark_chunk, parse_chunk
from personax.independence._matrix import test_matrix

log = logging.getLogger(__name__)

OCEAN = "ocean"
FACE_ATTRIBUTES = ["Arched_Eyebrows", "Big_Nose", "Pointy_Nose", "Bushy_Eyebrows", "Big_Lips", "Oval_Face",
                   "Double_Chin", "Receding_Hairline", "Narrow_Eyes", "High_Cheekbones"]
FEATURE_COLUMNS = ["height_cm", "weight_kg", "birth_year", "birth_month", "birth_day", "day_of_year", "day_sin",
                   "day_cos", "latitude", "longitude", "group", "gender", *FACE_ATTRIBUTES]
GROUND_TRUTH = "data/ground_truth/ground_truth.json"


def trait_columns(columns: Sequence[str], pattern: str, fallback: str | None) -> list[str]:
    """Trait columns matching ``pattern`` (or ``fallback`` when none do), rater then OCEAN order."""
    found = [c for c in columns if re.match(pattern, c)]
    if not found and fallback:
        found = [c for c in columns if re.match(fallback, c)]
    raters = list(dict.fromkeys(rater_of(c) for c in found))
    return sorted(found, key=lambda c: (raters.index(rater_of(c)), OCEAN.find(c[-1]) if c[-1] in OCEAN else 9, c))


def rater_of(column: str) -> str:
    """``trait_<rater>_<t>`` -> rater; ``trait_<t>`` -> ``"aggregate"``."""
    parts = column.split("_")
    return "_".join(parts[1:-1]) if len(parts) > 2 else "aggregate"


def _options(cfg: DictConfig, test: str) -> dict[str, Any]:
    node = cfg.get(test)
    return dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}


def run(config: DictConfig, run_dir) -> dict[str, Any]:
    """Run Level I on the person table and write the table, heatmaps, summary and recovery."""
    cfg = config.independence
    t0 = time.perf_counter()
    persons = pd.read_parquet(run_dir.input("data/persons.parquet"))
    features = list(cfg.features) if cfg.get("features") else [c for c in FEATURE_COLUMNS if c in persons.columns]
    missing = [c for c in features if c not in persons.columns]
    if missing:
        raise KeyError(f"independence.features not in the person table: {missing}")
    traits = trait_columns(list(persons.columns), cfg.traits, cfg.get("fallback_traits"))
    if not traits:
        raise KeyError(f"no trait columns match {cfg.traits!r} (or {cfg.get('fallback_traits')!r})")
    frame = persons[features + [c for c in traits if c not in features]].copy()
    for c in traits:  # 0 = insufficient information -> missing
        frame[c] = frame[c].astype("Float64").mask(frame[c] == 0)
    conditioning = list(cfg.conditioning) if cfg.get("conditioning") else None
    if conditioning:
        for c in conditioning:
            frame[c] = persons[c]
    tests = list(cfg.tests)
    chunk = parse_chunk(cfg.get("chunk"))  # independence.chunk=i/k: this job's slice of the features
    all_features, features = features, chunk_features(features, chunk)
    first = chunk_slice(len(all_features), chunk).start
    table = test_matrix(
        frame, features, traits, tests=tests, conditioning=conditioning,
        options={t: _options(cfg, t) for t in tests},
        # trait scores (1..3) are always discrete; discrete_features names the discrete features
        discrete=[*cfg.discrete_features, *traits] if cfg.get("discrete_features") is not None else None,
        max_categories=int(cfg.max_categories), min_rows=int(cfg.min_rows), seed=int(cfg.seed),
        block_size=int(cfg.block_size),
        approx=str(cfg.get("approx", "auto")), approx_threshold=int(cfg.get("approx_threshold", 10_000)),
        approx_threshold_conditional=int(cfg.get("approx_threshold_conditional", 5_000)),
        first_feature_index=first,
    )
    table["rater"] = table["trait"].map(rater_of)
    if chunk is not None:  # q-values come from the merge (BH over the whole matrix)
        table = mark_chunk(table, chunk, data_digest(frame[list(dict.fromkeys([*all_features, *traits, *(conditioning or [])]))]))
    table.to_parquet(run_dir.output("level1/pvalues.parquet"), index=False)
    alpha = float(cfg.alpha)
    for test in tests:
        plot_heatmap(table[table["test"] == test], features, traits, test,
                     run_dir.output(f"level1/heatmap_{test}.png"), alpha=alpha)
    run_dir.output("level1/summary.md").write_text(summary_markdown(table, features, tests, alpha))
    summary: dict[str, Any] = {
        "pairs": len(features) * len(traits), "features": len(features), "trait_columns": len(traits),
        "tests": {t: {"ok": int(((table.test == t) & (table.status == "ok")).sum()),
                      "dependent": int(((table.test == t) & (table.q_value < alpha)).sum())} for t in tests},
    }
    truth_path = Path(run_dir.path) / GROUND_TRUTH
    if truth_path.exists() and chunk is None:
        truth = json.loads(run_dir.input(GROUND_TRUTH).read_text())
        recovery = score_recovery(table, truth, alpha)
        (run_dir.output("level1/recovery.json")).write_text(json.dumps(recovery, indent=2) + "\n")
        summary["recovery_f1"] = {t: recovery["tests"][t]["all"]["f1"] for t in recovery["tests"]}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("independence: %d pairs x %d tests in %.1f s", summary["pairs"], len(tests), summary["seconds"])
    return summary


def _prf(pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    tp = int(np.sum(pred & true))
    fp = int(np.sum(pred & ~true))
    fn = int(np.sum(~pred & true))
    tn = int(np.sum(~pred & ~true))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)) if precision and recall else (0.0 if tp + fp + fn else None)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "pairs": int(pred.size)}


def score_recovery(table: pd.DataFrame, truth: dict[str, Any], alpha: float) -> dict[str, Any]:
    """Precision / recall / F1 of ``q < alpha`` against the planted marginal dependencies.

    A trait column ``trait_<rater>_<t>`` depends on feature ``f`` iff
    ``truth["marginal_dependence"][f][t] == 1``. Only pairs whose test ran (status ok) and whose
    feature is in the ground truth are scored; skipped pairs are counted separately.

    Example:
        >>> t = pd.DataFrame({"feature": ["f", "g"], "trait": ["trait_r_o"] * 2, "test": ["kci"] * 2,
        ...                   "q_value": [0.001, 0.5], "status": ["ok", "ok"]})
        >>> truth = {"marginal_dependence": {"f": {"o": 1}, "g": {"o": 0}}}
        >>> score_recovery(t, truth, 0.05)["tests"]["kci"]["all"]["f1"]
        1.0
    """
    dep = truth["marginal_dependence"]
    t = table[table["feature"].isin(dep.keys())].copy()
    t["letter"] = t["trait"].str[-1]
    t["rater"] = t["trait"].map(rater_of)
    t["truth"] = [bool(dep[f].get(l, 0)) for f, l in zip(t["feature"], t["letter"])]
    out: dict[str, Any] = {"alpha": alpha, "decision": "q_value < alpha (Benjamini-Hochberg within test)",
                           "tests": {}}
    for test, sub in t.groupby("test", sort=False):
        ran = sub[sub["status"] == "ok"]
        res = {"all": _prf((ran["q_value"] < alpha).to_numpy(), ran["truth"].to_numpy()),
               "skipped": int(len(sub) - len(ran)), "raters": {}}
        for rater, rs in ran.groupby("rater", sort=False):
            res["raters"][rater] = _prf((rs["q_value"] < alpha).to_numpy(), rs["truth"].to_numpy())
        out["tests"][test] = res
    return out


def summary_markdown(table: pd.DataFrame, features: Sequence[str], tests: Sequence[str], alpha: float) -> str:
    """Markdown summary: per test, dependent trait columns per feature at q < alpha."""
    lines = ["# Level I: dependent (feature, trait) pairs", "",
             f"Decision: Benjamini-Hochberg q < {alpha} within each test. Counts are out of the pairs the test ran on.",
             "", "| feature | " + " | ".join(tests) + " |", "|---|" + "---|" * len(tests)]
    for f in features:
        cells = []
        for test in tests:
            sub = table[(table.feature == f) & (table.test == test)]
            ran = sub[sub.status == "ok"]
            cells.append(f"{int((ran.q_value < alpha).sum())}/{len(ran)}" if len(ran) else "–")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    for test in tests:
        lines += ["", f"## {test}", ""]
        sub = table[table.test == test]
        for f in features:
            hits = sub[(sub.feature == f) & (sub.q_value < alpha)].sort_values("q_value")
            if len(hits):
                lines.append(f"- **{f}**: " + ", ".join(f"{r.trait} (q={r.q_value:.3g})" for r in hits.itertuples()))
        skipped = sub[sub.status != "ok"]["status"].value_counts()
        for reason, k in skipped.items():
            lines.append(f"- {k} pairs {reason}")
    return "\n".join(lines) + "\n"


def plot_heatmap(sub: pd.DataFrame, features: Sequence[str], traits: Sequence[str], test: str, path,
                 alpha: float = 0.05) -> None:
    """Study-style p-value heatmap: features x trait columns, 3-decimal annotations, rater groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mat = sub.pivot(index="feature", columns="trait", values="p_value").reindex(index=features, columns=traits)
    vals = mat.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(traits) + 2.0, 1.2 + 0.38 * len(features)))
    cmap = matplotlib.colormaps["RdYlBu"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            v = vals[i, j]
            txt = f"{v:.3f}" if np.isfinite(v) else "–"
            dark = np.isfinite(v) and (v < 0.15 or v > 0.85)
            ax.text(j, i, txt, ha="center", va="center", fontsize=6, color="white" if dark else "black",
                    fontweight="bold" if np.isfinite(v) and v < alpha else "normal")
    ax.set_yticks(range(len(features)), features, fontsize=7)
    ax.set_xticks(range(len(traits)), [t[-1].upper() for t in traits], fontsize=7)
    raters = [rater_of(t) for t in traits]
    starts = [j for j in range(len(raters)) if j == 0 or raters[j] != raters[j - 1]]
    for s in starts[1:]:
        ax.axvline(s - 0.5, color="black", linestyle="--", linewidth=1.0)
    bounds = starts + [len(raters)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        ax.text((a + b - 1) / 2, -0.8, raters[a], ha="center", va="bottom", fontsize=8, fontweight="bold")
    ax.set_title(f"{test}: p-values (bold: p < {alpha}; grey: not tested)", fontsize=9, pad=18)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="p-value")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
