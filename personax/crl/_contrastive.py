"""Multiview InfoNCE: views of the same person that share latents are pulled together.

The positive pairs are every pair of measurements of one person; the content they
share is ``s`` for measurements of different modalities and ``[s, z(m)]`` for two
measurements of modality ``m``. For each pair the loss is the symmetric NT-Xent
of multiview-crl's ``infonce_base_loss`` (Yao et al. 2024, "Multi-view causal
representation learning with partial observability"): row i of view a must pick
row i of view b against every other row of view b and of view a itself. Restricted
to ``s`` across modalities it is the cross-modal InfoNCE of Daunhawer et al. (2023).
The similarity is minus the squared Euclidean distance over the temperature (their
numerical experiments' L2 form), on each encoder's own posterior mean. Written by
hand in JAX: no maintained JAX library ships this subset loss.

Missing measurements: a person is an anchor of a pair only when both views are
present, and a view's candidates are the rows where that view is present.

Example:
    >>> import jax.numpy as jnp
    >>> a = jnp.eye(4)
    >>> float(nt_xent(a, a, temperature=0.1)) < float(nt_xent(a, a[::-1], temperature=0.1))
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

# Finite "minus infinity": an absent row's loss stays finite, so where() has finite gradients.
_OFF = -1e9


def _similarity(a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
    """Minus the squared Euclidean distance over the temperature, (..., rows_a, rows_b)."""
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: a matrix product, not a (rows, rows, dims) difference tensor.
    squared = (jnp.sum(a**2, axis=-1)[..., :, None] + jnp.sum(b**2, axis=-1)[..., None, :]
               - 2.0 * jnp.einsum("...id,...jd->...ij", a, b))
    return -jnp.maximum(squared, 0.0) / temperature


def _self_logsumexp(a: jax.Array, present: jax.Array, temperature: float) -> jax.Array:
    """log sum over the other present rows c != i of exp(similarity(a_i, a_c)): (..., rows).

    This part of an anchor's denominator does not depend on the other view, so a view's
    is computed once for all the pairs it is in."""
    n = a.shape[-2]
    blocked = jnp.eye(n, dtype=bool) | (present[..., None, :] == 0)
    return jax.nn.logsumexp(jnp.where(blocked, _OFF, _similarity(a, a, temperature)), axis=-1)


def _pair_losses(ab: jax.Array, self_a: jax.Array, self_b: jax.Array, present_a: jax.Array,
                 present_b: jax.Array) -> jax.Array:
    """Symmetric NT-Xent of pairs of views from their cross-similarity ``ab`` (..., n, n), their
    :func:`_self_logsumexp` terms and presence (..., n); averaged over the anchors (..., )."""
    positives = jnp.diagonal(ab, axis1=-2, axis2=-1)
    # Row i of a against the present rows of b (and a's own rows), and the other way round.
    from_a = jax.nn.logsumexp(ab + jnp.where(present_b[..., None, :] > 0, 0.0, _OFF), axis=-1)
    from_b = jax.nn.logsumexp(ab + jnp.where(present_a[..., :, None] > 0, 0.0, _OFF), axis=-2)
    loss = jnp.logaddexp(from_a, self_a) + jnp.logaddexp(from_b, self_b) - 2.0 * positives
    anchors = present_a * present_b
    return jnp.sum(jnp.where(anchors > 0, loss, 0.0), axis=-1) / jnp.maximum(jnp.sum(anchors, axis=-1), 1.0)


def nt_xent(a: jax.Array, b: jax.Array, *, temperature: float, present_a: jax.Array | None = None,
            present_b: jax.Array | None = None) -> jax.Array:
    """Symmetric NT-Xent between two views (rows are people), averaged over rows.

    Row i of view a must pick row i of view b against every other row of view b and of
    view a itself, and the same from b's side. ``present_a``/``present_b`` (batch,) mark
    the rows where each view exists (0 = missing): anchors need both, candidates their own view.
    """
    present_a = jnp.ones(a.shape[0], a.dtype) if present_a is None else present_a
    present_b = jnp.ones(b.shape[0], b.dtype) if present_b is None else present_b
    return _pair_losses(_similarity(a, b, temperature), _self_logsumexp(a, present_a, temperature),
                        _self_logsumexp(b, present_b, temperature), present_a, present_b)


def _pair_groups(names: Sequence[str]) -> dict[str | None, list[tuple[int, int]]]:
    """Every pair of measurements (indices into ``names``), grouped by what they share: ``None``
    (different modalities: s only) or the modality (two of its measurements: s and z(m))."""
    groups: dict[str | None, list[tuple[int, int]]] = {}
    for i, j in itertools.combinations(range(len(names)), 2):
        first, second = names[i].rsplit("_", 1)[0], names[j].rsplit("_", 1)[0]
        groups.setdefault(first if first == second else None, []).append((i, j))
    return groups


def multiview_infonce(views: dict[str, tuple[jax.Array, jax.Array, jax.Array]], *, temperature: float,
                      pairs: str = "all") -> jax.Array:
    """Mean NT-Xent over every pair of measurements, on the latents each pair shares.

    The mean of :func:`nt_xent` over the pairs, computed for all pairs that share the same
    latents at once, with each view's own part of the denominator computed once: on a CPU
    this loss's (batch x batch) arithmetic, not the networks', set the training step's time.

    Args:
        views: measurement name ``"{modality}_{k}"`` -> (s mean, z(m) mean, present),
            as returned by ``CausalMultimodalVAE.view_means``.
        temperature: Temperature of the similarity.
        pairs: "all" (every pair of measurements) or "cross_modal" (only pairs of different
            modalities, on s: Daunhawer et al. 2023's cross-modal InfoNCE).
    """
    if pairs not in ("all", "cross_modal"):
        raise ValueError(f"pairs must be 'all' or 'cross_modal', got {pairs!r}")
    names = sorted(views)
    totals, count = [], 0
    for modality, group in _pair_groups(names).items():
        if modality is not None and pairs == "cross_modal":
            continue
        members = sorted({i for pair in group for i in pair})
        if modality is None:
            latents = jnp.stack([views[names[i]][0] for i in members])
        else:
            latents = jnp.stack([jnp.concatenate(views[names[i]][:2], axis=1) for i in members])
        if latents.shape[-1] == 0:
            continue
        present = jnp.stack([views[names[i]][2] for i in members])
        own = _self_logsumexp(latents, present, temperature)  # (members, batch)
        position = {i: p for p, i in enumerate(members)}
        first = jnp.asarray([position[i] for i, _ in group])
        second = jnp.asarray([position[j] for _, j in group])
        # Gathers of the (members, batch, dims) latents, not of (batch, batch) matrices: the
        # gradient of a gather is a scatter-add, slow on a CPU for large operands.
        losses = _pair_losses(_similarity(latents[first], latents[second], temperature), own[first], own[second],
                              present[first], present[second])
        totals.append(jnp.sum(losses))
        count += len(group)
    return sum(totals) / count if count else jnp.zeros(())
