"""The multiview InfoNCE term against a direct, per-anchor implementation (float64 NumPy loops), and
the training loss's single encoder pass against the separate ``view_means`` method."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from personax.crl._contrastive import multiview_infonce, nt_xent
from personax.crl._model import CausalMultimodalVAE, CRLConfig


def _naive_nt_xent(a, b, present_a, present_b, temperature):
    """NT-Xent written out: for each anchor present in both views, -log of the positive pair's share
    among the other view's present rows and the anchor's own view's other present rows; both directions."""
    def similarity(x, y):
        return -np.sum((x - y) ** 2) / temperature

    def one_side(x, y, own_present, other_present, i):
        terms = [similarity(x[i], y[c]) for c in range(len(y)) if other_present[c]]
        terms += [similarity(x[i], x[c]) for c in range(len(x)) if own_present[c] and c != i]
        return np.log(np.sum(np.exp(terms))) - similarity(x[i], y[i])

    anchors = [i for i in range(len(a)) if present_a[i] and present_b[i]]
    total = sum(one_side(a, b, present_a, present_b, i) + one_side(b, a, present_b, present_a, i) for i in anchors)
    return total / max(len(anchors), 1)


def _views(seed, rows=7):
    rng = np.random.default_rng(seed)
    views = {}
    for name, z_dim in [("image_0", 1), ("image_1", 1), ("text_0", 3), ("text_1", 3), ("text_2", 3)]:
        present = np.ones(rows)
        if name in ("image_1", "text_2"):  # some people lack these measurements
            present[rng.choice(rows, 2, replace=False)] = 0.0
        views[name] = (rng.normal(size=(rows, 2)), rng.normal(size=(rows, z_dim)), present)
    return views


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_nt_xent_matches_the_written_out_loss_with_missing_rows(temperature):
    views = _views(0)
    a, _, present_a = views["image_1"]
    b, _, present_b = views["text_2"]
    ours = nt_xent(jnp.asarray(a), jnp.asarray(b), temperature=temperature, present_a=jnp.asarray(present_a),
                   present_b=jnp.asarray(present_b))
    np.testing.assert_allclose(float(ours), _naive_nt_xent(a, b, present_a, present_b, temperature), rtol=1e-5)


@pytest.mark.parametrize("pairs", ["all", "cross_modal"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_multiview_infonce_is_the_mean_of_the_pairs_losses(seed, pairs):
    views = _views(seed)
    expected = []
    for first, second in itertools.combinations(sorted(views), 2):
        (s1, z1, p1), (s2, z2, p2) = views[first], views[second]
        same = first.split("_")[0] == second.split("_")[0]  # same modality: s and z(m) are shared
        if same and pairs == "cross_modal":  # Daunhawer et al.: only different modalities, on s
            continue
        a, b = (np.hstack([s1, z1]), np.hstack([s2, z2])) if same else (s1, s2)
        expected.append(_naive_nt_xent(a, b, p1, p2, 0.5))
    assert len(expected) == (6 if pairs == "cross_modal" else 10)
    as_jax = {name: tuple(jnp.asarray(v) for v in view) for name, view in views.items()}
    ours = multiview_infonce(as_jax, temperature=0.5, pairs=pairs)
    np.testing.assert_allclose(float(ours), np.mean(expected), rtol=1e-5)


def test_unknown_pairs_option_is_refused():
    with pytest.raises(ValueError, match="cross_modal"):
        multiview_infonce({}, temperature=1.0, pairs="within")
    with pytest.raises(ValueError, match="contrastive_pairs"):
        CRLConfig(shared_dim=1, latent_dims={"a": 1}, measurements={"a": 1}, input_dims={"a": 2},
                  contrastive_pairs="within")


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


def test_cross_modal_pairs_without_a_second_modality_or_s_are_refused():
    from personax.crl import fit

    rng = np.random.default_rng(0)
    one_modality = {"a": [rng.normal(size=(60, 3)), rng.normal(size=(60, 3))]}
    with pytest.raises(ValueError, match="two or more modalities"):
        fit(one_modality, shared_dim=1, latent_dims={"a": 1}, max_epochs=1, contrastive=1.0,
            contrastive_pairs="cross_modal")
