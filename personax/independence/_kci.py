"""Kernel-based conditional independence test (KCI), unconditional and conditional, in JAX.

Hand-written because no library computes KCI fast: causal-learn's reference
(``causallearn.utils.KCI.KCI``) forms dense n x n kernels per pair (O(n^2) memory, O(n^3)
eigendecompositions in the conditional case). Here every variable's kernel is factored once
(pivoted Cholesky, see ``_lowrank``) and reused across all pairs that share its rows; all
statistics and null moments are exact functions of those factors.

Reference behaviour reproduced (causal-learn 0.1.4.8, default options):

* inputs z-scored with ``ddof=1``; Gaussian kernels ``exp(-0.5 * theta * ||a - b||^2)``;
* unconditional widths 0.8 / 0.5 / 0.3 for n < 200 / < 1200 / >= 1200 and
  ``theta = dim / width^2``; statistic ``sum(Kxc * Kyc)``; gamma null with
  ``mean = tr(Kxc) tr(Kyc) / n`` and ``var = 2 ||Kxc||_F^2 ||Kyc||_F^2 / n^2``;
* conditional widths 1.2 / 0.7 / 0.4 and ``theta = 1 / (width^2 * dim(Z))`` for all three
  kernels; X is augmented with ``0.5 * Z``; ``R = eps (Kzc + eps I)^-1`` with eps = 1e-3;
  statistic ``sum(KxR * KyR)`` with ``KxR = R Kxc R``; gamma null with
  ``mean = sum_i KxR_ii KyR_ii`` and ``var = 2 sum_ij (KxR_ij KyR_ij)^2``. causal-learn
  evaluates these two moments from eigenvectors truncated at 1e-5 of the largest
  eigenvalue; the untruncated values used here differ from it by < 1e-4 in p-value.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from personax.independence import _common as C
from personax.independence._lowrank import DEFAULT_TOL, center, kernel_factors, rank_groups, sum_sq_hadamard
from personax.independence._result import OK, TestResult

EPSILON = 1e-3  # causal-learn's ridge for the conditional test


def median_theta(a: np.ndarray, max_rows: int = 1000) -> float:
    """Median-heuristic inverse squared width on the first ``max_rows`` rows.

    ``width = sqrt(2) * median(nonzero pairwise distances)``, ``theta = 1 / width^2``
    (causal-learn's ``set_width_median``, except that it subsamples rows at random above
    1000 rows; personax takes the first rows so results are reproducible).
    """
    sub = a[:max_rows]
    d = np.sqrt(((sub[:, None, :] - sub[None, :, :]) ** 2).sum(-1))
    d = d[d > 0]
    if d.size == 0:
        return 1.0
    width = math.sqrt(2.0) * float(np.median(d))
    return 1.0 / width**2


def _padded_stack(arrays: Sequence[np.ndarray], n_pad: int) -> np.ndarray:
    d = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), n_pad, d))
    for k, a in enumerate(arrays):
        out[k, : a.shape[0], : a.shape[1]] = a  # extra zero dims leave distances unchanged
    return out


def gamma_pvalues(stat: np.ndarray, mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gamma-approximation p-values ``P(G >= stat)`` with moment-matched shape/scale."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = mean**2 / var
        scale = var / mean
        p = stats.gamma.sf(stat, k, loc=0, scale=scale)
    bad = ~(np.isfinite(k) & np.isfinite(scale) & (k > 0) & (scale > 0) & np.isfinite(stat))
    p = np.where(bad, np.nan, p)
    return p, k, scale


@partial(jax.jit, static_argnames=("batch",))
def _uncond_pairs(FX, FY, ix, iy, batch):
    def one(c, ij):
        return jnp.sum((c[0][ij[0]].T @ c[1][ij[1]]) ** 2)

    return C.map_pairs(one, (FX, FY), (ix, iy), batch)


_center_batch = jax.jit(jax.vmap(center, in_axes=(0, None)))


@jax.jit
def _trace_and_fro(F):
    tr = jnp.sum(F * F, axis=(1, 2))
    g = jnp.einsum("vnr,vns->vrs", F, F)
    return tr, jnp.sum(g * g, axis=(1, 2))


def _side_thetas(arrays, rule: str, n: int, width, conditional_dim: int | None = None):
    thetas = []
    widths = []
    for a in arrays:
        if rule == "empirical":
            if conditional_dim is None:
                wdt = C.kci_width_unconditional(n)
                th = a.shape[1] / wdt**2
            else:
                wdt = C.kci_width_conditional(n)
                th = 1.0 / wdt**2 / conditional_dim
        elif rule == "manual":
            if width is None:
                raise ValueError("est_width='manual' needs explicit kernel widths (kwidthx/kwidthy/kwidthz)")
            wdt = float(width)
            th = 1.0 / wdt**2
        elif rule == "median":
            th = median_theta(a)
            wdt = 1.0 / math.sqrt(th)
        else:
            raise ValueError(f"unknown est_width {rule!r}; use 'empirical', 'median' or 'manual'")
        thetas.append(th)
        widths.append(wdt)
    return np.asarray(thetas, dtype=np.float64), widths


def kci_unconditional_group(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], *,
                            est_width: str = "empirical", kwidthx: float | None = None,
                            kwidthy: float | None = None, tol: float = DEFAULT_TOL,
                            batch_size: int = 16) -> list[TestResult]:
    """Unconditional KCI for many pairs whose variables share the same complete rows.

    Args:
        xs: Raw (m, dx) arrays (no missing values), one per x-variable.
        ys: Raw (m, dy) arrays, one per y-variable.
        pairs: (index into xs, index into ys) pairs to test.
        est_width: ``"empirical"`` (causal-learn default), ``"median"`` or ``"manual"``.
        kwidthx: Kernel width (sigma) for x when ``est_width="manual"``.
        kwidthy: Kernel width for y when ``est_width="manual"``.
        tol: Pivoted-Cholesky tolerance.
        batch_size: Pairs evaluated together (bounds memory).

    Returns:
        One TestResult per pair.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(200, 1)); y = x**2 + rng.normal(size=(200, 1))
        >>> with C.float64():
        ...     [r] = kci_unconditional_group([x], [y], [(0, 0)])
        >>> r.p_value < 0.01
        True
    """
    m = xs[0].shape[0]
    n_pad = C.bucket_rows(m)
    w = np.zeros(n_pad)
    w[:m] = 1.0
    xz = [C.zscore(a) for a in xs]
    yz = [C.zscore(a) for a in ys]
    thx, wx = _side_thetas(xz, est_width, m, kwidthx)
    thy, wy = _side_thetas(yz, est_width, m, kwidthy)
    Lx, rx = kernel_factors(_padded_stack(xz, n_pad), w, thx, tol=tol)
    Ly, ry = kernel_factors(_padded_stack(yz, n_pad), w, thy, tol=tol)
    wj = jnp.asarray(w)
    FX = _center_batch(Lx, wj)
    FY = _center_batch(Ly, wj)
    trx, fx = (np.asarray(v) for v in _trace_and_fro(FX))
    tr_y, fy = (np.asarray(v) for v in _trace_and_fro(FY))
    ix = np.array([p[0] for p in pairs], dtype=np.int32)
    iy = np.array([p[1] for p in pairs], dtype=np.int32)
    bs, (pix, piy) = C.pad_pairs(batch_size, ix, iy)
    stat = np.asarray(_uncond_pairs(FX, FY, pix, piy, bs))[: len(ix)]
    mean = trx[ix] * tr_y[iy] / m
    var = 2.0 * fx[ix] * fy[iy] / m**2
    p, k, scale = gamma_pvalues(stat, mean, var)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = stat / np.sqrt(fx[ix] * fy[iy])
    out = []
    for q, (i, j) in enumerate(pairs):
        params = {"est_width": est_width, "width_x": float(wx[i]), "width_y": float(wy[j]),
                  "rank_x": int(rx[i]), "rank_y": int(ry[j]), "null": "gamma",
                  "gamma_shape": float(k[q]), "gamma_scale": float(scale[q])}
        status = OK if np.isfinite(p[q]) else "failed: degenerate null moments"
        out.append(TestResult("kci", float(stat[q]), float(p[q]), m, params, status, float(eff[q])))
    return out


@jax.jit
def _residualise(F, U, D):
    """R F with R = eps (Kzc + eps I)^-1 = I - U diag(D) U^T (F is a batch of factors)."""
    return F - jnp.einsum("nr,r,vrs->vns", U, D, jnp.einsum("nr,vns->vrs", U, F))


@partial(jax.jit, static_argnames=("batch",))
def _cond_pairs(MX, MY, ix, iy, batch):
    def one(c, ij):
        a = c[0][ij[0]]
        b = c[1][ij[1]]
        stat = jnp.sum((a.T @ b) ** 2)
        mean = jnp.sum(jnp.sum(a * a, axis=1) * jnp.sum(b * b, axis=1))
        var = 2.0 * sum_sq_hadamard(a, b)
        return stat, mean, var

    return C.map_pairs(one, (MX, MY), (ix, iy), batch)


def kci_conditional_group(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], z: np.ndarray,
                          pairs: Sequence[tuple[int, int]], *, est_width: str = "empirical",
                          kwidthx: float | None = None, kwidthy: float | None = None,
                          kwidthz: float | None = None, epsilon: float = EPSILON,
                          tol: float = DEFAULT_TOL, batch_size: int = 4) -> list[TestResult]:
    """Conditional KCI (X independent of Y given Z) for many pairs sharing rows and Z.

    ``Z``'s kernel is factored and its regression operator ``R`` built once per call;
    every x- and y-kernel is factored once and reused across pairs.

    Args:
        xs: Raw (m, dx) arrays, one per x-variable.
        ys: Raw (m, dy) arrays, one per y-variable.
        z: Raw (m, dz) conditioning data.
        pairs: (x index, y index) pairs.
        est_width: ``"empirical"`` (causal-learn default), ``"median"`` or ``"manual"``.
        kwidthx: Manual width for the augmented x kernel.
        kwidthy: Manual width for y.
        kwidthz: Manual width for z.
        epsilon: Ridge of the kernel regression on Z (causal-learn: 1e-3).
        tol: Pivoted-Cholesky tolerance.
        batch_size: Pairs evaluated together.

    Returns:
        One TestResult per pair.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(150, 1)); x = z + rng.normal(size=(150, 1))
        >>> y = z + rng.normal(size=(150, 1))
        >>> with C.float64():
        ...     [r] = kci_conditional_group([x], [y], z, [(0, 0)])
        >>> r.p_value > 0.01
        True
    """
    m = z.shape[0]
    n_pad = C.bucket_rows(m)
    w = np.zeros(n_pad)
    w[:m] = 1.0
    wj = jnp.asarray(w)
    zz = C.zscore(z)
    dz = zz.shape[1]
    xt = [np.concatenate([C.zscore(a), 0.5 * zz], axis=1) for a in xs]
    yz = [C.zscore(a) for a in ys]
    if est_width == "median":
        thz, wz = _side_thetas([zz], "median", m, None)
        thx, wx = _side_thetas(xt, "median", m, None)
        thy, wy = _side_thetas(yz, "median", m, None)
    else:
        thz, wz = _side_thetas([zz], est_width, m, kwidthz, conditional_dim=dz)
        thx, wx = _side_thetas(xt, est_width, m, kwidthx, conditional_dim=dz)
        thy, wy = _side_thetas(yz, est_width, m, kwidthy, conditional_dim=dz)
    Lz, rz = kernel_factors(_padded_stack([zz], n_pad), w, thz, tol=tol)
    Az = center(Lz[0], wj)
    U, S, _ = jnp.linalg.svd(Az, full_matrices=False)
    S2 = S * S
    D = S2 / (S2 + epsilon)
    Lx, rx = kernel_factors(_padded_stack(xt, n_pad), w, thx, tol=tol)
    Ly, ry = kernel_factors(_padded_stack(yz, n_pad), w, thy, tol=tol)
    MX = _residualise(_center_batch(Lx, wj), U, D)
    MY = _residualise(_center_batch(Ly, wj), U, D)
    _, fx = (np.asarray(v) for v in _trace_and_fro(MX))
    _, fy = (np.asarray(v) for v in _trace_and_fro(MY))
    ix = np.array([p[0] for p in pairs], dtype=np.int32)
    iy = np.array([p[1] for p in pairs], dtype=np.int32)
    stat, mean, var = (np.zeros(len(pairs)) for _ in range(3))
    for (bx, by), qs in rank_groups(rx, ry, pairs).items():
        bx, by = min(bx, MX.shape[2]), min(by, MY.shape[2])
        bs, (pix, piy) = C.pad_pairs(batch_size, ix[qs], iy[qs])
        got = _cond_pairs(MX[:, :, :bx], MY[:, :, :by], pix, piy, bs)
        for arr, g in zip((stat, mean, var), got):
            arr[qs] = np.asarray(g)[: len(qs)]
    p, k, scale = gamma_pvalues(stat, mean, var)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = stat / np.sqrt(fx[ix] * fy[iy])
    out = []
    for q, (i, j) in enumerate(pairs):
        params = {"est_width": est_width, "width_x": float(wx[i]), "width_y": float(wy[j]),
                  "width_z": float(wz[0]), "rank_x": int(rx[i]), "rank_y": int(ry[j]), "rank_z": int(rz[0]),
                  "epsilon": epsilon, "null": "gamma", "gamma_shape": float(k[q]),
                  "gamma_scale": float(scale[q])}
        status = OK if np.isfinite(p[q]) else "failed: degenerate null moments"
        out.append(TestResult("kci", float(stat[q]), float(p[q]), m, params, status, float(eff[q])))
    return out
