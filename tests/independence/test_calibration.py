"""Calibration of the kernel tests: type-I error under independence and power.

Each check runs R seeded replicate datasets through one batched call (replicates are
vmapped / lax.mapped inside the group functions). The acceptance band for the type-I error
at alpha = 0.05 is [0.02, 0.08]. With R = 400 replicates the binomial standard deviation of
the empirical rate is 0.011, so a perfectly calibrated test falls outside the band with
probability about 1e-2 per check (tolerated failure rate 1%); the seeds are fixed, so a
pass or fail is reproducible. Power checks require >= 0.95 rejections on clearly
dependent data (R = 100; a test with true power 0.99 fails this with probability < 2%).
"""

import jax
import numpy as np
import pytest

from personax.independence._common import float64
from personax.independence._hsic import hsic_group
from personax.independence._kci import kci_conditional_group, kci_unconditional_group
from personax.independence._rcit import rcit_group

ALPHA = 0.05
BAND = (0.02, 0.08)
R = 400


def _independent(kind, n, rng):
    if kind == "gaussian":
        return rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
    if kind == "exponential-vs-trait":  # skewed continuous vs a 3-level score
        return rng.exponential(size=(n, 1)), rng.integers(1, 4, size=(n, 1)).astype(float)
    if kind == "binary-vs-uniform":
        return rng.integers(0, 2, size=(n, 1)).astype(float), rng.uniform(size=(n, 1))
    if kind == "student-t":
        return rng.standard_t(3, size=(n, 1)), rng.standard_t(3, size=(n, 1))
    raise ValueError(kind)


def _run(test, xs, ys):
    pairs = [(k, k) for k in range(len(xs))]
    with float64():
        if test == "kci":
            res = kci_unconditional_group(xs, ys, pairs)
        elif test == "hsic":
            res = hsic_group(xs, ys, pairs)
        else:
            res = rcit_group(xs, ys, None, pairs, key=jax.random.key(7))
    assert all(r.ok for r in res)
    return np.array([r.p_value for r in res])


@pytest.mark.parametrize("test", ["kci", "hsic", "rcit"])
@pytest.mark.parametrize("kind", ["gaussian", "exponential-vs-trait", "binary-vs-uniform", "student-t"])
def test_type_one_error_within_band(test, kind):
    rng = np.random.default_rng([ord(c) for c in test + kind])
    n = 250
    data = [_independent(kind, n, rng) for _ in range(R)]
    p = _run(test, [d[0] for d in data], [d[1] for d in data])
    rate = float(np.mean(p < ALPHA))
    assert BAND[0] <= rate <= BAND[1], f"{test}/{kind}: type-I error {rate:.3f}"


@pytest.mark.parametrize("test", ["kci", "hsic", "rcit"])
def test_power_on_clearly_dependent_data(test):
    rng = np.random.default_rng(99)
    n, reps = 300, 100
    xs, ys = [], []
    for k in range(reps):
        x = rng.normal(size=(n, 1))
        if k % 2:  # non-monotone dependence
            y = np.abs(x) + 0.3 * rng.normal(size=(n, 1))
        else:  # a 3-level trait driven by x
            y = np.digitize(x + 0.5 * rng.normal(size=(n, 1)), [-0.5, 0.5]).astype(float)
        xs.append(x)
        ys.append(y)
    p = _run(test, xs, ys)
    assert np.mean(p < ALPHA) >= 0.95


def test_conditional_kci_type_one_error():
    """X and Y depend only through a shared Z: the conditional test should not reject
    (R = 300 replicates, band [0.02, 0.08]; tolerated failure rate about 3%)."""
    rng = np.random.default_rng(4242)
    n = 150
    rej = []
    with float64():
        for _ in range(300):
            z = rng.normal(size=(n, 1))
            x = z + 0.7 * rng.normal(size=(n, 1))
            y = np.tanh(z) + 0.7 * rng.normal(size=(n, 1))
            rej.append(kci_conditional_group([x], [y], z, [(0, 0)])[0].p_value < ALPHA)
    assert BAND[0] <= np.mean(rej) <= BAND[1]
