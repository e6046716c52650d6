"""Unusable input gives a clear status and no p-value; other pairs still run."""

import math

import jax
import numpy as np
import pandas as pd
import pytest

from personax.independence import TESTS, test_matrix, test_pair


def _key_for(test):
    return jax.random.key(0) if test == "rcit" else None


@pytest.mark.parametrize("test", TESTS)
def test_constant_column_is_skipped(test):
    rng = np.random.default_rng(0)
    r = test_pair(np.ones(50), rng.integers(0, 3, 50), test=test, key=_key_for(test))
    assert r.status == "skipped: constant column"
    assert math.isnan(r.p_value) and math.isnan(r.statistic)


@pytest.mark.parametrize("test", ["kci", "chisq", "fisherz"])
def test_all_missing_and_too_few_rows(test):
    x = np.full(40, np.nan)
    assert test_pair(x, np.arange(40.0), test=test).status == "skipped: all values missing"
    x = np.arange(40.0)
    y = np.where(np.arange(40) < 9, np.arange(40) % 3, np.nan)  # 9 usable rows
    r = test_pair(x, y, test=test)
    assert r.status == "skipped: fewer than 10 usable rows" and r.n == 9 and math.isnan(r.p_value)


def test_non_numeric_and_infinite():
    x = np.array(["a", "b"] * 20, dtype=object)
    assert test_pair(x, np.arange(40.0)).status == "skipped: non-numeric data"
    assert test_pair(pd.Series(["u", "v"] * 20), np.arange(40.0)).status == "skipped: non-numeric data"
    y = np.arange(40.0)
    y[3] = np.inf
    r = test_pair(np.arange(40.0), y)
    assert r.status == "skipped: infinite values" and math.isnan(r.p_value)


def test_constant_conditioning_column():
    rng = np.random.default_rng(1)
    r = test_pair(rng.normal(size=60), rng.normal(size=60), np.zeros((60, 1)), test="kci")
    assert r.status == "skipped: constant conditioning column"


def test_missing_rows_are_dropped_per_pair():
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    x_nan = x.copy()
    x_nan[:40] = np.nan
    full = test_pair(x[40:], y[40:], test="kci")
    dropped = test_pair(x_nan, y, test="kci")
    assert dropped.n == 260
    assert dropped.p_value == pytest.approx(full.p_value, rel=1e-9, abs=1e-300)
    assert dropped.statistic == pytest.approx(full.statistic, rel=1e-9)


def test_matrix_bad_columns_do_not_stop_other_pairs():
    rng = np.random.default_rng(3)
    n = 120
    df = pd.DataFrame({
        "good": rng.normal(size=n),
        "const": np.full(n, 2.0),
        "empty": np.full(n, np.nan),
        "text": ["a", "b", "c"] * (n // 3),
        "inf": np.r_[np.inf, rng.normal(size=n - 1)],
        "sparse": np.where(np.arange(n) < 5, 1.0, np.nan),
        "trait": rng.integers(1, 4, n).astype(float),
    })
    out = test_matrix(df, ["good", "const", "empty", "text", "inf", "sparse"], ["trait"],
                      tests=["kci", "hsic", "rcit", "chisq", "gsq", "fisherz"])
    by = out.set_index(["feature", "test"])
    for test in ["kci", "hsic", "rcit", "fisherz"]:
        assert by.loc[("good", test), "status"] == "ok"
        assert np.isfinite(by.loc[("good", test), "p_value"])
    assert by.loc[("good", "chisq"), "status"] == "skipped: continuous"
    assert by.loc[("const", "kci"), "status"] == "skipped: constant column (const)"
    assert by.loc[("empty", "kci"), "status"] == "skipped: all values missing (empty)"
    assert by.loc[("text", "kci"), "status"] == "skipped: non-numeric data (text)"
    assert by.loc[("inf", "kci"), "status"] == "skipped: infinite values (inf)"
    assert by.loc[("sparse", "kci"), "status"].startswith("skipped: fewer than 10 usable rows")
    bad = out[out.status != "ok"]
    assert bad.p_value.isna().all() and bad.q_value.isna().all()


def test_rcit_requires_explicit_key():
    with pytest.raises(ValueError, match="key"):
        test_pair(np.arange(50.0), np.arange(50.0) % 3, test="rcit")


def test_unknown_test_and_option_raise():
    with pytest.raises(ValueError, match="unknown test"):
        test_pair(np.arange(50.0), np.arange(50.0) % 3, test="nope")
    with pytest.raises(TypeError):
        test_pair(np.arange(50.0), np.arange(50.0) % 3, test="kci", bogus=1)
