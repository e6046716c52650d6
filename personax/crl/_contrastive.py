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

Example:
    >>> import jax.numpy as jnp
    >>> a = jnp.eye(4)
    >>> float(nt_xent(a, a, temperature=0.1)) < float(nt_xent(a, a[::-1], temperature=0.1))
    True
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp


def _similarity(a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: a matrix product, not a (rows, rows, dims) difference tensor.
    squared = jnp.sum(a**2, axis=1)[:, None] + jnp.sum(b**2, axis=1)[None, :] - 2.0 * a @ b.T
    return -jnp.maximum(squared, 0.0) / temperature


def nt_xent(a: jax.Array, b: jax.Array, *, temperature: float, weights: jax.Array | None = None) -> jax.Array:
    """Symmetric NT-Xent between two views (rows are people), averaged over rows.

    ``weights`` (batch,) leaves rows out as anchors and as candidates (0 = a view is missing).
    """
    n = a.shape[0]
    weights = jnp.ones(n, a.dtype) if weights is None else weights
    # Finite "minus infinity": an absent row's loss stays finite, so where() below has finite gradients.
    off = -1e9
    blocked = jnp.eye(n, dtype=bool) | (weights[None, :] == 0)
    candidates_off = jnp.where(weights[None, :] == 0, off, 0.0)
    ab = _similarity(a, b, temperature) + candidates_off
    aa = jnp.where(blocked, off, _similarity(a, a, temperature))
    bb = jnp.where(blocked, off, _similarity(b, b, temperature))
    ba = ab.T + candidates_off
    loss_a = jax.nn.logsumexp(jnp.concatenate([ab, aa], axis=1), axis=1) - jnp.diagonal(ab)
    loss_b = jax.nn.logsumexp(jnp.concatenate([ba, bb], axis=1), axis=1) - jnp.diagonal(ba)
    loss = jnp.where(weights > 0, loss_a + loss_b, 0.0)
    return jnp.sum(loss) / jnp.maximum(jnp.sum(weights), 1.0)


def multiview_infonce(views: dict[str, tuple[jax.Array, jax.Array, jax.Array]], *, temperature: float) -> jax.Array:
    """Mean NT-Xent over every pair of measurements, on the latents each pair shares.

    Args:
        views: measurement name ``"{modality}_{k}"`` -> (s mean, z(m) mean, present),
            as returned by ``CausalMultimodalVAE.view_means``.
        temperature: Temperature of the similarity.
    """
    losses = []
    for first, second in itertools.combinations(sorted(views), 2):
        s1, z1, present1 = views[first]
        s2, z2, present2 = views[second]
        same_modality = first.rsplit("_", 1)[0] == second.rsplit("_", 1)[0]
        a = jnp.concatenate([s1, z1], axis=1) if same_modality else s1
        b = jnp.concatenate([s2, z2], axis=1) if same_modality else s2
        if a.shape[1] == 0:
            continue
        losses.append(nt_xent(a, b, temperature=temperature, weights=present1 * present2))
    return jnp.mean(jnp.stack(losses)) if losses else jnp.zeros(())
