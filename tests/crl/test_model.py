"""The causal multimodal VAE: API, graph constraints, save/load, multi-device data parallelism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from personax.crl import diagnostics as D
from personax.crl._model import CausalMultimodalVAE, CRLConfig, SparseAdditiveDecoder
from personax.crl import fit, fit_reference, load_pretrained
from personax.data.synthetic import make_multimodal_numeric

SMALL = dict(max_epochs=40, hidden=(32, 32), batch_size=128)


@pytest.fixture(scope="module")
def bench():
    return make_multimodal_numeric(1200, seed=0)


@pytest.fixture(scope="module")
def model(bench):
    return fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, **SMALL)


def test_fit_encodes_blocks_and_learns(model, bench):
    latents = model.encode(bench.modalities)
    assert {k: v.shape for k, v in latents.items()} == {"shared": (1200, 2), "image": (1200, 2), "text": (1200, 2)}
    history = [h["val_elbo"] for h in model.history]
    assert history[-1] > history[0] + 5  # the ELBO improves
    assert sorted(np.concatenate(list(model.splits.values()))).__eq__(list(range(1200)))
    # Even a short run finds the shared block (held-out linear R² of the true s from learned s).
    train, test = model.splits["train"], model.splits["test"]
    r2 = D.block_r2(latents["shared"][train], bench.latents["shared"][train], latents["shared"][test],
                    bench.latents["shared"][test])
    assert r2["mean"] > 0.7, r2


def test_graph_is_acyclic_with_nothing_into_the_shared_block(model):
    graph = model.graph(threshold=0.0)
    assert list(graph.index) == ["s1", "s2", "image1", "image2", "text1", "text2"]
    weights = graph.to_numpy()
    assert np.allclose(weights[:, :2], 0)  # nothing into s
    assert np.allclose(weights[4:, 2:4], 0)  # blocks in the given causal order: text does not cause image
    assert np.allclose(np.linalg.matrix_power((weights != 0).astype(float), 6), 0)  # a DAG
    # The proximal L1 step leaves exact zeros once the penalty is strong.
    assert (model.graph(threshold=1e9).to_numpy() == 0).all()


def test_edge_effects_are_zero_where_a_is_and_do_not_read_the_latents_scale(model, bench):
    from personax.crl._fit import standardised_edge_effects

    effects = model.edge_effects(bench.modalities)
    weights = model.adjacency()
    assert list(effects.index) == model.config.latent_names
    assert ((effects.to_numpy() == 0) == (weights == 0)).all()
    assert (effects.to_numpy()[weights != 0] > 0).all()
    # On latents of unit scale (the edge functions' normalisation grid) the effect is about |A| over the
    # child's spread; on the same latents ten times larger it is not: |A| alone is not the strength there.
    standard = np.random.default_rng(0).normal(size=(20000, weights.shape[0]))
    unit = standardised_edge_effects(model.params, weights, standard)
    active = weights != 0
    np.testing.assert_allclose(unit[active], np.abs(weights[active]), rtol=0.1)  # grid of 32 vs 20,000 draws
    scaled = standardised_edge_effects(model.params, weights, 10 * standard)
    assert not np.allclose(scaled[active], np.abs(weights[active]), rtol=0.5)
    # A collapsed (constant) child: its edges' effect is undefined (NaN), not a division by about zero.
    child = int(np.flatnonzero(active.any(axis=0))[0])
    collapsed = standard.copy()
    collapsed[:, child] = 0.25 + 1e-9 * standard[:, child]
    undefined = standardised_edge_effects(model.params, weights, collapsed)
    assert np.isnan(undefined[active[:, child], child]).all()
    assert (undefined[~active] == 0).all() and np.isfinite(np.delete(undefined, child, axis=1)).all()


def test_effect_scales_turn_the_weights_into_the_reported_effects(model, bench):
    """``l1_graph_on: effect`` weighs each |A_ij| by the model's own factor; |A| times it is the
    standardised effect that ``edge_effects`` reports, computed independently (relative 1e-4)."""
    data = model._standardise(bench.modalities)
    scales = np.asarray(CausalMultimodalVAE(model.config).apply(
        {"params": model.params}, data, method=CausalMultimodalVAE.effect_scales))
    effects = model.edge_effects(bench.modalities).to_numpy()
    weights = model.adjacency()
    active = weights != 0
    assert active.sum() >= 3
    np.testing.assert_allclose((np.abs(weights) * scales)[active], effects[active], rtol=1e-4)
    assert np.isfinite(scales).all() and (scales >= 0).all()


def test_l1_on_effects_is_refused_where_there_are_no_edge_terms_and_for_unknown_names():
    base = dict(shared_dim=1, latent_dims={"a": 1}, measurements={"a": 1}, input_dims={"a": 3})
    with pytest.raises(ValueError, match="additive mechanisms"):
        CRLConfig(**base, mechanism="mlp", l1_graph_on="effect")
    with pytest.raises(ValueError, match="additive mechanisms"):
        CRLConfig(**base, prior="gaussian", l1_graph_on="effect")
    with pytest.raises(ValueError, match="l1_graph_on must be"):
        CRLConfig(**base, l1_graph_on="effects")


def test_a_fit_with_the_l1_on_effects_cuts_edges_to_exact_zeros(bench):
    fitted = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                 l1_graph_on="effect", l1_graph=0.5, **{**SMALL, "max_epochs": 10})
    weights = fitted.adjacency()
    effects = fitted.edge_effects(bench.modalities).to_numpy()
    assert fitted.config.l1_graph_on == "effect"
    assert np.isfinite(fitted.best_val_elbo)
    assert ((effects == 0) == (weights == 0)).all()
    mask = fitted.config.edge_mask()
    possible = int(np.triu((mask + mask.T) > 0, 1).sum())  # a within-block pair has one direction at a time
    assert 0 < int((weights != 0).sum()) < possible  # some edges cut to exact zeros, not all


@pytest.mark.slow  # ~20-30 s CPU (a fit and its JIT compile); runs under CI
def test_fixed_order_keeps_the_index_order(bench):
    fixed = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                within_block_order="fixed", **{**SMALL, "max_epochs": 3})
    assert np.allclose(np.tril(fixed.graph(threshold=0.0).to_numpy()), 0)


@pytest.mark.slow  # ~20 s CPU (a fit and its JIT compile); runs under CI
def test_progress_bar_shows_the_compilation_then_the_validation_elbo(bench, capsys):
    small = {m: [x[:300] for x in xs] for m, xs in bench.modalities.items()}
    fit(small, latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=2, hidden=(16,), progress=True)
    shown = capsys.readouterr().err
    assert "crl (compiling)" in shown
    assert shown.index("crl (compiling)") < shown.index("val_elbo=")


@pytest.mark.parametrize("mechanism", ["additive", "mlp"])
def test_causal_prior_is_a_normalised_density(mechanism):
    """The change-of-variables term is right: exp(log p(u)) integrates to 1 over a grid."""
    config = CRLConfig(shared_dim=1, latent_dims={"a": 1}, measurements={"a": 1}, input_dims={"a": 3},
                       mechanism=mechanism)
    module = CausalMultimodalVAE(config)
    key = jax.random.key(3)
    params = module.init(key, {"a_0": jnp.zeros((2, 3))}, key)["params"]
    params = {**params, "adjacency": jnp.array([[0.0, 0.9], [0.0, 0.0]]),
              "flow_skew": jnp.array([0.4, -0.3]), "flow_log_tail": jnp.array([-0.3, 0.2]),
              "log_sigma_u": jnp.array([0.2, -0.4])}
    axis = np.linspace(-12, 12, 801, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_p = module.apply({"params": params}, jnp.asarray(grid), method=CausalMultimodalVAE.prior_logpdf)
    mass = float(np.exp(np.asarray(log_p, np.float64)).sum() * (axis[1] - axis[0]) ** 2)
    assert abs(mass - 1.0) < 1e-2, mass


def test_save_and_load_give_identical_encodings(model, bench, tmp_path):
    model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "weights.msgpack"]
    loaded = load_pretrained(tmp_path / "model")
    for name, value in model.encode(bench.modalities).items():
        np.testing.assert_array_equal(loaded.encode(bench.modalities)[name], value)
    pd_graph = loaded.graph()
    assert pd_graph.equals(model.graph())


def test_loading_rejects_foreign_or_tampered_directories(model, tmp_path):
    model.save_pretrained(tmp_path / "m")
    payload = json.loads((tmp_path / "m/config.json").read_text())
    payload["config"]["__class__"] = "os.system"
    (tmp_path / "m/config.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="unknown fields"):
        load_pretrained(tmp_path / "m")
    (tmp_path / "m/config.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(ValueError, match="not a personax CRL model"):
        load_pretrained(tmp_path / "m")


def test_bad_inputs_fail_clearly(bench):
    with pytest.raises(ValueError, match="must match the modalities"):
        fit(bench.modalities, latent_dims={"image": 2}, shared_dim=1)
    broken = {"image": [bench.modalities["image"][0][:10]], "text": [bench.modalities["text"][0][:11]]}
    with pytest.raises(ValueError, match="same rows"):
        fit(broken, latent_dims={"image": 1, "text": 1}, shared_dim=1)
    nan = {"image": [np.full((20, 3), np.nan)], "text": [np.zeros((20, 3))]}
    with pytest.raises(ValueError, match="no observed value"):
        fit(nan, latent_dims={"image": 1, "text": 1}, shared_dim=1)


@pytest.mark.slow  # ~20 s CPU (two small fits and their JIT compiles); runs under CI
def test_measurements_of_one_modality_may_differ_in_width(bench, tmp_path):
    """An embedding and a thumbnail of the same face: one decoder per width; reloads identically."""
    image = bench.modalities["image"]
    wide = np.hstack([image[1], image[1] ** 2])  # a second measurement with twice the columns
    modalities = {"image": [image[0], wide], "text": bench.modalities["text"][:1]}
    model = fit(modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, max_epochs=2, hidden=(16,))
    assert model.config.input_dims == {"image": (10, 20), "text": 10}
    model.save_pretrained(tmp_path / "m")
    again = load_pretrained(tmp_path / "m")
    for block, values in model.encode(modalities).items():
        np.testing.assert_allclose(again.encode(modalities)[block], values, atol=1e-6)
    with pytest.raises(ValueError, match="trained on"):  # a measurement left out: a clear error, not an IndexError
        model.encode({"image": image[:1], "text": modalities["text"]})
    with pytest.raises(ValueError, match="one width per modality"):  # the study's design cannot
        fit_reference(modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=1, hidden=(16,))


@pytest.mark.slow  # ~20-30 s CPU (a fit and its JIT compile); runs under CI
def test_data_parallel_over_two_cpu_devices(tmp_path):
    """The same fit runs sharded over two (forced host) devices."""
    script = textwrap.dedent(
        """
        import jax, numpy as np
        from personax.crl import fit
        from personax.data.synthetic import make_multimodal_numeric
        assert jax.device_count() == 2, jax.devices()
        bench = make_multimodal_numeric(400, seed=1)
        model = fit(bench.modalities, latent_dims={"image": 1, "text": 1}, shared_dim=1, seed=0,
                    max_epochs=3, hidden=(16,), batch_size=64)
        assert np.isfinite(model.history[-1]["val_elbo"])
        print("ok", len(model.history))
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "ok 3" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow  # ~30 s CPU (a conv-net fit and its JIT compile)
def test_image_modalities_get_conv_nets_and_reload(tmp_path):
    from personax.data.synthetic import make_variant_digits

    digits = make_variant_digits(80, seed=0, image_size=8)
    shapes = {"digit": (8, 8, 3), "fashion": (8, 8, 3)}
    model = fit(digits.modalities, latent_dims={"digit": 2, "fashion": 2}, shared_dim=0, seed=0,
                max_epochs=2, hidden=(16,), noise_dim=2, image_shapes=shapes)
    assert any("Conv" in name for name in model.params["encoders_digit_0"])  # a conv net, not an MLP
    model.save_pretrained(tmp_path / "conv")
    loaded = load_pretrained(tmp_path / "conv")
    assert loaded.config.image_shapes == shapes
    np.testing.assert_array_equal(loaded.encode(digits.modalities)["digit"], model.encode(digits.modalities)["digit"])
    with pytest.raises(ValueError, match=r"image_shapes\['digit'\] = \(9, 9, 3\) has 243 values"):
        fit(digits.modalities, latent_dims={"digit": 2, "fashion": 2}, shared_dim=0, image_shapes={"digit": (9, 9, 3)})


@pytest.mark.parametrize("field, value, message", [
    ("prior", "flat", "prior must be"), ("mechanism", "linear", "mechanism must be"),
    ("within_block_order", "random", "within_block_order must be"),
    ("shared_posterior", "average", "shared_posterior must be"), ("contrastive_pairs", "within", "contrastive_pairs must be"),
    ("sparse_decoder", {"audio": 0.1}, "sparse_decoder names"), ("ordinal", {"image": 3}, "ordinal names"),
    ("ordinal", {"text": 1}, "at least 2 levels"),
    ("sparse_decoder_inputs", "shared", "sparse_decoder_inputs must be"),
    ("lr_schedule", "linear", "lr_schedule must be"), ("plateau_factor", 1.0, "plateau_factor must be in"),
    ("plateau_cuts", -1, "plateau_cuts at least 0")])
def test_a_config_that_names_an_unknown_option_is_refused_when_built(field, value, message):
    """Checked once, in CRLConfig: a model built from a config directly is checked as fit's is
    (an image modality cannot be ordinal; a tabular one needs 2+ levels)."""
    base = dict(shared_dim=1, latent_dims={"image": 1, "text": 1}, measurements={"image": 1, "text": 1},
                input_dims={"image": 12, "text": 2}, image_shapes={"image": (2, 2, 3)})
    CRLConfig(**base)  # the base itself is fine
    with pytest.raises(ValueError, match=message):
        CRLConfig(**base, **{field: value})


def test_cross_modal_pairs_without_two_modalities_are_refused_when_built():
    """With one modality no pair of different modalities exists: the InfoNCE term would be zero."""
    with pytest.raises(ValueError, match="cross_modal"):
        CRLConfig(shared_dim=1, latent_dims={"a": 1}, measurements={"a": 2}, input_dims={"a": 2}, contrastive=1.0,
                  contrastive_pairs="cross_modal")


def test_own_block_sparse_decoder_is_additive_in_the_block_and_dense_in_the_rest():
    """sparse_decoder_inputs='own_block': a score column depends on z(m) only through its sparse
    weights (zero weights: no dependence at all), and on s, the noise and the covariates through
    a dense network."""
    config = CRLConfig(shared_dim=2, latent_dims={"image": 1, "text": 3}, measurements={"image": 1, "text": 1},
                       input_dims={"image": 4, "text": 5}, noise_dim=1, sparse_decoder={"text": 0.1},
                       sparse_decoder_inputs="own_block", auxiliary_dim=2, auxiliary_in_decoders=True)
    batch = {"image_0": jnp.zeros((3, 4)), "text_0": jnp.zeros((3, 5)), "auxiliary": jnp.zeros((3, 2))}
    params = CausalMultimodalVAE(config).init(jax.random.key(0), batch, jax.random.key(1))["params"]
    decoder_params = params["decoders_text_0"]
    assert decoder_params["weight"].shape == (3, 5)  # (z(text), columns): only the block is sparse
    decoder = SparseAdditiveDecoder(5, additive=(2, 5), dense_features=tuple(reversed(config.hidden)))
    rng = np.random.default_rng(0)
    v = jnp.asarray(rng.normal(size=(4, 2 + 3 + 1 + 2)), dtype=jnp.float32)  # [s, z(text), eta, auxiliaries]
    no_text = {**decoder_params, "weight": jnp.zeros_like(decoder_params["weight"])}
    z_moved = v.at[:, 2:5].add(1.0)
    np.testing.assert_allclose(decoder.apply({"params": no_text}, z_moved), decoder.apply({"params": no_text}, v))
    for moved in (v.at[:, :2].add(1.0), v.at[:, 5:].add(1.0)):  # s; eta and the covariates
        assert not np.allclose(decoder.apply({"params": no_text}, moved), decoder.apply({"params": no_text}, v))
    # one weight on: only its column moves with that latent
    one = {**decoder_params, "weight": jnp.zeros_like(decoder_params["weight"]).at[1, 3].set(1.0)}
    change = np.asarray(decoder.apply({"params": one}, z_moved) - decoder.apply({"params": one}, v))
    assert np.abs(change[:, 3]).min() > 0 and np.allclose(np.delete(change, 3, axis=1), 0.0)


@pytest.mark.parametrize("inputs", ["own_block", "all"])
def test_block_decoder_weights_and_the_stage_warnings_about_the_sparse_decoder(inputs):
    """block_decoder_weights picks the rows of z(text) out of the sparse weights, whichever inputs
    are additive; the crl stage warns when they are all zero (the block reaches no column) and when
    a sparse decoder reads an embedding, and not otherwise."""
    from personax.crl._fit import FittedCRL
    from personax.crl.stage import sparse_decoder_warnings

    config = CRLConfig(shared_dim=2, latent_dims={"image": 1, "text": 3}, measurements={"image": 1, "text": 2},
                       input_dims={"image": 4, "text": 5}, noise_dim=1, sparse_decoder={"text": 0.1},
                       sparse_decoder_inputs=inputs)
    batch = {"image_0": jnp.zeros((3, 4)), "text_0": jnp.zeros((3, 5)), "text_1": jnp.zeros((3, 5))}
    params = CausalMultimodalVAE(config).init(jax.random.key(0), batch, jax.random.key(1))["params"]
    start = 0 if inputs == "own_block" else 2  # "all": the rows are [s, z(text), eta]
    marked = {**params, "decoders_text_1": {**params["decoders_text_1"],
                                            "weight": params["decoders_text_1"]["weight"].at[start + 2, 4].set(7.0)}}
    weights = FittedCRL(config, marked, {}).block_decoder_weights("text")
    assert [w.shape for w in weights] == [(3, 5), (3, 5)] and weights[1][2, 4] == 7.0
    with pytest.raises(ValueError, match="no sparse decoder"):
        FittedCRL(config, marked, {}).block_decoder_weights("image")

    names = {"image": ["image_embedding"], "text": ["trait_scores:trait_a_?", "trait_scores:trait_b_?"]}
    assert sparse_decoder_warnings(FittedCRL(config, marked, {}), names) == []
    zeroed = {**params, **{f"decoders_text_{k}": {**params[f"decoders_text_{k}"], "weight": jnp.zeros_like(
        params[f"decoders_text_{k}"]["weight"]).at[0, 0].set(0.0 if inputs == "own_block" else 1.0)} for k in (0, 1)}}
    # with "all", a weight on s alone (row 0) leaves the block's rows zero: still a warning
    (warning,) = sparse_decoder_warnings(FittedCRL(config, zeroed, {}), names)
    assert "every weight of the text block's latents to zero" in warning and "sparse_decoder.text=0.1" in warning
    embedded = {**names, "text": ["text_embedding[bio]", "trait_scores:trait_a_?"]}
    (warning,) = sparse_decoder_warnings(FittedCRL(config, marked, {}), embedded)
    assert "text_embedding[bio] (modality text)" in warning and "~crl.fit.sparse_decoder" in warning
