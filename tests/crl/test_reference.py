"""The original study's CRL design (personax.crl.fit_reference): shapes, splits, and the defects it must keep."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from personax.crl import CRLConfig, fit_reference
from personax.crl._fit import _split
from personax.crl._reference import ReferenceModel, _flatten, load_reference
from personax.data.synthetic import make_multimodal_numeric

DIMS = {"image": 2, "text": 2}


@pytest.fixture(scope="module")
def bench():
    return make_multimodal_numeric(200, seed=0)


@pytest.fixture(scope="module")
def fitted(bench):
    return fit_reference(bench.modalities, latent_dims=DIMS, shared_dim=2, seed=3, max_epochs=60, hidden=(16,),
                         eval_every=20)


def _setup(bench, fitted, **overrides):
    """The fitted model's config (with overrides), module, a copy of its parameters, and the data."""
    config = dataclasses.replace(fitted.config, **overrides)
    params = jax.tree_util.tree_map(jnp.asarray, fitted.params)  # fresh containers: safe to edit
    return config, ReferenceModel(config), params, _flatten(bench.modalities, config)


def test_encode_shapes_splits_and_history(bench, fitted):
    latents = fitted.encode(bench.modalities)
    assert {k: v.shape for k, v in latents.items()} == {"shared": (200, 2), "image": (200, 2), "text": (200, 2)}
    ours = _split(200, CRLConfig(2, DIMS, {"image": 3, "text": 3}, {"image": 10, "text": 10}, seed=3))
    for name in ("train", "val", "test"):  # the same rows as personax.crl.fit with this seed
        np.testing.assert_array_equal(fitted.splits[name], ours[name])
    assert [h["epoch"] for h in fitted.history] == [20, 40, 60]
    assert fitted.selected_epoch in (20, 40, 60) and fitted.fit_seconds > 0
    assert list(fitted.graph().index) == ["s1", "s2", "image1", "image2", "text1", "text2"]


def test_only_the_first_measurement_reaches_the_modality_latents(bench, fitted):
    """Defect: measurements 2 and 3 never reach z(m) (first_measurement_only, the study's choice)."""
    changed = {m: list(arrays) for m, arrays in bench.modalities.items()}
    changed["image"][1] = changed["image"][1] + 5.0
    changed["image"][2] = -changed["image"][2]
    before, after = fitted.encode(bench.modalities), fitted.encode(changed)
    np.testing.assert_array_equal(before["image"], after["image"])
    assert not np.allclose(before["shared"], after["shared"])  # the shared autoencoder sees every input


def test_the_learned_graph_stays_the_complete_dag(bench, fitted):
    """Defect: A never falls below the threshold; entries outside the L1 block never move at all."""
    np.testing.assert_array_equal(fitted.graph().to_numpy(), np.triu(np.ones((6, 6)), 1))
    adjacency = np.asarray(fitted.params["adjacency"])  # starts at 0.5 + 1e-5 noise, zero diagonal
    block = np.zeros((6, 6), dtype=bool)
    block[2:4, 0:2] = True  # the study's block: stride = first modality's size from index 0, shared block ignored
    off_diagonal = ~np.eye(6, dtype=bool)
    assert np.all(np.abs(adjacency[off_diagonal & ~block] - 0.5) < 1e-4)  # never moved
    lr, steps = fitted.config.learning_rate, 60
    np.testing.assert_allclose(adjacency[block], 0.5 - lr * steps, atol=1e-3)  # Adam: ~lr per step, L1 only


def test_adjacency_gets_no_gradient_from_the_likelihood(bench, fitted):
    """Defect: A enters only through a hard threshold, so only the L1 term touches it."""
    config, model, params, batch = _setup(bench, fitted)

    def fit_terms(p):
        terms = model.apply({"params": p}, batch)
        return config.recon_weight * terms["recon"] + config.nll_weight * terms["nll"]

    grads = jax.grad(fit_terms)(params)
    assert float(jnp.abs(grads["adjacency"]).max()) == 0.0
    assert float(jnp.abs(grads["mech_w1"]).max()) > 0 and float(jnp.abs(grads["encoders_image_0"]["Dense_0"]["kernel"]).max()) > 0
    total = jax.grad(lambda p: model.apply({"params": p}, batch)["total"])(params)["adjacency"]
    assert set(map(tuple, np.argwhere(np.asarray(total) != 0))) == {(2, 0), (2, 1), (3, 0), (3, 1)}
    # The parents enter as an unweighted mean: any A above the threshold gives the same fit.
    heavier = {**params, "adjacency": params["adjacency"] * 7.0}
    assert float(fit_terms(heavier)) == pytest.approx(float(fit_terms(params)), rel=1e-6)


def test_the_nll_is_gamed_by_shrinking_the_noise(bench, fitted):
    """Defect: no Jacobian of u -> noise. Shrinking the mechanism's output (flow removed to
    isolate it) lowers the NLL although the fit to the data is unchanged; a density would
    add +log(1/c) per latent."""
    _, model, params, batch = _setup(bench, fitted, flow_layers=0)
    params = {k: v for k, v in params.items() if not k.startswith("flow_")}
    base = model.apply({"params": params}, batch)
    shrunk = model.apply({"params": {**params, "mech_w2": params["mech_w2"] * 0.01,
                                     "mech_b2": params["mech_b2"] * 0.01}}, batch)
    assert float(shrunk["recon"]) == float(base["recon"])
    assert float(shrunk["nll"]) < float(base["nll"]) - 0.05


def test_the_nll_is_gamed_by_shrinking_eta_with_the_default_flow(bench, fitted):
    """The deterministic eta's are scored as N(0, 1) draws: scale eta down in the encoder and
    up in the decoder, and the reconstruction is unchanged while the NLL drops."""
    _, model, params, batch = _setup(bench, fitted)
    base = model.apply({"params": params}, batch)
    c = 0.1
    for key in [k for k in params if k.startswith("encoders_")]:
        modality = key.removeprefix("encoders_").rsplit("_", 1)[0]
        dim = DIMS[modality]
        last = params[key]["Dense_1"]
        params[key]["Dense_1"] = {"kernel": last["kernel"].at[:, dim:].multiply(c), "bias": last["bias"].at[dim:].multiply(c)}
        first = params[key.replace("encoders_", "decoders_")]["Dense_0"]
        params[key.replace("encoders_", "decoders_")]["Dense_0"] = {**first, "kernel": first["kernel"].at[dim:].multiply(1 / c)}
    gamed = model.apply({"params": params}, batch)
    assert float(gamed["recon"]) == pytest.approx(float(base["recon"]), rel=1e-4)
    assert float(gamed["nll"]) < float(base["nll"]) - 0.1


def test_the_flow_never_permutes_its_halves(bench, fitted):
    _, model, params, _ = _setup(bench, fitted)
    x = jax.random.normal(jax.random.key(1), (50, 6)) * 3.0
    eps, _ = model.apply({"params": params}, x, method=ReferenceModel.flow_forward)
    np.testing.assert_array_equal(np.asarray(eps[:, :3]), np.asarray(x[:, :3]))
    assert not np.allclose(eps[:, 3:], x[:, 3:])


def test_in_sample_selection_needs_truth_and_scores_the_test_split(bench):
    truth = np.concatenate([bench.latents[b] for b in ("shared", "image", "text")], axis=1)
    with pytest.raises(ValueError, match="truth"):
        fit_reference(bench.modalities, latent_dims=DIMS, shared_dim=2, selection="in_sample", max_epochs=2)
    with pytest.raises(ValueError, match="unknown reference option"):
        fit_reference(bench.modalities, latent_dims=DIMS, shared_dim=2, patience=3)
    single = {m: arrays[:1] for m, arrays in bench.modalities.items()}  # one measurement each: a quicker compile
    model = fit_reference(single, latent_dims=DIMS, shared_dim=2, selection="in_sample", truth=truth,
                          max_epochs=20, eval_every=10, hidden=(16,))
    assert all(0 <= h["in_sample_mcc"] <= 1 for h in model.history)
    best = max(model.history, key=lambda h: h["in_sample_mcc"])
    assert model.selected_epoch == best["epoch"]


def test_save_and_reload(bench, fitted, tmp_path):
    fitted.save_pretrained(tmp_path / "ref")
    assert json.loads((tmp_path / "ref/config.json").read_text())["format"] == "personax-crl-reference-v1"
    again = load_reference(tmp_path / "ref")
    np.testing.assert_allclose(again.encode(bench.modalities)["text"], fitted.encode(bench.modalities)["text"])


@pytest.mark.slow  # ~25 s CPU (a reference fit)
def test_crl_stage_runs_the_reference(compose_cfg, run_path):
    from personax.pipeline import run_pipeline

    # the study's design cannot mask missing scores: only people with every score (about 40 %) take part
    cfg = compose_cfg(["stages=[ingest,traits,embeddings,crl]", "data.n=160", "data.image_size=32", "crl=crl_reference",
                       "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false", "crl.fit.max_epochs=20",
                       "crl.fit.hidden=[16]", "crl.latent_dims.image=3", "crl.latent_dims.text=2"])
    run_pipeline(cfg, run_path)
    metrics = json.loads((run_path / "crl/metrics.json").read_text())
    assert metrics["model"] == "crl_reference" and metrics["edges"] == 7 * 6 // 2  # the complete DAG
    assert np.isfinite(metrics["test_loss"])
    assert 50 <= metrics["people"] < 160 and metrics["people"] + metrics["left_out_missing_measurement"] == 160
    assert load_reference(run_path / "crl/model").config.latent_dims == {"image": 3, "text": 2}


def test_reference_rejects_missing_entries_clearly():
    import numpy as np
    import pytest

    from personax.crl import fit_reference

    x = np.ones((60, 3))
    x[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"measurement 0 has missing values \(NaN\)"):
        fit_reference({"a": [x], "b": [np.ones((60, 3))]}, latent_dims={"a": 1, "b": 1}, shared_dim=1)
