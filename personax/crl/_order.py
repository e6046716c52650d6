"""Choosing each modality block's within-block order after a fit (written by hand: no library does this).

Inside a modality block the direction of every edge follows learned potentials
(``CRLConfig.within_block_order: learned``), which move only through a straight-through
sigmoid gradient. Once an edge has grown, the order behind it rarely flips: fitted to the
numeric benchmark's *true* latents, the prior keeps a wrong order on three of five development
seeds, and its graph is wrong with it (strong-edge SHD 1-3), while the same prior with the
planted order held fixed gets SHD 0 on all five
(``experiments/crl_benchmark/results/graph_on_true_latents.md``). The order is a discrete
choice that a likelihood can make directly. So, after the fit:

1. the posterior means are standardised on the training rows;
2. for each modality block, the prior is fitted (from one fresh start, to at most
   ``orient_rows`` training rows) once for every order of the block's latents, held fixed,
   the other blocks' orders being the model's, for four times ``orient_steps``; each order is scored by the log-likelihood of
   the block's own latents given their parents on the validation rows (the prior factorises
   over the latents, so the other blocks' terms do not depend on this block's order);
3. the best order of each block is written into the model's potentials, and the prior is
   refitted with it (warm start, the order held) by the ELBO with the encoders and decoders held:
   on fresh draws from the posteriors at every step, not on the posterior means, to which a
   prior fits too narrowly for the draws the ELBO scores. The given model's prior is refitted
   the same way with its own orders, so the comparison sees the reordering alone.

``order_blocks`` then decides by the model's own criterion whether the reordered model is
returned (see its docstring).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from personax.crl._fit import FittedCRL, _init_program
from personax.crl._model import CausalMultimodalVAE, CRLConfig
from personax.crl._orient import (PRIOR_REFIT, REFIT_STREAM, _stacked_latents, continued_history, fit_prior, fitted_splits,
                                  refit_prior, rejection_reason, search_rows, start_scores, train_on_side_by_side)

MAX_SEARCHED_BLOCK = 5  # a block of k latents has k! orders: 120 prior fits at most per block
DIRECTION_LEVEL = 0.05  # edge_direction_evidence: two-sided level of Vuong's test
# edge_direction_evidence: what a direction must win by too, in validation log-likelihood per person (see there)
DIRECTION_MIN_MARGIN = 0.01
# edge_direction_evidence: fewer validation rows and the test is not run (its normal approximation, and the prior
# fits on a few dozen training rows, give nonsense: margins of thousands of nats per person on 100 people)
MIN_DIRECTION_ROWS = 100
MAX_TESTED_BLOCK = 3  # edge_direction_evidence: larger blocks compare fewer orders than their k! (see there)
ORDER_GAP = 2.0  # potentials written for a chosen order are this far apart (4 sigmoid temperatures at 0.5)


def block_order(config: CRLConfig, potentials: np.ndarray, block: str) -> tuple[int, ...]:
    """The latents (indices into [s, z(1), ...]) of a modality block, first to last in the order
    the potentials set (an edge i -> j inside the block needs potential_i < potential_j)."""
    indices = np.arange(config.total_latent)[config.block_slices()[block]]
    return tuple(int(i) for i in indices[np.argsort(np.asarray(potentials)[indices], kind="stable")])


def with_block_order(potentials: np.ndarray, order: Sequence[int], *, gap: float = ORDER_GAP) -> np.ndarray:
    """Potentials that put ``order`` (latent indices of one block) first to last, centred on the
    block's current mean potential and ``gap`` apart; other latents' potentials unchanged."""
    new = np.array(potentials, dtype=np.float32)
    order = list(order)
    centre = float(np.mean(new[order]))
    new[order] = centre + gap * (np.arange(len(order)) - (len(order) - 1) / 2)
    return new


def searchable_blocks(config: CRLConfig) -> list[str]:
    """The modality blocks whose order can be searched: a learned order, 2 to MAX_SEARCHED_BLOCK latents."""
    if config.prior != "causal" or config.within_block_order != "learned":
        return []
    return [m for m, dim in config.latent_dims.items() if 2 <= dim <= MAX_SEARCHED_BLOCK]


def search_block_orders(config: CRLConfig, potentials: np.ndarray, train: np.ndarray, val: np.ndarray, *,
                        steps: int, key: jax.Array,
                        auxiliary: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, list[dict]]:
    """The within-block order of each modality block that the prior fits best.

    Args:
        config: The model's configuration (``within_block_order: learned``).
        potentials: The model's order potentials (one per latent): the orders searched from.
        train, val: Standardised latents [s, z(1), ...] of the training and validation rows.
        steps: Optimiser steps of each prior fit.
        key: PRNG key of the prior fits' initialisation (one fresh start, shared by every order).
        auxiliary: The covariates of the training and validation rows, if the prior uses them.

    Returns:
        Potentials with each searched block in its best order (blocks whose best order is the
        given one keep their given potentials), and per block its orders (latent names, first to
        last), each order's validation log-likelihood per person of the block's latents, the
        given order and the chosen one.
    """
    given = np.asarray(potentials, np.float32)
    chosen = given.copy()
    records = []
    for block, orders, per_row in _block_order_scores(config, given, train, val, steps=steps, key=key,
                                                      auxiliary=auxiliary):
        log_lik = per_row.mean(1)
        best = int(np.nanargmax(log_lik))
        if best != 0:
            chosen = with_block_order(chosen, orders[best])
        records.append({"block": block, "orders": [[config.latent_names[i] for i in order] for order in orders],
                        "val_prior_log_lik": [round(float(v), 4) for v in log_lik],
                        "given": [config.latent_names[i] for i in orders[0]],
                        "chosen": [config.latent_names[i] for i in orders[best]]})
    return chosen, records


def _block_order_scores(config: CRLConfig, potentials: np.ndarray, train: np.ndarray, val: np.ndarray, *,
                        steps: int, key: jax.Array, auxiliary: tuple[np.ndarray, np.ndarray] | None = None,
                        blocks: Sequence[str] | None = None,
                        candidates: Mapping[str, Sequence[Sequence[int]]] | None = None):
    """For each searchable block (or each of ``blocks``): its orders, the given one first (every
    permutation, or those ``candidates`` names for the block), and each order's log-likelihood of
    the block's latents given their parents on every validation row, (orders, rows), from a prior
    fitted to ``train`` with that order held (one fresh start, shared by every order)."""
    module = CausalMultimodalVAE(config)
    aux_train, aux_val = (None, None) if auxiliary is None else (jnp.asarray(a) for a in auxiliary)
    initial = _init_program(config)(key)

    @jax.jit
    def scored(potential_sets, initial, train, val, aux_train, aux_val):  # data as arguments, not constants
        def one(potential):
            params = fit_prior(config, {**initial, "order_potential": potential}, train, steps=steps,
                               auxiliary=aux_train, held=("order_potential",))
            return module.apply({"params": params}, val, aux_val, method=CausalMultimodalVAE.prior_node_logpdf)
        return jax.lax.map(one, potential_sets)  # one compiled prior fit, run per order (memory stays flat)

    train, val = jnp.asarray(train, jnp.float32), jnp.asarray(val, jnp.float32)
    given = np.asarray(potentials, np.float32)
    for block in searchable_blocks(config) if blocks is None else blocks:
        current = block_order(config, given, block)
        orders = ([tuple(order) for order in candidates[block]] if candidates and block in candidates
                  else list(itertools.permutations(current)))  # the given order first: ties keep it
        potential_sets = np.stack([with_block_order(given, order) for order in orders])
        per_node = np.asarray(scored(jnp.asarray(potential_sets), initial, train, val, aux_train, aux_val),
                              dtype=np.float64)
        yield block, orders, per_node[:, :, list(current)].sum(2)


def _order_inputs(model: FittedCRL, modalities, auxiliary: np.ndarray | None, search: str):
    """What the searches of orders fit priors to: every row's posterior means standardised on the
    training rows, the validation rows, the training rows a prior fit uses (``search_rows``), the
    covariates (rows, covariates) or None, and the model's order potentials."""
    splits = fitted_splits(model, search)  # before encoding: a clear error first
    latents = _stacked_latents(model, modalities).astype(np.float64)
    train = splits["train"]
    latents = (latents - latents[train].mean(0)) / latents[train].std(0)
    aux = None if auxiliary is None else np.asarray(auxiliary, np.float32).reshape(len(latents), -1)
    given = np.asarray(jax.device_get(model.params["order_potential"]), np.float32)
    return latents, splits["val"], search_rows(model), aux, given


def edge_reversing_orders(order: Sequence[int], edges: Sequence[tuple[int, int]]) -> list[tuple[int, ...]]:
    """``order`` first, then for each edge (i, j) the order with j moved to just before i (each once).

    Example:
        >>> edge_reversing_orders((4, 5, 6, 7), [(4, 6), (5, 7), (4, 6)])
        [(4, 5, 6, 7), (6, 4, 5, 7), (4, 7, 5, 6)]
    """
    moved = []
    for i, j in edges:
        rest = [k for k in order if k != j]
        moved.append(tuple(rest[:rest.index(i)] + [j] + rest[rest.index(i):]))
    return list(dict.fromkeys([tuple(order), *moved]))


def direction_verdict(margin: float, z: float, *, level: float = DIRECTION_LEVEL,
                      min_margin: float = DIRECTION_MIN_MARGIN) -> str:
    """``"decided"`` when the edge's direction wins both significantly (z above the two-sided
    critical value) and by at least ``min_margin`` nats per person, ``"reverse preferred"`` when the
    reverse does, else ``"undetermined"``.

    Example:
        >>> direction_verdict(0.03, 4.0), direction_verdict(0.0001, 2.7), direction_verdict(-0.04, -2.7)
        ('decided', 'undetermined', 'reverse preferred')
    """
    critical = float(scipy.stats.norm.ppf(1 - level / 2))
    if z > critical and margin >= min_margin:
        return "decided"
    if z < -critical and margin <= -min_margin:
        return "reverse preferred"
    return "undetermined"


def direction_test(per_row: np.ndarray, orders: Sequence[Sequence[int]], parent: int, child: int, *,
                   level: float = DIRECTION_LEVEL, min_margin: float = DIRECTION_MIN_MARGIN) -> dict[str, Any]:
    """Vuong's test of the edge ``parent -> child`` against its reverse, from each order's
    per-row log-likelihoods (orders, rows): the best order (highest mean) with ``parent`` first
    against the best with ``child`` first; z = sqrt(n) mean(d) / sd(d) over the rows' differences d,
    and the verdict of :func:`direction_verdict`.

    Example:
        >>> rows = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
        >>> direction_test(rows, [(0, 1), (1, 0)], 0, 1)["verdict"]
        'decided'
    """
    mean = per_row.mean(1)
    forward = [k for k, order in enumerate(orders) if list(order).index(parent) < list(order).index(child)]
    reverse = [k for k, order in enumerate(orders) if list(order).index(child) < list(order).index(parent)]
    difference = per_row[forward[int(np.nanargmax(mean[forward]))]] - per_row[reverse[int(np.nanargmax(mean[reverse]))]]
    spread = float(difference.std(ddof=1))
    z = float(np.sqrt(len(difference)) * difference.mean() / spread) if spread > 0 else 0.0
    margin = float(difference.mean())
    return {"margin_per_person": round(margin, 4), "vuong_z": round(z, 2),
            "p_value": round(float(2 * scipy.stats.norm.sf(abs(z))), 4),
            "verdict": direction_verdict(margin, z, level=level, min_margin=min_margin)}


def edge_direction_evidence(model: FittedCRL, modalities: Mapping[str, Sequence[np.ndarray]], *,
                            auxiliary: np.ndarray | None = None, steps: int | None = None,
                            key: jax.Array, level: float = DIRECTION_LEVEL,
                            min_margin: float = DIRECTION_MIN_MARGIN) -> list[dict[str, Any]]:
    """Whether the data decide the direction of each learned edge inside a modality block.

    Inside a modality block the model learns the order of the latents, and with it every edge's
    direction; the likelihood often barely prefers it (on the numeric benchmark's fitted latents
    the best other order was within 0.006 nats per person on 8 of 10 fresh seeds, and reversed
    within-block orders were the main source of its SHD: docs/crl.md). For each nonzero edge
    ``i -> j`` inside a block, the prior is fitted to the training rows' standardised posterior
    means once for every order of the block (as ``order_blocks``' search does), and the best order
    with ``i`` before ``j`` is compared with the best order with ``j`` before ``i`` by Vuong's test
    for non-nested models (Vuong 1989): z = sqrt(n) mean(d) / sd(d), with d each validation row's
    log-likelihood of the block's latents under the first minus under the second. Both are
    scored out of sample, and both have the same parameters, so z needs no correction. Written by
    hand: no library offers Vuong's test.

    A direction counts as decided only if it also wins by at least ``min_margin`` (0.01 nats per
    person): where two orders fit almost alike, the rows' differences barely vary, and z can be
    large for a margin of no consequence (0.0001 nats per person, z 2.7, on a fresh numeric seed,
    for an edge planted in neither direction). The floor was set on fresh seeds 1080-1089 and
    development seeds 0-4 (every planted edge decided there won by 0.028 or more) and checked on
    seeds not seen before (docs/crl.md).

    A block of more than ``MAX_TESTED_BLOCK`` (3) latents would need k! prior fits (120 for 5:
    an estimated 15 minutes per block on 2 CPU cores at the default run's size); there, each edge
    ``i -> j`` is tested between the given order and the given order with ``j`` moved to just
    before ``i`` (the best of those candidates on each side): one prior fit per edge, plus one.

    With fewer than ``MIN_DIRECTION_ROWS`` (100) validation rows (about 670 people at the default
    15%) the test is not run: every edge's verdict is ``"not tested"``, with the reason. On the
    smoke run's 100 people (15 validation rows) the prior fits, on 70 training rows, gave margins of
    -111 and +5135 nats per person.

    The test counts the validation rows' noise, not the noise of the prior fits themselves, and
    it compares the orders of the latents as encoded: a direction the data decide is not thereby
    the planted one. Where a block's learned latents mix its planted ones, the test can favour the
    wrong direction decisively: on the variant digits benchmark, fresh seeds 1010-1019, 5 of its 13
    definite verdicts contradicted the planted direction, at |z| up to 16, and the planted latents,
    mixed as the learned ones mix them, gave the same 5 wrong verdicts, while a map of each planted
    latent alone gave none of them (``experiments/crl_benchmark/direction_maps.py``).

    Args:
        model: A fitted model, with its splits (right after ``fit``).
        modalities: The data it was fitted on.
        auxiliary: The covariates it was fitted with, if any.
        steps: Optimiser steps of each prior fit (default: four times ``orient_steps``).
        key: PRNG key of the prior fits' initialisation.
        level: Two-sided level of the test.
        min_margin: What a direction must win by too, in validation log-likelihood per person.

    Returns:
        One record per edge inside a modality block whose order is learned: ``parent``, ``child``,
        ``block``, ``margin_per_person`` (the mean of d, nats), ``vuong_z``, ``p_value`` (two-sided)
        and ``verdict``: ``"decided"`` (the edge's direction fits significantly better, by at least
        ``min_margin``), ``"reverse preferred"`` (the reversed direction does), ``"undetermined"``,
        or ``"not tested"`` (too few validation rows; ``reason`` says so, and the numbers are None).
        Empty for a model without such edges.

    Example:
        >>> from personax.data.synthetic import make_multimodal_numeric
        >>> from personax.crl import fit, edge_direction_evidence
        >>> bench = make_multimodal_numeric(800, seed=0)  # 120 validation rows
        >>> model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=1,
        ...             orient_epochs=1, orient_shared=False, hidden=(16,))
        >>> evidence = edge_direction_evidence(model, bench.modalities, steps=10, key=jax.random.key(0))
        >>> all(e["verdict"] in ("decided", "reverse preferred", "undetermined") for e in evidence)
        True
    """
    config = model.config
    if config.prior != "causal" or config.within_block_order != "learned":
        return []
    validation_rows = len(fitted_splits(model, "edge_direction_evidence")["val"])  # first: a clear error
    adjacency = np.asarray(model.adjacency())
    slices = config.block_slices()
    inside = [(block, i, j) for block, dim in config.latent_dims.items() if dim >= 2
              for i in range(slices[block].start, slices[block].stop)
              for j in range(slices[block].start, slices[block].stop) if adjacency[i, j] != 0]
    if not inside:
        return []
    names = config.latent_names
    if validation_rows < MIN_DIRECTION_ROWS:
        reason = f"{validation_rows} validation rows; the test needs at least {MIN_DIRECTION_ROWS}"
        return [{"parent": names[i], "child": names[j], "block": block, "margin_per_person": None, "vuong_z": None,
                 "p_value": None, "verdict": "not tested", "reason": reason} for block, i, j in inside]
    latents, val, rows, aux, given = _order_inputs(model, modalities, auxiliary, "edge_direction_evidence")
    steps = 4 * config.orient_steps if steps is None else steps
    tested = [block for block in config.latent_dims if any(b == block for b, _, _ in inside)]
    # A block of more than MAX_TESTED_BLOCK latents: not its k! orders (120 prior fits for 5) but its given
    # order and, for each edge i -> j, the given order with j moved to just before i.
    candidates = {block: edge_reversing_orders(current, [(i, j) for b, i, j in inside if b == block])
                  for block in tested if len(current := block_order(config, given, block)) > MAX_TESTED_BLOCK}
    records = []
    for block, orders, per_row in _block_order_scores(config, given, latents[rows], latents[val], steps=steps,
                                                      key=key, auxiliary=None if aux is None else (aux[rows], aux[val]),
                                                      blocks=tested, candidates=candidates):
        for edge_block, i, j in inside:
            if edge_block == block:
                records.append({"parent": names[i], "child": names[j], "block": block,
                                **direction_test(per_row, orders, i, j, level=level, min_margin=min_margin)})
    return records


def order_blocks(model: FittedCRL, modalities: Mapping[str, Sequence[np.ndarray]], *,
                 auxiliary: np.ndarray | None = None, steps: int | None = None, key: jax.Array,
                 progress: bool = False, checkpoint: str | os.PathLike[str] | None = None) -> FittedCRL:
    """The model with each modality block in the within-block order its prior fits best, if that
    scores a better validation ELBO than the same extra training without the change. See the
    module docstring.

    ``fit(..., order_search=True)`` calls this after training (and after ``orient_shared``);
    call it directly to search the orders of a model fitted without it.

    Args:
        model: A fitted model.
        modalities: The data it was fitted on (the same rows: its splits are reused).
        auxiliary: The covariates it was fitted with, if any.
        steps: Optimiser steps of each prior fit in the search (default: four times the config's
            ``orient_steps``, as many as the refit of a turned or reordered prior: with 300 steps the
            test's planted orders came out reversed, with 1,200 right by 0.4 nats per person).
        key: PRNG key of the search's prior fits.
        progress: Show the training-on's progress bar.
        checkpoint: A fit's checkpoint file (``fit(..., checkpoint=path)``): the training on
            saves its state there too and resumes from it after a crash.

    Returns:
        A model whose ``reordering`` says what was tried and chosen: ``decision`` ``"kept"`` (the
        reordered model, trained on), ``"rejected"`` (the given model, its prior refitted the same
        way and trained on for the same epochs, scored higher; or the search kept every given
        order, and the given model is returned as it is) or ``"skipped"`` (the given model; ``reason`` says why). When trained
        on, its ``history`` is the given model's followed by the training on's epochs, and its
        ``best_val_elbo`` that of the returned parameters.

    Example:
        >>> from personax.data.synthetic import make_multimodal_numeric
        >>> from personax.crl import fit, order_blocks
        >>> bench = make_multimodal_numeric(400, seed=0)
        >>> model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, max_epochs=1,
        ...             orient_epochs=1, hidden=(16,))
        >>> ordered = order_blocks(model, bench.modalities, steps=10, key=jax.random.key(0))
        >>> ordered.reordering["decision"] in ("kept", "rejected")
        True
    """
    config = model.config
    steps = 4 * config.orient_steps if steps is None else steps
    blocks = searchable_blocks(config)
    if not blocks:
        reason = ("no causal prior" if config.prior != "causal" else
                  "the within-block order is fixed (within_block_order: fixed)" if config.within_block_order != "learned"
                  else f"no modality block has 2 to {MAX_SEARCHED_BLOCK} latents")
        return dataclasses.replace(model, reordering={"decision": "skipped", "reason": reason})
    latents, val, rows, aux, given = _order_inputs(model, modalities, auxiliary, "order_blocks")
    potentials, searched = search_block_orders(config, given, latents[rows], latents[val], steps=steps, key=key,
                                               auxiliary=None if aux is None else (aux[rows], aux[val]))
    record: dict[str, Any] = {"search": searched, "search_rows": len(rows), "given_val_elbo": model.best_val_elbo,
                              "given_stopped": model.stopped}
    if all(entry["chosen"] == entry["given"] for entry in searched):
        return dataclasses.replace(model, reordering={**record, "decision": "rejected",
                                                      "reason": "the prior fits the given orders best"})
    # Both branches' priors refitted the same way (warm start, orders held, paired draws) by the ELBO on
    # the search rows, so the gate sees the reordering alone; the posteriors are the same for both.
    refit = functools.partial(refit_prior, modalities=modalities, rows=rows, steps=4 * config.orient_steps,
                              auxiliary=None if aux is None else jnp.asarray(aux[rows]), held=("order_potential",),
                              key=jax.random.fold_in(key, REFIT_STREAM))
    given = dataclasses.replace(model, params=refit(model))
    candidate = refit(dataclasses.replace(model, params={**jax.device_get(model.params), "order_potential": potentials}))
    tuned, best = train_on_side_by_side(given, candidate, modalities, auxiliary=aux, progress=progress,
                                        checkpoint=checkpoint)
    record.update(epochs=len(tuned.history), trained_on_stopped=tuned.stopped, prior_refit=PRIOR_REFIT,
                  trained_on_resumed_at_epoch=tuned.resumed_at_epoch, **start_scores(tuned, ("given", "reordered")),
                  returned_orders={block: [config.latent_names[i] for i in
                                           block_order(config, tuned.params["order_potential"], block)]
                                   for block in blocks})
    if best[1] > best[0]:
        record["decision"] = "kept"
    else:
        record.update(decision="rejected", reason=rejection_reason(record, "the given orders", 0.0))
    return dataclasses.replace(tuned, config=config, history=continued_history(model, tuned),
                               orientation=model.orientation, reordering=record)
