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

import jax
import jax.numpy as jnp
import numpy as np

from personax.independence._common import bucket_rank, bucket_rows

DEFAULT_TOL = 1e-12


def _pchol_batch_impl(xs, w, thetas, tol, Lt0, d0, rank0, j0):
    """Batched pivoted Cholesky; factors are stored transposed, (V, max_rank, n).

    One loop counter is shared by the batch so each step writes row ``j`` of every factor
    with an in-place ``dynamic_update_slice``; a variable whose residual is already below
    ``tol`` keeps writing zero rows. The loop starts from the given state, so a factor that
    needs more columns is extended rather than recomputed.
    """
    V, n, _ = xs.shape
    max_rank = Lt0.shape[1]
    rows = jnp.arange(V)
    w = jnp.broadcast_to(w, (V, n))

    def cond(state):
        j, _, d, _ = state
        return (j < max_rank) & jnp.any(jnp.max(d, axis=1) > tol)

    def body(state):
        j, Lt, d, rank = state
        active = jnp.max(d, axis=1) > tol  # (V,)
        p = jnp.argmax(d, axis=1)  # (V,)
        xp = xs[rows, p]  # (V, dim)
        diff = xs - xp[:, None, :]
        col = jnp.exp(-0.5 * thetas[:, None] * jnp.sum(diff * diff, axis=-1)) * w
        lp = Lt[rows, :, p]  # (V, max_rank): factor rows of the pivots
        col = col - jnp.einsum("vr,vrn->vn", lp, Lt)
        dp = d[rows, p]
        col = jnp.where(active[:, None], col / jnp.sqrt(jnp.where(active, dp, 1.0))[:, None], 0.0)
        Lt = jax.lax.dynamic_update_slice(Lt, col[:, None, :], (0, j, 0))
        d = jnp.maximum(d - col * col, 0.0)
        d = d.at[rows, p].set(jnp.where(active, 0.0, d[rows, p]))
        return j + 1, Lt, d, rank + active.astype(jnp.int32)

    _, Lt, d, rank = jax.lax.while_loop(cond, body, (j0, Lt0, d0, rank0))
    return Lt, d, rank, jnp.max(d, axis=1)


_pchol_batch = jax.jit(_pchol_batch_impl)


def kernel_factors(xs: np.ndarray, w: np.ndarray, thetas: np.ndarray, *, tol: float = DEFAULT_TOL,
                   first_rank: int = 64) -> tuple[jnp.ndarray, np.ndarray]:
    """Factor several Gaussian kernel matrices sharing the same rows.

    Args:
        xs: (V, n_pad, d) data (already standardised), padded rows arbitrary.
        w: (n_pad,) 0/1 row weights; the rows in use come first. Each variable is factored on
            its distinct values and the factor rows are then gathered (exact: duplicated rows
            have identical kernel rows), which is what makes discrete columns cheap.
        thetas: (V,) inverse squared widths: ``K_ij = exp(-0.5 * theta * ||x_i - x_j||^2)``.
        tol: Residual-diagonal tolerance.
        first_rank: First rank cap tried; the factors are extended (cap doubled) until the
            tolerance is met.

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
    w = np.asarray(w, dtype=np.float64)
    V, n_pad, _ = xs.shape
    m = int(w.sum())
    if not np.all(w[:m] == 1.0) or np.any(w[m:]):
        raise ValueError("kernel_factors expects the rows in use first (w = 1, ..., 1, 0, ..., 0)")
    # Factor the kernel on each variable's distinct values: K = P K_u P^T, so L = P L_u.
    inverse = np.zeros((V, n_pad), dtype=np.int64)
    uniques = []
    for v in range(V):
        u, inv = np.unique(xs[v, :m], axis=0, return_inverse=True)
        uniques.append(u)
        inverse[v, :m] = inv.reshape(-1)
    buckets: dict[int, list[int]] = {}
    for v in range(V):
        buckets.setdefault(bucket_rows(len(uniques[v])), []).append(v)
    ranks = np.zeros(V, dtype=np.int64)
    parts: dict[int, jnp.ndarray] = {}
    for u_pad, members in buckets.items():
        xu = np.zeros((len(members), u_pad, xs.shape[2]))
        wu = np.zeros((len(members), u_pad))
        for k, v in enumerate(members):
            xu[k, : len(uniques[v])] = uniques[v]
            wu[k, : len(uniques[v])] = 1.0
        Lt, r = _grow(xu, wu, thetas[members], tol, first_rank)  # NumPy (Vb, R_b, u_pad)
        ranks[members] = r
        full = Lt.transpose(0, 2, 1)[np.arange(len(members))[:, None], inverse[members]]  # (Vb, n_pad, R_b)
        full[:, m:, :] = 0.0
        for k, v in enumerate(members):
            parts[v] = full[k]
    R = min(bucket_rank(int(ranks.max()) if V else 1), n_pad)
    L = np.zeros((V, n_pad, R))
    for v in range(V):
        r_v = min(R, parts[v].shape[1])
        L[v, :, :r_v] = parts[v][:, :r_v]
    L = jnp.asarray(L)
    return L, ranks


def _grow(xs: np.ndarray, w: np.ndarray, thetas: np.ndarray, tol: float, first_rank: int):
    """Pivoted Cholesky of a batch, extending the factors (cap doubled) until ``tol`` is met."""
    V, n, _ = xs.shape
    wj = jnp.asarray(w)
    xj = jnp.asarray(xs)
    th = jnp.asarray(thetas, dtype=jnp.float64)
    cap = min(first_rank, n)
    Lt = jnp.asarray(np.zeros((V, cap, n)))
    d = wj
    rank = jnp.asarray(np.zeros(V, dtype=np.int32))
    j0 = 0
    while True:
        Lt, d, rank, resid = _pchol_batch(xj, wj, th, tol, Lt, d, rank, np.int64(j0))
        if (np.asarray(resid) <= tol).all() or cap >= n:
            break
        j0, cap = cap, min(cap * 2, n)  # keep the columns found so far
        grown = np.zeros((V, cap, n))
        grown[:, :j0] = np.asarray(Lt)
        Lt = jnp.asarray(grown)
    ranks = np.asarray(rank).astype(np.int64)
    R = min(bucket_rank(int(ranks.max())), Lt.shape[1])
    return np.asarray(Lt)[:, :R, :], ranks


def rank_groups(ranks_x: np.ndarray, ranks_y: np.ndarray, pairs) -> dict[tuple[int, int], list[int]]:
    """Group pair positions by the (x, y) rank buckets, so small factors are not padded to
    the largest rank in the batch. Columns beyond a factor's rank are zero, so truncating a
    factor to its bucket is exact."""
    groups: dict[tuple[int, int], list[int]] = {}
    for q, (i, j) in enumerate(pairs):
        key = (bucket_rank(ranks_x[i]), bucket_rank(ranks_y[j]))
        groups.setdefault(key, []).append(q)
    return groups


@jax.jit
def center(L, w):
    """Factor of the centred kernel H K H (H = I - 11^T/m on the rows with w=1)."""
    m = jnp.sum(w)
    return w[:, None] * (L - (w @ L) / m)


def sum_sq_hadamard(A, B, block: int = 256):
    """``sum_ij ((A A^T)_ij * (B B^T)_ij)^2`` without forming an n x n matrix at once.

    Uses the Khatri-Rao form ``||Phi^T Phi||_F^2`` (Phi_i = A_i kron B_i, cost
    n (ra rb)^2) when that is cheaper than row blocks of ``block`` rows (cost n^2 (ra + rb),
    memory O(block * n)) and ``ra * rb <= 1024``. Shapes are static, so the branch is chosen
    at trace time.
    """
    n, ra = A.shape
    rb = B.shape[1]
    if ra * rb <= 1024 and (ra * rb) ** 2 <= n * (ra + rb + 2):
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
