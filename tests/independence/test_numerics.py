"""Issue 13 item 10: every test checks its numerics; an unusable number is a failed status,
never a p-value with status ok. Each test is named after the case it guards."""

import math

import jax
import numpy as np
import pandas as pd
import pytest

from personax.independence import TestResult, test_matrix, test_pair
from personax.independence._rcit import _null_pvalue
from personax.independence._result import NUMERIC_FAILURE


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(13)
    x = rng.normal(size=300)
    return x, 0.3 * x + rng.normal(size=300)


@pytest.mark.parametrize("scale", [1e154, 1e200, 1e-300])
def test_rcit_extreme_scale_gives_the_unscaled_p_not_one(xy, scale):
    # was p = 1.0 with status ok at x * 1e154: now the scale-free test gives the unscaled answer
    x, y = xy
    ref = test_pair(x, y, test="rcit", key=jax.random.key(0))
    got = test_pair(x * scale, y, test="rcit", key=jax.random.key(0))
    assert got.ok and ref.ok
    assert got.p_value < 0.01 and got.p_value == pytest.approx(ref.p_value, abs=1e-9)


def test_rcit_degenerate_features_fail_instead_of_p_one():
    # all-zero eigenvalues (degenerate features) made the null approximation return p = 1
    p, _, _ = _null_pvalue(0.0, np.zeros(25), np.zeros((25, 25)), np.zeros(25), "lpd4", 100)
    assert math.isnan(p)
    p, _, _ = _null_pvalue(3.0, np.full(25, np.nan), np.zeros((25, 25)), np.zeros(25), "hbe", 100)
    assert math.isnan(p)


@pytest.mark.parametrize("scale", [1e154, 1e-300])
@pytest.mark.parametrize("test", ["kci", "hsic"])
def test_kernel_tests_extreme_scale_give_the_unscaled_p_value(xy, test, scale):
    x, y = xy
    ref = test_pair(x, y, test=test)
    got = test_pair(x * scale, y * scale, test=test)
    assert got.ok and got.p_value == pytest.approx(ref.p_value, rel=1e-6)


@pytest.mark.parametrize("scale", [1e154, 1e200, 1e-300])
def test_fisherz_extreme_scale_is_not_nan_with_status_ok(xy, scale):
    x, y = xy
    ref = test_pair(x, y, test="fisherz")
    got = test_pair(x * scale, y * scale, test="fisherz")
    assert got.ok and got.p_value == pytest.approx(ref.p_value, rel=1e-9)


def test_nan_p_value_with_status_ok_becomes_failed():
    assert TestResult("fisherz", 1.0, math.nan, 10, {}).checked().status == NUMERIC_FAILURE
    assert TestResult("kci", math.inf, 0.5, 10, {}).checked().status == NUMERIC_FAILURE
    assert TestResult("rcit", 1.0, 1.5, 10, {}).checked().status == NUMERIC_FAILURE
    assert TestResult("rcit", 1.0, 0.5, 10, {}).checked().ok


@pytest.mark.parametrize("test", ["chisq", "gsq"])
def test_chisq_gsq_on_continuous_data_are_refused_with_a_reason(xy, test):
    x, y = xy
    r = test_pair(x, y, test=test)
    assert not r.ok and math.isnan(r.p_value)
    assert r.status.startswith("skipped: continuous") and "non-integer" in r.status
    many = np.arange(300.0)  # integer-valued but 300 levels
    r = test_pair(many, np.arange(300) % 3, test=test)
    assert not r.ok and "300 distinct values > max_categories=40" in r.status
    assert test_pair(many % 4, np.arange(300) % 3, test=test).ok
    assert test_pair(many, np.arange(300) % 3, test=test, max_categories=None).status != r.status


def test_matrix_at_extreme_scale_matches_the_unscaled_matrix(xy):
    x, y = xy
    df = pd.DataFrame({"x": x, "y": y, "big": x * 1e154, "d": np.round(np.abs(x)), "t": np.round(np.abs(y))})
    out = test_matrix(df, ["x", "big"], ["y"], tests=["kci", "hsic", "rcit", "fisherz"], seed=1)
    a = out[out.feature == "x"].reset_index(drop=True)
    b = out[out.feature == "big"].reset_index(drop=True)
    assert (b.status == "ok").all()
    same_key = (a.test != "rcit").to_numpy()  # RCIT's key depends on the feature's position
    np.testing.assert_allclose(b.p_value[same_key], a.p_value[same_key], rtol=1e-6, atol=1e-12)
    assert (b.p_value[~same_key] < 0.01).all()
