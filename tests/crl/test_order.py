"""Choosing each modality block's within-block order after a fit (``order_search``,
personax/crl/_order.py): the per-latent prior terms add up, the search picks a planted order
the likelihood can tell, and the returned model is the one its validation ELBO scores."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from personax.crl import fit, load_pretrained
from personax.crl._fit import FittedCRL, _init_params
from personax.crl._model import CausalMultimodalVAE, CRLConfig
from personax.crl._orient import fit_stop
from personax.crl._order import block_order, order_blocks, search_block_orders, searchable_blocks, with_block_order
from personax.data.synthetic import make_multimodal_numeric


def test_the_latents_terms_add_up_to_the_prior_log_density():
    config = CRLConfig(shared_dim=1, latent_dims={"a": 2, "b": 3}, measurements={"a": 1, "b": 1},
                       input_dims={"a": 2, "b": 3})
    params = _init_params(config, jax.random.key(0))
    u = jnp.asarray(np.random.default_rng(0).normal(size=(7, 6)), jnp.float32)
    module = CausalMultimodalVAE(config)
    nodes = module.apply({"params": params}, u, method=CausalMultimodalVAE.prior_node_logpdf)
    total = module.apply({"params": params}, u, method=CausalMultimodalVAE.prior_logpdf)
    assert nodes.shape == (7, 6)
    np.testing.assert_allclose(np.asarray(nodes).sum(1), np.asarray(total), rtol=1e-6)


def test_a_written_order_is_the_order_read_back_and_other_blocks_keep_theirs():
    config = CRLConfig(shared_dim=1, latent_dims={"a": 3, "b": 2}, measurements={"a": 1, "b": 1},
                       input_dims={"a": 3, "b": 2})
    potentials = np.array([9.0, 0.3, -1.0, 2.0, 5.0, 4.0], np.float32)  # [s, a1, a2, a3, b1, b2]
    assert block_order(config, potentials, "a") == (2, 1, 3)
    assert block_order(config, potentials, "b") == (5, 4)
    for order in [(3, 1, 2), (1, 2, 3), (2, 3, 1)]:
        written = with_block_order(potentials, order)
        assert block_order(config, written, "a") == order
        np.testing.assert_array_equal(written[[0, 4, 5]], potentials[[0, 4, 5]])
        assert np.diff(np.sort(written[1:4])).min() == pytest.approx(2.0)  # ORDER_GAP apart
    assert searchable_blocks(config) == ["a", "b"]
    assert searchable_blocks(dataclasses.replace(config, within_block_order="fixed")) == []


@pytest.mark.slow  # ~20 s (four prior fits of 1,200 steps), ~50 s at the other tests' XLA level 0; runs under CI
@pytest.mark.xla_default_level
def test_the_search_picks_a_planted_order_the_likelihood_can_tell():
    """One block of two latents, the child first in index order (a2 -> a1: a1 = 1.5 tanh(2 a2) plus
    noise of sd 0.3, a nonlinear additive model, identifiable), and a second block in the right
    order (b1 -> b2, the same mechanism). Given potentials that put a1 first, the search reverses
    block a and keeps block b. Seed 0, 2,000 training rows, 1,200 steps per prior fit (with 300
    both blocks came out reversed: the fits had not converged); the chosen order must win by at
    least 0.1 nats per person (it wins by about 0.4)."""
    rng = np.random.default_rng(0)
    n = 2500
    parent_a, parent_b = rng.normal(size=n), rng.normal(size=n)
    child_a = 1.5 * np.tanh(2 * parent_a) + 0.3 * rng.normal(size=n)
    child_b = 1.5 * np.tanh(2 * parent_b) + 0.3 * rng.normal(size=n)
    latents = np.stack([child_a, parent_a, parent_b, child_b], axis=1)
    latents = ((latents - latents[:2000].mean(0)) / latents[:2000].std(0)).astype(np.float32)
    config = CRLConfig(shared_dim=0, latent_dims={"a": 2, "b": 2}, measurements={"a": 1, "b": 1},
                       input_dims={"a": 2, "b": 2}, seed=0)
    given = np.array([0.0, 1.0, 0.0, 1.0], np.float32)  # a1 < a2 (wrong), b1 < b2 (right)
    chosen, records = search_block_orders(config, given, latents[:2000], latents[2000:], steps=1200,
                                          key=jax.random.key(0))
    assert block_order(config, chosen, "a") == (1, 0), records
    assert block_order(config, chosen, "b") == (2, 3), records
    np.testing.assert_array_equal(chosen[2:], given[2:])  # a block that keeps its order keeps its potentials
    by_block = {r["block"]: r for r in records}
    assert by_block["a"]["given"] == ["a1", "a2"] and by_block["a"]["chosen"] == ["a2", "a1"]
    for record in records:
        scores = record["val_prior_log_lik"]
        assert max(scores) - min(scores) >= 0.1, records


@pytest.mark.slow  # ~60 s CPU (two fits' compiles and the search); runs under CI
def test_an_ordered_fit_returns_the_parameters_its_validation_elbo_scored(tmp_path):
    """Whatever the search decides, ``best_val_elbo`` is the returned model's validation ELBO, the
    history runs on through any training on, ``fit_stop`` gives the fit's own epochs, and the
    record survives saving."""
    bench = make_multimodal_numeric(600, seed=3)
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=3, max_epochs=4,
                order_search=True, orient_epochs=3, orient_steps=20)
    record = model.reordering
    assert record["decision"] in ("kept", "rejected")
    assert [r["block"] for r in record["search"]] == ["image", "text"]
    assert all(len(r["val_prior_log_lik"]) == 2 for r in record["search"])
    validation = {m: [x[model.splits["val"]] for x in xs] for m, xs in bench.modalities.items()}
    assert model.elbo(validation) == pytest.approx(model.best_val_elbo, abs=1e-4)
    assert model.config.max_epochs == 4 and model.config.order_search
    assert fit_stop(model) == ("epoch cap", 4)
    if "trained_on_val_elbo" in record:
        assert record["prior_refit"] == "by the ELBO on posterior draws"
        assert len(model.history) == 4 + record["epochs"]
        assert max(record["trained_on_val_elbo"].values()) == pytest.approx(model.best_val_elbo, abs=1e-3)
        returned = {b: [model.config.latent_names[i] for i in block_order(model.config, model.params["order_potential"], b)]
                    for b in ("image", "text")}
        assert record["returned_orders"] == returned
    import json

    assert load_pretrained(model.save_pretrained(tmp_path / "m")).reordering == json.loads(json.dumps(record))


def test_models_whose_orders_cannot_be_searched_are_returned_as_they_are():
    bench = make_multimodal_numeric(300, seed=4)
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=1, seed=4, max_epochs=1,
                within_block_order="fixed")
    same = order_blocks(model, bench.modalities, key=jax.random.key(0))
    assert same.reordering == {"decision": "skipped", "reason": "the within-block order is fixed (within_block_order: fixed)"}
    assert same.params is model.params


def test_too_few_validation_rows_leave_every_within_block_edge_not_tested():
    """300 people give 45 validation rows, below MIN_DIRECTION_ROWS: no prior is fitted, and every
    learned within-block edge is "not tested", with the reason and no numbers (the smoke run's 15 rows
    gave margins of thousands of nats per person)."""
    from personax.crl import edge_direction_evidence
    from personax.crl._order import MIN_DIRECTION_ROWS

    bench = make_multimodal_numeric(300, seed=4)
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=1, seed=4, max_epochs=1,
                orient_shared=False, hidden=(16,))
    assert len(model.splits["val"]) < MIN_DIRECTION_ROWS
    adjacency, names = np.asarray(model.adjacency()), model.config.latent_names
    inside = {(names[i], names[j]) for i, j in zip(*np.nonzero(adjacency))
              if names[i][:-1] == names[j][:-1] and not names[i].startswith("s")}
    evidence = edge_direction_evidence(model, bench.modalities, key=jax.random.key(0))
    assert inside and {(e["parent"], e["child"]) for e in evidence} == inside
    assert all(e["verdict"] == "not tested" and e["vuong_z"] is None and e["margin_per_person"] is None
               and e["reason"] == f"{len(model.splits['val'])} validation rows; the test needs at least "
                                  f"{MIN_DIRECTION_ROWS}" for e in evidence)


def test_fit_stop_counts_out_the_order_search_s_training_on():
    config = CRLConfig(shared_dim=2, latent_dims={"a": 1}, measurements={"a": 1}, input_dims={"a": 1})
    history = [{"epoch": i + 1} for i in range(100)]
    trained_on = {"decision": "rejected", "given_stopped": "epoch cap", "trained_on_val_elbo": {}, "epochs": 30}
    reordered = {"decision": "kept", "given_stopped": "early stopping on validation", "trained_on_val_elbo": {},
                 "epochs": 20}
    model = FittedCRL(config=config, params={}, standardization={}, history=history, stopped="epoch cap",
                      orientation=trained_on, reordering=reordered)
    assert fit_stop(model) == ("epoch cap", 50)  # the first search saw the fit's own stop
    alone = dataclasses.replace(model, orientation={})
    assert fit_stop(alone) == ("early stopping on validation", 80)


def test_vuong_z_is_the_paired_t_statistic_of_the_best_orders_on_each_side():
    """Three latents, six orders: the edge 0 -> 1 is tested between the best order with 0 before 1
    and the best with 1 before 0 (by mean), and z is scipy's one-sample t statistic of the rows'
    differences (the same formula; for these n the normal and t tails differ below 0.1%)."""
    import scipy.stats

    from personax.crl._order import direction_test

    rng = np.random.default_rng(0)
    orders = list(itertools.permutations((0, 1, 2)))
    shift = np.array([0.02 if o.index(0) < o.index(1) else -0.01 for o in orders]) + 0.001 * np.arange(6)
    per_row = rng.laplace(size=(1, 800)) + rng.normal(scale=0.2, size=(6, 800)) + shift[:, None]
    result = direction_test(per_row, orders, 0, 1)
    mean = per_row.mean(1)
    forward = max((k for k, o in enumerate(orders) if o.index(0) < o.index(1)), key=lambda k: mean[k])
    reverse = max((k for k, o in enumerate(orders) if o.index(1) < o.index(0)), key=lambda k: mean[k])
    difference = per_row[forward] - per_row[reverse]
    assert result["vuong_z"] == pytest.approx(scipy.stats.ttest_1samp(difference, 0.0).statistic, abs=0.01)
    assert result["margin_per_person"] == pytest.approx(difference.mean(), abs=1e-4)
    flipped = direction_test(per_row, orders, 1, 0)  # the same comparison, the other way round
    assert flipped["vuong_z"] == pytest.approx(-result["vuong_z"], abs=0.01)
    assert {result["verdict"], flipped["verdict"]} == {"decided", "reverse preferred"}


def test_the_direction_test_decides_at_its_level_when_the_orders_fit_equally():
    """Calibration: two orders whose rows' log-likelihoods have the same distribution (Laplace,
    n = 300), 2,000 seeded draws: the test says "decided" or "reverse preferred" on 5% of them.
    Allowed: 3.8% to 6.2% (about 2.5 binomial standard deviations; the normal approximation to
    the mean of 300 Laplace differences is close at that n)."""
    from personax.crl._order import direction_test

    rng = np.random.default_rng(12)
    verdicts = [direction_test(rng.laplace(size=(2, 300)), [(0, 1), (1, 0)], 0, 1)["verdict"] for _ in range(2000)]
    rate = np.mean([v != "undetermined" for v in verdicts])
    assert 0.038 <= rate <= 0.062, rate
    assert abs(verdicts.count("decided") - verdicts.count("reverse preferred")) < 0.03 * 2000  # two-sided, symmetric


def test_a_significant_direction_that_wins_by_a_negligible_margin_is_undetermined():
    """Two orders that fit almost alike: the rows' differences are 0.0001 nats plus tiny noise, so z is
    large (about 7) while the margin is of no consequence. Below the margin floor (0.01 nats per
    person) the verdict is "undetermined", either way round; without the floor it would be decided."""
    from personax.crl._order import DIRECTION_MIN_MARGIN, direction_test, direction_verdict

    rng = np.random.default_rng(3)
    base = rng.laplace(size=500)
    per_row = np.stack([base + 1e-4 + 3e-4 * rng.normal(size=500), base])
    result = direction_test(per_row, [(0, 1), (1, 0)], 0, 1)
    assert result["vuong_z"] > 5 and abs(result["margin_per_person"]) < DIRECTION_MIN_MARGIN
    assert result["verdict"] == "undetermined"
    assert direction_test(per_row, [(0, 1), (1, 0)], 1, 0)["verdict"] == "undetermined"
    assert direction_test(per_row, [(0, 1), (1, 0)], 0, 1, min_margin=0.0)["verdict"] == "decided"
    # both conditions, each side: significance and the floor
    assert direction_verdict(0.02, 1.5) == "undetermined" and direction_verdict(0.02, 2.5) == "decided"
    assert direction_verdict(-0.02, -2.5) == "reverse preferred" and direction_verdict(-0.005, -9.0) == "undetermined"


@pytest.mark.slow  # ~10 s (two prior fits of 1,200 steps), ~25 s at the other tests' XLA level 0; runs under CI
@pytest.mark.xla_default_level
def test_a_planted_direction_is_decided_and_its_reverse_is_not():
    """The planted block of the search's test (a2 -> a1, identifiable): fitted to both orders, the
    edge a2 -> a1 is "decided" and a1 -> a2 "reverse preferred", each with |z| > 5 (15.3: 0.43 nats per person)."""
    from personax.crl._order import _block_order_scores, direction_test

    rng = np.random.default_rng(0)
    n = 2500
    parent = rng.normal(size=n)
    child = 1.5 * np.tanh(2 * parent) + 0.3 * rng.normal(size=n)
    latents = np.stack([child, parent], axis=1)
    latents = ((latents - latents[:2000].mean(0)) / latents[:2000].std(0)).astype(np.float32)
    config = CRLConfig(shared_dim=0, latent_dims={"a": 2}, measurements={"a": 1}, input_dims={"a": 2}, seed=0)
    [(block, orders, per_row)] = list(_block_order_scores(config, np.array([0.0, 1.0], np.float32), latents[:2000],
                                                          latents[2000:], steps=1200, key=jax.random.key(0)))
    assert block == "a" and per_row.shape == (2, 500)
    right, wrong = direction_test(per_row, orders, 1, 0), direction_test(per_row, orders, 0, 1)
    assert right["verdict"] == "decided" and right["vuong_z"] > 5, right
    assert wrong["verdict"] == "reverse preferred" and wrong["vuong_z"] < -5, wrong
