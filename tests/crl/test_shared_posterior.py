"""The mixture-of-experts posterior for s (``shared_posterior="mixture"``, MMVAE) and decoders
given the auxiliary covariates: the ELBO stays exact and the encoded s is the mixture's mean."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from personax.crl._model import AUXILIARY, CausalMultimodalVAE, CRLConfig


def _model(shared_posterior: str, measurements: int = 3, **fields):
    config = CRLConfig(shared_dim=2, latent_dims={"a": 1}, measurements={"a": measurements}, input_dims={"a": 4},
                       shared_posterior=shared_posterior, **fields)
    module = CausalMultimodalVAE(config)
    rng = np.random.default_rng(0)
    batch = {f"a_{k}": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32) for k in range(measurements)}
    if config.auxiliary_dim:
        batch[AUXILIARY] = jnp.asarray(rng.normal(size=(5, config.auxiliary_dim)), jnp.float32)
    params = module.init(jax.random.key(1), batch, jax.random.key(2))["params"]
    return module, params, batch


def test_mixture_entropy_term_is_unbiased_for_a_single_expert():
    """With one measurement the mixture is that measurement's Gaussian: the sampled -log q(s) must
    average to the Gaussian's entropy, so the mixture ELBO averages to the product ELBO.
    20,000 draws per row; tolerance 5 standard errors of the difference."""
    mixture, params, batch = _model("mixture", measurements=1)
    product = CausalMultimodalVAE(dataclasses.replace(mixture.config, shared_posterior="product"))
    keys = jax.random.split(jax.random.key(0), 20_000)
    elbo = lambda module: jax.jit(jax.vmap(lambda k: module.apply({"params": params}, batch, k)[0]))(keys)
    difference = np.asarray(elbo(mixture) - elbo(product), np.float64)  # (draws, rows)
    standard_error = difference.std(0) / np.sqrt(len(keys))
    assert (np.abs(difference.mean(0)) < 5 * standard_error + 1e-3).all(), (difference.mean(0), standard_error)


def test_encoded_s_is_the_mean_of_the_present_measurements_proposals():
    module, params, batch = _model("mixture")
    batch = {**batch, "a_1": batch["a_1"].at[0].set(jnp.nan)}  # row 0: measurement 1 missing
    views = module.apply({"params": params}, batch, method=CausalMultimodalVAE.view_means)
    encoded = np.asarray(module.apply({"params": params}, batch, method=CausalMultimodalVAE.encode)["shared"])
    proposals = np.stack([np.asarray(views[f"a_{k}"][0]) for k in range(3)], 1)  # (rows, measurements, s)
    np.testing.assert_allclose(encoded[1:], proposals[1:].mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encoded[0], proposals[0, [0, 2]].mean(0), rtol=1e-5, atol=1e-6)
    product = CausalMultimodalVAE(dataclasses.replace(module.config, shared_posterior="product"))
    differs = np.asarray(product.apply({"params": params}, batch, method=CausalMultimodalVAE.encode)["shared"])
    assert not np.allclose(differs, encoded)  # the product weighs by confidence: another summary


def test_mixture_elbo_uses_the_mixture_density_not_the_picked_expert():
    """Two experts: the ELBO's entropy term at a draw is -log(q1 + q2)/2, so moving the expert
    that was *not* picked still changes the ELBO (it changes the mixture's density at the draw)."""
    module, params, batch = _model("mixture", measurements=2)
    key = jax.random.key(5)
    base = np.asarray(module.apply({"params": params}, batch, key)[0])
    shifted = {**batch, "a_1": batch["a_1"] + 3.0}
    moved = np.asarray(module.apply({"params": params}, shifted, key)[0])
    assert np.isfinite(base).all() and not np.allclose(base, moved)
    with pytest.raises(ValueError, match="shared_posterior"):
        _model("average")


def test_decoders_given_the_auxiliaries_see_them():
    module, params, batch = _model("product", auxiliary_dim=2, auxiliary_in_decoders=True)
    assert params["decoders_a_0"]["Dense_0"]["kernel"].shape[0] == 2 + 1 + 1 + 2  # s, z, eta, covariates
    key = jax.random.key(3)
    first = np.asarray(module.apply({"params": params}, batch, key)[1])  # reconstruction log-likelihood
    other = np.asarray(module.apply({"params": params}, {**batch, AUXILIARY: batch[AUXILIARY] + 1.0}, key)[1])
    assert not np.allclose(first, other)


def _learned(logits):
    """A learned mixture over three measurements (row 0 lacks measurement 1) with the given logits."""
    module, params, batch = _model("learned_mixture")
    batch = {**batch, "a_1": batch["a_1"].at[0].set(jnp.nan)}
    return module, {**params, "mixture_logits": jnp.asarray(logits, jnp.float32)}, batch


def test_a_learned_mixture_starts_as_the_uniform_mixture():
    """At its initial (zero) logits the learned mixture's weights are uniform over the present
    measurements, its proposal picks as the mixture's weights do and every importance weight is 1:
    the same ELBO as the uniform mixture's, draw by draw."""
    module, params, batch = _learned([0.0, 0.0, 0.0])
    uniform = CausalMultimodalVAE(dataclasses.replace(module.config, shared_posterior="mixture"))
    plain = {name: value for name, value in params.items() if name != "mixture_logits"}
    for seed in range(3):
        key = jax.random.key(seed)
        np.testing.assert_allclose(module.apply({"params": params}, batch, key)[0],
                                   uniform.apply({"params": plain}, batch, key)[0], rtol=1e-5, atol=1e-4)


def test_a_learned_mixture_weighs_the_encoded_s_by_its_weights():
    module, params, batch = _learned([1.0, 0.0, -2.0])
    views = module.apply({"params": params}, batch, method=CausalMultimodalVAE.view_means)
    proposals = np.stack([np.asarray(views[f"a_{k}"][0]) for k in range(3)], 1)
    encoded = np.asarray(module.apply({"params": params}, batch, method=CausalMultimodalVAE.encode)["shared"])
    weights = np.exp([1.0, 0.0, -2.0]) / np.exp([1.0, 0.0, -2.0]).sum()
    np.testing.assert_allclose(encoded[1:], np.einsum("e,bed->bd", weights, proposals[1:]), rtol=1e-5, atol=1e-6)
    present = np.exp([1.0, -2.0]) / np.exp([1.0, -2.0]).sum()  # row 0: measurement 1 missing
    np.testing.assert_allclose(encoded[0], present @ proposals[0, [0, 2]], rtol=1e-5, atol=1e-6)


def test_a_learned_mixtures_weighted_elbo_is_unbiased(monkeypatch):
    """The ELBO draws the expert uniformly and weights the draw by w / (1 / present); drawing it by
    the weights themselves (an exact draw from the mixture, importance 1) must give the same mean.
    Seeded; 20,000 draws per row, tolerance 5 standard errors of the two means' difference (a
    false failure about once in 10^6 per row). The proposal gets no gradient from the weights,
    so the estimate's gradient in the weights is unbiased too."""
    module, params, batch = _learned([1.5, 0.0, -1.5])
    keys = jax.random.split(jax.random.key(0), 20_000)

    def draws():
        return np.asarray(jax.jit(jax.vmap(lambda k: module.apply({"params": params}, batch, k)[0]))(keys), np.float64)

    weighted = draws()
    monkeypatch.setattr("personax.crl._model._mixture_proposal", lambda shared: shared.weights)
    exact = draws()
    assert not np.allclose(weighted, exact)  # the two estimators differ draw by draw
    standard_error = np.sqrt((weighted.var(0) + exact.var(0)) / len(keys))
    assert (np.abs(weighted.mean(0) - exact.mean(0)) < 5 * standard_error).all(), (
        weighted.mean(0) - exact.mean(0), standard_error)


@pytest.mark.slow  # ~20-30 s CPU (a fit and its JIT compile); runs under CI
def test_a_learned_mixtures_weights_are_trained_reported_and_reloaded(tmp_path):
    """A fit with ``shared_posterior="learned_mixture"`` moves the weights from uniform (so the ELBO
    has a gradient in them), reports one per measurement (summing to 1), and they survive a save
    and a reload. (Whether the ELBO lowers a measurement that shows nothing of s is a finding, not a
    property: on the demo it did not, ``experiments/demo_level2/README.md``.) Seed 0; one fit."""
    from personax.crl import fit, load_pretrained
    from personax.data.synthetic import make_multimodal_numeric

    bench = make_multimodal_numeric(800, seed=0)
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                shared_posterior="learned_mixture", max_epochs=10, hidden=(16,), batch_size=128)
    weights = model.mixture_weights()
    assert weights.shape == (6,) and np.isclose(weights.sum(), 1.0)
    assert np.abs(weights - 1 / 6).max() > 1e-4, weights  # trained: no longer the uniform start
    model.save_pretrained(tmp_path / "m")
    np.testing.assert_allclose(load_pretrained(tmp_path / "m").mixture_weights(), weights)
    product = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, max_epochs=1,
                  hidden=(16,), batch_size=128)
    assert product.mixture_weights() is None


@pytest.mark.parametrize("shared_posterior", ["mixture", "product"])
def test_an_excluded_measurement_proposes_nothing_for_s_and_still_informs_its_block(shared_posterior):
    """``shared_experts_excluded``: s is the combination of the other proposals (the mixture's mean of
    measurements 0 and 2), so changing the excluded measurement moves z but not s; the ELBO stays finite."""
    module, params, batch = _model(shared_posterior, shared_experts_excluded=("a_1",))
    views = module.apply({"params": params}, batch, method=CausalMultimodalVAE.view_means)
    encoded = module.apply({"params": params}, batch, method=CausalMultimodalVAE.encode)
    if shared_posterior == "mixture":
        proposals = np.stack([np.asarray(views[f"a_{k}"][0]) for k in (0, 2)], 1)
        np.testing.assert_allclose(np.asarray(encoded["shared"]), proposals.mean(1), rtol=1e-5, atol=1e-6)
    moved = {**batch, "a_1": batch["a_1"] + 3.0}
    again = module.apply({"params": params}, moved, method=CausalMultimodalVAE.encode)
    np.testing.assert_allclose(np.asarray(again["shared"]), np.asarray(encoded["shared"]), rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(again["a"]), np.asarray(encoded["a"]))
    assert np.isfinite(np.asarray(module.apply({"params": params}, batch, jax.random.key(3))[0])).all()


def test_shared_experts_excluded_refuses_what_would_leave_s_unproposed_or_names_no_measurement():
    fields = dict(latent_dims={"a": 1}, measurements={"a": 2}, input_dims={"a": 4})
    for shared_dim, excluded in ((2, ("a_2",)), (2, ("a_0", "a_1")), (0, ("a_0",))):
        with pytest.raises(ValueError, match="shared_experts_excluded"):
            CRLConfig(shared_dim=shared_dim, shared_experts_excluded=excluded, **fields)


def test_a_fit_refuses_rows_whose_only_observed_measurements_are_excluded():
    from personax.crl import fit

    rng = np.random.default_rng(0)
    image = [rng.normal(size=(60, 3)), rng.normal(size=(60, 3))]
    image[1][7] = np.nan  # row 7: only the excluded measurement is observed in its modality
    text = [rng.normal(size=(60, 3))]
    text[0][7] = np.nan
    text[0][7, 0] = 0.5  # the text modality is observed, but only through a measurement excluded below
    with pytest.raises(ValueError, match="row 7 .* no observed measurement left to propose s"):
        fit({"image": image, "text": text}, latent_dims={"image": 1, "text": 1}, shared_dim=1, max_epochs=1,
            shared_experts_excluded=["image_0", "text_0"])
