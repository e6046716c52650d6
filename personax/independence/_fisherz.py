"""Fisher-z test of (partial) correlation (causal-learn 0.1.4.8 semantics, NumPy)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from personax.independence._common import zscore
from personax.independence._result import OK, TestResult


def fisherz_test(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> TestResult:
    """Fisher-z test of zero (partial) correlation between x and y given z.

    ``r = -P_01 / sqrt(P_00 P_11)`` from the inverse correlation matrix ``P`` of
    ``[x, y, z]``; ``|r|`` is clipped below 1; statistic ``sqrt(n - |z| - 3) * |atanh(r)|``;
    two-sided normal p-value.

    Args:
        x: (n,) or (n, 1) values.
        y: (n,) or (n, 1) values.
        z: Optional (n, dz) conditioning values.

    Returns:
        A TestResult; effect size is ``|r|``. A singular correlation matrix gives status
        ``"failed: singular correlation matrix"`` and no p-value.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=200); y = x + rng.normal(size=200)
        >>> fisherz_test(x, y).p_value < 1e-6
        True
    """
    cols = [np.asarray(x, dtype=np.float64).reshape(len(x), -1), np.asarray(y, dtype=np.float64).reshape(len(y), -1)]
    dz = 0
    if z is not None and z.shape[1] > 0:
        cols.append(np.asarray(z, dtype=np.float64))
        dz = z.shape[1]
    data = zscore(np.concatenate(cols, axis=1))  # correlation is scale-free; z-scoring avoids overflow
    n = data.shape[0]
    if n - dz - 3 <= 0:
        return TestResult.skipped("fisherz", n, "skipped: too few rows for Fisher-z")
    corr = np.corrcoef(data.T)
    if not np.all(np.isfinite(corr)):
        return TestResult.skipped("fisherz", n, "failed: non-finite correlation matrix")
    try:
        inv = np.linalg.inv(corr)
    except np.linalg.LinAlgError:
        return TestResult.skipped("fisherz", n, "failed: singular correlation matrix")
    r = -inv[0, 1] / math.sqrt(abs(inv[0, 0] * inv[1, 1]))
    if not math.isfinite(r):
        return TestResult.skipped("fisherz", n, "failed: non-finite partial correlation")
    if abs(r) >= 1:
        r = (1.0 - np.finfo(float).eps) * np.sign(r)
    zz = 0.5 * math.log((1 + r) / (1 - r))
    statistic = math.sqrt(n - dz - 3) * abs(zz)
    p = float(2.0 * stats.norm.sf(statistic))
    return TestResult("fisherz", statistic, p, n, {"r": float(r), "conditioning_dim": dz}, OK, abs(float(r)))
