"""``test_pair``: one entry point for every independence test."""

from __future__ import annotations

from typing import Any

import numpy as np

from personax.independence import _common as C
from personax.independence._discrete import contingency_test
from personax.independence._fisherz import fisherz_test
from personax.independence._hsic import hsic_group
from personax.independence._kci import kci_conditional_group, kci_unconditional_group
from personax.independence._rcit import rcit_group
from personax.independence._result import TestResult

TESTS = ("kci", "hsic", "rcit", "chisq", "gsq", "fisherz")

# Numerical failures that become a status on the pair (never a p-value). Programming and
# option errors (TypeError, ValueError, KeyError) propagate.
NUMERICAL_ERRORS = (np.linalg.LinAlgError, FloatingPointError, ArithmeticError)


def check_test_name(test: str) -> None:
    """Raise ``ValueError`` for an unknown test name."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose from {', '.join(TESTS)}")


def run_clean(test: str, x: np.ndarray, y: np.ndarray, z: np.ndarray | None, *, key=None,
              **options: Any) -> TestResult:
    """Run ``test`` on already-cleaned (complete, non-constant, float64) 2-D arrays."""
    if test == "kci":
        if z is None:
            return kci_unconditional_group([x], [y], [(0, 0)], **options)[0]
        return kci_conditional_group([x], [y], z, [(0, 0)], **options)[0]
    if test == "hsic":
        if z is not None:
            return TestResult.skipped("hsic", x.shape[0], "skipped: HSIC has no conditional form")
        return hsic_group([x], [y], [(0, 0)], key=key, **options)[0]
    if test == "rcit":
        return rcit_group([x], [y], z, [(0, 0)], key=key, **options)[0]
    if test in ("chisq", "gsq"):
        return contingency_test(x, y, z, g_square=test == "gsq", **options)
    if test == "fisherz":
        return fisherz_test(x, y, z, **options)
    check_test_name(test)
    raise AssertionError("unreachable")


def test_pair(x, y, z=None, test: str = "kci", *, key=None, min_rows: int = C.MIN_ROWS,
              **options: Any) -> TestResult:
    """Test H0: x independent of y (given z) with one of personax's tests.

    Rows missing (NaN / NA) in x, y or z are dropped first. Unusable input never yields a
    p-value: non-numeric data, infinities, all-missing or constant columns and fewer than
    ``min_rows`` complete rows return a result with ``p_value = NaN`` and a ``status`` such
    as ``"skipped: constant column"``.

    The kernel tests (KCI, HSIC, RCIT) are hand-written in JAX because no library runs them
    fast enough for the study's matrices; they run in float64 inside a scoped
    ``jax.enable_x64`` block (the global JAX setting is left untouched).

    Args:
        x: (n,) or (n, dx) array / Series / DataFrame.
        y: (n,) or (n, dy) data.
        z: Optional (n, dz) conditioning data.
        test: ``"kci"`` (default), ``"hsic"``, ``"rcit"``, ``"chisq"``, ``"gsq"`` or ``"fisherz"``.
        key: ``jax.random`` key; required by ``"rcit"`` and by HSIC's permutation null.
        min_rows: Minimum number of complete rows.
        **options: Test options, e.g. ``est_width`` for KCI, ``null_dist`` / ``width_rule`` for HSIC,
            ``approx`` / ``rcit`` for RCIT. Defaults reproduce causal-learn 0.1.4.8's ``CIT``.

    Returns:
        A TestResult.

    Example:
        >>> import numpy as np
        >>> from personax.independence import test_pair
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=300); y = np.sin(2 * x) + 0.3 * rng.normal(size=300)
        >>> test_pair(x, y, test="kci").p_value < 0.01
        True
        >>> test_pair(x, np.ones(300)).status
        'skipped: constant column'
    """
    check_test_name(test)
    if test == "rcit" and key is None:
        raise ValueError("test='rcit' is randomised: pass an explicit key=jax.random.key(seed)")
    arrays = []
    for name, v in (("x", x), ("y", y), ("z", z)):
        a, status = C.as_float_matrix(v)
        if status is not None:
            return TestResult.skipped(test, 0, status)
        arrays.append(a)
    xa, ya, za = arrays
    if za is not None and za.shape[1] == 0:
        za = None
    lengths = {a.shape[0] for a in (xa, ya, za) if a is not None}
    if len(lengths) != 1:
        raise ValueError(f"x, y and z must have the same number of rows, got {sorted(lengths)}")
    mask = C.usable_rows(xa, ya, za)
    m = int(mask.sum())
    if m == 0:
        return TestResult.skipped(test, 0, C.SKIP_ALL_MISSING)
    if m < min_rows:
        return TestResult.skipped(test, m, C.SKIP_FEW_ROWS.format(min_rows=min_rows))
    xa, ya = xa[mask], ya[mask]
    za = za[mask] if za is not None else None
    if C.is_constant(xa) or C.is_constant(ya):
        return TestResult.skipped(test, m, C.SKIP_CONSTANT)
    if za is not None and C.any_constant_column(za):
        return TestResult.skipped(test, m, C.SKIP_CONSTANT_Z)
    with C.float64():
        try:
            return run_clean(test, xa, ya, za, key=key, **options).checked()
        except NUMERICAL_ERRORS as err:
            return TestResult.skipped(test, m, f"failed: {type(err).__name__}: {err}")


test_pair.__test__ = False  # a library function, not a pytest test
