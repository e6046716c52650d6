"""Chi-square and G-square tests on contingency tables (causal-learn 0.1.4.8 semantics).

Counting is O(n) with ``np.bincount`` and the p-value uses ``scipy.stats.chi2``; neither is a
hot path, so this module is NumPy, not JAX.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from personax.independence._result import OK, TestResult


def _codes(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes 0..k-1 for the rows of ``a`` (n, d), and k."""
    if a.shape[1] == 1:
        u, inv = np.unique(a[:, 0], return_inverse=True)
    else:
        u, inv = np.unique(a, axis=0, return_inverse=True)
    return inv.reshape(-1), len(u)


def continuous_reason(a: np.ndarray, name: str, max_categories: int) -> str | None:
    """Why column(s) ``a`` (n, d) are not discrete data for a contingency table, or None.

    Discrete = integer-valued with at most ``max_categories`` distinct values per column
    (the matrix runner's cardinality rule).
    """
    for k in range(a.shape[1]):
        v = a[:, k]
        if not np.all(v == np.round(v)):
            return f"skipped: continuous ({name} has non-integer values; chi-square / G-square need discrete data)"
        levels = np.unique(v).size
        if levels > max_categories:
            return (f"skipped: continuous ({name} has {levels} distinct values > max_categories={max_categories}; "
                    "chi-square / G-square need discrete data)")
    return None


def contingency_test(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None, *, g_square: bool = False,
                     max_categories: int | None = 40) -> TestResult:
    """Chi-square (default) or G-square test of x independent of y (given discrete z).

    Tables are stratified by the observed combinations of z; degrees of freedom are
    ``sum_s (rows_s - 1) (cols_s - 1)`` counting only non-empty rows / columns of each
    stratum, as in causal-learn. When that sum is 0 the reference returns p = 1; personax
    returns NaN with status ``"skipped: zero degrees of freedom"`` instead.

    Args:
        x: (n,) or (n, 1) discrete values (any numeric coding).
        y: (n,) or (n, 1) discrete values.
        z: Optional (n, dz) discrete conditioning values.
        g_square: Likelihood-ratio (G-square) instead of Pearson chi-square.
        max_categories: Continuous data are refused (status ``"skipped: continuous (...)"``,
            no p-value): a column with non-integer values or more than this many distinct
            values. ``None`` trusts the caller (the matrix runner's explicit ``discrete`` list).

    Returns:
        A TestResult (test ``"gsq"`` or ``"chisq"``); effect size is Cramer's V.

    Example:
        >>> import numpy as np
        >>> x = np.array([0, 0, 1, 1] * 25); y = np.array([0, 0, 1, 1] * 25)
        >>> contingency_test(x, y).p_value < 1e-6
        True
    """
    name = "gsq" if g_square else "chisq"
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n = x.shape[0]
    if max_categories is not None:
        for a, label in ((x, "x"), (y, "y"), (None if z is None else np.asarray(z, dtype=np.float64), "z")):
            reason = None if a is None or a.shape[1] == 0 else continuous_reason(a, label, int(max_categories))
            if reason is not None:
                return TestResult.skipped(name, n, reason)
    xi, cx = _codes(x)
    yi, cy = _codes(y)
    if z is not None and z.shape[1] > 0:
        si, cs = _codes(np.asarray(z, dtype=np.float64))
    else:
        si, cs = np.zeros(n, dtype=np.int64), 1
    counts = np.bincount((si * cx + xi) * cy + yi, minlength=cs * cx * cy).reshape(cs, cx, cy).astype(np.float64)
    s_tot = counts.sum(axis=(1, 2))
    counts = counts[s_tot > 0]
    s_tot = s_tot[s_tot > 0]
    sx = counts.sum(axis=2)
    sy = counts.sum(axis=1)
    expected = sx[:, :, None] * sy[:, None, :] / s_tot[:, None, None]
    zero = expected == 0
    e1 = np.where(zero, 1.0, expected)
    if g_square:
        ratio = counts / e1
        ratio[ratio == 0] = 1.0
        statistic = 2.0 * float(np.sum(counts * np.log(ratio)))
    else:
        statistic = float(np.sum((counts - expected) ** 2 / e1))
    zero_rows = zero.all(axis=2).sum(axis=1)
    zero_cols = zero.all(axis=1).sum(axis=1)
    dof = int(np.sum((cx - 1 - zero_rows) * (cy - 1 - zero_cols)))
    params = {"dof": dof, "levels_x": int(cx), "levels_y": int(cy), "strata": int(len(s_tot))}
    if dof <= 0:
        return TestResult.skipped(name, n, "skipped: zero degrees of freedom", params)
    p = float(stats.chi2.sf(statistic, dof))
    k = min(cx, cy) - 1
    effect = math.sqrt(statistic / (n * k)) if k > 0 else math.nan
    return TestResult(name, statistic, p, n, params, OK, min(effect, 1.0) if np.isfinite(effect) else effect)
