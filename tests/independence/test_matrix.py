"""The matrix runner: tidy output, per-pair row dropping, BH q-values, conditioning."""

import jax
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from personax.independence import test_matrix, test_pair
from personax.independence._matrix import COLUMNS, is_discrete


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(10)
    n = 400
    df = pd.DataFrame({
        "height": rng.normal(170, 10, n),
        "month": rng.integers(1, 13, n),
        "gender": rng.integers(0, 2, n),
        "noise": rng.exponential(size=n),
    })
    df["t_a"] = np.digitize(df["height"] + rng.normal(0, 8, n), [165, 175]) + 1.0
    df["t_b"] = np.where(rng.random(n) < 0.25, np.nan, df["gender"] + rng.integers(1, 3, n))
    df["t_c"] = rng.integers(1, 4, n).astype(float)
    df.loc[rng.random(n) < 0.1, "height"] = np.nan
    return pd.DataFrame(df).astype({"month": "Int64", "gender": "Int64"})


TESTS = ["kci", "hsic", "rcit", "chisq", "gsq", "fisherz"]


def test_tidy_table_and_pairwise_equivalence(frame):
    feats = ["height", "month", "gender", "noise"]
    traits = ["t_a", "t_b", "t_c"]
    out = test_matrix(frame, feats, traits, tests=TESTS, seed=3)
    assert list(out.columns) == COLUMNS
    assert len(out) == len(feats) * len(traits) * len(TESTS)
    # each matrix entry equals the single-pair test on the same two columns
    for f in feats:
        for t in traits:
            for test in ["kci", "hsic", "fisherz"]:
                row = out[(out.feature == f) & (out.trait == t) & (out.test == test)].iloc[0]
                single = test_pair(frame[f], frame[t], test=test)
                assert row.n == single.n
                assert row.p_value == pytest.approx(single.p_value, rel=1e-7, abs=1e-12)
    # the planted dependencies are found, the independent trait is not
    kci = out[out.test == "kci"].set_index(["feature", "trait"])
    assert kci.loc[("height", "t_a"), "p_value"] < 1e-6
    assert kci.loc[("gender", "t_b"), "p_value"] < 1e-6
    assert kci.loc[("noise", "t_c"), "p_value"] > 0.01


def test_discrete_rule_and_override(frame):
    out = test_matrix(frame, ["height", "month"], ["t_a"], tests=["chisq"])
    st = out.set_index("feature").status
    assert st["height"] == "skipped: continuous" and st["month"] == "ok"
    out = test_matrix(frame, ["month"], ["t_a"], tests=["chisq"], max_categories=5)
    assert out.status.iloc[0] == "skipped: continuous"
    out = test_matrix(frame, ["month"], ["t_a"], tests=["chisq"], discrete=["t_a"])
    assert out.status.iloc[0] == "skipped: continuous"
    assert is_discrete(np.array([1.0, 2.0, np.nan]), 5) and not is_discrete(np.array([1.5, 2.0]), 5)


def test_bh_within_each_test(frame):
    out = test_matrix(frame, ["height", "month", "gender", "noise"], ["t_a", "t_b", "t_c"], tests=["kci", "hsic"])
    for test, sub in out.groupby("test"):
        ok = sub.p_value.notna()
        expected = multipletests(sub.p_value[ok], method="fdr_bh")[1]
        np.testing.assert_allclose(sub.q_value[ok], expected, rtol=1e-12)


def test_rcit_is_seeded(frame):
    a = test_matrix(frame, ["height", "noise"], ["t_a", "t_c"], tests=["rcit"], seed=1)
    b = test_matrix(frame, ["height", "noise"], ["t_a", "t_c"], tests=["rcit"], seed=1)
    c = test_matrix(frame, ["height", "noise"], ["t_a", "t_c"], tests=["rcit"], key=jax.random.key(2))
    np.testing.assert_array_equal(a.p_value, b.p_value)
    assert not np.allclose(a.statistic, c.statistic)


def test_conditioning(frame):
    rng = np.random.default_rng(4)
    n = 500
    g = rng.integers(0, 2, n)
    occ = rng.integers(0, 4, n)
    face = (g + rng.random(n) < 0.8).astype(float)  # depends on gender only
    trait = np.clip(g + (occ > 1) + rng.integers(0, 2, n), 0, 3).astype(float)
    df = pd.DataFrame({"face": face, "trait": trait, "gender": g, "occupation": occ})
    marg = test_matrix(df, ["face"], ["trait"], tests=["kci", "chisq", "fisherz"]).set_index("test")
    cond = test_matrix(df, ["face"], ["trait"], tests=["kci", "chisq", "fisherz", "hsic"],
                       conditioning=["gender", "occupation"]).set_index("test")
    assert (marg.p_value < 1e-3).all()
    assert (cond.loc[["kci", "chisq", "fisherz"], "p_value"] > 0.01).all()
    assert cond.loc["hsic", "status"] == "skipped: HSIC has no conditional form"
    # the conditional matrix entry equals the single conditional test
    single = test_pair(df.face, df.trait, df[["gender", "occupation"]], test="kci")
    assert cond.loc["kci", "p_value"] == pytest.approx(single.p_value, rel=1e-7)


def test_progress_counts_every_pair_once_as_its_group_finishes(frame):
    """``progress`` gets each test's pairs: those that cannot run at once, then each group of pairs with
    the same complete rows (here four: height's and t_b's missing rows split them) as it finishes."""
    frame = frame.assign(empty=np.nan)
    feats, traits, tests = ["height", "month", "gender", "empty"], ["t_a", "t_b", "t_c"], ["kci", "chisq"]
    calls: list[int] = []
    out = test_matrix(frame, feats, traits, tests=tests, progress=calls.append)
    assert sum(calls) == len(out) == len(feats) * len(traits) * len(tests)
    skipped_at_once = len(traits)  # the empty feature's pairs: nothing to test
    groups = 4  # complete rows of: neither missing, height missing, t_b missing, both
    assert calls == [skipped_at_once, *[c for c in calls[1:1 + groups]]] * len(tests)
    assert len(calls) == (1 + groups) * len(tests) and all(c > 0 for c in calls[1:1 + groups])
