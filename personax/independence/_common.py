"""Shared helpers: float64 scope, input checks, standardisation, shape buckets."""

from __future__ import annotations

import contextlib
from typing import Iterator

import jax
import numpy as np

MIN_ROWS = 10

SKIP_NON_NUMERIC = "skipped: non-numeric data"
SKIP_INFINITE = "skipped: infinite values"
SKIP_ALL_MISSING = "skipped: all values missing"
SKIP_CONSTANT = "skipped: constant column"
SKIP_CONSTANT_Z = "skipped: constant conditioning column"
SKIP_FEW_ROWS = "skipped: fewer than {min_rows} usable rows"
SKIP_CONTINUOUS = "skipped: continuous"


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """Run JAX in float64 inside this block only.

    Agreement with causal-learn (float64 NumPy) needs double precision. The flag is scoped
    with ``jax.enable_x64`` so importing personax never flips it for the rest of the process.
    """
    with jax.enable_x64(True):
        yield


def as_float_matrix(values) -> tuple[np.ndarray | None, str | None]:
    """Convert 1-D or 2-D input to a float64 (n, d) array with NaN for missing values.

    Returns:
        ``(array, None)`` or ``(None, status)`` when the data are non-numeric or contain
        infinities.
    """
    if values is None:
        return None, None
    try:
        import pandas as pd

        if isinstance(values, (pd.Series, pd.DataFrame)):
            frame = values.to_frame() if isinstance(values, pd.Series) else values
            for col in frame.columns:
                dt = frame[col].dtype
                if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt)):
                    return None, SKIP_NON_NUMERIC
            arr = frame.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(values)
            if arr.dtype == object:
                try:
                    arr = arr.astype(np.float64)
                except (TypeError, ValueError):
                    return None, SKIP_NON_NUMERIC
            elif not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                return None, SKIP_NON_NUMERIC
            arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        return None, SKIP_NON_NUMERIC
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected 1-D or 2-D data, got shape {arr.shape}")
    if np.isinf(arr).any():
        return None, SKIP_INFINITE
    return arr, None


def usable_rows(*arrays: np.ndarray | None) -> np.ndarray:
    """Boolean mask of rows that are non-missing in every given (n, d) array."""
    mask = None
    for a in arrays:
        if a is None:
            continue
        m = ~np.isnan(a).any(axis=1)
        mask = m if mask is None else mask & m
    return mask


def is_constant(a: np.ndarray) -> bool:
    """True when every column of ``a`` (n, d) has a single value (or ``a`` is empty)."""
    if a.shape[0] == 0:
        return True
    return bool(np.all(a.max(axis=0) == a.min(axis=0)))


def any_constant_column(a: np.ndarray) -> bool:
    """True when at least one column of ``a`` is constant."""
    return bool(np.any(a.max(axis=0) == a.min(axis=0)))


def scale_by_power_of_two(a: np.ndarray) -> np.ndarray:
    """Divide each column by the power of two nearest above its largest ``|value|``.

    Exact in floating point (a power-of-two scaling only shifts exponents), so scale-free
    statistics are unchanged bit for bit on ordinary data, while data near the float64
    limits (``x * 1e154``, ``x * 1e-300``) no longer overflow or underflow when squared.

    Example:
        >>> scale_by_power_of_two(np.array([[3.0], [-6.0]]))[:, 0].tolist()
        [0.375, -0.75]
    """
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.abs(a), axis=0) if a.size else np.zeros(a.shape[1:])
    exponent = np.where(np.isfinite(top) & (top > 0), np.frexp(np.where(np.isfinite(top), top, 1.0))[1], 0)
    return np.ldexp(a, -exponent.astype(np.int64))


def zscore(a: np.ndarray) -> np.ndarray:
    """Column z-score with ``ddof=1`` (causal-learn's convention); constant columns become 0.

    Columns are first scaled by a power of two (:func:`scale_by_power_of_two`), so extreme
    scales give the same z-scores as ordinary ones instead of overflowing.
    """
    a = scale_by_power_of_two(a)
    sd = a.std(axis=0, ddof=1)
    out = (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    out[:, sd == 0] = 0.0
    return out


def bucket_rows(n: int) -> int:
    """Padded row count: powers of two up to 1024, then multiples of 512 (limits recompiles)."""
    if n <= 16:
        return 16
    if n <= 1024:
        return 1 << (n - 1).bit_length()
    return ((n + 511) // 512) * 512


def bucket_rank(r: int) -> int:
    """Padded rank: powers of two (at least 4) up to 64, then multiples of 64."""
    r = max(int(r), 1)
    if r <= 64:
        return max(4, 1 << (r - 1).bit_length())
    return ((r + 63) // 64) * 64


def pad_rows(a: np.ndarray, n_pad: int) -> np.ndarray:
    """Zero-pad axis -2 of ``a`` to ``n_pad`` rows."""
    pad = [(0, 0)] * a.ndim
    pad[-2] = (0, n_pad - a.shape[-2])
    return np.pad(a, pad)


def kci_width_unconditional(n: int) -> float:
    """causal-learn's empirical HSIC/KCI width for the unconditional test."""
    return 0.8 if n < 200 else (0.5 if n < 1200 else 0.3)


def kci_width_conditional(n: int) -> float:
    """causal-learn's empirical width for the conditional KCI test."""
    return 1.2 if n < 200 else (0.7 if n < 1200 else 0.4)


def pair_devices() -> int:
    """Devices the pairs of a group are sharded over (all local devices of the default backend)."""
    return jax.local_device_count()


def map_pairs(one, consts, pairs, batch):
    """``jax.lax.map(lambda p: one(consts, p), pairs, batch_size=batch)``, sharded over devices.

    With several local devices the pair axis is split over a one-axis ``jax.sharding.Mesh``
    with ``jax.shard_map``: each device maps its share of the pairs, the per-variable factors
    in ``consts`` are replicated. Call inside ``jit``; the pair count must be a multiple of
    ``batch * pair_devices()`` (:func:`pad_pairs` does that). One device: a plain ``lax.map``.
    """
    def local(c, p):
        return jax.lax.map(lambda q: one(c, q), p, batch_size=batch)

    devices = jax.local_devices()
    if len(devices) == 1:
        return local(consts, pairs)
    from jax.sharding import Mesh, PartitionSpec

    mesh = Mesh(np.array(devices), ("pairs",))
    return jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec("pairs")),
                         out_specs=PartitionSpec("pairs"), check_vma=False)(consts, pairs)


def pad_pairs(batch: int, *arrays):
    """Pad pair-index arrays (axis 0) to a multiple of ``batch`` times the device count by
    repeating the last entry.

    ``jax.lax.map(..., batch_size=b)`` hangs on CPU in jax 0.10 when the length is not a
    multiple of ``b`` (remainder path), and :func:`map_pairs` gives every device an equal
    share; padding avoids both problems. Slice results to the original length.
    """
    n = arrays[0].shape[0]
    batch = max(1, min(int(batch), n))
    extra = (-n) % (batch * pair_devices())
    if extra == 0:
        return batch, arrays
    import jax.numpy as jnp

    def grow(a):
        if isinstance(a, np.ndarray):
            return np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])
        return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)])

    return batch, tuple(grow(a) for a in arrays)
