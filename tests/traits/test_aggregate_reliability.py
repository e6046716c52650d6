"""The median rule, the Bayesian ordinal rater model and the reliability statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personax.traits import (
    bayes_ordinal,
    discrepancy_table,
    krippendorff_alpha,
    median_rule,
    order_symmetry,
    recovery,
    stability,
)


def test_median_rule_drops_zeros_and_keeps_halves():
    scores = np.array([[1, 2, 0], [3, 0, 0], [0, 0, 0], [1, 2, np.nan], [2, 3, 3]], dtype=float)
    np.testing.assert_array_equal(median_rule(scores), [1.5, 3.0, np.nan, 1.5, 3.0])


def _simulated(n=300, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 5))
    raters = {}
    for k, (noise, bias) in enumerate([(0.5, 0.0), (0.8, 0.4), (1.2, -0.3)]):
        perceived = truth + bias + rng.normal(0, noise, truth.shape)
        level = 1 + np.searchsorted([-0.43, 0.43], perceived).astype(float)
        level[rng.random(truth.shape) < 0.1] = 0
        raters[f"r{k}"] = level
    return truth, raters


def test_bayes_ordinal_recovers_traits_and_rater_quality():
    truth, raters = _simulated()
    raters["five"] = np.clip(np.rint(truth * 1.2 + 3), 1, 5)  # a 5-level rater alongside 3-level ones
    raters["five"][:10] = 0
    fit = bayes_ordinal(raters, steps=600, samples=200, seed=0)
    assert fit["mean"].shape == (300, 5) and np.isfinite(fit["sd"]).all()
    bayes = recovery({"bayes": fit["mean"]}, truth)["bayes"]["mean"]
    single = recovery({k: raters[k] for k in ("r0", "r2")}, truth)
    assert bayes > single["r0"]["mean"] > single["r2"]["mean"]
    disc = fit["discrimination"]
    assert disc[3] > disc[0] > disc[2]  # less noise, more discrimination
    assert (fit["sd"] < 1).all()
    nothing = bayes_ordinal({"a": np.zeros((4, 5)), "b": np.full((4, 5), np.nan)})
    assert np.isnan(nothing["mean"]).all()
    assert np.isnan(fit["mean"][:10]).sum() == 0  # people rated by some raters keep a posterior


def test_krippendorff_alpha_ordinal():
    perfect = {k: np.repeat(np.array([[1], [2], [3], [1], [2], [3]]), 5, axis=1).astype(float) for k in "ab"}
    assert krippendorff_alpha(perfect)["o"] == pytest.approx(1.0)
    truth, raters = _simulated()
    alpha = krippendorff_alpha(raters)
    assert 0.2 < alpha["mean"] < 0.9
    rng = np.random.default_rng(1)
    noise = {k: rng.integers(1, 4, (300, 5)).astype(float) for k in "abc"}
    assert abs(krippendorff_alpha(noise)["mean"]) < 0.1


def _answers(rows):
    return pd.DataFrame(rows, columns=["person_id", "rater", "format", "repeat", *"ocean"])


def test_stability_discrepancy_and_symmetry():
    rng = np.random.default_rng(0)
    rows = []
    for p in range(200):
        base = rng.integers(1, 4, 5)
        for repeat in range(3):
            jitter = (rng.random(5) < 0.2).astype(int)
            rows.append([f"p{p}", "m", "inc3", repeat, *np.clip(base + jitter, 1, 3)])
            rows.append([f"p{p}", "m", "dec3", repeat, *np.clip(base + 1, 1, 3)])  # biased upwards
            rows.append([f"p{p}", "m", "inc5", repeat, *(2 * base - 1)])  # the same judgement on 5 levels
    answers = _answers(rows)
    stab = stability(answers).set_index("format")
    assert stab.loc["dec3", "mean"] == 0 and stab.loc["inc5", "mean"] == 0 and 0.05 < stab.loc["inc3", "mean"] < 0.5
    table = discrepancy_table(answers, {"inc3": 3, "dec3": 3, "inc5": 5})
    assert list(table.index) == ["inc3 vs dec3", "inc3 vs inc5", "dec3 vs inc5"]
    assert table.loc["inc3 vs dec3", "m"] > 0.3
    assert 0.15 < table.loc["inc3 vs inc5", "m"] < 0.4  # jitter of 1 on 3 levels = 2 on the 5-level range
    formats = {"inc3": {"levels": 3, "answer_type": "number", "order": "increasing"},
               "dec3": {"levels": 3, "answer_type": "number", "order": "decreasing"},
               "inc5": {"levels": 5, "answer_type": "number", "order": "increasing"}}
    result = order_symmetry(answers, formats)
    assert len(result) == 1 and result[0]["symmetric"] is False and result[0]["mean_difference"] < 0
    same = answers[answers.format != "dec3"]
    same = pd.concat([same, same[same.format == "inc3"].assign(format="dec3")])
    assert order_symmetry(same, formats)[0]["symmetric"] is True
