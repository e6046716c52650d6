"""Low-rank KCI and HSIC for large n: rank-capped incomplete Cholesky, memory linear in n.

Hand-written because no library offers jit-compiled, rank-capped kernel tests over many
pairs. The exact path (``_kci`` / ``_hsic``) factors every kernel to round-off (pivoted
Cholesky at tolerance 1e-12), which at n = 100,000 needs hundreds of columns per variable
and, for HSIC and conditional KCI, an O(n^2) null variance. This path is a statistical
approximation with a stated rank rule and never forms anything n x n:

* **Rank rule.** Each Gaussian kernel (on a variable's distinct values, then gathered to
  rows, as in ``_lowrank``) is factored by greedy pivoted (incomplete) Cholesky and stopped
  at rank ``r = min(max_rank, first r whose largest residual diagonal <= tol)``; defaults
  ``max_rank = 128``, ``tol = 1e-6`` (the kernel's diagonal is 1). Columns with at most
  ``max_rank`` distinct values are therefore exact. Incomplete Cholesky rather than random
  Fourier features because the variables are 1-3 dimensional, where the Gaussian kernel's
  spectrum decays fast and pivoted Cholesky reaches a given accuracy with far fewer (and
  deterministic) columns; RCIT is the random-Fourier-feature test of the package.
* **Statistics and null moments.** KCI's statistic, trace and Frobenius moments, HSIC's
  statistic and mean, and conditional KCI's statistic and mean are exact functions of the
  factors (O(n r^2)). The one quantity that is a double sum over rows of a product of two
  kernels, ``sum_{i != j} (A_i.A_j)^2 (B_i.B_j)^2`` (HSIC's and conditional KCI's null
  variance), is estimated from a fixed subsample of ``variance_rows`` rows (default 2048,
  chosen by a fixed seed independent of the run's seed): an unbiased estimate of the mean
  off-diagonal term, times the number of off-diagonal terms; the diagonal is exact.
* **Memory.** Variables are factored one x at a time against the (few) y factors of the
  group, so peak memory is O((1 + #y) n r + variance_rows^2), linear in n.

Example:
    >>> import numpy as np
    >>> from personax.independence._common import float64
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(3000, 1)); y = np.sin(2 * x) + rng.normal(size=(3000, 1))
    >>> with float64():
    ...     [r] = kci_lowrank([x], [y], None, [(0, 0)])
    >>> r.p_value < 1e-6, r.params["approx"]
    (True, 'lowrank')
"""

from __future__ import annotations

import math
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from personax.independence import _common as C
from personax.independence._hsic import median_sigma
from personax.independence._kci import EPSILON, _side_thetas, gamma_pvalues
from personax.independence._result import OK, TestResult

MAX_RANK = 128
LOWRANK_TOL = 1e-6
VARIANCE_ROWS = 2048
#: ``approx="auto"`` uses the low-rank path from this many complete rows of a pair group on
#: (the study's n = 9,444 stays on the exact path, so its numbers reproduce unchanged).
AUTO_THRESHOLD = 10_000
#: The same for conditional KCI, whose exact null variance is an O(n^2 r) double sum
#: (about 15 minutes for a 22 x 15 matrix at n = 10,000 on 2 cores).
AUTO_THRESHOLD_CONDITIONAL = 5_000
APPROX_CHOICES = ("auto", "exact", "lowrank")


def check_approx(approx: str) -> None:
    """Raise ``ValueError`` for an unknown ``approx`` choice."""
    if approx not in APPROX_CHOICES:
        raise ValueError(f"unknown approx {approx!r}; choose from {', '.join(APPROX_CHOICES)}")


def use_lowrank(approx: str, m: int, threshold: int = AUTO_THRESHOLD) -> bool:
    """The path a group of ``m`` complete rows takes: ``exact`` / ``lowrank`` / ``auto`` (m >= threshold).

    Example:
        >>> use_lowrank("auto", 100_000), use_lowrank("auto", 9_444), use_lowrank("lowrank", 50)
        (True, False, True)
    """
    check_approx(approx)
    return approx == "lowrank" or (approx == "auto" and m >= threshold)


@partial(jax.jit, static_argnames=("max_rank",))
def _pchol_capped(xu, wu, theta, tol, max_rank):
    """Pivoted Cholesky of ``exp(-0.5 theta ||a - b||^2)`` on rows ``xu`` (weights ``wu``), rank-capped.

    Returns the transposed factor (max_rank, u), the rank used and the largest residual diagonal.
    """
    u = xu.shape[0]

    def cond(state):
        _, d, rank = state
        return (rank < max_rank) & (jnp.max(d) > tol)

    def body(state):
        Lt, d, rank = state
        p = jnp.argmax(d)
        diff = xu - xu[p]
        col = jnp.exp(-0.5 * theta * jnp.sum(diff * diff, axis=-1)) * wu
        col = (col - Lt[:, p] @ Lt) / jnp.sqrt(d[p])
        Lt = jax.lax.dynamic_update_slice(Lt, col[None, :], (rank, jnp.int32(0)))
        d = jnp.maximum(d - col * col, 0.0).at[p].set(0.0)
        return Lt, d, rank + 1

    Lt0 = jnp.zeros((max_rank, u), xu.dtype)
    Lt, d, rank = jax.lax.while_loop(cond, body, (Lt0, wu.astype(xu.dtype), jnp.int32(0)))
    return Lt, rank, jnp.max(d)


def capped_factor(a: np.ndarray, theta: float, *, max_rank: int = MAX_RANK,
                  tol: float = LOWRANK_TOL) -> tuple[np.ndarray, int, float]:
    """Rank-capped kernel factor ``L`` (m, r) with ``L L^T ~ K``, factored on distinct rows.

    Args:
        a: (m, d) standardised data.
        theta: Inverse squared width.
        max_rank: Rank cap.
        tol: Stop early once the largest residual diagonal is at most ``tol``.

    Returns:
        ``(L, rank, residual)``: factor, (n_pad, width) with ``n_pad = bucket_rows(m)`` (rows
        beyond m are zero) and only its first ``rank`` of a bucketed ``width`` columns
        non-zero; rank; and the largest residual diagonal (0 = exact).

    Example:
        >>> from personax.independence._common import float64
        >>> with float64():
        ...     L, r, res = capped_factor(np.array([[0.0], [1.0], [0.0]]), 1.0)
        >>> L.shape, r, res == 0.0
        ((16, 4), 2, True)
    """
    m = a.shape[0]
    if a.shape[1] == 1:  # 1-D: a plain sort (np.unique with axis=0 is much slower)
        uniq, inverse = np.unique(a[:, 0], return_inverse=True)
        uniq = uniq[:, None]
    else:
        uniq, inverse = np.unique(a, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    u = uniq.shape[0]
    u_pad = C.bucket_rows(u)
    cap = int(min(max_rank, u))
    xu = np.zeros((u_pad, a.shape[1]))
    xu[:u] = uniq
    wu = np.zeros(u_pad)
    wu[:u] = 1.0
    Lt, rank, resid = _pchol_capped(jnp.asarray(xu), jnp.asarray(wu), jnp.float64(theta), jnp.float64(tol),
                                    C.bucket_rank(cap))
    rank = int(rank)
    width = min(C.bucket_rank(max(rank, 1)), Lt.shape[0])
    # (n_pad, width): the distinct rows gathered back; padded rows (bucketed shapes limit
    # recompilation across pair groups of different sizes) are zero
    L = np.zeros((C.bucket_rows(m), width))
    L[:m] = np.asarray(Lt[:width]).T[inverse]
    return L, rank, float(resid)


@jax.jit
def _center(L, w):
    """Centre the rows with weight 1 (H L); padded rows (weight 0) stay zero."""
    return w[:, None] * (L - (w @ L) / jnp.sum(w))


@jax.jit
def _gram_fro(F):
    g = F.T @ F
    return jnp.sum(F * F), jnp.sum(g * g)


@jax.jit
def _cross(A, B):
    return jnp.sum((A.T @ B) ** 2)


@jax.jit
def _sub_gram(F, rows):
    S = F[rows]
    return S @ S.T


@jax.jit
def _offdiag_mean_sq(GA, GB):
    """Mean over i != j of ``(GA_ij GB_ij)^2`` (subsample Gram matrices)."""
    s = GA.shape[0]
    prod = (GA * GB) ** 2
    return (jnp.sum(prod) - jnp.sum(jnp.diag(prod))) / (s * (s - 1))


@jax.jit
def _diag_sq(A, B):
    da = jnp.sum(A * A, axis=1)
    db = jnp.sum(B * B, axis=1)
    return jnp.sum(da * db), jnp.sum((da * db) ** 2)


def _variance_rows(m: int, variance_rows: int) -> np.ndarray:
    s = min(int(variance_rows), m)
    # fixed seed: the subsample is part of the method, not of the run's randomness
    return np.sort(np.random.default_rng(20261201).choice(m, size=s, replace=False)).astype(np.int32)


def _params(kind: str, max_rank: int, tol: float, ranks: dict, resid: dict, variance_rows: int | None) -> dict:
    out = {"approx": "lowrank", "max_rank": int(max_rank), "lowrank_tol": float(tol)}
    for k, v in ranks.items():
        out[f"rank_{k}"] = int(v)
    out["rank"] = int(max(ranks.values()))
    out["lowrank_residual"] = float(max(resid.values()))
    if variance_rows is not None:
        out["variance_rows"] = int(variance_rows)
    return out


def kci_lowrank(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], z: np.ndarray | None,
                pairs: Sequence[tuple[int, int]], *, est_width: str = "empirical", kwidthx: float | None = None,
                kwidthy: float | None = None, kwidthz: float | None = None, epsilon: float = EPSILON,
                max_rank: int = MAX_RANK, lowrank_tol: float = LOWRANK_TOL, variance_rows: int = VARIANCE_ROWS,
                **_ignored) -> list[TestResult]:
    """Low-rank KCI (unconditional when ``z is None``) for pairs sharing rows (and Z).

    Same kernels, widths and gamma null as :func:`personax.independence._kci.kci_unconditional_group`
    / ``kci_conditional_group``; the kernels are rank-capped (module docstring) and the
    conditional null variance is estimated on ``variance_rows`` rows.

    Args:
        xs: Raw (m, dx) arrays, one per x-variable.
        ys: Raw (m, dy) arrays, one per y-variable.
        z: Raw (m, dz) conditioning data, or None.
        pairs: (x index, y index) pairs.
        est_width: ``"empirical"`` (causal-learn default), ``"median"`` or ``"manual"``.
        kwidthx: Manual width for x.
        kwidthy: Manual width for y.
        kwidthz: Manual width for z.
        epsilon: Ridge of the kernel regression on Z.
        max_rank: Rank cap per kernel.
        lowrank_tol: Residual-diagonal tolerance below which a factor stops early.
        variance_rows: Rows of the subsample for the conditional null variance.

    Returns:
        One TestResult per pair; ``params["approx"] == "lowrank"`` and the ranks are recorded.
    """
    m = xs[0].shape[0]
    w = jnp.asarray((np.arange(C.bucket_rows(m)) < m).astype(np.float64))
    yz = [C.zscore(a) for a in ys]
    if z is None:
        xz = [C.zscore(a) for a in xs]
        thx, wx = _side_thetas(xz, est_width, m, kwidthx)
        thy, wy = _side_thetas(yz, est_width, m, kwidthy)
    else:
        zz = C.zscore(z)
        dz = zz.shape[1]
        xz = [np.concatenate([C.zscore(a), 0.5 * zz], axis=1) for a in xs]
        cond = None if est_width == "median" else dz
        thz, wz = _side_thetas([zz], est_width, m, kwidthz, conditional_dim=cond)
        thx, wx = _side_thetas(xz, est_width, m, kwidthx, conditional_dim=cond)
        thy, wy = _side_thetas(yz, est_width, m, kwidthy, conditional_dim=cond)
        Lz, rz, resz = capped_factor(zz, thz[0], max_rank=max_rank, tol=lowrank_tol)
        U, S, _ = jnp.linalg.svd(_center(jnp.asarray(Lz), w), full_matrices=False)
        S2 = S * S
        D = S2 / (S2 + epsilon)
        rows = jnp.asarray(_variance_rows(m, variance_rows))

    def prepare(a, theta):
        L, r, res = capped_factor(a, theta, max_rank=max_rank, tol=lowrank_tol)
        F = _center(jnp.asarray(L), w)
        if z is not None:
            F = F - U @ (D[:, None] * (U.T @ F))  # R F with R = eps (Kzc + eps I)^-1
        return F, r, res

    ycache = {}
    for j in sorted({j for _, j in pairs}):
        F, r, res = prepare(yz[j], thy[j])
        tr, fro = _gram_fro(F)
        ycache[j] = (F, r, res, float(tr), float(fro), _sub_gram(F, rows) if z is not None else None)
    by_x: dict[int, list[int]] = {}
    for q, (i, _) in enumerate(pairs):
        by_x.setdefault(i, []).append(q)
    out: list[TestResult | None] = [None] * len(pairs)
    for i, qs in by_x.items():
        FX, rx, resx = prepare(xz[i], thx[i])
        trx, frx = (float(v) for v in _gram_fro(FX))
        gx = _sub_gram(FX, rows) if z is not None else None
        for q in qs:
            j = pairs[q][1]
            FY, ry, resy, tr_y, fry, gy = ycache[j]
            stat = float(_cross(FX, FY))
            ranks = {"x": rx, "y": ry}
            resid = {"x": resx, "y": resy}
            if z is None:
                mean = trx * tr_y / m
                var = 2.0 * frx * fry / m**2
                extra = {"est_width": est_width, "width_x": float(wx[i]), "width_y": float(wy[j])}
                vrows = None
            else:
                mean, diag = (float(v) for v in _diag_sq(FX, FY))
                off = float(_offdiag_mean_sq(gx, gy)) * m * (m - 1)
                var = 2.0 * (diag + off)
                ranks["z"] = rz
                resid["z"] = resz
                vrows = int(rows.shape[0])
                extra = {"est_width": est_width, "width_x": float(wx[i]), "width_y": float(wy[j]),
                         "width_z": float(wz[0]), "epsilon": epsilon}
            p, k, scale = (float(v[0]) for v in gamma_pvalues(np.array([stat]), np.array([mean]), np.array([var])))
            with np.errstate(divide="ignore", invalid="ignore"):
                eff = stat / math.sqrt(frx * fry) if frx * fry > 0 else math.nan
            params = {**extra, **_params("kci", max_rank, lowrank_tol, ranks, resid, vrows), "null": "gamma",
                      "gamma_shape": k, "gamma_scale": scale}
            status = OK if np.isfinite(p) else "failed: degenerate null moments"
            out[q] = TestResult("kci", stat, p, m, params, status, eff)
    return out  # type: ignore[return-value]


def hsic_lowrank(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], *,
                 width_rule: str = "median", null_dist: str = "gamma", max_rank: int = MAX_RANK,
                 lowrank_tol: float = LOWRANK_TOL, variance_rows: int = VARIANCE_ROWS,
                 **_ignored) -> list[TestResult]:
    """Low-rank HSIC with Gretton's gamma null for pairs sharing rows.

    Same widths, statistic and null mean as :func:`personax.independence._hsic.hsic_group`
    (computed from rank-capped factors); the null variance's double sum is estimated on
    ``variance_rows`` rows. Only ``null_dist="gamma"``.

    Args:
        xs: Raw (m, dx) arrays.
        ys: Raw (m, dy) arrays.
        pairs: (x index, y index) pairs.
        width_rule: ``"median"`` or ``"empirical"``.
        null_dist: Must be ``"gamma"``.
        max_rank: Rank cap per kernel.
        lowrank_tol: Residual-diagonal tolerance below which a factor stops early.
        variance_rows: Rows of the subsample for the null variance.

    Returns:
        One TestResult per pair.

    Example:
        >>> from personax.independence._common import float64
        >>> rng = np.random.default_rng(1)
        >>> x = rng.normal(size=(4000, 1)); y = np.abs(x) + rng.normal(size=(4000, 1))
        >>> with float64():
        ...     [r] = hsic_lowrank([x], [y], [(0, 0)])
        >>> r.p_value < 1e-6
        True
    """
    if null_dist != "gamma":
        raise ValueError("the low-rank HSIC supports null_dist='gamma' only; use approx='exact' for permutations")
    m = xs[0].shape[0]
    w = jnp.asarray((np.arange(C.bucket_rows(m)) < m).astype(np.float64))
    xz = [C.zscore(a) for a in xs]
    yz = [C.zscore(a) for a in ys]

    def thetas(arrs):
        if width_rule == "median":
            sig = [median_sigma(a) for a in arrs]
            return [1.0 / s**2 for s in sig], sig
        if width_rule == "empirical":
            wd = C.kci_width_unconditional(m)
            return [a.shape[1] / wd**2 for a in arrs], [math.nan] * len(arrs)
        raise ValueError(f"unknown width_rule {width_rule!r}; use 'median' or 'empirical'")

    thx, sx = thetas(xz)
    thy, sy = thetas(yz)
    rows = jnp.asarray(_variance_rows(m, variance_rows))

    def prepare(a, theta):
        L, r, res = capped_factor(a, theta, max_rank=max_rank, tol=lowrank_tol)
        Lj = jnp.asarray(L)
        total = float(jnp.sum(jnp.sum(Lj, axis=0) ** 2))  # 1^T K 1 (padded rows are zero)
        F = _center(Lj, w)
        _, fro = _gram_fro(F)
        return F, r, res, total, float(fro), _sub_gram(F, rows)

    ycache = {j: prepare(yz[j], thy[j]) for j in sorted({j for _, j in pairs})}
    by_x: dict[int, list[int]] = {}
    for q, (i, _) in enumerate(pairs):
        by_x.setdefault(i, []).append(q)
    out: list[TestResult | None] = [None] * len(pairs)
    for i, qs in by_x.items():
        FX, rx, resx, sumx, frx, gx = prepare(xz[i], thx[i])
        for q in qs:
            j = pairs[q][1]
            FY, ry, resy, sumy, fry, gy = ycache[j]
            raw = float(_cross(FX, FY))
            stat = raw / m
            mux = (sumx - m) / (m * (m - 1))
            muy = (sumy - m) / (m * (m - 1))
            mean = (1.0 + mux * muy - mux - muy) / m
            offdiag = float(_offdiag_mean_sq(gx, gy)) * m * (m - 1)
            var = offdiag / 36.0 / (m * (m - 1))
            var = var * 72.0 * (m - 4) * (m - 5) / (m * (m - 1) * (m - 2) * (m - 3))
            with np.errstate(divide="ignore", invalid="ignore"):
                al = mean**2 / var
                bet = var * m / mean
            from scipy import stats

            ok = np.isfinite(al) and np.isfinite(bet) and al > 0 and bet > 0 and np.isfinite(stat)
            p = float(stats.gamma.sf(stat, al, loc=0, scale=bet)) if ok else math.nan
            eff = raw / math.sqrt(frx * fry) if frx * fry > 0 else math.nan
            params = {"width_rule": width_rule, "sigma_x": float(sx[i]), "sigma_y": float(sy[j]),
                      **_params("hsic", max_rank, lowrank_tol, {"x": rx, "y": ry}, {"x": resx, "y": resy},
                                int(rows.shape[0])),
                      "null": "gamma", "gamma_shape": float(al), "gamma_scale": float(bet)}
            status = OK if np.isfinite(p) else "failed: degenerate null moments"
            out[q] = TestResult("hsic", stat, p, m, params, status, eff)
    return out  # type: ignore[return-value]
