"""Expose personax tests to causal-learn's constraint-based search (PC, FCI, ...).

causal-learn 0.1.4.8 has a registry, ``causallearn.utils.cit.register_ci_test(name, cls)``,
for ``CIT_Base`` subclasses; ``CIT(data, method=name, **kwargs)`` (and therefore
``pc(data, indep_test=name, ...)`` / ``fci(data, independence_test_method=name, ...)``)
then instantiates the class.
"""

from __future__ import annotations

import zlib
from typing import Any

import jax
import numpy as np
from causallearn.utils import cit as _cit

from personax.independence._api import TESTS, test_pair

PREFIX = "personax_"


class PersonaxCIT(_cit.CIT_Base):
    """causal-learn CI test backed by :func:`personax.independence.test_pair`.

    ``CIT_Base`` hashes ``str(data)`` for its optional on-disk cache, which collides for large
    arrays, so ``cache_path`` is refused; the in-memory cache is keyed by variable indices.
    A pair the personax test cannot evaluate raises ``ValueError`` instead of inventing a
    p-value.
    """

    test_name = "kci"

    def __init__(self, data: np.ndarray, seed: int = 0, **options: Any):
        if options.pop("cache_path", None) is not None:
            raise ValueError("personax CI tests do not support cache_path (causal-learn's md5(str(data)) collides)")
        super().__init__(data)
        self.check_cache_method_consistent(PREFIX + self.test_name, repr(sorted(options.items())))
        self.assert_input_data_is_valid()
        self.seed = int(seed)
        self.options = options

    def __call__(self, X, Y, condition_set=None) -> float:
        xs, ys, cond, cache_key = self.get_formatted_XYZ_and_cachekey(X, Y, condition_set)
        if cache_key in self.pvalue_cache:
            return self.pvalue_cache[cache_key]
        z = self.data[:, cond] if cond else None
        key = None
        if self.test_name in ("rcit",) or self.options.get("null_dist") == "permutation":
            key = jax.random.fold_in(jax.random.key(self.seed), zlib.crc32(cache_key.encode()))
        r = test_pair(self.data[:, xs], self.data[:, ys], z, test=self.test_name, key=key, **self.options)
        if not r.ok:
            raise ValueError(f"personax {self.test_name} could not test {cache_key}: {r.status}")
        self.pvalue_cache[cache_key] = r.p_value
        return r.p_value


def register_with_causallearn(tests=TESTS, prefix: str = PREFIX) -> dict[str, type]:
    """Register personax tests with causal-learn's CI-test registry.

    Args:
        tests: Test names to register.
        prefix: Name prefix; ``"kci"`` becomes ``"personax_kci"``.

    Returns:
        Mapping from registered name to the ``CIT_Base`` subclass.

    Example:
        >>> from personax.independence import register_with_causallearn
        >>> names = register_with_causallearn()
        >>> "personax_kci" in names
        True
        >>> # from causallearn.search.ConstraintBased.PC import pc
        >>> # pc(data, 0.05, "personax_kci")
    """
    registered = {}
    for t in tests:
        if t not in TESTS:
            raise ValueError(f"unknown test {t!r}")
        cls = type(f"Personax_{t}", (PersonaxCIT,), {"test_name": t})
        _cit.register_ci_test(prefix + t, cls)
        registered[prefix + t] = cls
    return registered
