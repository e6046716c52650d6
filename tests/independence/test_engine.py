"""Internals: low-rank kernel factors, HSIC against a dense reference, result type."""

import math

import numpy as np
import pytest
from scipy import stats

from personax.independence import TestResult, test_pair
from personax.independence._common import float64
from personax.independence._lowrank import kernel_factors
from personax.independence._rcit import lpb4


@pytest.mark.parametrize("kind", ["normal", "heavy-tail", "discrete", "2d"])
def test_pivoted_cholesky_reproduces_dense_kernel(kind):
    rng = np.random.default_rng(0)
    n = 700
    x = {"normal": rng.normal(size=(n, 1)), "heavy-tail": rng.standard_t(2, size=(n, 1)),
         "discrete": rng.integers(0, 7, size=(n, 1)).astype(float), "2d": rng.normal(size=(n, 2))}[kind]
    theta = 11.0
    dense = np.exp(-0.5 * theta * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    with float64():
        L, ranks = kernel_factors(np.pad(x, ((0, 324), (0, 0)))[None], np.r_[np.ones(n), np.zeros(324)],
                                  np.array([theta]))
    L = np.asarray(L[0])
    assert np.abs(L[n:]).max() == 0.0  # padded rows stay empty
    assert np.abs(L[:n] @ L[:n].T - dense).max() < 1e-9
    if kind == "discrete":
        assert ranks[0] == 7


def _dense_hsic_gamma(x, y):
    """Gretton's hsicTestGamma, dense NumPy, with the personax median width rule."""
    from personax.independence._hsic import median_sigma

    x = stats.zscore(x, ddof=1)
    y = stats.zscore(y, ddof=1)
    m = len(x)
    sx, sy = median_sigma(x), median_sigma(y)
    K = np.exp(-((x - x.T) ** 2) / (2 * sx**2))
    L = np.exp(-((y - y.T) ** 2) / (2 * sy**2))
    H = np.eye(m) - 1.0 / m
    Kc, Lc = H @ K @ H, H @ L @ H
    stat = np.sum(Kc * Lc) / m
    v = (Kc * Lc / 6) ** 2
    v = (v.sum() - np.trace(v)) / m / (m - 1)
    v = v * 72 * (m - 4) * (m - 5) / m / (m - 1) / (m - 2) / (m - 3)
    mux = (K.sum() - m) / m / (m - 1)
    muy = (L.sum() - m) / m / (m - 1)
    mean = (1 + mux * muy - mux - muy) / m
    return stats.gamma.sf(stat, mean**2 / v, scale=v * m / mean), stat


@pytest.mark.parametrize("n", [60, 300])
def test_hsic_matches_dense_gretton_reference(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 1))
    y = 0.3 * x**2 + rng.normal(size=(n, 1))
    p_ref, s_ref = _dense_hsic_gamma(x, y)
    r = test_pair(x, y, test="hsic")
    assert r.statistic == pytest.approx(s_ref, rel=1e-8)
    assert r.p_value == pytest.approx(p_ref, rel=1e-6, abs=1e-12)


def test_hsic_permutation_null_agrees_with_gamma():
    import jax

    rng = np.random.default_rng(5)
    x = rng.normal(size=200)
    y = 0.15 * x + rng.normal(size=200)
    g = test_pair(x, y, test="hsic")
    p = test_pair(x, y, test="hsic", null_dist="permutation", n_perm=512, key=jax.random.key(0))
    assert p.params["null"] == "permutation"
    assert abs(g.p_value - p.p_value) < 0.05


def test_lpb4_known_values():
    # Johnson, Kotz & Balakrishnan Table 18.6 (as in momentchi2's documentation)
    assert lpb4(np.array([1.5, 1.5, 0.5, 0.5]), 10.203) == pytest.approx(0.95, abs=1e-4)
    assert lpb4(np.array([1.5, 1.5, 0.5, 0.5]), 0.627) == pytest.approx(0.05, abs=1e-4)


def test_result_type():
    r = TestResult.skipped("kci", 5, "skipped: constant column")
    assert not r.ok and math.isnan(r.p_value)
    d = test_pair(np.arange(30.0), np.arange(30.0) % 3, test="fisherz").as_dict()
    assert set(d) == {"test", "statistic", "p_value", "n", "params", "status", "effect_size"}


def test_float64_does_not_leak():
    import jax.numpy as jnp

    test_pair(np.arange(30.0), np.arange(30.0) % 3, test="kci")
    assert jnp.ones(1).dtype == jnp.float32
