"""The one result type every independence test returns."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

OK = "ok"
NUMERIC_FAILURE = "failed: non-finite statistic or p-value (numerical breakdown)"


@dataclasses.dataclass(frozen=True)
class TestResult:
    """Outcome of one independence test on one (x, y[, z]) triple.

    Attributes:
        test: Test name (``"kci"``, ``"hsic"``, ``"rcit"``, ``"chisq"``, ``"gsq"``, ``"fisherz"``).
        statistic: Test statistic (NaN when the test did not run).
        p_value: p-value under H0 "independent" (NaN when the test did not run; an error
            or an unusable input is never turned into a p-value).
        n: Number of rows actually used (after dropping incomplete rows).
        params: Parameters the test used (kernel widths, null approximation, ...).
        status: ``"ok"`` or a reason such as ``"skipped: constant column"``.
        effect_size: A scale-free dependence measure in [0, 1] where defined
            (normalised HSIC for the kernel tests, Cramer's V for chi-square / G-square,
            |partial correlation| for Fisher-z); NaN otherwise.

    Example:
        >>> r = TestResult("kci", 1.0, 0.5, 100, {}, "ok")
        >>> r.ok
        True
    """

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float
    n: int
    params: dict[str, Any]
    status: str = OK
    effect_size: float = math.nan

    @property
    def ok(self) -> bool:
        """True when the test ran and ``p_value`` is meaningful."""
        return self.status == OK

    @classmethod
    def skipped(cls, test: str, n: int, status: str, params: dict[str, Any] | None = None) -> "TestResult":
        """A result for a test that did not run: statistic and p-value are NaN."""
        return cls(test, math.nan, math.nan, int(n), dict(params or {}), status, math.nan)

    def checked(self) -> "TestResult":
        """This result, or a failed one when a run that says ``ok`` has an unusable number.

        Every test's result passes through here: a non-finite statistic or a p-value that
        is not a number in [0, 1] becomes ``"failed: non-finite statistic or p-value"``
        rather than being reported.

        Example:
            >>> TestResult("fisherz", 1.0, math.nan, 10, {}).checked().status
            'failed: non-finite statistic or p-value (numerical breakdown)'
        """
        if not self.ok:
            return self
        if math.isfinite(self.statistic) and math.isfinite(self.p_value) and 0.0 <= self.p_value <= 1.0:
            return self
        return TestResult.skipped(self.test, self.n, NUMERIC_FAILURE, self.params)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict view (for tables and JSON)."""
        return dataclasses.asdict(self)
