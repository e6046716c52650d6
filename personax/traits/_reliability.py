"""Reliability of trait ratings: stability, cross-format consistency, agreement, symmetry, recovery.

All functions take *answers* in long form: a DataFrame with ``person_id``,
``rater``, ``format``, ``repeat`` and one column per trait letter holding the
level (0 = insufficient information, NaN = no answer). Zeros are left out of
every statistic: "insufficient information" is a non-answer, not a low score.

* :func:`stability`: the study's stability, the SD of a person's score over
  repeated identical queries, averaged over people (per rater, format, trait).
* :func:`discrepancy_table`: the study's consistency, the mean absolute
  difference between two formats' scores for the same person and trait, per
  format pair and rater, plus the average over raters (the study's layout). When
  the two formats have different numbers of levels, the 3-level score is mapped
  linearly onto the 5-level range (1, 2, 3 -> 1, 3, 5) first.
* :func:`krippendorff_alpha`: ordinal Krippendorff's alpha between raters, per trait.
* :func:`order_symmetry`: increasing vs decreasing listing order (same levels,
  same answer type) as a paired Wilcoxon signed-rank test per rater and level count.
* :func:`recovery`: Spearman correlation of scores with known true traits.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from personax.traits._common import TRAITS


def _valid(values: pd.Series | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float).copy()
    array[array == 0] = np.nan
    return array


def stability(answers: pd.DataFrame) -> pd.DataFrame:
    """Mean over people of the SD over repeats; rows rater x format, one column per trait."""
    rows = []
    for (rater, fmt), group in answers.groupby(["rater", "format"], sort=True):
        if group["repeat"].nunique() < 2:
            continue
        row: dict[str, Any] = {"rater": rater, "format": fmt, "repeats": int(group["repeat"].nunique())}
        for trait in TRAITS:
            wide = group.pivot_table(index="person_id", columns="repeat", values=trait, aggfunc="first")
            values = _valid(wide.to_numpy())
            enough = (~np.isnan(values)).sum(axis=1) >= 2
            row[trait] = float(np.nanstd(values[enough], axis=1, ddof=0).mean()) if enough.any() else float("nan")
        row["mean"] = float(np.nanmean([row[t] for t in TRAITS]))
        rows.append(row)
    return pd.DataFrame(rows, columns=["rater", "format", "repeats", *TRAITS, "mean"])


def _to_common(values: np.ndarray, levels: int, target: int) -> np.ndarray:
    if levels == target:
        return values
    return 1 + (values - 1) * (target - 1) / (levels - 1)


def discrepancy_table(answers: pd.DataFrame, levels: Mapping[str, int]) -> pd.DataFrame:
    """Mean |score_f - score_g| per format pair (rows) and rater (columns), plus ``mean``.

    Args:
        answers: Long answers (first repeat of each format is used).
        levels: Format name -> number of levels (to put 3- and 5-level scores on one range).
    """
    first = answers[answers["repeat"] == answers.groupby(["rater", "format"])["repeat"].transform("min")]
    formats = [f for f in levels if f in set(first["format"])]
    raters = sorted(first["rater"].unique())
    table = {}
    for f, g in itertools.combinations(formats, 2):
        row = {}
        for rater in raters:
            sub = first[first["rater"] == rater]
            a = sub[sub["format"] == f].set_index("person_id")[list(TRAITS)]
            b = sub[sub["format"] == g].set_index("person_id")[list(TRAITS)]
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            target = max(levels[f], levels[g])
            va = _to_common(_valid(a.loc[common].to_numpy()), levels[f], target)
            vb = _to_common(_valid(b.loc[common].to_numpy()), levels[g], target)
            diff = np.abs(va - vb)
            row[rater] = float(np.nanmean(diff)) if np.isfinite(diff).any() else float("nan")
        if row:
            row["mean"] = float(np.nanmean(list(row.values())))
            table[f"{f} vs {g}"] = row
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame.index.name = "format pair"
    return frame


def krippendorff_alpha(scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Ordinal Krippendorff's alpha between raters, per trait (and ``mean``).

    Args:
        scores: Rater -> ``n x 5`` levels (0 / NaN = no valid score).
    """
    import krippendorff

    out: dict[str, float] = {}
    if len(scores) < 2:
        return {t: float("nan") for t in (*TRAITS, "mean")}
    for j, trait in enumerate(TRAITS):
        data = np.stack([_valid(np.asarray(m)[:, j]) for m in scores.values()])
        pairable = (~np.isnan(data)).sum(axis=0) >= 2
        values = np.unique(data[~np.isnan(data)])
        if pairable.sum() < 2 or len(values) < 2:
            out[trait] = float("nan")
            continue
        out[trait] = float(krippendorff.alpha(reliability_data=data[:, pairable], level_of_measurement="ordinal"))
    out["mean"] = float(np.nanmean([out[t] for t in TRAITS]))
    return out


def order_symmetry(answers: pd.DataFrame, formats: Mapping[str, Mapping[str, Any]], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Paired test of increasing vs decreasing option order, per rater and (answer type, levels).

    Args:
        answers: Long answers (first repeat used).
        formats: Format name -> ``{"levels", "answer_type", "order"}``.
        alpha: Level of the test; ``symmetric`` is False when p < alpha.
    """
    first = answers[answers["repeat"] == answers.groupby(["rater", "format"])["repeat"].transform("min")]
    results = []
    groups: dict[tuple[str, int], dict[str, str]] = {}
    for name, spec in formats.items():
        groups.setdefault((spec["answer_type"], int(spec["levels"])), {})[spec["order"]] = name
    for (answer_type, levels), pair in sorted(groups.items()):
        if not {"increasing", "decreasing"} <= set(pair):
            continue
        inc, dec = pair["increasing"], pair["decreasing"]
        for rater in sorted(first["rater"].unique()):
            sub = first[first["rater"] == rater]
            a = sub[sub["format"] == inc].set_index("person_id")[list(TRAITS)]
            b = sub[sub["format"] == dec].set_index("person_id")[list(TRAITS)]
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            diff = (_valid(a.loc[common].to_numpy()) - _valid(b.loc[common].to_numpy())).ravel()
            diff = diff[np.isfinite(diff)]
            record: dict[str, Any] = {"rater": rater, "increasing": inc, "decreasing": dec, "pairs": int(len(diff)),
                                      "mean_difference": float(diff.mean()) if len(diff) else float("nan"),
                                      "share_different": float((diff != 0).mean()) if len(diff) else float("nan")}
            if (diff != 0).sum() >= 1:
                test = stats.wilcoxon(diff, zero_method="wilcox")
                record.update(statistic=float(test.statistic), p_value=float(test.pvalue))
            else:
                record.update(statistic=0.0, p_value=1.0)
            record["symmetric"] = bool(record["p_value"] >= alpha)
            results.append(record)
    return results


def recovery(scores: Mapping[str, np.ndarray], truth: np.ndarray) -> dict[str, dict[str, float]]:
    """Spearman correlation with the true traits per score set and trait (0 / NaN left out).

    Args:
        scores: Name -> ``n x 5`` scores (ratings, aggregates or posterior means).
        truth: ``n x 5`` true trait values, rows aligned with ``scores``.
    """
    out: dict[str, dict[str, float]] = {}
    for name, matrix in scores.items():
        matrix = np.asarray(matrix, dtype=float)
        row = {}
        for j, trait in enumerate(TRAITS):
            values = _valid(matrix[:, j])
            keep = np.isfinite(values) & np.isfinite(truth[:, j])
            row[trait] = float(stats.spearmanr(values[keep], truth[keep, j]).statistic) if keep.sum() > 2 else float("nan")
            row[f"{trait}_coverage"] = float(keep.mean())
        row["mean"] = float(np.nanmean([row[t] for t in TRAITS]))
        out[name] = row
    return out


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A small DataFrame as a Markdown table (no extra dependency)."""
    frame = frame.reset_index() if frame.index.name else frame
    cells = [[f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v) for v in row]
             for row in frame.itertuples(index=False)]
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def plot_reliability(path: Any, recovery_table: Mapping[str, Mapping[str, float]] | None,
                     alpha: Mapping[str, float], stability_table: pd.DataFrame | None = None) -> None:
    """Bar charts: recovery per score set and trait (if known), alpha per trait, stability per rater."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("recovery", "alpha", "stability")
              if (p == "recovery" and recovery_table) or p == "alpha"
              or (p == "stability" and stability_table is not None and len(stability_table))]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    x = np.arange(len(TRAITS))
    for ax, panel in zip(axes[0], panels):
        if panel == "recovery":
            names = list(recovery_table)
            width = 0.8 / max(1, len(names))
            for k, name in enumerate(names):
                ax.bar(x + k * width, [recovery_table[name][t] for t in TRAITS], width, label=name)
            ax.set_title("Spearman with true traits")
            ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
            ax.set_ylim(0, 1)
        elif panel == "alpha":
            ax.bar(x, [alpha.get(t, np.nan) for t in TRAITS], 0.6, color="tab:gray")
            ax.set_title("Krippendorff's alpha (ordinal) between raters")
            ax.set_ylim(min(0, np.nanmin([alpha.get(t, 0) for t in TRAITS] + [0])), 1)
        else:
            width = 0.8 / max(1, len(stability_table))
            for k, row in enumerate(stability_table.itertuples(index=False)):
                ax.bar(x + k * width, [getattr(row, t) for t in TRAITS], width, label=f"{row.rater} {row.format}")
            ax.set_title("SD over repeated queries")
            ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.08))
        ax.set_xticks(x + (0.4 - 0.4 / max(1, len(recovery_table or [1])) if panel == "recovery" else 0))
        ax.set_xticklabels([t.upper() for t in TRAITS])
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
