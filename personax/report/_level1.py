"""Level I as the report shows it: one comparable effect size per pair, and one small-multiples figure.

The tests' own ``effect_size`` column (``level1/pvalues.parquet``) is each test's own
scale (a partial correlation, a normalised HSIC, Cramér's V, ...), so it cannot rank
pairs across tests. The report ranks by one measure computed the same way for every
(feature, trait column) pair, whichever test found it, from the data the tests saw:

* the **rank effect**: ``|Spearman ρ|`` between the feature and the trait column over
  the people who have both; for a category-coded feature (one with a label map, such
  as ``group`` or ``gender``) the correlation ratio ``η`` of the trait's ranks over the
  categories (for two categories, ``η = |ρ|``). Both lie in [0, 1]; 0 is no monotone
  (or no between-category) association.

Significance is decided by the tests: a pair is dependent when its Benjamini-Hochberg
q-value (within a test) is below ``alpha``.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

RANK_EFFECT = "rank effect"


def rank_effect(feature: pd.Series, trait: pd.Series, *, categorical: bool = False) -> float:
    """The rank effect of one pair (see the module docstring); NaN with fewer than 3 complete rows.

    Args:
        feature: The feature's values.
        trait: The trait column's values, aligned with ``feature``.
        categorical: Treat ``feature`` as category codes (correlation ratio of ranks).

    Returns:
        A number in [0, 1].

    Example:
        >>> x = pd.Series([1, 2, 3, 4, 5.0]); y = pd.Series([2, 1, 4, 3, 5.0])
        >>> round(rank_effect(x, y), 3)
        0.8
        >>> round(rank_effect(pd.Series([0, 0, 1, 1]), pd.Series([1, 2, 3, 4.0]), categorical=True), 3)
        0.894
    """
    both = pd.DataFrame({"x": pd.to_numeric(feature, errors="coerce"),
                         "y": pd.to_numeric(trait, errors="coerce")}).dropna()
    if len(both) < 3 or both["y"].nunique() < 2 or both["x"].nunique() < 2:
        return float("nan")
    if not categorical:
        return float(abs(stats.spearmanr(both["x"], both["y"]).statistic))
    ranks = stats.rankdata(both["y"])
    total = float(((ranks - ranks.mean()) ** 2).sum())
    groups = pd.Series(ranks).groupby(both["x"].to_numpy())
    between = float((groups.count() * (groups.mean() - ranks.mean()) ** 2).sum())
    return float(np.sqrt(between / total)) if total > 0 else float("nan")


def rank_effects(frame: pd.DataFrame, pairs: pd.DataFrame, categorical: Collection[str]) -> pd.Series:
    """The rank effect of every (feature, trait) row of ``pairs``, from the columns of ``frame``."""
    cache: dict[tuple[str, str], float] = {}
    values = []
    for feature, trait in zip(pairs["feature"], pairs["trait"]):
        key = (str(feature), str(trait))
        if key not in cache:
            cache[key] = (rank_effect(frame[key[0]], frame[key[1]], categorical=key[0] in categorical)
                          if key[0] in frame and key[1] in frame else float("nan"))
        values.append(cache[key])
    return pd.Series(values, index=pairs.index, dtype=float)


def planted_letters(marginal: pd.DataFrame | None, feature: str) -> list[str] | None:
    """The trait letters the planted truth makes dependent on ``feature``; None when it has no such row."""
    if marginal is None or feature not in marginal.index:
        return None
    row = marginal.loc[feature]
    return [str(letter) for letter, value in row.items() if value]


def small_multiples(table: pd.DataFrame, features: Sequence[str], traits: Sequence[str], tests: Sequence[str],
                    alpha: float, planted: Mapping[tuple[str, str], bool] | None = None) -> bytes:
    """One PNG: a panel per test, features x trait columns, colour ``-log10 q``; a dot marks q < alpha.

    A square outline marks a pair the planted truth makes dependent (synthetic cohorts).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(tests), 3)
    rows = int(np.ceil(len(tests) / columns))
    width = max(2.2, 0.32 * len(traits) + 1.2)
    height = max(2.0, 0.2 * len(features) + 1.0)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns + 1.6, height * rows), squeeze=False,
                             sharey=True)
    vmax = 4.0
    image = None
    for k, test in enumerate(tests):
        ax = axes[k // columns][k % columns]
        sub = table[(table["test"] == test) & (table["status"] == "ok")]
        q = sub.pivot_table(index="feature", columns="trait", values="q_value", aggfunc="min")
        q = q.reindex(index=list(features), columns=list(traits))
        score = -np.log10(np.clip(q.to_numpy(dtype=float), 1e-300, 1.0))
        image = ax.imshow(np.minimum(score, vmax), aspect="auto", cmap="viridis", vmin=0, vmax=vmax,
                          interpolation="nearest")
        dependent = np.argwhere(q.to_numpy(dtype=float) < alpha)
        if len(dependent):
            ax.scatter(dependent[:, 1], dependent[:, 0], s=9, c="white", edgecolors="black", linewidths=0.4)
        if planted:
            for i, feature in enumerate(features):
                for j, trait in enumerate(traits):
                    if planted.get((feature, trait)):
                        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#e8590c",
                                                   linewidth=1.0))
        ax.set_facecolor("#e6e6e6")  # grey: the test did not run on the pair
        untested = int(np.isnan(q.to_numpy(dtype=float)).sum())
        ax.set_title(f"{test}: {len(dependent)} dependent" + (f", {untested} not tested (grey)" if untested else ""),
                     fontsize=9)
        ax.set_xticks(range(len(traits)))
        ax.set_xticklabels([t.removeprefix("trait_") for t in traits], rotation=90, fontsize=6)
        ax.set_yticks(range(len(features)))
        ax.set_yticklabels(features, fontsize=6)
    for k in range(len(tests), rows * columns):
        axes[k // columns][k % columns].axis("off")
    if image is not None:
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
        bar.set_label(f"-log10 q (capped at {vmax:g}); dot: q < {alpha:g}"
                      + ("; orange box: planted" if planted else ""), fontsize=7)
        bar.ax.tick_params(labelsize=6)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
