"""The multiview InfoNCE term against a reference written from its definition, and the training
loss's single encoder pass against the separate ``view_means`` method."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.spatial.distance import cdist

import jax
import jax.numpy as jnp

from personax.crl._contrastive import nt_xent
from personax.crl._model import CausalMultimodalVAE, CRLConfig


def _reference_nt_xent(a: np.ndarray, b: np.ndarray, weights: np.ndarray, temperature: float) -> float:
    """Symmetric NT-Xent from the definition: anchor i of one view picks row i of the other view
    among the other view's present rows and its own view's other present rows."""
    present = np.flatnonzero(weights > 0)
    total = 0.0
    for first, second in ((a, b), (b, a)):
        cross = -cdist(first, second, "sqeuclidean") / temperature
        own = -cdist(first, first, "sqeuclidean") / temperature
        for i in present:
            others = [j for j in present if j != i]
            total += logsumexp(np.concatenate([cross[i, present], own[i, others]])) - cross[i, i]
    return total / len(present)


def test_nt_xent_matches_the_definition_with_missing_rows():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 12, 3)).astype(np.float32)
    b = a + 0.5 * b  # partly aligned views
    weights = np.ones(12, np.float32)
    weights[[2, 7]] = 0  # a view missing for two people: neither anchors nor candidates
    for temperature in (0.5, 1.0, 2.0):
        ours = float(nt_xent(jnp.asarray(a), jnp.asarray(b), temperature=temperature, weights=jnp.asarray(weights)))
        np.testing.assert_allclose(ours, _reference_nt_xent(a, b, weights, temperature), rtol=1e-4)


def test_training_pass_returns_the_same_view_means_as_the_separate_method():
    config = CRLConfig(shared_dim=2, latent_dims={"a": 1, "b": 2}, measurements={"a": 2, "b": 1},
                       input_dims={"a": 4, "b": 3}, noise_dim=1, contrastive=1.0)
    module = CausalMultimodalVAE(config)
    rng = np.random.default_rng(1)
    batch = {"a_0": rng.normal(size=(6, 4)), "a_1": rng.normal(size=(6, 4)), "b_0": rng.normal(size=(6, 3))}
    batch = {k: jnp.asarray(v, jnp.float32) for k, v in batch.items()}
    batch["a_1"] = batch["a_1"].at[3].set(jnp.nan)  # one missing view
    params = module.init(jax.random.key(0), batch, jax.random.key(1))["params"]
    *terms, views = module.apply({"params": params}, batch, jax.random.key(2), with_views=True)
    alone = module.apply({"params": params}, batch, method=CausalMultimodalVAE.view_means)
    plain = module.apply({"params": params}, batch, jax.random.key(2))
    for name in ("a_0", "a_1", "b_0"):
        for ours, separate in zip(views[name], alone[name]):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(separate), rtol=1e-6)
        assert views[name][0].shape == (6, 2) and views[name][1].shape == (6, config.latent_dims[name[0]])
    assert np.asarray(views["a_1"][2]).tolist() == [1, 1, 1, 0, 1, 1]
    for with_views, without in zip(terms, plain):  # asking for the views changes nothing else
        np.testing.assert_allclose(np.asarray(with_views), np.asarray(without), rtol=1e-6)
