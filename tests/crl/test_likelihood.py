"""Issue 12: an exact likelihood (acyclic by construction), sparsity that means what it says,
checkpoints selected on the model returned, and missing entries masked out of the likelihood."""

from __future__ import annotations

import numpy as np
import optax
import pytest
import scipy.special

import jax
import jax.numpy as jnp

from personax.crl import fit, load_pretrained
from personax.crl._fit import proximal_l1
from personax.crl._model import CausalMultimodalVAE, CRLConfig, mask_key
from personax.data.synthetic import make_multimodal_numeric

SMALL = dict(max_epochs=12, hidden=(16,), batch_size=128)


def _two_node_block(mechanism: str):
    """One modality block of two latents whose order is learned: both directions are allowed."""
    config = CRLConfig(shared_dim=0, latent_dims={"a": 2}, measurements={"a": 1}, input_dims={"a": 3},
                       mechanism=mechanism)
    module = CausalMultimodalVAE(config)
    key = jax.random.key(3)
    params = module.init(key, {"a_0": jnp.zeros((2, 3))}, key)["params"]
    params = {**params, "flow_skew": jnp.array([0.4, -0.3]), "flow_log_tail": jnp.array([-0.3, 0.2]),
              "log_sigma_u": jnp.array([0.2, -0.4])}
    return module, params


@pytest.mark.parametrize("mechanism", ["additive", "mlp"])
@pytest.mark.parametrize("adjacency", [[[0.0, 0.9], [0.7, 0.0]], [[0.0, 0.9], [0.0, 0.0]]],
                         ids=["cyclic_raw_adjacency", "acyclic_raw_adjacency"])
def test_prior_density_integrates_to_one_for_cyclic_and_acyclic_adjacency(mechanism, adjacency):
    """The raw parameter may hold a 2-cycle (0 <-> 1); the model's density still integrates to 1
    (tolerance 1e-2 on a 601 x 601 grid over [-12, 12]^2), for either order of the potentials."""
    module, params = _two_node_block(mechanism)
    axis = np.linspace(-12, 12, 601, dtype=np.float32)
    grid = jnp.asarray(np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2))
    for potentials in ([0.0, 1.0], [1.0, 0.0]):
        p = {**params, "adjacency": jnp.asarray(adjacency), "order_potential": jnp.asarray(potentials)}
        effective = np.asarray(module.apply({"params": p}, method=CausalMultimodalVAE.weighted_adjacency))
        assert (effective != 0).sum() <= 1  # one direction at most: never a cycle
        log_p = module.apply({"params": p}, grid, method=CausalMultimodalVAE.prior_logpdf)
        mass = float(np.exp(np.asarray(log_p, np.float64)).sum() * (axis[1] - axis[0]) ** 2)
        assert abs(mass - 1.0) < 1e-2, (potentials, mass)


def test_effective_adjacency_is_a_dag_for_any_parameters():
    config = CRLConfig(shared_dim=2, latent_dims={"image": 4, "text": 3}, measurements={"image": 1, "text": 1},
                       input_dims={"image": 3, "text": 3})
    module = CausalMultimodalVAE(config)
    rng = np.random.default_rng(0)
    batch = {"image_0": jnp.zeros((2, 3)), "text_0": jnp.zeros((2, 3))}
    params = module.init(jax.random.key(0), batch, jax.random.key(0))["params"]
    d = config.total_latent
    effective = jax.jit(lambda p: module.apply({"params": p}, method=CausalMultimodalVAE.weighted_adjacency))
    for _ in range(50):
        p = {**params, "adjacency": jnp.asarray(rng.normal(size=(d, d))),
             "order_potential": jnp.asarray(rng.normal(size=d))}
        weights = np.asarray(effective(p))
        assert np.allclose(np.linalg.matrix_power((weights != 0).astype(float), d), 0)
        assert np.allclose(weights[:, :2], 0) and np.allclose(weights[6:, 2:6], 0)


def test_potentials_get_gradients_through_the_order():
    module, params = _two_node_block("additive")
    params = {**params, "adjacency": jnp.array([[0.0, 0.9], [0.0, 0.0]]), "order_potential": jnp.array([0.0, 0.3])}
    u = jax.random.normal(jax.random.key(0), (64, 2))

    def log_p(p):
        return jnp.mean(module.apply({"params": p}, u, method=CausalMultimodalVAE.prior_logpdf))

    grads = jax.grad(log_p)(params)
    assert float(jnp.abs(grads["order_potential"]).sum()) > 0
    assert float(grads["adjacency"][1, 0]) == 0.0  # the inactive direction gets no likelihood gradient


@pytest.mark.parametrize("mechanism", ["additive", "mlp"])
def test_the_exogenous_noise_is_the_variable_the_prior_scores(mechanism):
    """``exogenous_noise`` is the prior's change of variables: log N(n_j; 0, 1) + log |dn_j/du_j| is
    ``prior_node_logpdf``'s term for every node (float32, tolerance 1e-4), with an edge 0 -> 1 active."""
    module, params = _two_node_block(mechanism)
    params = {**params, "adjacency": jnp.array([[0.0, 0.9], [0.0, 0.0]]), "order_potential": jnp.array([0.0, 1.0])}
    u = 1.5 * jax.random.normal(jax.random.key(1), (32, 2))

    def noise(rows):
        return module.apply({"params": params}, rows, method=CausalMultimodalVAE.exogenous_noise)

    n = noise(u)
    own_slope = jax.vmap(lambda row: jnp.diag(jax.jacfwd(lambda r: noise(r[None])[0])(row)))(u)
    expected = module.apply({"params": params}, u, method=CausalMultimodalVAE.prior_node_logpdf)
    from_noise = -0.5 * (np.log(2 * np.pi) + n**2) + jnp.log(jnp.abs(own_slope))
    np.testing.assert_allclose(np.asarray(from_noise), np.asarray(expected), atol=1e-4)
    # the child's noise depends on its parent (the mechanism is taken out), the root's does not
    cross = jax.vmap(lambda row: jax.jacfwd(lambda r: noise(r[None])[0])(row))(u)
    assert np.all(np.asarray(cross[:, 0, 1]) == 0) and np.any(np.abs(np.asarray(cross[:, 1, 0])) > 1e-3)


def test_proximal_step_in_adams_metric_solves_the_lasso():
    """Adam + this prox on 0.5 * sum(w_i (x - b)^2) + lam * |x|_1 converges to the lasso solution
    soft(b, lam / w) for every coordinate, whatever its curvature w; thresholding at lr * lam
    (the old step) does not (tolerance 1e-3)."""
    b = jnp.array([1.0, 0.3, -0.8, 0.05, 2.0])
    w = jnp.array([1.0, 10.0, 0.5, 100.0, 0.1])
    lam = 0.5
    solution = jnp.sign(b) * jnp.maximum(jnp.abs(b) - lam / w, 0.0)

    def run(prox):
        optimizer = optax.adam(1e-2)
        x, state = jnp.zeros_like(b), optimizer.init(jnp.zeros_like(b))
        for _ in range(4000):
            grad = w * (x - b)
            updates, state = optimizer.update(grad, state, x)
            x = prox(optax.apply_updates(x, updates), state)
        return x

    ours = run(lambda x, state: proximal_l1(x, state[0], 1e-2, lam))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(solution), atol=1e-3)
    old = run(lambda x, state: jnp.sign(x) * jnp.maximum(jnp.abs(x) - 1e-2 * lam, 0.0))
    assert float(jnp.max(jnp.abs(old - solution))) > 0.1  # the step it replaces


def test_a_weighted_proximal_step_solves_the_weighted_lasso():
    """An array ``l1`` (``l1_graph_on: effect``) is a weighted lasso: coordinate i converges to
    soft(b_i, lam_i / w_i), its own strength in Adam's metric (tolerance 1e-3)."""
    b = jnp.array([1.0, 0.3, -0.8, 0.05, 2.0])
    w = jnp.array([1.0, 10.0, 0.5, 100.0, 0.1])
    lam = jnp.array([0.5, 0.1, 2.0, 0.0, 0.15])
    solution = jnp.sign(b) * jnp.maximum(jnp.abs(b) - lam / w, 0.0)
    optimizer = optax.adam(1e-2)
    x, state = jnp.zeros_like(b), optimizer.init(jnp.zeros_like(b))
    for _ in range(4000):
        updates, state = optimizer.update(w * (x - b), state, x)
        x = proximal_l1(optax.apply_updates(x, updates), state[0], 1e-2, lam)
    np.testing.assert_allclose(np.asarray(x), np.asarray(solution), atol=1e-3)
    assert float(solution[2]) == 0.0 and float(solution[0]) > 0  # one coordinate cut, others kept


@pytest.fixture(scope="module")
def bench():
    return make_multimodal_numeric(800, seed=0)


@pytest.mark.slow  # ~20-30 s CPU (a fit and its JIT compile); runs under CI
def test_reported_edges_are_exactly_the_nonzero_entries_and_the_returned_model_scored_best(bench):
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, restarts=2,
                **{**SMALL, "max_epochs": 6})
    graph = model.graph().to_numpy()
    np.testing.assert_array_equal(graph, model.adjacency())  # no threshold, no pruning after selection
    val = {m: [x[model.splits["val"]] for x in arrays] for m, arrays in bench.modalities.items()}
    # best_val_elbo was computed on exactly the parameters returned (float32 tolerance).
    assert model.elbo(val) == pytest.approx(model.best_val_elbo, abs=1e-4)
    assert model.best_val_elbo == pytest.approx(max(h["val_elbo"] for h in model.history), abs=1e-9)
    assert model.stopped in ("epoch cap", "early stopping on validation")
    # every restart's best parameters are kept for the check of their agreement; the returned one among them
    assert len(model.restart_params) == 2 and model.chosen_restart in (0, 1)
    for got, kept in zip(jax.tree_util.tree_leaves(model.params),
                         jax.tree_util.tree_leaves(model.restart_params[model.chosen_restart])):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(kept))
    every = model.encode_restarts(bench.modalities)
    np.testing.assert_array_equal(every[model.chosen_restart]["text"], model.encode(bench.modalities)["text"])
    assert not np.allclose(every[0]["text"], every[1]["text"])  # two initialisations, two fits


@pytest.mark.slow  # ~20-30 s CPU (a fit and its JIT compile); runs under CI
def test_missing_entries_are_masked_out_of_the_likelihood(bench):
    """NaN entries contribute nothing: the ELBO with an entry missing equals the ELBO with that entry
    present minus exactly its own Gaussian term (same encoder input: missing = training mean)."""
    rng = np.random.default_rng(1)
    text = [x.copy() for x in bench.modalities["text"]]
    holes = rng.random(text[0].shape) < 0.2
    text[0][holes] = np.nan
    text[1][:40] = np.nan  # whole measurement missing for 40 people: drops out of their experts
    data = {"image": bench.modalities["image"], "text": text}
    model = fit(data, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, **SMALL)
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_elbo"]) for h in model.history)
    assert all(np.isfinite(v).all() for v in model.encode(data).values())

    prepared = model._standardise(data)
    assert not any(np.isnan(v).any() for v in prepared.values())
    module, key = model.module, jax.random.key(0)
    elbo_missing, loglik_missing, _ = module.apply({"params": model.params}, prepared, key)
    full = {**prepared, mask_key("text_0"): np.ones_like(prepared[mask_key("text_0")])}  # entries "observed" at 0
    elbo_full, loglik_full, _ = module.apply({"params": model.params}, full, key)
    recon = module.apply({"params": model.params}, prepared, key, method=_text0_reconstruction)
    sigma = float(np.exp(model.params["log_sigma_x"][3]))  # keys: image_0..2, text_0
    term = -0.5 * (np.log(2 * np.pi) + 2 * np.log(sigma) + (0.0 - np.asarray(recon)) ** 2 / sigma**2)
    expected = np.asarray(loglik_full) - (term * holes).sum(1)
    np.testing.assert_allclose(np.asarray(loglik_missing), expected, rtol=1e-5, atol=1e-3)

    # Changing what sits under a mask changes nothing.
    poked = {**prepared, "text_0": np.where(holes, 1e6, prepared["text_0"]).astype(np.float32)}
    np.testing.assert_array_equal(np.asarray(module.apply({"params": model.params}, poked, key)[0]),
                                  np.asarray(elbo_missing))


def _text0_reconstruction(module, batch, rng):
    """The decoder mean of text_0 under the same sampling as ``__call__`` (test helper)."""
    c = module.config
    shared, blocks, eta = module.posteriors(batch)
    keys = jax.random.split(rng, 2 + len(module.keys))
    s = shared[0] + jnp.exp(0.5 * shared[1]) * jax.random.normal(keys[0], shared[0].shape)
    z = {m: blocks[m][0] + jnp.exp(0.5 * blocks[m][1]) * jax.random.normal(jax.random.fold_in(keys[1], i),
                                                                          blocks[m][0].shape)
         for i, m in enumerate(c.latent_dims)}
    index = module.keys.index(("text", 0))
    e = eta["text_0"][0] + jnp.exp(0.5 * eta["text_0"][1]) * jax.random.normal(keys[2 + index], eta["text_0"][0].shape)
    return module.decoders["text_0"](jnp.concatenate([s, z["text"], e], axis=-1))


def test_rows_without_any_observed_value_in_a_modality_fail_clearly(bench):
    text = [x.copy() for x in bench.modalities["text"]]
    for x in text:
        x[7] = np.nan
    with pytest.raises(ValueError, match=r"modality 'text': row 7 .* no observed value"):
        fit({"image": bench.modalities["image"], "text": text}, latent_dims={"image": 1, "text": 1}, shared_dim=1)
    text[0][7] = np.inf
    with pytest.raises(ValueError, match="row 7 column 0 is infinite"):
        fit({"image": bench.modalities["image"], "text": text}, latent_dims={"image": 1, "text": 1}, shared_dim=1)


def test_usable_rows_keep_partly_missing_people_and_count_missing_entries():
    from personax.crl._fit import missing_entries, usable_rows

    a = np.ones((4, 2))
    b0, b1 = np.ones((4, 3)), np.ones((4, 3))
    b0[1] = np.nan  # person 1: one text measurement missing, the other present -> kept
    b0[2, 0] = np.nan  # person 2: one entry missing -> kept
    b0[3], b1[3] = np.nan, np.nan  # person 3: the whole text modality missing -> left out
    keep = usable_rows({"image": [a], "text": [b0, b1]})
    np.testing.assert_array_equal(keep, [True, True, True, False])
    assert missing_entries({"image": [a], "text": [b0, b1]}) == {"image_0": 0, "text_0": 7, "text_1": 3}


@pytest.mark.slow  # ~20-30 s CPU (a fit and its JIT compile); runs under CI
def test_contrastive_and_auxiliary_options_train_and_reload(bench, tmp_path):
    from personax.crl import load_pretrained
    from personax.crl._contrastive import nt_xent

    aligned = jnp.asarray(np.random.default_rng(0).normal(size=(32, 3)))
    shuffled = aligned[np.random.default_rng(1).permutation(32)]
    # Views that agree row by row score lower than the same rows in another order (checked by hand: the
    # positive pair is the closest candidate of each anchor).
    assert float(nt_xent(aligned, aligned + 0.01, temperature=1.0)) < float(nt_xent(aligned, shuffled, temperature=1.0))
    rng = np.random.default_rng(0)
    covariates = np.eye(3)[rng.integers(3, size=800)]
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, contrastive=1.0,
                auxiliary=covariates, shared_posterior="mixture", auxiliary_in_decoders=True, noise_dim=2,
                **{**SMALL, "max_epochs": 3})
    assert model.config.auxiliary_dim == 3 and model.config.contrastive == 1.0
    assert model.config.shared_posterior == "mixture" and model.config.auxiliary_in_decoders
    assert np.isfinite(model.elbo(bench.modalities, auxiliary=covariates))
    with pytest.raises(ValueError, match="pass auxiliary="):
        model.elbo(bench.modalities)
    model.save_pretrained(tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert loaded.elbo(bench.modalities, auxiliary=covariates) == model.elbo(bench.modalities, auxiliary=covariates)


def _faces_and_scores(score_columns, n: int = 1500):
    """Two image measurements of [s, z(image)] through random tanh maps, and two noisy copies of the
    score columns ``score_columns(s, z(text))``; every latent Laplace (seed 0)."""
    rng = np.random.default_rng(0)
    s = rng.laplace(size=(n, 1))
    z_image, z_text = rng.laplace(size=(n, 2)), rng.laplace(size=(n, 2))
    image = [np.tanh(np.hstack([s, z_image]) @ rng.normal(size=(3, 6))) + 0.05 * rng.normal(size=(n, 6))
             for _ in range(2)]
    columns = score_columns(s, z_text)
    return image, [columns + 0.1 * rng.normal(size=columns.shape) for _ in range(2)]


@pytest.mark.slow
def test_sparse_decoder_gives_exact_zeros_and_tracks_which_latents_a_column_uses():
    """Text columns built from single latents: the sparse additive decoder keeps few inputs per column."""
    # each column: one or two latents
    image, text = _faces_and_scores(lambda s, z: np.hstack([s, z[:, :1], z[:, 1:], s + z[:, :1]]))
    model = fit({"image": image, "text": text}, latent_dims={"image": 2, "text": 2}, shared_dim=1, seed=0,
                sparse_decoder={"text": 1.0}, max_epochs=40, hidden=(32,), batch_size=128)
    weight = np.asarray(model.params["decoders_text_0"]["weight"])  # (inputs [s, z_text, eta], columns)
    assert weight.shape == (4, 4)
    assert (weight == 0).sum() >= 4, weight  # exact zeros: at least a quarter of the (input, column) pairs
    with pytest.raises(ValueError, match="tabular modality"):
        fit({"image": image, "text": text}, latent_dims={"image": 2, "text": 2}, shared_dim=1,
            sparse_decoder={"audio": 0.1}, max_epochs=1)


@pytest.mark.slow
def test_own_block_sparse_decoder_finds_which_block_latents_a_column_uses(tmp_path):
    """sparse_decoder_inputs='own_block': the sparse weights cover z(text) only, the column built
    from s alone loses every z(text) weight, the columns of one z(text) latent keep one, and the
    model reloads to the same ELBO."""
    image, text = _faces_and_scores(lambda s, z: np.hstack([s, np.tanh(s), z[:, :1], z[:, 1:], s * z[:, :1]]))
    model = fit({"image": image, "text": text}, latent_dims={"image": 2, "text": 2}, shared_dim=1, seed=0,
                sparse_decoder={"text": 0.1}, sparse_decoder_inputs="own_block", max_epochs=40, hidden=(32,),
                batch_size=128)
    for k in range(2):
        weight = np.asarray(model.params[f"decoders_text_{k}"]["weight"])  # (z_text, columns)
        assert weight.shape == (2, 5)
        assert (weight[:, 0] == 0).all(), weight  # the column of s alone: no z(text) input left
        assert (weight == 0).sum() >= 3, weight  # exact zeros (seed 0: 5 and 6 of 10)
        assert (weight[:, 2:4] != 0).any(axis=0).all(), weight  # a column of one z(text) latent keeps one
    model.save_pretrained(tmp_path / "m")
    assert load_pretrained(tmp_path / "m").elbo({"image": image, "text": text}) == model.elbo({"image": image, "text": text})


@pytest.mark.slow  # ~10-20 s CPU (a small fit and its JIT compile); runs under CI
def test_gains_below_min_delta_do_not_reset_patience(bench):
    """With a min_delta no epoch can beat, training stops exactly patience epochs after the first,
    and still returns the best-ELBO parameters of those epochs."""
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                **{**SMALL, "max_epochs": 50, "patience": 3, "min_delta": 1e9})
    assert model.stopped == "early stopping on validation"
    assert len(model.history) == 4
    assert model.best_val_elbo == pytest.approx(max(h["val_elbo"] for h in model.history), abs=1e-9)
    # min_delta=0 is the old rule: any gain resets the counter, so a still-improving fit keeps going.
    improving = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                    **{**SMALL, "max_epochs": 8, "patience": 3, "min_delta": 0.0})
    assert len(improving.history) > 4


@pytest.mark.slow  # ~10-20 s CPU (a small fit and its JIT compile); runs under CI
def test_the_plateau_schedule_cuts_the_rate_on_each_plateau_and_stops_at_the_last(bench):
    """Under lr_schedule="plateau" each plateau of `patience` epochs cuts the rate by plateau_factor, at
    most plateau_cuts times, and the next one ends the training: with a min_delta no epoch can beat,
    the first epoch sets the reference and every plateau is exactly `patience` epochs long."""
    model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
                **{**SMALL, "max_epochs": 50, "patience": 2, "min_delta": 1e9, "lr_schedule": "plateau",
                   "learning_rate": 1e-3})
    assert model.stopped == "early stopping on validation"
    assert [h["learning_rate"] for h in model.history] == pytest.approx([1e-3] * 3 + [3e-4] * 2 + [9e-5] * 2,
                                                                        rel=1e-6)
    assert model.best_val_elbo == pytest.approx(max(h["val_elbo"] for h in model.history), abs=1e-9)
    # the rate in effect is the one recorded: a cut rate trains less far than the full one would have
    full = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
               **{**SMALL, "max_epochs": 7, "learning_rate": 1e-3, "lr_schedule": "plateau", "patience": 50})
    assert [h["learning_rate"] for h in full.history] == pytest.approx([1e-3] * 7, rel=1e-6)
    assert [h["val_elbo"] for h in full.history[:3]] == pytest.approx([h["val_elbo"] for h in model.history[:3]],
                                                                      abs=1e-4)
    assert full.history[3]["val_elbo"] != pytest.approx(model.history[3]["val_elbo"], abs=1e-4)


def test_ordered_logistic_logpmf_matches_numpyro_and_stays_exact_in_the_tails():
    """The ordinal likelihood against a float64 difference of sigmoids (absolute 1e-5 in
    log-probability) and numpyro's OrderedLogistic (relative 1e-4: numpyro subtracts float32
    sigmoids, which loses digits on small probabilities); the probabilities of the L levels sum to 1
    (1e-6); far outside the cutpoints the log-probability is the exact asymptote with a finite,
    non-zero gradient, where a difference of sigmoids has lost both."""
    import numpyro.distributions as dist

    from personax.crl._model import ordered_logistic_logpmf

    rng = np.random.default_rng(0)
    cutpoints = jnp.asarray(np.sort(rng.normal(size=(4, 3)), axis=-1), jnp.float32)  # 4 columns, 4 levels
    predictor = jnp.asarray(2 * rng.normal(size=(6, 4)), jnp.float32)
    level = jnp.asarray(rng.integers(0, 4, size=(6, 4)))
    ours = ordered_logistic_logpmf(level, predictor, cutpoints)
    bounds = np.concatenate([np.full((4, 1), -np.inf), np.asarray(cutpoints, np.float64), np.full((4, 1), np.inf)], 1)
    columns = np.arange(4)[None, :]
    exact = np.log(scipy.special.expit(bounds[columns, np.asarray(level) + 1] - np.asarray(predictor, np.float64))
                   - scipy.special.expit(bounds[columns, np.asarray(level)] - np.asarray(predictor, np.float64)))
    np.testing.assert_allclose(ours, exact, atol=1e-5)
    np.testing.assert_allclose(ours, dist.OrderedLogistic(predictor, cutpoints).log_prob(level), rtol=1e-4)
    total = sum(jnp.exp(ordered_logistic_logpmf(jnp.full((6, 4), k), predictor, cutpoints)) for k in range(4))
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    # predictor 60 above the top cutpoint's neighbourhood: level 0 has log-probability ~ -(60 + 1)
    far = ordered_logistic_logpmf(jnp.array([0, 2]), jnp.array([60.0, -60.0]), jnp.array([[-1.0, 1.0]] * 2))
    np.testing.assert_allclose(far, [-61.0, -61.0], atol=1e-4)
    grad = jax.grad(lambda eta: ordered_logistic_logpmf(jnp.array([0]), eta, jnp.array([[-1.0, 1.0]])).sum())
    assert float(grad(jnp.array([60.0]))[0]) == pytest.approx(-1.0, abs=1e-4)


def _ordinal_text(bench):
    """The benchmark's text measurements cut into levels 1..3, one entry missing."""
    text = [np.digitize(x, [-0.5, 0.5]).astype(np.float64) + 1 for x in bench.modalities["text"]]
    text[0][3, 2] = np.nan
    return {"image": bench.modalities["image"], "text": text}


@pytest.mark.slow  # ~15 s CPU (a small fit and its JIT compile); runs under CI
def test_ordinal_modality_fits_saves_loads_and_refuses_what_is_not_a_level(tmp_path, bench):
    """``ordinal={"text": 3}``: one ordered cutpoint vector per text column, a model that reloads to
    the same ELBO, and a clear error naming the measurement, row and column of a value that is
    not a level; an image modality or an unknown one cannot be ordinal."""
    from personax.crl._fit import load_pretrained

    modalities = _ordinal_text(bench)
    model = fit(modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, ordinal={"text": 3}, **SMALL)
    module = model.module
    for k in range(3):
        cuts = np.asarray(module.apply({"params": model.params}, f"text_{k}", method=CausalMultimodalVAE.cutpoints))
        assert cuts.shape == (10, 2) and (np.diff(cuts, axis=-1) > 0).all()
    assert "cut_first_image_0" not in model.params
    assert np.isfinite(model.best_val_elbo)
    loaded = load_pretrained(model.save_pretrained(tmp_path / "ordinal"))
    assert loaded.config.ordinal == {"text": 3}
    assert loaded.elbo(modalities) == model.elbo(modalities)

    bad = {"image": modalities["image"], "text": [x.copy() for x in modalities["text"]]}
    bad["text"][1][7, 4] = 2.5
    with pytest.raises(ValueError, match=r"'text_1' row 7 column 4 is 2.5: modality 'text' is ordinal with 3 levels"):
        model.encode(bad)
    bad["text"][1][7, 4] = 4.0
    with pytest.raises(ValueError, match="row 7 column 4 is 4.0"):
        fit(bad, latent_dims={"image": 2, "text": 2}, shared_dim=2, ordinal={"text": 3}, max_epochs=1)
    for ordinal, message in (({"audio": 3}, "tabular modality"), ({"text": 1}, "at least 2 levels")):
        with pytest.raises(ValueError, match=message):
            fit(modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, ordinal=ordinal, max_epochs=1)
