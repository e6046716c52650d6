"""Training, encoding, saving and loading the causal multimodal VAE.

Example:
    >>> from personax.data.synthetic import make_multimodal_numeric
    >>> bench = make_multimodal_numeric(300, seed=0)
    >>> model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0,
    ...             max_epochs=2, hidden=(16,))
    >>> sorted(model.encode(bench.modalities))
    ['image', 'shared', 'text']
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import serialization

from personax.crl import _checkpoint
from personax.crl._contrastive import multiview_infonce
from personax.crl._model import (AUXILIARY, COLLAPSED_FRACTION, CausalMultimodalVAE, CRLConfig, input_dim, level_key,
                                  mask_key, measurement_keys, normalised_edge_functions, sparse_block_rows)

log = logging.getLogger(__name__)

FORMAT = "personax-crl-v2"  # v2: config.json carries the weights' SHA-256 and every parameter's shape


def _check_modalities(modalities: Mapping[str, Sequence[np.ndarray]], latent_dims: Mapping[str, int]) -> int:
    if set(modalities) != set(latent_dims):
        raise ValueError(f"latent_dims names {sorted(latent_dims)} must match the modalities {sorted(modalities)}")
    sizes = {len(x) for arrays in modalities.values() for x in arrays}
    if len(sizes) != 1:
        raise ValueError(f"every measurement needs the same rows (same people, same order); got sizes {sorted(sizes)}")
    for name, arrays in modalities.items():
        if not arrays:
            raise ValueError(f"modality {name!r} has no measurements")
        observed_any = np.zeros(len(arrays[0]), dtype=bool)
        for k, x in enumerate(arrays):
            values = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
            if np.isinf(values).any():
                row, column = np.argwhere(np.isinf(values))[0]
                raise ValueError(f"modality {name!r} measurement {k} row {row} column {column} is infinite "
                                 "(missing entries must be NaN)")
            observed_any |= ~np.isnan(values).all(axis=1)
        if not observed_any.all():
            row = int(np.flatnonzero(~observed_any)[0])
            raise ValueError(f"modality {name!r}: row {row} (and {int((~observed_any).sum()) - 1} more) has no observed "
                             "value in any measurement; drop rows with a whole modality missing first")
    return sizes.pop()


def usable_rows(modalities: Mapping[str, Sequence[np.ndarray]]) -> np.ndarray:
    """Rows :func:`fit` can use: every modality has at least one observed (non-NaN) entry."""
    n = len(next(iter(modalities.values()))[0])
    keep = np.ones(n, dtype=bool)
    for arrays in modalities.values():
        seen = np.zeros(n, dtype=bool)
        for x in arrays:
            seen |= np.isfinite(np.asarray(x, dtype=np.float64).reshape(n, -1)).any(axis=1)
        keep &= seen
    return keep


def missing_entries(modalities: Mapping[str, Sequence[np.ndarray]]) -> dict[str, int]:
    """Count of missing (NaN) entries per measurement, e.g. ``{"text_0": 12}``."""
    return {f"{m}_{k}": int(np.isnan(np.asarray(x, dtype=np.float64)).sum())
            for m, arrays in modalities.items() for k, x in enumerate(arrays)}


def _data_fields(modalities: Mapping[str, Sequence[np.ndarray]], latent_dims: Mapping[str, int], shared_dim: int,
                 seed: int) -> tuple[int, dict[str, Any]]:
    """Checks the inputs; returns the row count and the config fields read off the data."""
    n = _check_modalities(modalities, latent_dims)
    return n, {
        "shared_dim": int(shared_dim),
        "latent_dims": {m: int(d) for m, d in latent_dims.items()},
        "measurements": {m: len(modalities[m]) for m in latent_dims},
        # one number when every measurement of a modality has the same width, else one per measurement
        "input_dims": {m: _widths([np.asarray(x).reshape(n, -1).shape[1] for x in modalities[m]]) for m in latent_dims},
        "seed": int(seed),
    }


def _widths(widths: Sequence[int]) -> int | tuple[int, ...]:
    return int(widths[0]) if len(set(widths)) == 1 else tuple(int(w) for w in widths)


def _flatten(modalities: Mapping[str, Sequence[np.ndarray]], config: CRLConfig) -> dict[str, np.ndarray]:
    return {f"{m}_{k}": np.asarray(modalities[m][k], np.float32).reshape(len(modalities[m][k]), -1)
            for m, k in measurement_keys(config)}


def _standardised_with_masks(flat: Mapping[str, np.ndarray],
                             standardization: Mapping[str, tuple[np.ndarray, np.ndarray]],
                             config: CRLConfig) -> dict[str, np.ndarray]:
    """Standardised measurements with NaN (missing) set to 0, plus each one's observed mask,
    and for an ordinal modality each measurement's levels as category indices 0..L-1."""
    out = {}
    for m, k in measurement_keys(config):
        name = f"{m}_{k}"
        x = flat[name]
        mask = np.isfinite(x)
        z = (x - standardization[name][0]) / standardization[name][1]
        out[name] = np.where(mask, z, 0.0).astype(np.float32)
        out[mask_key(name)] = mask.astype(np.float32)
        if m in config.ordinal:
            levels = config.ordinal[m]
            valued = np.where(mask, x, 1.0)
            bad = (valued != np.rint(valued)) | (valued < 1) | (valued > levels)
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise ValueError(f"measurement {name!r} row {row} column {column} is {float(x[row, column])}: modality "
                                 f"{m!r} is ordinal with {levels} levels, so its entries must be integers 1..{levels} "
                                 f"(NaN = missing; {int(bad.sum())} entries are not)")
            out[level_key(name)] = (valued - 1).astype(np.int32)
    return out


def proximal_l1(value: jax.Array, adam_state: optax.ScaleByAdamState, step_size: jax.Array, l1: float | jax.Array, *,
                b2: float = 0.999, eps: float = 1e-8) -> jax.Array:
    """Proximal step for ``l1 * |value|_1`` in Adam's diagonal metric.

    Adam moves coordinate i by ``step_size / (sqrt(nu_hat_i) + eps)`` times its
    momentum, so the matching proximal operator soft-thresholds coordinate i at
    ``l1 * step_size / (sqrt(nu_hat_i) + eps)`` (ProxGen, Yun et al. 2021). Its fixed
    points are those of ``loss + l1 * |value|_1``: a coordinate stays nonzero only
    if its loss gradient reaches ``l1`` in magnitude. (Thresholding at
    ``step_size * l1`` instead would keep edges by their gradient's signal-to-noise
    ratio, not by their size.) ``l1`` may be an array of the value's shape: a weighted L1,
    each coordinate at its own strength. Written by hand: optax has no preconditioned prox.

    Example:
        >>> import optax, jax.numpy as jnp
        >>> state = optax.ScaleByAdamState(count=jnp.int32(1), mu=jnp.zeros(2), nu=jnp.array([1e-7, 1e-3]))
        >>> [round(float(v), 4) for v in proximal_l1(jnp.array([0.1, 0.1]), state, 0.01, 0.5)]
        [0.0, 0.095]
    """
    nu_hat = adam_state.nu / (1.0 - b2 ** adam_state.count.astype(jnp.float32))
    threshold = l1 * step_size / (jnp.sqrt(nu_hat) + eps)
    return jnp.sign(value) * jnp.maximum(jnp.abs(value) - threshold, 0.0)


def proximal_l1_at(params: dict, adam_state: optax.ScaleByAdamState, path: tuple[str, ...], step_size: jax.Array,
                   l1: float | jax.Array) -> dict:
    """``params`` with :func:`proximal_l1` applied to the leaf at ``path`` (e.g. ``("adjacency",)``),
    using that leaf's moments from ``adam_state``."""
    def leaf(tree):
        for name in path:
            tree = tree[name]
        return tree

    def replaced(tree, names, value):
        return value if not names else {**tree, names[0]: replaced(tree[names[0]], names[1:], value)}

    moments = adam_state._replace(mu=leaf(adam_state.mu), nu=leaf(adam_state.nu))
    return replaced(params, path, proximal_l1(leaf(params), moments, step_size, l1))


def mechanism_decay(params: dict) -> jax.Array:
    """Squared L2 norm of the mechanism functions' weights (``CRLConfig.weight_decay`` multiplies it)."""
    return jnp.sum(params["mech_w1"] ** 2) + jnp.sum(params["mech_w2"] ** 2)


# one compiled program per chunk shape, not one per operation (dispatched op by op, each op compiles)
_edge_functions_program = jax.jit(normalised_edge_functions)


def standardised_edge_effects(params: Mapping[str, Any], adjacency: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """(parent, child): the standard deviation over the rows of ``A_ij g_ij(u_i)`` over that of
    ``u_j``, for an additive-mechanism prior's parameters, its effective adjacency and latents
    (rows, in the adjacency's order). Zero exactly where the adjacency is; NaN on an edge into a
    collapsed child (its sd at most ``COLLAPSED_FRACTION`` of the latents' median), where the
    ratio would be a division by about zero, not a strength."""
    terms = np.concatenate([np.asarray(_edge_functions_program(jnp.asarray(latents[i : i + 1024]), params["mech_w1"],
                                                               params["mech_b1"], params["mech_w2"]))
                            for i in range(0, len(latents), 1024)])
    child_sd = latents.std(0)
    collapsed = child_sd <= COLLAPSED_FRACTION * np.median(child_sd)
    effects = np.abs(adjacency) * terms.std(0) / np.where(collapsed, 1.0, child_sd)[None, :]
    effects = np.where(collapsed[None, :], np.nan, effects)
    return np.where(adjacency != 0, effects, 0.0)


@dataclasses.dataclass
class FittedCRL:
    """A trained model: encode new data, read the learned graph, save it.

    Attributes:
        config: The model's configuration.
        params: Flax parameters.
        standardization: measurement -> (mean, std) of the training rows.
        history: Per-epoch training and validation ELBO per example (and, under the "plateau"
            schedule, the learning rate at the epoch's first step, ``learning_rate``).
        splits: Row indices of the train / val / test splits used in fitting.
        fit_seconds: Wall time of training, compilation and initialisation included.
        stopped: ``"early stopping on validation"`` or ``"epoch cap"``.
        best_val_elbo: Validation ELBO of the returned parameters (per example, with
            the fixed sampling key :func:`validation_key`).
        orientation: With ``orient_shared``: the search of the shared block's axes and its
            decision (``personax.crl._orient.orient_shared``); else empty.
        reordering: With ``order_search``: the search of the within-block orders and its
            decision (``personax.crl._order.order_blocks``); else empty.
        resumed_at_epoch: When :func:`fit` resumed from a checkpoint, the epochs that
            checkpoint had done (0 to ``max_epochs``); else None. Like ``fit_seconds`` it
            describes this process's fit and is not saved with the model.
        start_val_elbo: After a warm start (``fit(..., initial_params=...)``): each restart's
            validation ELBO where it started, before any epoch; else None. Not saved either.
        selection_val_elbo: With ``fit(..., restart_draws=k)``, k > 1, and several restarts: each
            restart's best parameters' validation ELBO averaged over the k draws the choice among
            them compared; else None. Not saved either.
        restart_params: With several restarts (not warm starts): every restart's best parameters,
            in restart order, as training left them, before any search after the fit
            (``orient_shared``, ``order_search``); ``chosen_restart`` indexes the one returned.
            Their latents' agreement is a check of reproducibility that needs no ground truth
            (:func:`personax.crl.diagnostics.restart_agreement`). Else None. Not saved either.
        chosen_restart: The index of the returned restart in ``restart_params``; else None.
    """

    config: CRLConfig
    params: Any
    standardization: dict[str, tuple[np.ndarray, np.ndarray]]
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    splits: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    fit_seconds: float = 0.0
    stopped: str = ""
    best_val_elbo: float = float("nan")
    orientation: dict[str, Any] = dataclasses.field(default_factory=dict)
    reordering: dict[str, Any] = dataclasses.field(default_factory=dict)
    resumed_at_epoch: int | None = None
    start_val_elbo: list[float] | None = None
    selection_val_elbo: list[float] | None = None
    restart_params: list[Any] | None = None
    chosen_restart: int | None = None

    @property
    def module(self) -> CausalMultimodalVAE:
        return CausalMultimodalVAE(self.config)

    def _standardise(self, modalities) -> dict[str, np.ndarray]:
        expected = {m: self.config.measurements[m] for m in self.config.latent_dims}
        given = {m: len(modalities[m]) if m in modalities else 0 for m in expected}
        if given != expected:
            raise ValueError(f"this model was trained on {expected} measurements per modality; got {given} "
                             "(give the same modalities and measurements, in the same order)")
        return _standardised_with_masks(_flatten(modalities, self.config), self.standardization, self.config)

    def adjacency(self) -> np.ndarray:
        """The effective weighted adjacency ``[parent, child]`` (a DAG by construction)."""
        if self.config.prior != "causal":
            return np.zeros((self.config.total_latent,) * 2)  # a model without a causal prior has no graph
        return np.asarray(self.module.apply({"params": self.params}, method=CausalMultimodalVAE.weighted_adjacency))

    def mixture_weights(self) -> np.ndarray | None:
        """The learned weight of each measurement's proposal in the mixture for ``s``
        (``shared_posterior="learned_mixture"``), in the order of ``measurement_keys``, for a
        person with every measurement (a person lacking some renormalises over the rest); None
        for another posterior."""
        if self.config.shared_posterior != "learned_mixture" or not self.config.shared_dim:
            return None
        logits = np.asarray(self.params["mixture_logits"], np.float64)
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def block_decoder_weights(self, modality: str) -> list[np.ndarray]:
        """For a ``sparse_decoder`` modality: per measurement, the sparse weights W[l, c] of the
        modality's own latents z(m)_l on its columns c, shape (latent_dims[modality], columns).
        Zero means column c does not depend on that latent.

        Raises:
            ValueError: ``modality`` has no sparse decoder.
        """
        c = self.config
        if modality not in c.sparse_decoder:
            raise ValueError(f"modality {modality!r} has no sparse decoder (sparse_decoder: {c.sparse_decoder})")
        rows = sparse_block_rows(c, modality)
        return [np.asarray(self.params[f"decoders_{modality}_{k}"]["weight"])[rows]
                for k in range(c.measurements[modality])]

    def shared_proposals(self, modalities: Mapping[str, Sequence[np.ndarray]], *,
                         chunk: int = 4096) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each measurement's own proposal for ``s`` (its encoder's mean, before the posterior
        combines them), ``{"{modality}_{k}": (mean (rows, shared_dim), present (rows,) bool)}``;
        excluded measurements (``shared_experts_excluded``) included."""
        data = self._standardise(modalities)
        n = len(next(iter(data.values())))
        view_means = _method_program(self.config, CausalMultimodalVAE.view_means)
        pieces = [view_means(self.params, {k: v[i : i + chunk] for k, v in data.items()}) for i in range(0, n, chunk)]
        return {name: (np.concatenate([np.asarray(p[name][0]) for p in pieces]),
                       np.concatenate([np.asarray(p[name][2]) for p in pieces]) > 0) for name in pieces[0]}

    def encode(self, modalities: Mapping[str, Sequence[np.ndarray]], *, chunk: int = 4096) -> dict[str, np.ndarray]:
        """Posterior means: ``"shared"`` and one array per modality."""
        data = self._standardise(modalities)
        n = len(next(iter(data.values())))
        encode = _method_program(self.config, CausalMultimodalVAE.encode)
        pieces = [encode(self.params, {k: v[i : i + chunk] for k, v in data.items()}) for i in range(0, n, chunk)]
        return {name: np.concatenate([np.asarray(p[name]) for p in pieces]) for name in pieces[0]}

    def encode_restarts(self, modalities: Mapping[str, Sequence[np.ndarray]], *,
                        chunk: int = 4096) -> list[dict[str, np.ndarray]]:
        """Posterior means under every restart's parameters (``restart_params``), in restart order:
        the input of :func:`personax.crl.diagnostics.restart_agreement`. Raises ValueError for a
        model fitted with one restart, or loaded from disk (the restarts are not saved)."""
        if not self.restart_params:
            raise ValueError("this model keeps no restarts: fit with restarts >= 2 (they are not saved with the model)")
        return [dataclasses.replace(self, params=params).encode(modalities, chunk=chunk) for params in self.restart_params]

    def elbo(self, modalities: Mapping[str, Sequence[np.ndarray]], *, auxiliary: np.ndarray | None = None,
             seed: int | None = None) -> float:
        """Mean ELBO per example on (standardised) data; by default with the sampling
        key that scored the validation split, so ``elbo(validation rows)`` equals
        ``best_val_elbo``. A model fitted with auxiliary covariates needs them here."""
        data = self._standardise(modalities)
        if self.config.auxiliary_dim:
            if auxiliary is None:
                raise ValueError(f"this model's prior is conditioned on {self.config.auxiliary_dim} auxiliary "
                                 "covariates: pass auxiliary=")
            data[AUXILIARY] = np.asarray(auxiliary, np.float32).reshape(len(auxiliary), -1)
        key = validation_key(self.config) if seed is None else jax.random.key(seed)
        elbo = _cached_program("elbo", self.config, lambda c: jax.jit(  # one program, not one per operation
            lambda p, b, k: jnp.mean(CausalMultimodalVAE(c).apply({"params": p}, b, k)[0])))
        return float(elbo(self.params, data, key))

    def edge_effects(self, modalities: Mapping[str, Sequence[np.ndarray]]) -> pd.DataFrame:
        """Each edge's standardised effect on these people: the standard deviation of its term
        ``A_ij g_ij(u_i)`` over the rows, divided by the child's ``u_j`` (posterior means).

        ``|A_ij|`` is an edge's strength only for latents of about unit scale, the grid on which the
        edge functions are normalised; the latents' scale is not fixed by the ELBO, and with the
        InfoNCE term (whose similarity grows with it) fitted latents sit far from it (the numeric
        benchmark: standard deviations 6-17). This effect does not depend on that scale; compare
        edges by it, not by ``|A|``. Zero exactly where ``A`` is; NaN on an edge into a child latent
        that is constant on these rows (``COLLAPSED_FRACTION``).

        Raises:
            ValueError: the model's prior has no additive edges (``mechanism: mlp`` or a Gaussian prior).
        """
        c = self.config
        if not c.additive_edges:
            raise ValueError("edge effects need the causal prior with additive mechanisms "
                             f"(this model: prior {c.prior!r}, mechanism {c.mechanism!r})")
        encoded = self.encode(modalities)
        n = len(next(iter(encoded.values())))
        latents = np.concatenate([encoded.get(block, np.zeros((n, 0))) for block in c.block_slices()], axis=1)
        return pd.DataFrame(standardised_edge_effects(self.params, self.adjacency(), latents),
                            index=c.latent_names, columns=c.latent_names)

    def graph(self, *, threshold: float | None = None) -> pd.DataFrame:
        """Weighted adjacency over the latent names (entry [parent, child]).

        By default (``graph_threshold`` 0) the edges are exactly the model's nonzero
        entries: the ones its likelihood uses.
        """
        weights = self.adjacency()
        cut = self.config.graph_threshold if threshold is None else threshold
        weights = np.where(np.abs(weights) > cut, weights, 0.0) if cut > 0 else weights
        return pd.DataFrame(weights, index=self.config.latent_names, columns=self.config.latent_names)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Writes ``config.json`` and ``weights.msgpack`` (no pickle anywhere)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = serialization.to_bytes(self.params)
        payload = {
            "format": FORMAT,
            "config": dataclasses.asdict(self.config),
            "standardization": {k: [m.tolist(), s.tolist()] for k, (m, s) in self.standardization.items()},
            "history": self.history,
            "best_val_elbo": self.best_val_elbo,
            "stopped": self.stopped,
            "orientation": self.orientation,
            "reordering": self.reordering,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "weights_shapes": _shapes(self.params),
        }
        (directory / "config.json").write_text(json.dumps(payload, indent=2))
        (directory / "weights.msgpack").write_bytes(weights)
        return directory


# CRLConfig's container options, as config.json (lists) or a Hydra config (DictConfig, None) give them
_OPTION_TYPES = {
    "hidden": lambda v: tuple(int(h) for h in v),
    "image_shapes": lambda v: {str(m): tuple(int(d) for d in shape) for m, shape in dict(v or {}).items()},
    "sparse_decoder": lambda v: {str(m): float(w) for m, w in dict(v or {}).items()},
    "ordinal": lambda v: {str(m): int(levels) for m, levels in dict(v or {}).items()},
}


def _typed_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with CRLConfig's container options (those given) in the types it holds."""
    return {k: _OPTION_TYPES[k](v) if k in _OPTION_TYPES else v for k, v in values.items()}


def _config_from_json(fields: Mapping[str, Any]) -> CRLConfig:
    known = {f.name: f for f in dataclasses.fields(CRLConfig)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise ValueError(f"config.json has unknown fields {unknown}")
    values = _typed_options(fields)
    for name in ("latent_dims", "measurements"):
        values[name] = {str(k): int(v) for k, v in values[name].items()}
    values["input_dims"] = {str(k): int(v) if isinstance(v, (int, float)) else tuple(int(w) for w in v)
                            for k, v in values["input_dims"].items()}
    return CRLConfig(**values)


def _shapes(params: Any) -> dict[str, list[int]]:
    """Parameter path -> shape, e.g. ``{"decoders_text_0/Dense_0/kernel": [5, 128], ...}``."""
    flat = serialization.to_state_dict(params)
    out: dict[str, list[int]] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        else:
            out[prefix] = [int(d) for d in np.shape(node)]

    walk(flat, "")
    return out


def load_pretrained(directory: str | Path) -> FittedCRL:
    """Loads a model written by :meth:`FittedCRL.save_pretrained`, checking it at load time.

    Only JSON and msgpack are read, into a parameter structure built from the
    config: loading a directory from an untrusted source cannot execute code. The
    weights file must match the SHA-256 recorded in ``config.json`` (a truncated or
    swapped file fails here, naming it), every parameter must have the shape the
    config implies, and every weight and standardisation scale must be finite (scales
    positive): a broken model fails at load instead of encoding non-finite latents.

    Raises:
        ValueError: naming the file and, where it applies, the parameter.
    """
    directory = Path(directory)
    config_file, weights_file = directory / "config.json", directory / "weights.msgpack"
    try:
        payload = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_file}: cannot read the model's config ({error})") from error
    if payload.get("format") == "personax-crl-v1":
        raise ValueError(f"{config_file}: saved by an older personax (format personax-crl-v1: no weights digest, "
                         "a graph without learned order); refit the model")
    if payload.get("format") != FORMAT:
        raise ValueError(f"{config_file} is not a personax CRL model (format {payload.get('format')!r})")
    config = _config_from_json(payload["config"])
    try:
        weights = weights_file.read_bytes()
    except OSError as error:
        raise ValueError(f"{weights_file}: cannot read the weights ({error})") from error
    expected = payload.get("weights_sha256")
    if not isinstance(expected, str):
        raise ValueError(f"{config_file} records no weights_sha256: the integrity of {weights_file.name} cannot be checked")
    if hashlib.sha256(weights).hexdigest() != expected:
        raise ValueError(f"{weights_file}: SHA-256 {hashlib.sha256(weights).hexdigest()[:16]}... does not match "
                         f"{expected[:16]}... recorded in {config_file.name} (truncated, corrupted or replaced)")
    # Only the parameters' structure and shapes are needed: traced, nothing compiled or run.
    structure = jax.eval_shape(lambda key: _init_params(config, key), jax.random.key(0))
    template = jax.tree_util.tree_map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), structure)
    try:
        params = serialization.from_bytes(template, weights)
    except Exception as error:  # msgpack and flax raise several types; all mean "not these weights"
        raise ValueError(f"{weights_file}: not the weights of this model ({type(error).__name__}: {error})") from error
    wanted, found = _shapes(template), _shapes(params)
    recorded = payload.get("weights_shapes", found)
    for name, shape in wanted.items():
        for label, shapes in (("weights file", found), ("config.json", recorded)):
            if shapes.get(name) != shape:
                raise ValueError(f"{weights_file}: parameter {name} has shape {shapes.get(name)} in the {label} but the "
                                 f"config implies {shape}")
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, value in leaves:
        if not np.isfinite(np.asarray(value)).all():
            raise ValueError(f"{weights_file}: parameter {jax.tree_util.keystr(path)} has non-finite values")
    standardization = {}
    for name, (mean, scale) in payload["standardization"].items():
        mean, scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        modality, k = name.rsplit("_", 1)
        expected = input_dim(config, modality, int(k)) if modality in config.input_dims and k.isdigit() else -1
        if mean.shape != scale.shape or mean.shape != (expected,):
            raise ValueError(f"{config_file}: standardization[{name!r}] has shapes {mean.shape}/{scale.shape}, "
                             f"expected ({expected},)")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"{config_file}: standardization[{name!r}] has a non-finite mean or a scale that is not "
                             "positive and finite")
        standardization[name] = (mean, scale)
    missing = {f"{m}_{k}" for m, k in measurement_keys(config)} - set(standardization)
    if missing:
        raise ValueError(f"{config_file}: no standardization for {sorted(missing)}")
    return FittedCRL(config=config, params=params, standardization=standardization, history=payload.get("history", []),
                     best_val_elbo=float(payload.get("best_val_elbo", float("nan"))), stopped=payload.get("stopped", ""),
                     orientation=payload.get("orientation", {}), reordering=payload.get("reordering", {}))


def validation_key(config: CRLConfig) -> jax.Array:
    """The fixed sampling key of validation ELBOs (comparable across epochs and with :meth:`FittedCRL.elbo`)."""
    return jax.random.key(config.seed + 1)


def learning_rate_cuts(history: Sequence[Mapping[str, Any]]) -> list[int]:
    """The epochs that trained at a lower learning rate than the epoch before them: where the
    "plateau" schedule cut it (none for the cosine schedule, whose history records no rate).

    Example:
        >>> learning_rate_cuts([{"epoch": 1, "learning_rate": 2e-3}, {"epoch": 2, "learning_rate": 6e-4},
        ...                     {"epoch": 3, "learning_rate": 6e-4}, {"epoch": 4}])
        [2]
    """
    rates = [(entry["epoch"], entry.get("learning_rate")) for entry in history]
    return [epoch for (_, before), (epoch, rate) in zip(rates, rates[1:])
            if before is not None and rate is not None and rate < before]


def _placed(shapes: Any, sharding: Any) -> Any:
    """Shapes (``jax.eval_shape``'s output, or the arrays themselves) placed on ``sharding`` (None: the
    default device), to compile ahead of time."""
    if sharding is None:
        return shapes
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def _init_params(config: CRLConfig, key: jax.Array):
    # lazy_init traces only the parameter initialisers (the same values as init), so the
    # compiled program does not carry a forward pass.
    batch = {f"{m}_{k}": jax.ShapeDtypeStruct((2, input_dim(config, m, k)), jnp.float32) for m, k in measurement_keys(config)}
    batch.update({level_key(f"{m}_{k}"): jax.ShapeDtypeStruct((2, input_dim(config, m, k)), jnp.int32)
                  for m, k in measurement_keys(config) if m in config.ordinal})
    if config.auxiliary_dim:
        batch[AUXILIARY] = jax.ShapeDtypeStruct((2, config.auxiliary_dim), jnp.float32)
    return CausalMultimodalVAE(config).lazy_init(key, batch, jax.ShapeDtypeStruct(key.shape, key.dtype))["params"]


def _split(n: int, config: CRLConfig) -> dict[str, np.ndarray]:
    order = np.random.default_rng(config.seed).permutation(n)
    n_test, n_val = int(round(n * config.test_fraction)), int(round(n * config.val_fraction))
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test : n_test + n_val]),
            "train": np.sort(order[n_test + n_val :])}


@dataclasses.dataclass(frozen=True)
class _TrainingPrograms:
    """A fit's jitted functions (see :func:`_training_programs`)."""

    schedule: Any  # the learning rate at a step (the plateau cuts enter the epoch as a scale)
    optimizer_init: Any  # restarts' parameters -> their optimiser states
    init: Any  # restart keys -> fresh parameters, one set per key
    epoch: Any  # (params, opt states, keys, lr scales, training rows) -> one epoch later, and the mean loss
    validation: Any  # (params, key, rows) -> each restart's mean ELBO on the rows
    keep_improved: Any  # (improved, new, old) -> new where a restart improved, else old


# Programs built for recent configurations in this process, least recently used first (each holds
# its traces and compiled code, so only a handful are kept).
_PROGRAMS: dict[tuple, Any] = {}
_PROGRAMS_KEPT = 8  # a stage's fit and training on use about 7; ~50 MB each for a small model


def _cached_program(kind: str, config: CRLConfig, build: Callable[[CRLConfig], Any], *sizes: Any) -> Any:
    """``build(config)`` once per process for a kind of program, configuration and sizes.

    A later fit or model of the same configuration (another seed, a resumed or repeated stage, a
    benchmark's next seed, in the same process) gets the same jitted functions, so jit reuses their
    traces and compiled code instead of tracing the model again (about 5 s each for the stage's
    initialisation and epoch on 2 CPU cores). The programs depend on the configuration but not on
    its seed, which only picks the keys passed to them: they are built from the configuration with
    seed 0, so two seeds cannot get different programs.
    """
    config = dataclasses.replace(config, seed=0)
    cache_key = (kind, repr(config), *sizes)
    if cache_key in _PROGRAMS:
        _PROGRAMS[cache_key] = _PROGRAMS.pop(cache_key)  # most recently used last
    else:
        _PROGRAMS[cache_key] = build(config)
        while len(_PROGRAMS) > _PROGRAMS_KEPT:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
    return _PROGRAMS[cache_key]


def _method_program(config: CRLConfig, method: Callable) -> Callable[[Any, dict], Any]:
    """(params, batch) -> ``method`` of this configuration's model (``CausalMultimodalVAE.encode``,
    ``.view_means``), jitted (see :func:`_cached_program`)."""
    return _cached_program(method.__name__, config, lambda c: jax.jit(
        lambda p, b: CausalMultimodalVAE(c).apply({"params": p}, b, method=method)))


def _init_program(config: CRLConfig) -> Callable[[jax.Array], Any]:
    """A key -> fresh parameters of this configuration's model, jitted (see :func:`_cached_program`)."""
    return _cached_program("init", config, lambda c: jax.jit(functools.partial(_init_params, c)))


def _restart_init(config: CRLConfig) -> Callable[[jax.Array], Any]:
    """Restart keys -> one set of fresh parameters per key, stacked.

    The single-key program (:func:`_init_program`) is called per key rather than vmapped: the
    shared block's and the within-block orders' searches initialise from it too, so a fit and its
    searches compile the model's initialisation once instead of twice (the stage default's took about
    7 s to compile at XLA's default level on 2 CPU cores; docs/crl.md, "Benchmark"). Runs
    once per fit, for a handful of restarts; the values are those of the vmapped program (a key's
    random bits do not depend on the batch it is drawn in; tests/crl/test_program_reuse.py).
    """
    single = _init_program(config)

    def init(keys: jax.Array) -> Any:
        return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *[single(key) for key in keys])

    return init


def _training_programs(config: CRLConfig, *, n_train: int, batch_size: int, n_batches: int,
                       sharding: Any) -> _TrainingPrograms:
    """The jitted functions of a fit of ``n_train`` training rows (see :func:`_cached_program`)."""
    return _cached_program("training", config,
                           functools.partial(_build_training_programs, n_train=n_train, batch_size=batch_size,
                                             n_batches=n_batches, sharding=sharding),
                           n_train, batch_size, n_batches, repr(sharding))


def _build_training_programs(config: CRLConfig, *, n_train: int, batch_size: int, n_batches: int,
                             sharding: Any) -> _TrainingPrograms:
    module = CausalMultimodalVAE(config)
    # Cosine decay to a tenth over max_epochs: the late epochs refine instead of jitter. Under
    # "plateau" the rate is constant here and each restart's cuts enter as a scale per epoch.
    plateau = config.lr_schedule == "plateau"
    schedule = (optax.constant_schedule(config.learning_rate) if plateau
                else optax.cosine_decay_schedule(config.learning_rate, config.max_epochs * n_batches, alpha=0.1))
    optimizer = optax.adam(schedule)
    sparse_decoders = {f"decoders_{m}_{k}": float(config.sparse_decoder[m])
                       for m, k in measurement_keys(config) if m in config.sparse_decoder}

    def loss_fn(p, batch, rng):
        # One encoder pass serves the ELBO and the contrastive term.
        _, log_lik, rest, *views = module.apply({"params": p}, batch, rng, with_views=bool(config.contrastive))
        loss = -jnp.mean(log_lik + config.beta * rest) + config.weight_decay * mechanism_decay(p)
        if config.contrastive:  # multiview InfoNCE on the latents the views share
            loss = loss + config.contrastive * multiview_infonce(
                views[0], temperature=config.contrastive_temperature, pairs=config.contrastive_pairs)
        return loss

    def step(carry, rows, train, lr_scale):
        p, state, rng = carry
        rng, sub = jax.random.split(rng)
        batch = {k: v[rows] for k, v in train.items()}
        if sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, sharding)
        loss, grads = jax.value_and_grad(loss_fn)(p, batch, sub)
        step_size = schedule(state[-1].count)  # adam's chain ends with the schedule's step counter
        updates, state = optimizer.update(grads, state, p)
        if plateau:  # the restart's learning rate after its cuts (static: the cosine program is unchanged)
            step_size = step_size * lr_scale
            updates = jax.tree_util.tree_map(lambda u: u * lr_scale, updates)
        p = optax.apply_updates(p, updates)
        # Proximal L1 step in Adam's metric: exact zeros, and |A| (or each edge's effect) decides which edges stay.
        l1_graph = config.l1_graph
        if config.l1_graph_on == "effect":  # the penalty on each edge's standardised effect (CRLConfig)
            l1_graph = l1_graph * module.apply({"params": p}, batch, method=CausalMultimodalVAE.effect_scales)
        p = proximal_l1_at(p, state[0], ("adjacency",), step_size, l1_graph)
        for name in sparse_decoders:  # the same step on the sparse decoders' column weights
            p = proximal_l1_at(p, state[0], (name, "weight"), step_size, sparse_decoders[name])
        return (p, state, rng), loss

    def one_epoch(p, state, rng, lr_scale, train):
        rng, perm_key = jax.random.split(rng)
        order = jax.random.permutation(perm_key, n_train)[: n_batches * batch_size]
        (p, state, rng), losses = jax.lax.scan(functools.partial(step, train=train, lr_scale=lr_scale), (p, state, rng),
                                               order.reshape(n_batches, batch_size))
        return p, state, rng, jnp.mean(losses)

    @jax.jit
    def keep_improved(improved, new, old):
        return jax.tree_util.tree_map(
            lambda a, b: jnp.where(improved.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)

    # The data are arguments, not constants folded into the programs, so a program's key in the
    # compilation cache depends on the shapes alone (the same for every seed of a cohort size).
    return _TrainingPrograms(
        schedule=schedule,
        optimizer_init=jax.jit(jax.vmap(optimizer.init)),
        init=_restart_init(config),
        epoch=jax.jit(jax.vmap(one_epoch, in_axes=(0, 0, 0, 0, None))),
        validation=jax.jit(jax.vmap(lambda p, rng, rows: jnp.mean(module.apply({"params": p}, rows, rng)[0]),
                                    in_axes=(0, None, None))),
        keep_improved=keep_improved)


def fit(
    modalities: Mapping[str, Sequence[np.ndarray]],
    *,
    latent_dims: Mapping[str, int],
    shared_dim: int,
    seed: int = 0,
    auxiliary: np.ndarray | None = None,
    progress: bool = False,
    initial_params: Any = None,
    checkpoint: str | os.PathLike[str] | None = None,
    restart_preference: Sequence[float] | None = None,
    restart_draws: int = 1,
    **overrides: Any,
) -> FittedCRL:
    """Fits the causal multimodal VAE.

    Args:
        modalities: modality name -> list of measurement arrays (n x d each, same rows).
        latent_dims: modality name -> size of its block z(m); the order of this
            mapping is the causal order of the blocks (earlier may cause later).
        shared_dim: Size of the shared block s.
        seed: Seed of splits, initialisation and sampling.
        auxiliary: Optional (n, a) observed covariates (e.g. one-hot group and
            gender) that modulate the latent prior (iVAE); numeric, finite, same rows.
        progress: Show a progress bar (tqdm) with the validation ELBO.
        initial_params: Start from these parameters (a :class:`FittedCRL`'s ``params`` for the same
            configuration) instead of a random initialisation: a warm start. A list of them trains
            each as a restart, side by side, and keeps the best validation ELBO. Warm starts share
            one random stream (the same batches and sampling noise): a paired comparison, where
            the restarts differ only by where they start.
        checkpoint: A file for the training loop's state, saved every 30 s and when training
            ends; a fit given a checkpoint of the same configuration and data resumes from it
            and returns the model an uninterrupted fit on this machine would
            (:mod:`personax.crl._checkpoint`).
            The searches after the training (``orient_shared``, ``order_search``) run again, and
            the training on after them resumes from its own state in the same file; a warm
            start (``initial_params``) adds its state there beside the others. The caller
            removes the file when done with it.
        restart_preference: Nats per person added to each restart's best validation ELBO when
            choosing the one returned (default: none; the best is returned). With warm starts
            this keeps a candidate unless another beats it by more than its preference.
            The returned ``best_val_elbo`` is the chosen restart's own.
        restart_draws: With several restarts, choose among their best parameters by the validation
            ELBO averaged over this many draws of the sampling noise (the same draws for every
            restart), not by the fixed validation key's single draw (default 1: that draw). The
            epochs, early stopping and each restart's best parameters are unchanged; the means are
            ``selection_val_elbo``.
        **overrides: Any :class:`CRLConfig` field (``max_epochs``, ``batch_size``, ...).

    Measurements may contain NaN for missing entries (e.g. a rater's "insufficient
    information"): those entries are left out of the likelihood.

    Returns:
        The model with the parameters of the best validation ELBO (early stopping on
        the validation split only; the test split is never looked at). The returned
        parameters are exactly the ones that scored ``best_val_elbo``. A warm start's own
        parameters are scored before the first epoch and count among them, so training
        on from a model never returns one that scores below where it started.
    """
    latent_dims = dict(latent_dims)
    n, fields = _data_fields(modalities, latent_dims, shared_dim, seed)
    overrides = _typed_options(overrides)
    shapes = overrides.pop("image_shapes", {})
    for m, shape in shapes.items():
        if m not in latent_dims or len(shape) != 3:
            raise ValueError(f"image_shapes[{m!r}] = {shape}: needs a modality name and (height, width, channels)")
        if fields["input_dims"][m] != int(np.prod(shape)):
            raise ValueError(f"image_shapes[{m!r}] = {shape} has {int(np.prod(shape))} values but the measurements "
                             f"have {fields['input_dims'][m]} (every measurement of an image modality has this shape)")
    if auxiliary is not None:
        auxiliary = np.asarray(auxiliary, dtype=np.float32).reshape(n, -1) if len(auxiliary) == n else None
        if auxiliary is None:
            raise ValueError("auxiliary covariates need one row per person (same rows as the measurements)")
        if not np.isfinite(auxiliary).all():
            row, column = np.argwhere(~np.isfinite(auxiliary))[0]
            raise ValueError(f"auxiliary covariates row {row} column {column} is not finite")
        fields["auxiliary_dim"] = int(auxiliary.shape[1])
    config = CRLConfig(**fields, image_shapes=shapes, **overrides)
    splits = _split(n, config)
    flat = _flatten(modalities, config)
    if config.shared_experts_excluded:
        proposing = [~np.isnan(x).all(axis=1) for name, x in flat.items() if name not in config.shared_experts_excluded]
        unproposed = np.flatnonzero(~np.logical_or.reduce(proposing))
        if len(unproposed):
            raise ValueError(f"row {int(unproposed[0])} (and {len(unproposed) - 1} more) has no observed measurement left "
                             f"to propose s (shared_experts_excluded = {list(config.shared_experts_excluded)}): "
                             "drop those rows, or exclude fewer measurements")
    train_rows = splits["train"]
    standardization = {}
    for name, x in flat.items():
        seen = np.isfinite(x[train_rows]).sum(0)
        if (seen == 0).any():
            raise ValueError(f"measurement {name!r} column {int(np.argmin(seen))} has no observed value in the "
                             f"{len(train_rows)} training rows")
        mean, std = np.nanmean(x[train_rows], 0), np.nanstd(x[train_rows], 0)
        standardization[name] = (mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32))
    data = _standardised_with_masks(flat, standardization, config)
    if auxiliary is not None:
        data[AUXILIARY] = auxiliary

    devices = jax.devices()
    batch_size = min(config.batch_size, len(train_rows))
    batch_size -= batch_size % len(devices) if batch_size >= len(devices) else 0
    n_batches = max(1, len(train_rows) // batch_size)
    sharding = None
    if len(devices) > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(devices), ("data",))
        sharding = NamedSharding(mesh, PartitionSpec("data"))
        replicated = NamedSharding(mesh, PartitionSpec())

    key = jax.random.key(config.seed)
    key, init_key = jax.random.split(key)
    # `restarts` independent initialisations train side by side (vmapped); the one with the
    # best validation ELBO is kept (model selection on the validation split only).
    if isinstance(initial_params, Mapping):
        initial_params = [initial_params]
    restarts = len(initial_params) if initial_params is not None else max(1, int(config.restarts))
    if restart_preference is not None and np.shape(restart_preference) != (restarts,):
        raise ValueError(f"restart_preference has {np.size(restart_preference)} entries for {restarts} restarts")
    if int(restart_draws) < 1:
        raise ValueError(f"restart_draws must be at least 1, got {restart_draws}")
    programs = _training_programs(config, n_train=len(train_rows), batch_size=batch_size, n_batches=n_batches,
                                  sharding=sharding)
    schedule, optimizer_init, epoch_fn, validation_fn, keep_improved = (
        programs.schedule, programs.optimizer_init, programs.epoch, programs.validation, programs.keep_improved)
    plateau = config.lr_schedule == "plateau"
    if initial_params is not None:  # warm starts: the given parameters, one restart each
        warm = jax.tree_util.tree_map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *initial_params)
        init = jax.jit(lambda keys: warm)
    else:
        init = programs.init
    init_keys = jax.random.split(init_key, restarts)
    train = {k: jnp.asarray(v[train_rows]) for k, v in data.items()}
    val = {k: jnp.asarray(v[splits["val"]]) for k, v in data.items()}

    start = time.perf_counter()
    keys = jax.random.split(key, restarts)
    if initial_params is not None:
        # Common random numbers: warm starts are compared by where they start, not by their noise
        # (two streams alone moved a 60-epoch validation ELBO by 0.7 nats on the numeric benchmark).
        keys = jnp.broadcast_to(keys[0], keys.shape)
    val_key = validation_key(config)  # fixed sampling noise: comparable across epochs
    from tqdm.auto import tqdm

    # Shown from the start: compiling takes tens of seconds before the first epoch.
    bar = tqdm(total=config.max_epochs, desc="crl (compiling)", unit="epoch", disable=not progress, leave=False)
    # The training epoch, the validation ELBO and the initialisation compile side by side (XLA
    # releases the GIL while it compiles), from the shapes of their inputs alone: about 6 s less
    # wall time per stage-default fit on 2 CPU cores (experiments/benchmarks/results/crl_compile_ab.md).
    placement = replicated if sharding is not None else None
    param_shapes = _placed(jax.eval_shape(init, init_keys), placement)
    state_shapes = _placed(jax.eval_shape(optimizer_init, param_shapes), placement)
    train_shapes, val_shapes = _placed(train, placement), _placed(val, placement)
    scale_shape = jax.ShapeDtypeStruct((restarts,), jnp.float32, sharding=placement)

    def fresh(params: Any, opt_state: Any) -> _checkpoint.TrainingState:
        return _checkpoint.TrainingState(
            epochs_done=0, params=params, opt_state=opt_state, keys=keys, best_params=params,
            best=np.full(restarts, -np.inf),
            patience_reference=np.full(restarts, -np.inf),  # the best ELBO that last beat its predecessor by min_delta
            waited=np.zeros(restarts, dtype=int), lr_scale=np.ones(restarts, dtype=np.float32),
            cuts=np.zeros(restarts, dtype=int), train_loss=np.zeros((0, restarts)),
            val_elbo=np.zeros((0, restarts)), learning_rate=np.zeros((0, restarts)), stopped=None, elapsed_s=0.0)

    resumed = None
    checkpointing = checkpoint is not None
    if checkpointing:  # a warm start's state is keyed by where it starts too
        checkpoint_print = _checkpoint.fingerprint(config, {"train": train, "val": val}, restarts,
                                                   initial_params=initial_params)
        resumed = _checkpoint.load(checkpoint, fingerprint=checkpoint_print, template=fresh(param_shapes, state_shapes))
    if resumed is not None:
        log.info("crl: resuming the %s from its checkpoint %s after epoch %d of %d%s",
                 "fit" if initial_params is None else "training on from a warm start", checkpoint,
                 resumed.epochs_done, config.max_epochs,
                 f" (training had ended: {resumed.stopped})" if resumed.stopped else "")
        arrays = (resumed.params, resumed.opt_state, resumed.best_params)
        arrays = jax.device_put(arrays, replicated) if sharding is not None else jax.device_put(arrays)
        state = dataclasses.replace(resumed, params=arrays[0], opt_state=arrays[1], best_params=arrays[2])
    training_left = resumed is None or resumed.stopped is None
    if training_left:  # compile the training programs
        with ThreadPoolExecutor(max_workers=2) as pool:
            epoch_compiled = pool.submit(
                lambda: epoch_fn.lower(param_shapes, state_shapes, keys, scale_shape,
                                       train_shapes).compile())
            validation_compiled = pool.submit(lambda: validation_fn.lower(param_shapes, val_key, val_shapes).compile())
            if resumed is None:
                params = init(init_keys)
                opt_state = optimizer_init(params)
                if sharding is not None:
                    params, opt_state = jax.device_put((params, opt_state), replicated)
                state = fresh(params, opt_state)
            if sharding is not None:
                train, val = jax.device_put((train, val), replicated)
            epoch_program, validation_program = epoch_compiled.result(), validation_compiled.result()

    def epoch(params, opt_state, keys, lr_scale):
        lr_scale = jax.device_put(lr_scale, replicated) if sharding is not None else jnp.asarray(lr_scale)
        return epoch_program(params, opt_state, keys, lr_scale, train)

    def validation_elbo(params, key):
        return validation_program(params, key, val)

    score = validation_program if training_left else validation_fn  # a resumed, ended fit compiled none
    start_val_elbo = None
    if initial_params is not None:
        # A warm start's parameters are a candidate too: scored once before the first epoch (with
        # the same fixed key), so the training on keeps them unless an epoch scores higher. The
        # patience is left alone: the epochs run as before, only the choice at the end can differ.
        start_params = init(init_keys)
        if sharding is not None:
            start_params = jax.device_put(start_params, replicated)
        start_val_elbo = np.asarray(score(start_params, val_key, val), dtype=np.float64)
        if resumed is None:
            state = dataclasses.replace(state, best=np.nan_to_num(start_val_elbo, nan=-np.inf))
    params, opt_state, keys, best_params = state.params, state.opt_state, state.keys, state.best_params
    best, patience_reference, waited = state.best, state.patience_reference, state.waited
    lr_scale, cuts = state.lr_scale.astype(np.float32), state.cuts
    # per epoch: training loss, validation ELBO and learning rate of every restart
    curves: list[tuple[np.ndarray, ...]] = list(zip(state.train_loss, state.val_elbo, state.learning_rate))
    stopped = state.stopped
    start -= state.elapsed_s  # fit_seconds counts the interrupted process's time too

    def save_checkpoint(epochs_done: int, stopped: str | None) -> float:
        _checkpoint.save(checkpoint, _checkpoint.TrainingState(
            epochs_done=epochs_done, params=params, opt_state=opt_state, keys=keys, best_params=best_params,
            best=best, patience_reference=patience_reference, waited=waited, lr_scale=lr_scale, cuts=cuts,
            train_loss=np.asarray([c[0] for c in curves]).reshape(-1, restarts),
            val_elbo=np.asarray([c[1] for c in curves]).reshape(-1, restarts),
            learning_rate=np.asarray([c[2] for c in curves]).reshape(-1, restarts), stopped=stopped,
            elapsed_s=time.perf_counter() - start), fingerprint=checkpoint_print, beside=initial_params is not None)
        return time.perf_counter()

    bar.set_description("crl")
    bar.update(len(curves))
    last_saved = time.perf_counter()
    for index in range(len(curves), config.max_epochs) if stopped is None else ():
        # The graph is a DAG at every step and nothing is pruned afterwards, so the
        # parameters scored here are exactly the ones returned.
        rate = np.asarray(schedule(index * n_batches), dtype=np.float64) * lr_scale  # at the epoch's first step
        params, opt_state, keys, train_loss = epoch(params, opt_state, keys, lr_scale)
        val_elbo = np.asarray(validation_elbo(params, val_key), dtype=np.float64)
        curves.append((np.asarray(train_loss, dtype=np.float64), val_elbo, rate))
        if not np.isfinite(val_elbo).any():
            raise FloatingPointError(f"training diverged at epoch {index + 1} (validation ELBO {val_elbo})")
        improved = np.nan_to_num(val_elbo, nan=-np.inf) > best
        best = np.where(improved, val_elbo, best)
        progressed = np.nan_to_num(val_elbo, nan=-np.inf) > patience_reference + config.min_delta
        patience_reference = np.where(progressed, val_elbo, patience_reference)
        waited = np.where(progressed, 0, waited + 1)
        best_params = keep_improved(jnp.asarray(improved), params, best_params)
        if plateau:  # a restart on a plateau with cuts left goes on at a lower rate
            cut = (waited >= config.patience) & (cuts < config.plateau_cuts)
            lr_scale = np.where(cut, lr_scale * np.float32(config.plateau_factor), lr_scale).astype(np.float32)
            cuts, waited = cuts + cut, np.where(cut, 0, waited)
        bar.update(1)
        bar.set_postfix(val_elbo=f"{val_elbo.max():.3f}", best=f"{best.max():.3f}",
                        **({"lr": f"{config.learning_rate * lr_scale.max():.1e}"} if plateau else {}))
        if waited.min() >= config.patience:
            stopped = "early stopping on validation"
            break
        if checkpointing and time.perf_counter() - last_saved >= _checkpoint.CHECKPOINT_EVERY_S:
            last_saved = save_checkpoint(index + 1, None)
    bar.close()
    stopped = stopped or "epoch cap"
    if checkpointing and training_left:  # training ended in this process: a crash from here skips it
        save_checkpoint(len(curves), stopped)
    selection = None
    if restart_draws > 1 and restarts > 1:
        # One draw of the sampling noise moves a paired difference of validation ELBOs by more than
        # the gap between near-tied restarts: choose by the mean over fresh draws, the same for each.
        selection = np.mean([np.asarray(score(best_params, jax.random.fold_in(val_key, draw), val), dtype=np.float64)
                             for draw in range(int(restart_draws))], axis=0)
    chosen = int(np.argmax((best if selection is None else selection)
                           + (0.0 if restart_preference is None else np.asarray(restart_preference))))
    history = [{"epoch": i + 1, "train_loss": float(loss[chosen]), "val_elbo": float(elbo[chosen])}
               for i, (loss, elbo, _) in enumerate(curves)]
    if plateau:  # where the cuts fell, for the training curves
        for entry, (_, _, rate) in zip(history, curves):
            entry["learning_rate"] = float(rate[chosen])
    if restarts > 1:
        for entry, (_, elbo, _) in zip(history, curves):
            entry["val_elbo_restarts"] = [float(v) for v in elbo]
    stacked = jax.device_get(best_params)  # one transfer: the returned restart and, to compare them, the others
    every_restart = ([jax.tree_util.tree_map(lambda x, r=r: x[r], stacked) for r in range(restarts)]
                     if restarts > 1 and initial_params is None else None)
    best_params = jax.tree_util.tree_map(lambda x: x[chosen], stacked)
    model = FittedCRL(config=config, params=best_params, standardization=standardization, history=history,
                      splits=splits, fit_seconds=time.perf_counter() - start, stopped=stopped,
                      best_val_elbo=float(best[chosen]))
    if config.orient_shared and initial_params is None:
        from personax.crl._orient import orient_shared  # it trains on through fit

        model = orient_shared(model, modalities, auxiliary=auxiliary, key=jax.random.fold_in(key, 1), progress=progress,
                              checkpoint=checkpoint)
        model.fit_seconds = time.perf_counter() - start
    if config.order_search and initial_params is None:
        from personax.crl._order import order_blocks  # it trains on through fit

        model = order_blocks(model, modalities, auxiliary=auxiliary, key=jax.random.fold_in(key, 2), progress=progress,
                             checkpoint=checkpoint)
        model.fit_seconds = time.perf_counter() - start
    model.resumed_at_epoch = None if resumed is None else resumed.epochs_done
    if start_val_elbo is not None:
        model.start_val_elbo = [float(v) for v in start_val_elbo]
    if selection is not None:
        model.selection_val_elbo = [float(v) for v in selection]
    if every_restart is not None:
        model.restart_params, model.chosen_restart = every_restart, chosen
    return model
