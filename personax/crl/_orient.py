"""Choosing the axes of the shared block after a fit (written by hand: no library does this).

The shared latents ``s`` are independent roots of the latent graph. With Gaussian-like roots
their joint density is nearly the same in every rotation, and the encoders and decoders absorb
any invertible linear map of ``s``: a fit can end with the block found (high R²) but turned,
in a local optimum it does not leave (numeric benchmark, development seeds 0 and 2: block R²
0.997, per-latent MCC 0.80, about 37 degrees). What tells the axes apart is the rest of the
causal prior: the children's additive mechanisms and the sparse graph fit the planted axes
better. So, after the fit:

1. the posterior means of the training rows are standardised and ``s`` is whitened;
2. for each pair of shared axes, the latents (of at most ``orient_rows`` training rows) with
   ``s`` turned by each angle of a grid are fitted by the model's own prior from a fresh start (encoders and decoders not involved), and
   scored by the prior's log-likelihood on the validation rows; the best angle is kept. The latents
   are the posterior means, or with ``orient_search_latents: draws`` fresh posterior draws in the
   same coordinates (the ELBO's own score of a turn; not better on the demo, docs/crl.md);
3. the chosen linear map of ``s`` is written into the model: exactly into the encoders' last
   layer (means) and the decoders' first layer (their inverse), approximately into the
   posterior log-variances; the prior is refitted by the ELBO with the encoders and decoders
   held, on fresh draws from the turned posteriors at every step (refitted to the posterior
   means instead, the given model's own prior lost 1.2-1.7 nats per person on the demo: too
   narrow for the draws the ELBO scores, a handicap against every turn). The given model's
   prior is refitted the same way, with the same draws' noise, so that what the comparison
   below sees is the turn alone and not the refit's own gain (a full-batch fit of the prior
   can beat the minibatch training's);
4. the turned model and the given one are both trained on from there, side by side for the
   same epochs with the same batches and sampling noise (warm starts share one random stream,
   so the comparison is paired; early stopping on validation). The turned model is returned
   unless the given one's validation ELBO is higher by more than ``orient_tolerance`` nats per
   person: the training on is a guard against a turn that breaks the fit, not the judge of a
   near tie, which the random stream alone decides (docs/crl.md). The returned parameters are
   the ones that scored their branch's best validation ELBO.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from personax.crl._fit import FittedCRL, _init_program, fit, mechanism_decay, proximal_l1_at
from personax.crl._model import CausalMultimodalVAE, CRLConfig

PRIOR_PARAMS = ("adjacency", "mech_w1", "mech_b1", "mech_w2", "mech_b2", "log_sigma_u", "flow_skew",
                "flow_log_tail", "order_potential", "auxiliary_location", "auxiliary_log_scale")
ANGLES = tuple(np.arange(0.0, 90.0, 15.0))  # degrees; a 90-degree turn only swaps two axes
REFIT_STREAM = 1  # fold_in(search key, REFIT_STREAM) draws the posterior samples of a candidate's prior refit
SEARCH_DRAWS_STREAM = 2  # fold_in(search key, SEARCH_DRAWS_STREAM): the search's draws (orient_search_latents: draws)
SEARCH_VAL_STREAM = 3  # fold_in(search key, SEARCH_VAL_STREAM): the validation rows' draws that score each angle
# A search record's ``prior_refit``: how the candidate's prior was refitted (records without it, from
# earlier versions, refitted it to the posterior means; the report warns about those).
PRIOR_REFIT = "by the ELBO on posterior draws"


def fit_prior(config: CRLConfig, params: Mapping[str, Any], latents: jax.Array | Callable[[jax.Array], jax.Array], *,
              steps: int, auxiliary: jax.Array | None = None, held: Sequence[str] = (),
              key: jax.Array | None = None) -> dict[str, Any]:
    """The prior's parameters fitted to latents (Adam, cosine schedule, the proximal L1 step on A,
    weight decay on the mechanisms, as in ``fit``); other parameters, and the prior's parameters
    named in ``held`` (e.g. ``order_potential``: the within-block order), are left as given.

    ``latents`` is an array (fixed latents: the searches' standardised posterior means) or a
    function of a PRNG key that draws them afresh at every step (``posterior_draws``: then the
    fit maximises the ELBO itself over the prior's parameters, the encoders and decoders held);
    ``key`` seeds those draws."""
    module = CausalMultimodalVAE(config)
    prior = {k: v for k, v in params.items() if k in PRIOR_PARAMS and k not in held}
    others = {k: v for k, v in params.items() if k not in prior}
    schedule = optax.cosine_decay_schedule(config.learning_rate, steps, alpha=0.1)
    optimizer = optax.adam(schedule)
    if callable(latents) and key is None:
        raise ValueError("fit_prior: latents drawn by a function need a key")

    def loss(p, u):
        log_lik = module.apply({"params": {**others, **p}}, u, auxiliary, method=CausalMultimodalVAE.prior_logpdf)
        return -jnp.mean(log_lik) + config.weight_decay * mechanism_decay(p)

    def step(carry, index):
        p, state = carry
        u = latents(jax.random.fold_in(key, index)) if callable(latents) else latents
        grads = jax.grad(loss)(p, u)
        step_size = schedule(state[-1].count)
        updates, state = optimizer.update(grads, state, p)
        p = proximal_l1_at(optax.apply_updates(p, updates), state[0], ("adjacency",), step_size, config.l1_graph)
        return (p, state), None

    (prior, _), _ = jax.lax.scan(step, (prior, optimizer.init(prior)), jnp.arange(steps))
    return {**others, **prior}


def posterior_draws(model: FittedCRL, modalities: Mapping[str, Sequence[np.ndarray]],
                    rows: np.ndarray) -> Callable[[jax.Array], jax.Array]:
    """A function of a PRNG key that draws the latents ``u = [s, z(1), ..., z(M)]`` of ``rows`` from
    the model's posteriors, as the ELBO draws them (``CausalMultimodalVAE.draw_latents``).

    The posteriors are computed once; each call only draws. With the encoders and decoders held, the
    ELBO depends on the prior's parameters only through ``E_q[log p(u)]``, so ``fit_prior`` on these
    draws maximises the ELBO, where a fit to the posterior means would fit a prior too narrow for
    the draws the ELBO scores (on the demo that cost 1.2-1.7 nats per person)."""
    module, params = model.module, model.params
    batch = {k: jnp.asarray(v[rows]) for k, v in model._standardise(modalities).items()}
    shared, blocks, _ = jax.jit(lambda p, b: module.apply({"params": p}, b, method=CausalMultimodalVAE.posteriors))(
        params, batch)

    def draw(key: jax.Array) -> jax.Array:
        shared_key, block_key = jax.random.split(key)
        u, _, _ = module.apply({"params": params}, shared, blocks, shared_key, block_key,
                               method=CausalMultimodalVAE.draw_latents)
        return u

    return draw


def refit_prior(model: FittedCRL, modalities: Mapping[str, Sequence[np.ndarray]], rows: np.ndarray, *, steps: int,
                auxiliary: jax.Array | None, key: jax.Array, held: Sequence[str] = ()) -> dict[str, Any]:
    """The model's parameters with its prior refitted (warm start) by the ELBO on ``rows``, the
    encoders and decoders held: ``fit_prior`` on ``posterior_draws``. A search refits its candidate
    and the given model alike, with the same key, so that the gate compares the change alone."""
    return jax.device_get(fit_prior(model.config, model.params, posterior_draws(model, modalities, rows), steps=steps,
                                    auxiliary=auxiliary, held=held, key=key))


def _prior_log_lik(config: CRLConfig, params, latents, auxiliary=None) -> jax.Array:
    module = CausalMultimodalVAE(config)
    return jnp.mean(module.apply({"params": params}, latents, auxiliary, method=CausalMultimodalVAE.prior_logpdf))


def _givens(dim: int, i: int, j: int, degrees: float) -> np.ndarray:
    turn = np.eye(dim)
    t = np.deg2rad(degrees)
    turn[[i, i, j, j], [i, j, i, j]] = [np.cos(t), -np.sin(t), np.sin(t), np.cos(t)]
    return turn


def search_shared_axes(config: CRLConfig, train: np.ndarray | Callable[[jax.Array], jax.Array], val: np.ndarray, *,
                       steps: int = 600, angles: Sequence[float] = ANGLES, key: jax.Array,
                       auxiliary: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, list[dict]]:
    """The rotation of the (whitened, standardised) shared block the prior fits best.

    Args:
        config: The model's configuration.
        train: Standardised latents [s, z(1), ...] of the training rows, with ``s`` whitened; or a
            function of a PRNG key that draws them afresh (posterior draws, standardised the same
            way): each prior fit then draws at every step, with the same draws at every angle.
        val: The validation rows' latents, standardised the same way: (rows, latents), or
            (draws, rows, latents) to score each angle by the mean over the draws.
        steps: Optimiser steps of each prior fit.
        angles: The grid of angles (degrees) tried for each pair of shared axes.
        key: PRNG key of the prior fits' initialisation (one fresh start for every angle) and,
            for drawn training latents, of their draws.
        auxiliary: The covariates of the training and validation rows, if the prior uses them.

    Returns:
        The chosen rotation (shared_dim x shared_dim) and, per pair of axes, the validation
        log-likelihood per person at each angle and the angle chosen: the best one, moved to
        the vertex of the parabola through it and its two neighbours (unless it is 0).
    """
    ds = config.shared_dim
    rotation = np.eye(ds)
    scores = []
    aux_train, aux_val = (None, None) if auxiliary is None else (jnp.asarray(a) for a in auxiliary)
    initial = _init_program(config)(key)
    draw = train if callable(train) else None
    draws_key = jax.random.fold_in(key, SEARCH_DRAWS_STREAM)

    # data as arguments, not constants (any cohort's); drawn latents' posteriors are closed over (one search per fit)
    @jax.jit
    def scored(turns, initial, train, val, aux_train, aux_val):
        def one(turn):
            def turned(u):
                return u.at[..., :ds].set(u[..., :ds] @ turn.T)
            latents = turned(train) if draw is None else (lambda k: turned(draw(k)))
            params = fit_prior(config, initial, latents, steps=steps, auxiliary=aux_train, key=draws_key)
            if val.ndim == 3:
                return jnp.mean(jax.vmap(lambda v: _prior_log_lik(config, params, turned(v), aux_val))(val))
            return _prior_log_lik(config, params, turned(val), aux_val)
        return jax.lax.map(one, turns)  # one compiled prior fit, run per angle (memory stays flat)

    train = None if draw is not None else jnp.asarray(train, jnp.float32)
    val = jnp.asarray(val, jnp.float32)
    for i in range(ds):
        for j in range(i + 1, ds):
            turns = np.stack([_givens(ds, i, j, a) @ rotation for a in angles]).astype(np.float32)
            log_lik = np.asarray(scored(jnp.asarray(turns), initial, train, val, aux_train, aux_val), dtype=np.float64)
            best = int(np.nanargmax(log_lik))
            chosen = float(angles[best])
            if chosen != 0.0:  # the vertex of the parabola through the best angle and its neighbours
                left, right = log_lik[best - 1], log_lik[(best + 1) % len(angles)]
                curvature = left - 2 * log_lik[best] + right
                step = float(angles[1] - angles[0])
                chosen += step * float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0
            rotation = _givens(ds, i, j, chosen) @ rotation
            scores.append({"axes": [i, j], "angles": [float(a) for a in angles],
                           "val_prior_log_lik": [round(float(v), 4) for v in log_lik], "chosen": round(chosen, 2)})
    return rotation, scores


def _with_shared_map(params: Mapping[str, Any], config: CRLConfig, matrix: np.ndarray, offset: np.ndarray) -> dict:
    """Parameters whose shared latents are ``matrix @ s + offset`` of the given ones: the encoders'
    means exactly, their log-variances by a weighted geometric mean, and the decoders take the inverse."""
    return with_block_map(params, config, matrix, offset)


def with_block_map(params: Mapping[str, Any], config: CRLConfig, matrix: np.ndarray, offset: np.ndarray,
                   modality: str | None = None) -> dict:
    """Parameters whose block is ``matrix @ block + offset`` of the given one: ``s`` (``modality``
    None; every measurement's encoder and decoder) or ``z(modality)`` (that modality's). Each
    encoder's means exactly, its log-variances by a weighted geometric mean (exact for a scaled
    rotation), and each decoder takes the inverse in its first layer, so a decoder given the mapped
    block reconstructs what it did. A modality block's posterior is the product of its experts,
    whose precisions the map changes: its means follow the map only approximately. Decoders whose
    first layer is not dense in the block (a sparse decoder's edge functions) cannot take the map."""
    ds = config.shared_dim
    if modality in config.sparse_decoder:
        raise ValueError(f"the {modality} block's decoders are sparse (edge functions of each latent): "
                         "a linear map of the block cannot be written into them")
    block = slice(0, ds) if modality is None else slice(ds, ds + config.latent_dims[modality])
    width = block.stop - block.start
    names = None if modality is None else {f"{modality}_{k}" for k in range(config.measurements[modality])}
    params = jax.tree_util.tree_map(lambda x: np.array(x, dtype=np.float64), dict(params))
    inverse = np.linalg.inv(matrix)
    squared = matrix**2
    variance_weights = squared / squared.sum(1, keepdims=True)
    log_scale = np.log(squared.sum(1))
    for name, sub in params.items():
        role, _, measurement = name.partition("_")
        if names is not None and measurement not in names:
            continue
        if role == "encoders":
            # the output layer: the highest-numbered Dense (by number: Dense_10 comes after Dense_9)
            last = sub[max((k for k in sub if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))]
            kernel, bias = last["kernel"], last["bias"]
            half = kernel.shape[1] // 2  # [means, log-variances], each in the order s, z(m), eta
            logvars = slice(half + block.start, half + block.start + width)
            kernel[:, block], bias[block] = kernel[:, block] @ matrix.T, matrix @ bias[block] + offset
            kernel[:, logvars] = kernel[:, logvars] @ variance_weights.T
            bias[logvars] = variance_weights @ bias[logvars] + log_scale
        elif role == "decoders":
            first = sub["Dense_0"] if "Dense_0" in sub else sub["MLP_0"]["Dense_0"]
            rows = first["kernel"][block]
            first["bias"] = first["bias"] - offset @ inverse.T @ rows
            first["kernel"][block] = inverse.T @ rows
    return jax.tree_util.tree_map(lambda x: x.astype(np.float32), params)


def _stacked_latents(model: FittedCRL, modalities) -> np.ndarray:
    """Posterior means [s, z(1), ..., z(M)] of every row, in the prior's order."""
    encoded = model.encode(modalities)
    return np.concatenate([encoded["shared"], *(encoded[m] for m in model.config.latent_dims)], axis=1)


def fitted_splits(model: FittedCRL, search: str) -> dict[str, np.ndarray]:
    """The model's train / val / test rows, which a search after the fit reuses; a clear error for
    a model that has none (``load_pretrained`` keeps no splits: they belong to the data it saw)."""
    if not all(name in model.splits for name in ("train", "val")):
        raise ValueError(f"{search} needs the rows the model was fitted on (its train and val splits); this model "
                         "has none, as a model reloaded with load_pretrained has none: search right after fit, "
                         "or fit with orient_shared / order_search on")
    return model.splits


def search_rows(model: FittedCRL) -> np.ndarray:
    """The training rows of a search's full-batch prior fits: at most ``orient_rows``, a fixed random subset."""
    train, config = fitted_splits(model, "a search after the fit")["train"], model.config
    if len(train) <= config.orient_rows:
        return train
    return np.sort(np.random.default_rng(config.seed).choice(train, config.orient_rows, replace=False))


def fit_stop(model: FittedCRL) -> tuple[str, int]:
    """How the fit's own training ended, before any search of the shared axes or of the
    within-block orders, and its epochs.

    After ``orient_shared`` or ``order_search`` trained on, ``model.stopped`` says how the last
    training on ended (its ``orient_epochs`` cap, or early stopping) and ``model.history`` runs on
    through it; whether the fit itself converged is ``given_stopped`` of the first search.
    """
    record = model.orientation or {}
    searches = [r for r in record.get("rounds", [record]) if isinstance(r, Mapping) and r]
    if model.reordering:
        searches.append(model.reordering)
    stopped = searches[0].get("given_stopped", model.stopped) if searches else model.stopped
    trained_on = sum(int(r.get("epochs", 0)) for r in searches if "trained_on_val_elbo" in r)
    return stopped, len(model.history) - trained_on


def orientable(config: CRLConfig) -> str:
    """Why the shared block's axes cannot be searched for this model ("" when they can)."""
    if config.shared_dim < 2:
        return "fewer than two shared latents"
    if config.prior != "causal":
        return "no causal prior"
    if config.sparse_decoder and config.sparse_decoder_inputs != "own_block":
        return "a sparse decoder takes s through nonlinear edge functions (sparse_decoder_inputs: all)"
    return ""


def orient_shared(model: FittedCRL, modalities: Mapping[str, Sequence[np.ndarray]], *,
                  auxiliary: np.ndarray | None = None, steps: int | None = None, rounds: int | None = None,
                  key: jax.Array, progress: bool = False,
                  checkpoint: str | os.PathLike[str] | None = None) -> FittedCRL:
    """The model with its shared block turned to the axes its prior fits best, unless the same
    extra training without the turn scores a validation ELBO higher by more than
    ``orient_tolerance``. See the module docstring.

    ``fit(..., orient_shared=True)`` calls this after training; call it directly to orient a model
    fitted without it.

    Args:
        model: A fitted model.
        modalities: The data it was fitted on (the same rows: its splits are reused).
        auxiliary: The covariates it was fitted with, if any.
        steps: Optimiser steps of each prior fit in the search (default: the config's ``orient_steps``).
        rounds: At most this many searches, each from the model the last one returned, stopping
            at the first whose turn is not kept (default ``config.orient_rounds``). A kept turn
            can stop short of the axes the prior prefers, because the fitted blocks lean towards
            the axes they were fitted with; a second search starts from the turned fit.
        key: PRNG key of the search's prior fits (round ``r`` > 0 uses ``fold_in(key, r)``).
        progress: Show the training-on's progress bar.
        checkpoint: A fit's checkpoint file (``fit(..., checkpoint=path)``): the training on
            saves its state there too and resumes from it after a crash.

    Returns:
        A model whose ``orientation`` says what was tried and chosen: ``decision`` ``"kept"`` (the
        turned model, trained on), ``"rejected"`` (the given model, its prior refitted the same way
        and trained on for the same epochs, scored higher by more than ``tolerance``; or the search
        kept the given axes, and the given model is returned as it is) or ``"skipped"`` (the given
        model; ``reason`` says why). Its ``history`` is the given model's followed by the training
        on's epochs, its ``best_val_elbo`` that of the returned parameters. With more than one round, the record is the last round's plus ``rounds``
        (every round's record, in order), and ``decision`` is ``"kept"`` (without the last
        round's ``reason``) if any round's turn was kept.

    Example:
        >>> from personax.data.synthetic import make_multimodal_numeric
        >>> from personax.crl import fit, orient_shared
        >>> bench = make_multimodal_numeric(400, seed=0)
        >>> model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=2,
        ...             orient_epochs=2)
        >>> oriented = orient_shared(model, bench.modalities, steps=20, key=jax.random.key(0))
        >>> oriented.orientation["decision"] in ("kept", "rejected")
        True
    """
    rounds = model.config.orient_rounds if rounds is None else rounds
    steps = model.config.orient_steps if steps is None else steps
    if rounds < 1:
        raise ValueError(f"orient_shared: rounds must be at least 1, got {rounds}")
    records = []
    for index in range(rounds):
        model = _orient_once(model, modalities, auxiliary=auxiliary, steps=steps, progress=progress,
                             key=key if index == 0 else jax.random.fold_in(key, index), checkpoint=checkpoint)
        records.append(model.orientation)
        if model.orientation["decision"] != "kept":
            break
    if rounds == 1:
        return model
    record = {**records[-1], "rounds": records}
    if any(entry["decision"] == "kept" for entry in records) and record["decision"] != "kept":
        # an earlier round's turn is in the returned model: the last round's rejection is not the verdict
        record.pop("reason", None)
        record["decision"] = "kept"
    return dataclasses.replace(model, orientation=record)


def _orient_once(model: FittedCRL, modalities: Mapping[str, Sequence[np.ndarray]], *,
                 auxiliary: np.ndarray | None, steps: int, key: jax.Array, progress: bool,
                 checkpoint: str | os.PathLike[str] | None = None) -> FittedCRL:
    """One search and paired training on: ``orient_shared`` with one round."""
    config = model.config
    reason = orientable(config)
    if reason:
        return dataclasses.replace(model, orientation={"decision": "skipped", "reason": reason})
    ds = config.shared_dim
    splits = fitted_splits(model, "orient_shared")  # before encoding: a clear error first
    latents = _stacked_latents(model, modalities).astype(np.float64)
    train, val = splits["train"], splits["val"]
    shared = latents[train, :ds]
    centre, covariance = shared.mean(0), np.cov(shared.T)
    values, vectors = np.linalg.eigh(covariance)
    whitening = vectors @ np.diag(np.maximum(values, 1e-12) ** -0.5) @ vectors.T
    # The search's coordinates, (u - shift) @ standardising: s whitened, every other latent standardised.
    shift, standardising = latents[train].mean(0), np.diag(1.0 / latents[train].std(0))
    standardising[:ds, :ds] = whitening.T
    aux = None if auxiliary is None else np.asarray(auxiliary, np.float32).reshape(len(latents), -1)
    fitted = search_rows(model)
    if config.orient_search_latents == "draws":  # posterior draws, in the same coordinates as the means
        shift_32, standardising_32 = jnp.asarray(shift, jnp.float32), jnp.asarray(standardising, jnp.float32)
        draw_fitted, draw_val = posterior_draws(model, modalities, fitted), posterior_draws(model, modalities, val)
        search_train = lambda draw_key: (draw_fitted(draw_key) - shift_32) @ standardising_32  # noqa: E731
        val_keys = jax.random.split(jax.random.fold_in(key, SEARCH_VAL_STREAM), config.orient_draws)
        search_val = np.asarray(jax.vmap(lambda draw_key: (draw_val(draw_key) - shift_32) @ standardising_32)(val_keys))
    else:
        standardised = (latents - shift) @ standardising
        search_train, search_val = standardised[fitted], standardised[val]
    rotation, scores = search_shared_axes(config, search_train, search_val, steps=steps, key=key,
                                          auxiliary=None if aux is None else (aux[fitted], aux[val]))
    record: dict[str, Any] = {"search": scores, "search_rows": len(fitted), "given_val_elbo": model.best_val_elbo,
                              "given_stopped": model.stopped, "search_latents": config.orient_search_latents}
    if all(entry["chosen"] == 0.0 for entry in scores):
        return dataclasses.replace(model, orientation={**record, "decision": "rejected",
                                                       "reason": "the prior fits the given axes best"})
    # Keep the block's spread (the contrastive term sets the latents' scale), turn its axes.
    matrix = np.sqrt(np.trace(covariance) / ds) * rotation @ whitening
    params = _with_shared_map(model.params, config, matrix, -matrix @ centre)
    turned = dataclasses.replace(model, params=params)
    # Both branches' priors refitted by the ELBO, the same way (paired draws): the gate then sees the
    # turn alone, not the refit's own gain (a full-batch prior fit beats the fit's minibatch one).
    refit_key, refit_aux = jax.random.fold_in(key, REFIT_STREAM), None if aux is None else jnp.asarray(aux[fitted])
    given = dataclasses.replace(model, params=refit_prior(model, modalities, fitted, steps=4 * steps,
                                                          auxiliary=refit_aux, key=refit_key))
    params = refit_prior(turned, modalities, fitted, steps=4 * steps, auxiliary=refit_aux, key=refit_key)
    tuned, best = train_on_side_by_side(given, params, modalities, auxiliary=aux, progress=progress,
                                        checkpoint=checkpoint, candidate_preference=config.orient_tolerance)
    record.update(epochs=len(tuned.history), trained_on_stopped=tuned.stopped, prior_refit=PRIOR_REFIT,
                  trained_on_resumed_at_epoch=tuned.resumed_at_epoch, matrix=np.round(matrix, 6).tolist(),
                  **start_scores(tuned, ("given", "turned")))
    record["tolerance"] = config.orient_tolerance
    if best[1] + config.orient_tolerance > best[0]:  # the rule fit(..., restart_preference) chose by
        record["decision"] = "kept"
    else:
        record.update(decision="rejected", reason=rejection_reason(record, "the given axes", config.orient_tolerance))
    return dataclasses.replace(tuned, config=config, history=continued_history(model, tuned), orientation=record,
                               reordering=model.reordering)


def train_on_side_by_side(model: FittedCRL, candidate: Mapping[str, Any], modalities: Mapping[str, Sequence[np.ndarray]],
                          *, auxiliary: np.ndarray | None, progress: bool,
                          checkpoint: str | os.PathLike[str] | None = None,
                          candidate_preference: float = 0.0) -> tuple[FittedCRL, np.ndarray]:
    """The given model and a candidate (parameters of the same model) trained on side by side for
    ``orient_epochs`` (early stopping applies), as two warm-started restarts that share one random
    stream: a paired comparison. Each branch's best parameters are those of its best validation ELBO
    (fixed key) over its start and the training on's epochs (where it started counts: a training on
    that only loses returns the start). The two are then compared by their validation ELBO averaged
    over ``orient_draws`` draws of the sampling noise (the same draws for both), and the candidate
    counts as better unless the given one beats it by more than ``candidate_preference`` (nats per
    person; 0: the higher wins). Returns the better one, trained on, and both branches' scores that
    the choice compared (given, candidate). With a ``checkpoint`` file the training on saves its
    state there, beside the fit's, and resumes from it."""
    config = model.config
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
               if f.name not in ("shared_dim", "latent_dims", "measurements", "input_dims", "auxiliary_dim", "seed")}
    # the training on is a cosine decay from orient_learning_rate whatever the fit's own schedule
    options.update(max_epochs=config.orient_epochs, orient_shared=False, orient_rounds=1, order_search=False,
                   learning_rate=config.orient_learning_rate or config.learning_rate, lr_schedule="cosine")
    tuned = fit(modalities, latent_dims=config.latent_dims, shared_dim=config.shared_dim, seed=config.seed,
                auxiliary=auxiliary, progress=progress, initial_params=[jax.device_get(model.params), candidate],
                checkpoint=checkpoint, restart_preference=[0.0, candidate_preference],
                restart_draws=config.orient_draws, **options)
    trained = np.max([entry["val_elbo_restarts"] for entry in tuned.history], axis=0)
    best = np.maximum(trained, tuned.start_val_elbo)
    return tuned, best if tuned.selection_val_elbo is None else np.asarray(tuned.selection_val_elbo)


def start_scores(tuned: FittedCRL, names: Sequence[str]) -> dict[str, Any]:
    """The record of a training on: each branch's best validation ELBO (fixed key) over its start and
    epochs, its start's, the branches whose best is that start (no epoch of the training on beat
    it), and, when the choice compared means over several draws of the sampling noise, those."""
    trained = np.max([entry["val_elbo_restarts"] for entry in tuned.history], axis=0)
    start = np.asarray(tuned.start_val_elbo)
    record = {"trained_on_val_elbo": {name: round(float(v), 4) for name, v in zip(names, np.maximum(trained, start))},
              "start_val_elbo": {name: round(float(v), 4) for name, v in zip(names, start)},
              "best_at_start": [name for name, s, t in zip(names, start, trained) if s >= t]}
    if tuned.selection_val_elbo is not None:
        record["compared_val_elbo"] = {name: round(float(v), 4) for name, v in zip(names, tuned.selection_val_elbo)}
        record["draws"] = tuned.config.orient_draws
    return record


def rejection_reason(record: Mapping[str, Any], given: str, tolerance: float) -> str:
    """Why a search's candidate lost its training on, in words: the given model's standing, by how much,
    by which scores."""
    at_start = "given" in record.get("best_at_start", [])
    reason = f"{given}, {'as fitted' if at_start else 'trained on'}, score a validation ELBO higher"
    reason += f" by more than the tolerance of {tolerance} nats per person" if tolerance else ""
    if "compared_val_elbo" in record:
        reason += f", each branch scored by the mean over {record['draws']} draws of the sampling noise"
    return reason + ("; no epoch of the training on beat the fitted model" if at_start else "")


def continued_history(model: FittedCRL, tuned: FittedCRL) -> list[dict]:
    """The model's history followed by the training on's epochs, numbered on."""
    offset = len(model.history)
    return model.history + [{**entry, "epoch": entry["epoch"] + offset} for entry in tuned.history]
