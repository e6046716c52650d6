"""Level I: structured independence tests (KCI, HSIC, RCIT, chi-square, G-square, Fisher-z).

Public surface:

* :func:`test_pair` — one test on one (x, y[, z]) triple;
* :func:`test_matrix` — all tests on every (feature, trait) pair of a data frame;
* :class:`TestResult` — the single result type;
* :func:`register_with_causallearn` — expose the tests to causal-learn's PC / FCI;
* :func:`merge_chunks` — merge the tables of a matrix run in feature chunks
  (``independence.chunk=i/k``), with Benjamini-Hochberg over the whole matrix.

The kernel tests are hand-written in JAX (jit, vmap / lax.map) because no library computes
them fast enough for the study's matrices; defaults reproduce causal-learn 0.1.4.8's ``CIT``.

Example:
    >>> import numpy as np
    >>> from personax.independence import test_pair
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> test_pair(x, x + rng.normal(size=200), test="fisherz").p_value < 1e-6
    True
"""

from personax.independence._api import TESTS, test_pair
from personax.independence._causallearn import register_with_causallearn
from personax.independence._chunks import merge_chunks
from personax.independence._matrix import test_matrix
from personax.independence._result import TestResult

__all__ = ["TESTS", "TestResult", "merge_chunks", "register_with_causallearn", "test_matrix", "test_pair"]
