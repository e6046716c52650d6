"""The low-rank KCI / HSIC path (``approx="lowrank"``): agreement with the exact path, null
calibration at n = 20,000 and power on the synthetic cohort's planted dependencies."""

import json

import numpy as np
import pandas as pd
import pytest

from personax.data.synthetic import make_cohort
from personax.independence import test_matrix
from personax.independence._common import float64
from personax.independence._kci import kci_conditional_group, kci_unconditional_group
from personax.independence._scalable import capped_factor, hsic_lowrank, kci_lowrank, use_lowrank
from personax.data.schema import FEATURE_COLUMNS, ordered_trait_columns, rater_of


def cohort_frame(n: int, seed: int):
    """The stage's Level I frame of a synthetic cohort (trait 0 -> missing) and the planted truth."""
    cohort = make_cohort(n, seed=seed, images=False)
    table = cohort.table
    features = [c for c in FEATURE_COLUMNS if c in table.columns]
    traits = ordered_trait_columns(list(table.columns), "raters")
    frame = table[features + traits].copy()
    for c in traits:
        frame[c] = frame[c].astype("Float64").mask(frame[c] == 0)
    return frame, features, traits, cohort.truth.marginal_dependence


def planted(table: pd.DataFrame, truth) -> np.ndarray:
    return np.array([bool(truth.loc[f, t[-1]]) if f in truth.index else False
                     for f, t in zip(table.feature, table.trait)])


def test_capped_factor_is_exact_on_few_distinct_values_and_capped_otherwise():
    rng = np.random.default_rng(0)
    with float64():
        L, r, res = capped_factor(rng.integers(0, 5, (1000, 1)).astype(float), 11.0, max_rank=16)
        assert r == 5 and res == 0.0 and L.shape[0] == 1024 and not L[1000:].any()  # padded rows are zero
        L, r, res = capped_factor(rng.normal(size=(1000, 3)), 11.0, max_rank=16)
        assert r == 16 and res > 1e-6 and L.shape == (1024, 16)


def test_auto_threshold_and_bad_choice():
    assert use_lowrank("auto", 10_000) and not use_lowrank("auto", 9_999)
    assert not use_lowrank("exact", 10**6)
    df = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    with pytest.raises(ValueError, match="unknown approx"):
        test_matrix(df, ["a"], ["b"], tests=["kci"], approx="fast")


def test_lowrank_matches_exact_where_the_rank_is_not_capped():
    # discrete or smooth 1-D columns need fewer than max_rank columns: the two paths agree closely
    rng = np.random.default_rng(1)
    n = 1500
    xs = [rng.normal(size=(n, 1)), rng.integers(0, 4, (n, 1)).astype(float)]
    ys = [0.2 * xs[0] + rng.normal(size=(n, 1)), rng.integers(1, 4, (n, 1)).astype(float)]
    z = rng.integers(0, 2, (n, 1)).astype(float)
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    with float64():
        exact = kci_unconditional_group(xs, ys, pairs)
        low = kci_lowrank(xs, ys, None, pairs)
        cexact = kci_conditional_group(xs, ys, z, pairs)
        clow = kci_lowrank(xs, ys, z, pairs)
        hs = hsic_lowrank(xs, ys, pairs)
    for a, b in zip(exact, low):
        assert b.params["approx"] == "lowrank" and b.params["rank"] <= 128
        assert b.p_value == pytest.approx(a.p_value, rel=1e-4, abs=1e-8)
    for a, b in zip(cexact, clow):  # conditional: the null variance is a 1,500-of-1,500 "subsample" here
        assert b.p_value == pytest.approx(a.p_value, rel=0.05, abs=1e-6)
    assert hs[0].p_value < 1e-6 and all(r.ok for r in hs)


@pytest.mark.slow  # about 17 s; test_lowrank_matches_exact_where_the_rank_is_not_capped stays quick
def test_matrix_records_approx_and_rank_and_decisions_agree():
    # fast decision-agreement check at n = 2,000 (the n = 3,000 benchmark records the full matrix)
    frame, features, traits, _ = cohort_frame(2000, seed=11)
    traits = traits[:5]
    kw = dict(tests=["kci", "hsic"], seed=0)
    exact = test_matrix(frame, features, traits, approx="exact", **kw)
    low = test_matrix(frame, features, traits, approx="lowrank", **kw)
    ran = low.status == "ok"
    assert set(low.loc[ran, "approx"]) == {"lowrank"} and set(exact.loc[exact.status == "ok", "approx"]) == {"exact"}
    assert (low.loc[ran, "rank"] >= 1).all() and (low.loc[ran, "rank"] <= 128).all()
    assert json.loads(low.loc[ran].iloc[0]["params"])["max_rank"] == 128
    both = ran & (exact.status == "ok")
    agree = ((exact.q_value < 0.05) == (low.q_value < 0.05))[both].mean()
    assert agree >= 0.98, agree


@pytest.mark.slow
def test_lowrank_power_on_planted_dependencies_within_two_points_of_exact():
    # n = 3,000, seed 5; power = share of planted dependent pairs found at q < 0.05
    frame, features, traits, truth = cohort_frame(3000, seed=5)
    for test in ("kci", "hsic"):
        exact = test_matrix(frame, features, traits, tests=[test], approx="exact")
        low = test_matrix(frame, features, traits, tests=[test], approx="lowrank")
        dep = planted(exact, truth) & (exact.status == "ok").to_numpy() & (low.status == "ok").to_numpy()
        assert dep.sum() >= 20
        power_exact = (exact.q_value < 0.05)[dep].mean()
        power_low = (low.q_value < 0.05)[dep].mean()
        assert abs(power_low - power_exact) <= 0.02, (test, power_exact, power_low)
        agree = ((exact.q_value < 0.05) == (low.q_value < 0.05))[(exact.status == "ok") & (low.status == "ok")].mean()
        assert agree >= 0.98, (test, agree)


@pytest.mark.slow
def test_lowrank_null_calibration_at_20000_rows():
    # 20 independent features x 15 independent traits = 300 null pairs at n = 20,000 (seed 2026).
    # Allowed: type-I error at alpha 0.05 in [0.02, 0.08]; for a calibrated test the chance
    # of falling outside with 300 pairs is about 1 %, and the seed is fixed.
    rng = np.random.default_rng(2026)
    n = 20_000
    cols = {}
    for k in range(20):
        kind = k % 4
        if kind == 0:
            cols[f"f{k}"] = rng.normal(size=n)
        elif kind == 1:
            cols[f"f{k}"] = rng.exponential(size=n)
        elif kind == 2:
            cols[f"f{k}"] = rng.integers(0, 6, n).astype(float)
        else:
            cols[f"f{k}"] = np.round(rng.normal(170, 10, n))
    for k in range(15):
        cols[f"t{k}"] = rng.integers(1, 4, n).astype(float)
    cols["z_gender"] = rng.integers(0, 2, n).astype(float)
    cols["z_group"] = rng.integers(0, 8, n).astype(float)
    df = pd.DataFrame(cols)
    feats = [f"f{k}" for k in range(20)]
    traits = [f"t{k}" for k in range(15)]
    rates = {}
    for conditioning, tests in ((None, ["kci", "hsic", "rcit"]), (["z_gender", "z_group"], ["kci"])):
        out = test_matrix(df, feats, traits, tests=tests, conditioning=conditioning, approx="auto", seed=7)
        for test in tests:
            sub = out[out.test == test]
            assert (sub.status == "ok").all()
            if test in ("kci", "hsic"):
                assert set(sub.approx) == {"lowrank"}
            rates[f"{test}{'|z' if conditioning else ''}"] = float((sub.p_value < 0.05).mean())
    print("type-I error at alpha 0.05:", json.dumps(rates))  # shown with pytest -s
    for name, rate in rates.items():
        assert 0.02 <= rate <= 0.08, (name, rate)
