"""The ``independence`` pipeline stage (Level I).

Reads the person table (features) and the trait table ``trait_scores`` (every rater's
``trait_<rater>_<t>`` and the aggregate ``trait_<t>``; a score 0, "insufficient
information", is missing there), runs :func:`personax.independence.test_matrix` on every
(feature, trait column) pair and writes the artifacts:

* ``level1_table`` (``level1/pvalues.parquet``) — the tidy table (feature, trait, test, n,
  statistic, p_value, q_value, effect_size, status, params, rater, feature_source);
* ``level1_heatmap[<test>]`` — features x trait columns p-value matrix per test,
  annotated to 3 decimals, one column group per rater separated by dashed lines;
* ``level1_summary`` — dependent pairs per feature at q < alpha;
* ``level1_recovery`` — on the synthetic cohort only: precision / recall / F1 of the
  q < alpha decisions against the planted ``marginal_dependence`` matrix, per test and rater.

The tests run one at a time; each finished test's rows are kept in the private
``level1_checkpoint`` until every output is written, so a rerun after a crash keeps them.

When the person table has no face attributes and the embeddings stage scored them
zero-shot (``face_attributes``), those are tested too, marked in ``feature_source``.

Example:
    >>> # python -m personax.run stages=[ingest,traits,independence]
    >>> from personax.data.schema import ordered_trait_columns
    >>> ordered_trait_columns(["trait_gpt4o_o", "trait_o", "x"])
    ['trait_gpt4o_o', 'trait_o']
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from personax import __version__
from personax import artifacts as A
from personax.data.schema import FACE_ATTRIBUTES, FEATURE_COLUMNS, ordered_trait_columns, rater_of
from personax.data.truth import planted_truth
from personax.independence._chunks import chunk_features, chunk_slice, data_digest, mark_chunk, parse_chunk
from personax.independence._matrix import test_matrix

log = logging.getLogger(__name__)

FROM_TABLE = "person table"


def _options(cfg: DictConfig, test: str) -> dict[str, Any]:
    node = cfg.get(test)
    return dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}


def _trait_selection(cfg: DictConfig, scores: pd.DataFrame) -> list[str]:
    which = cfg.get("traits", "all")
    if OmegaConf.is_list(which) or isinstance(which, list | tuple):
        columns = [str(c) for c in which]
        missing = [c for c in columns if c not in scores.columns]
        if missing:
            raise KeyError(f"independence.traits names {missing}, not in {A.TRAIT_SCORES.relpath()}; trait columns "
                           f"there: {ordered_trait_columns(list(scores.columns))}")
        return columns
    columns = ordered_trait_columns(list(scores.columns), str(which))
    if not columns:
        raise KeyError(f"{A.TRAIT_SCORES.relpath()} has no trait columns ({which}); it has {list(scores.columns)[:12]}: "
                       "add a rater (traits.raters) or trait columns to your table")
    return columns


def _face_attributes(persons: pd.DataFrame, run_dir) -> tuple[pd.DataFrame, str | None]:
    """The person table, with zero-shot face attributes merged in when it has none of its own."""
    own = [c for c in FACE_ATTRIBUTES if c in persons and persons[c].notna().any()]
    if own or not run_dir.exists(A.FACE_ATTRIBUTE_SCORES):
        return persons, None
    scores = run_dir.read(A.FACE_ATTRIBUTE_SCORES)
    weights = str(scores["weights"].iloc[0]) if "weights" in scores and len(scores) else "unknown"
    merged = persons.drop(columns=[c for c in FACE_ATTRIBUTES if c in persons]).merge(
        scores[["person_id", *[c for c in FACE_ATTRIBUTES if c in scores]]], on="person_id", how="left")
    return merged, f"zero-shot CLIP ({weights})"


def run(config: DictConfig, run_dir) -> dict[str, Any]:
    """Run Level I on the person table and the trait table; write the table, heatmaps, summary and recovery."""
    cfg = config.independence
    t0 = time.perf_counter()
    persons, zero_shot = _face_attributes(run_dir.read(A.PERSONS), run_dir)
    scores = run_dir.read(A.TRAIT_SCORES)
    features = list(cfg.features) if cfg.get("features") else [c for c in FEATURE_COLUMNS if c in persons.columns]
    missing = [c for c in features if c not in persons.columns]
    if missing:
        raise KeyError(f"independence.features not in the person table: {missing}; available: "
                       f"{[c for c in FEATURE_COLUMNS if c in persons.columns]}")
    conditioning = list(cfg.conditioning) if cfg.get("conditioning") else None
    absent = [c for c in conditioning or [] if c not in persons.columns]
    if absent:
        raise KeyError(f"independence.conditioning names {absent}, not in the person table; available: "
                       f"{[c for c in persons.columns if c in FEATURE_COLUMNS]}")
    traits = _trait_selection(cfg, scores)
    frame = persons[["person_id", *features, *[c for c in conditioning or [] if c not in features]]].merge(
        scores[["person_id", *traits]], on="person_id", how="left")
    tests = list(cfg.tests)
    chunk = parse_chunk(cfg.get("chunk"))  # independence.chunk=i/k: this job's slice of the features
    all_features, features = features, chunk_features(features, chunk)
    first = chunk_slice(len(all_features), chunk).start
    log.info("independence: %d features x %d trait columns x %d tests (%s) ...", len(features), len(traits),
             len(tests), ", ".join(tests))
    arguments = dict(
        conditioning=conditioning,
        # trait scores (1..3) are always discrete; discrete_features names the discrete features
        discrete=[*cfg.discrete_features, *traits] if cfg.get("discrete_features") is not None else None,
        max_categories=int(cfg.max_categories), min_rows=int(cfg.min_rows), seed=int(cfg.seed),
        block_size=int(cfg.block_size),
        approx=str(cfg.get("approx", "auto")), approx_threshold=int(cfg.get("approx_threshold", 10_000)),
        approx_threshold_conditional=int(cfg.get("approx_threshold_conditional", 5_000)),
        first_feature_index=first,
    )
    table, resumed = _tests_with_checkpoints(run_dir, frame, features, traits, tests,
                                             {t: _options(cfg, t) for t in tests}, arguments)
    table["rater"] = table["trait"].map(rater_of)
    table["feature_source"] = [zero_shot if zero_shot and f in FACE_ATTRIBUTES else FROM_TABLE
                               for f in table["feature"]]
    if chunk is not None:  # q-values come from the merge (BH over the whole matrix)
        table = mark_chunk(table, chunk, data_digest(frame[list(dict.fromkeys([*all_features, *traits, *(conditioning or [])]))]))
    run_dir.write(A.LEVEL1_TABLE, table)
    alpha = float(cfg.alpha)
    for test in tests:
        with A.atomic_path(run_dir.output_path(A.LEVEL1_HEATMAP, key=test)) as tmp:
            plot_heatmap(table[table["test"] == test], features, traits, test, tmp, alpha=alpha)
    run_dir.write(A.LEVEL1_SUMMARY, summary_markdown(table, features, tests, alpha))
    summary: dict[str, Any] = {
        "pairs": len(features) * len(traits), "features": len(features), "trait_columns": len(traits),
        "raters": list(dict.fromkeys(rater_of(t) for t in traits)),
        "tests": {t: {"ok": int(((table.test == t) & (table.status == "ok")).sum()),
                      "dependent": int(((table.test == t) & (table.q_value < alpha)).sum())} for t in tests},
    }
    if zero_shot:
        summary["face_attributes"] = zero_shot
    truth = planted_truth(run_dir)
    if truth is not None and truth.marginal_dependence is not None and chunk is None:
        recovery = score_recovery(table, truth.marginal_dependence, alpha)
        run_dir.write(A.LEVEL1_RECOVERY, recovery)
        summary["recovery_f1"] = {t: recovery["tests"][t]["all"]["f1"] for t in recovery["tests"]}
    if resumed:
        summary["resumed_tests"] = resumed
    # every output is written: nothing to resume. The folder is the checkpoints' own, so it goes whole:
    # a checkpoint of other data or options, and the hidden temporary of a write a kill interrupted
    # (the run holds its directory's lock, so no other run is writing there)
    shutil.rmtree(run_dir.path / A.LEVEL1_CHECKPOINT.family_folder(), ignore_errors=True)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("independence: %d pairs x %d tests in %.1f s", summary["pairs"], len(tests), summary["seconds"])
    return summary


@functools.cache
def _code_digest() -> str:
    """What computes the tests' numbers: this package's source files and the versions of the packages
    they compute with (the package's own version stays 0.1.0 between commits that change numbers)."""
    import jax
    import scipy

    digest = hashlib.sha256(json.dumps({"personax": __version__, "jax": jax.__version__, "numpy": np.__version__,
                                        "scipy": scipy.__version__}, sort_keys=True).encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def _tests_with_checkpoints(run_dir, frame: pd.DataFrame, features: list[str], traits: list[str],
                            tests: list[str], options: dict[str, dict], arguments: dict[str, Any]
                            ) -> tuple[pd.DataFrame, list[str]]:
    """The matrix, one test at a time, each test's rows kept as soon as they are done.

    A test's rows do not depend on the other tests (its own q-values, its own random keys), so the
    tests run one by one, each finished one is saved under a key naming the test and a fingerprint
    of everything it ran on, and a rerun after a crash takes the finished ones from there.

    Returns:
        The table, as :func:`test_matrix` gives it for all the tests at once, and the tests taken
        from an interrupted run's checkpoints.
    """
    from tqdm.auto import tqdm

    if not tests:  # nothing to keep: the empty table, as before
        return test_matrix(frame, features, traits, tests=[], options={}, **arguments), []
    data = data_digest(frame)
    parts, resumed = [], []
    pairs = len(features) * len(traits)
    # counts pairs, not tests: the bar moves as each group of pairs with the same complete rows finishes
    bar = tqdm(total=pairs * len(tests), desc="independence", unit="pair", leave=False)
    for test in tests:
        bar.set_postfix_str(test)
        fingerprint = json.dumps({"test": test, "data": data, "features": features, "traits": traits,
                                  "options": options[test], "code": _code_digest(), **arguments},
                                 sort_keys=True, default=str)
        key = f"{test}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:16]}"
        path = run_dir.locate(A.LEVEL1_CHECKPOINT, key)
        if path.is_file():
            part = A.LEVEL1_CHECKPOINT.read(path)
            bar.update(pairs)
            resumed.append(test)
            log.info("independence: %s taken from the checkpoint an interrupted run left (%s)", test,
                     A.LEVEL1_CHECKPOINT.relpath(key))
        else:
            part = test_matrix(frame, features, traits, tests=[test], options={test: options[test]},
                               progress=bar.update, **arguments)
            A.LEVEL1_CHECKPOINT.write(path, part)  # atomically, its folder made as needed
        parts.append(part)
    bar.close()
    return pd.concat(parts, ignore_index=True), resumed


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


def score_recovery(table: pd.DataFrame, marginal_dependence: pd.DataFrame, alpha: float) -> dict[str, Any]:
    """Precision / recall / F1 of ``q < alpha`` against the planted marginal dependencies.

    A trait column ``trait_<rater>_<t>`` (or the aggregate ``trait_<t>``) depends on feature
    ``f`` iff ``marginal_dependence.loc[f, t] == 1``. Only pairs whose test ran (status ok) and
    whose feature is in the ground truth are scored; skipped pairs are counted separately.

    Example:
        >>> t = pd.DataFrame({"feature": ["f", "g"], "trait": ["trait_r_o"] * 2, "test": ["kci"] * 2,
        ...                   "q_value": [0.001, 0.5], "status": ["ok", "ok"]})
        >>> truth = pd.DataFrame({"o": [1, 0]}, index=["f", "g"])
        >>> score_recovery(t, truth, 0.05)["tests"]["kci"]["all"]["f1"]
        1.0
    """
    t = table[table["feature"].isin(marginal_dependence.index)].copy()
    t["letter"] = t["trait"].str[-1]
    t["rater"] = t["trait"].map(rater_of)
    t["truth"] = [bool(marginal_dependence.loc[f].get(l, 0)) for f, l in zip(t["feature"], t["letter"])]
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
            # inside the cells: left out of the layout, which would otherwise measure every one
            ax.text(j, i, txt, ha="center", va="center", fontsize=6, color="white" if dark else "black",
                    fontweight="bold" if np.isfinite(v) and v < alpha else "normal", in_layout=False)
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
