"""Agreement with causal-learn 0.1.4.8 (``causallearn.utils.cit.CIT``) on generated data.

Defaults must reproduce the reference within 1e-3 in p-value for KCI (both forms),
chi-square, G-square and Fisher-z. Data are seeded; sizes straddle the kernel-width
breakpoints (200 and 1200 rows).
"""

import numpy as np
import pytest
from causallearn.utils.cit import CIT

from personax.independence import test_pair

TOL = 1e-3


def _data(kind, n, seed, dx=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    if kind == "continuous":
        x = z + rng.normal(size=(n, dx))
        y = np.sin(x[:, :1]) * 0.4 + z + rng.normal(size=(n, 1))
    elif kind == "mixed":  # continuous feature, 3-level trait (the study's typical pair)
        x = rng.normal(size=(n, dx)) + 0.3 * z
        y = np.clip(np.round(0.3 * x[:, :1] + rng.normal(size=(n, 1))), -1, 1) + 2
    elif kind == "independent":
        x = rng.exponential(size=(n, dx))
        y = rng.integers(1, 4, size=(n, 1)).astype(float)
    else:
        raise ValueError(kind)
    return x, y, z


@pytest.mark.parametrize("n", [80, 450, 1300])
@pytest.mark.parametrize("kind", ["continuous", "mixed", "independent"])
def test_kci_unconditional_matches_causallearn(kind, n):
    x, y, _ = _data(kind, n, seed=n)
    ref = CIT(np.hstack([x, y]), "kci")(0, 1)
    ours = test_pair(x, y, test="kci")
    assert ours.ok
    assert abs(ours.p_value - ref) < TOL, (ours.p_value, ref)


def test_kci_unconditional_multidimensional_x():
    x, y, _ = _data("continuous", 300, seed=7, dx=2)
    ref = CIT(np.hstack([x, y]), "kci")([0, 1], 2)
    ours = test_pair(x, y, test="kci")
    assert abs(ours.p_value - ref) < TOL


@pytest.mark.parametrize("n,kind", [(90, "continuous"), (400, "mixed"),
                                    pytest.param(1210, "independent", marks=pytest.mark.slow)])  # ~35 s CPU
def test_kci_conditional_matches_causallearn(n, kind):
    x, y, z = _data(kind, n, seed=n + 1)
    ref = CIT(np.hstack([x, y, z]), "kci")(0, 1, [2])
    ours = test_pair(x, y, z, test="kci")
    assert ours.ok
    assert abs(ours.p_value - ref) < TOL, (ours.p_value, ref)


def test_kci_conditional_two_discrete_conditioning_columns():
    rng = np.random.default_rng(3)
    n = 350
    z = np.column_stack([rng.integers(0, 2, n), rng.integers(0, 5, n)]).astype(float)
    x = rng.normal(size=(n, 1)) + z[:, :1]
    y = np.clip(np.round(z[:, 1:] / 2 + rng.normal(size=(n, 1))), 0, 2)
    ref = CIT(np.hstack([x, y, z]), "kci")(0, 1, [2, 3])
    ours = test_pair(x, y, z, test="kci")
    assert abs(ours.p_value - ref) < TOL, (ours.p_value, ref)


@pytest.mark.parametrize("test", ["chisq", "gsq"])
@pytest.mark.parametrize("n,levels", [(120, (2, 3)), (900, (12, 3)), (3000, (31, 3))])
def test_contingency_tests_match_causallearn(test, n, levels):
    rng = np.random.default_rng(n)
    x = rng.integers(0, levels[0], n)
    y = np.clip(rng.integers(0, levels[1], n) + (x % 3 == 0) * (rng.random(n) < 0.15), 0, levels[1] - 1)
    z = rng.integers(0, 2, n)
    data = np.column_stack([x, y, z]).astype(float)
    assert abs(test_pair(x, y, test=test).p_value - CIT(data, test)(0, 1)) < TOL
    assert abs(test_pair(x, y, z[:, None], test=test).p_value - CIT(data, test)(0, 1, [2])) < TOL


def test_contingency_dof_excludes_empty_rows():
    """Strata in which a level of x never occurs reduce the degrees of freedom (reference rule)."""
    rng = np.random.default_rng(5)
    n = 400
    z = rng.integers(0, 2, n)
    x = np.where(z == 0, rng.integers(0, 2, n), rng.integers(2, 4, n))  # levels 0-1 only when z=0
    y = rng.integers(0, 3, n)
    data = np.column_stack([x, y, z]).astype(float)
    ours = test_pair(x, y, z[:, None], test="chisq")
    assert ours.params["dof"] == 2 * ((2 - 1) * (3 - 1))  # per stratum: 2 present x levels, 3 y levels
    assert abs(ours.p_value - CIT(data, "chisq")(0, 1, [2])) < TOL


@pytest.mark.parametrize("n", [50, 600])
def test_fisherz_matches_causallearn(n):
    rng = np.random.default_rng(n)
    z = rng.normal(size=(n, 2))
    x = z @ [0.5, -0.2] + rng.normal(size=n)
    y = 0.1 * x + z @ [0.3, 0.3] + rng.normal(size=n)
    data = np.column_stack([x, y, z])
    assert abs(test_pair(x, y, test="fisherz").p_value - CIT(data, "fisherz")(0, 1)) < TOL
    assert abs(test_pair(x, y, z, test="fisherz").p_value - CIT(data, "fisherz")(0, 1, [2, 3])) < TOL


def test_rcit_agrees_in_decisions():
    """RCIT/RIT are randomised (the reference has no seed): compare decisions at alpha 0.05
    on clearly dependent and clearly independent data."""
    import jax

    from causallearn.utils.RCIT.RCIT import RCIT, RIT

    rng = np.random.default_rng(2024)
    n = 800
    x = rng.normal(size=(n, 1))
    y_dep = np.cos(2 * x) + 0.3 * rng.normal(size=(n, 1))
    y_ind = rng.normal(size=(n, 1))
    z = rng.normal(size=(n, 1))
    np.random.seed(0)  # the reference draws from NumPy's global generator
    assert RIT().compute_pvalue(x, y_dep)[0] < 0.05
    assert test_pair(x, y_dep, test="rcit", key=jax.random.key(0)).p_value < 0.05
    assert RIT().compute_pvalue(x, y_ind)[0] > 0.05
    assert test_pair(x, y_ind, test="rcit", key=jax.random.key(0)).p_value > 0.05
    xz = z + 0.5 * rng.normal(size=(n, 1))
    yz = z**2 + 0.5 * rng.normal(size=(n, 1))
    assert RCIT().compute_pvalue(xz, yz + xz, z)[0] < 0.05
    assert test_pair(xz, yz + xz, z, test="rcit", key=jax.random.key(0)).p_value < 0.05
    assert RCIT().compute_pvalue(xz, yz, z)[0] > 0.05
    assert test_pair(xz, yz, z, test="rcit", key=jax.random.key(0)).p_value > 0.05
