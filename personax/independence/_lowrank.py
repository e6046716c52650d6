"""Pivoted-Cholesky factors of Gaussian kernel matrices, in JAX.

Hand-written because no library offers a jit/vmap-able, tolerance-driven pivoted Cholesky
of an implicitly defined kernel matrix.

A Gaussian kernel matrix ``K`` (n x n) on low-dimensional data has a rapidly decaying
spectrum: on one z-scored column its numerical rank is a few dozen, on a column with ``k``
distinct values it is exactly ``k``. The pivoted Cholesky factorisation ``K = L L^T + E``
stops when the largest remaining diagonal entry of the (positive semi-definite) residual
``E`` is below ``tol`` (default ``1e-12``; the kernel's diagonal is 1), so
``||E||_2 <= trace(E) <= n * tol``. This is the kernel matrix to within round-off, not a
statistical approximation: every test statistic and null moment built from ``L`` agrees
with the dense computation to ~1e-9 relative, and the agreement tests check this against
causal-learn. When the tolerance is not reached below ``max_rank`` columns the factor is
recomputed with a larger rank, up to the full (exact) factorisation.

Padded rows (weight 0) get all-zero factor rows, so shapes can be bucketed to limit
recompilation without changing any result.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from personax.independence._common import bucket_rank

DEFAULT_TOL = 1e-12


def _pchol_one(x, w, theta, tol, max_rank):
    """Pivoted Cholesky of ``exp(-0.5 * theta * ||x_i - x_j||^2)`` restricted to rows with w=1."""
    n = x.shape[0]
    L0 = jnp.zeros((n, max_rank), x.dtype)
    d0 = w.astype(x.dtype)

    def cond(state):
        j, _, d = state
        return (j < max_rank) & (jnp.max(d) > tol)

    def body(state):
        j, L, d = state
        p = jnp.argmax(d)
        diff = x - x[p]
        col = jnp.exp(-0.5 * theta * jnp.sum(diff * diff, axis=-1)) * w
        col = (col - L @ L[p]) / jnp.sqrt(d[p])
        L = L.at[:, j].set(col)
        d = jnp.maximum(d - col * col, 0.0).at[p].set(0.0)
        return j + 1, L, d

    j, L, d = jax.lax.while_loop(cond, body, (jnp.asarray(0), L0, d0))
    return L, j, jnp.max(d)


@partial(jax.jit, static_argnames=("max_rank",))
def _pchol_batch(xs, w, thetas, tol, max_rank):
    return jax.vmap(_pchol_one, in_axes=(0, None, 0, None, None))(xs, w, thetas, tol, max_rank)


def kernel_factors(xs: np.ndarray, w: np.ndarray, thetas: np.ndarray, *, tol: float = DEFAULT_TOL,
                   first_rank: int = 64) -> tuple[jnp.ndarray, np.ndarray]:
    """Factor several Gaussian kernel matrices sharing the same rows.

    Args:
        xs: (V, n_pad, d) data (already standardised), padded rows arbitrary.
        w: (n_pad,) 0/1 row weights (1 = row in use).
        thetas: (V,) inverse squared widths: ``K_ij = exp(-0.5 * theta * ||x_i - x_j||^2)``.
        tol: Residual-diagonal tolerance.
        first_rank: First rank cap tried; doubled (x4) until the tolerance is met.

    Returns:
        ``(L, ranks)``: L is (V, n_pad, R) with R a padded common rank (extra columns are
        zero); ranks are the per-variable numerical ranks.

    Example:
        >>> import numpy as np
        >>> from personax.independence._common import float64
        >>> with float64():
        ...     L, r = kernel_factors(np.array([[[0.0], [1.0], [0.0]]]), np.ones(3), np.array([1.0]))
        >>> int(r[0])
        2
    """
    xs = np.asarray(xs, dtype=np.float64)
    V, n_pad, _ = xs.shape
    wj = jnp.asarray(w, dtype=jnp.float64)
    cap = min(first_rank, n_pad)
    todo = np.arange(V)
    factors: dict[int, jnp.ndarray] = {}
    ranks = np.zeros(V, dtype=np.int64)
    while todo.size:
        L, j, res = _pchol_batch(jnp.asarray(xs[todo]), wj, jnp.asarray(thetas[todo], dtype=jnp.float64),
                                 tol, cap)
        j = np.asarray(j)
        res = np.asarray(res)
        done = (res <= tol) | (cap >= n_pad)
        for k, v in enumerate(todo):
            if done[k]:
                factors[int(v)] = L[k]
                ranks[v] = j[k]
        todo = todo[~done]
        cap = min(cap * 4, n_pad)
    R = min(bucket_rank(int(ranks.max()) if V else 1), n_pad)
    L = jnp.stack([_fit_cols(factors[v], R) for v in range(V)])
    return L, ranks


def _fit_cols(L: jnp.ndarray, R: int) -> jnp.ndarray:
    if L.shape[1] >= R:
        return L[:, :R]
    return jnp.pad(L, ((0, 0), (0, R - L.shape[1])))


@jax.jit
def center(L, w):
    """Factor of the centred kernel H K H (H = I - 11^T/m on the rows with w=1)."""
    m = jnp.sum(w)
    return w[:, None] * (L - (w @ L) / m)


def sum_sq_hadamard(A, B, block: int = 256):
    """``sum_ij ((A A^T)_ij * (B B^T)_ij)^2`` without forming an n x n matrix at once.

    Uses the Khatri-Rao form ``||Phi^T Phi||_F^2`` (Phi_i = A_i kron B_i) when
    ``rank(A) * rank(B) <= 1024``, else row blocks of ``block`` rows (memory O(block * n)).
    Shapes are static, so the branch is chosen at trace time.
    """
    n, ra = A.shape
    rb = B.shape[1]
    if ra * rb <= 1024:
        phi = (A[:, :, None] * B[:, None, :]).reshape(n, ra * rb)
        g = phi.T @ phi
        return jnp.sum(g * g)
    block = min(block, n)
    nb = n // block

    def body(i, acc):
        a = jax.lax.dynamic_slice_in_dim(A, i * block, block)
        b = jax.lax.dynamic_slice_in_dim(B, i * block, block)
        ka = a @ A.T
        kb = b @ B.T
        return acc + jnp.sum((ka * kb) ** 2)

    return jax.lax.fori_loop(0, nb, body, jnp.zeros((), A.dtype))
