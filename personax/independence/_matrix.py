"""``test_matrix``: every (feature, trait) pair, every test, one tidy table."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np
import pandas as pd
from scipy import stats

from personax.independence import _common as C
from personax.independence._api import NUMERICAL_ERRORS, TESTS, check_test_name
from personax.independence._discrete import contingency_test
from personax.independence._fisherz import fisherz_test
from personax.independence._hsic import hsic_group
from personax.independence._kci import kci_conditional_group, kci_unconditional_group
from personax.independence._rcit import rcit_group
from personax.independence._scalable import (AUTO_THRESHOLD, AUTO_THRESHOLD_CONDITIONAL, check_approx, hsic_lowrank,
                                              kci_lowrank, use_lowrank)
from personax.independence._result import TestResult

COLUMNS = ["feature", "trait", "test", "n", "statistic", "p_value", "q_value", "effect_size", "status", "approx", "rank",
           "params"]
DEFAULT_TESTS = ("kci", "hsic", "rcit", "chisq", "gsq")


def is_discrete(values: np.ndarray, max_categories: int) -> bool:
    """Cardinality rule: integer-valued and at most ``max_categories`` distinct values."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return False
    return bool(np.all(v == np.round(v)) and np.unique(v).size <= max_categories)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values over the finite entries of ``p`` (NaN stays NaN)."""
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


class _Column:
    """A column converted once: float64 values with NaN for missing, or a status."""

    def __init__(self, name: str, series: pd.Series, max_categories: int, discrete: bool | None):
        self.name = name
        arr, status = C.as_float_matrix(series)
        self.status = None if status is None else f"{status} ({name})"
        self.values = None if arr is None else arr[:, 0]
        if self.values is None:
            self.discrete = False
        elif discrete is None:
            self.discrete = is_discrete(self.values, max_categories)
        else:
            self.discrete = discrete


def _pair_status(x: _Column, y: _Column, zcols: Sequence[_Column], min_rows: int) -> tuple[str | None, np.ndarray | None]:
    for col in (x, y, *zcols):
        if col.status is not None:
            return col.status, None
    if x.name == y.name:
        return "skipped: same column", None
    if x.name in {c.name for c in zcols} or y.name in {c.name for c in zcols}:
        return "skipped: variable in conditioning set", None
    for col in (x, y, *zcols):
        if np.isnan(col.values).all():
            return f"{C.SKIP_ALL_MISSING} ({col.name})", None
    mask = ~np.isnan(x.values) & ~np.isnan(y.values)
    for col in zcols:
        mask &= ~np.isnan(col.values)
    m = int(mask.sum())
    if m < min_rows:
        return C.SKIP_FEW_ROWS.format(min_rows=min_rows) + f" ({m})", mask
    for col in (x, y):
        v = col.values[mask]
        if v.max() == v.min():
            return f"{C.SKIP_CONSTANT} ({col.name})", mask
    for col in zcols:
        v = col.values[mask]
        if v.max() == v.min():
            return f"{C.SKIP_CONSTANT_Z} ({col.name})", mask
    return None, mask


def test_matrix(df: pd.DataFrame, features: Sequence[str], traits: Sequence[str],
                tests: Iterable[str] = DEFAULT_TESTS, conditioning: Sequence[str] | None = None, *,
                options: Mapping[str, Mapping[str, Any]] | None = None,
                discrete: Sequence[str] | None = None, max_categories: int = 40,
                min_rows: int = C.MIN_ROWS, seed: int = 0, key=None, block_size: int = 16,
                approx: str = "auto", approx_threshold: int = AUTO_THRESHOLD,
                approx_threshold_conditional: int = AUTO_THRESHOLD_CONDITIONAL,
                first_feature_index: int = 0, progress: Callable[[int], Any] | None = None) -> pd.DataFrame:
    """Run independence tests on every (feature, trait) pair of a data frame.

    Per pair, rows missing in the feature, the trait or any conditioning column are dropped.
    Pairs with the same complete rows form a group; within a group each variable's kernel is
    factored once and reused by every pair (kernel tests are hand-written JAX because no
    library runs them fast enough for the study's matrices; float64 is scoped with
    ``jax.enable_x64``). Work is processed ``block_size`` pairs at a time so memory stays
    O(block_size * n * rank).

    Args:
        df: Data frame holding all columns.
        features: Feature column names (rows of the result's matrices).
        traits: Trait column names.
        tests: Any of ``"kci"``, ``"hsic"``, ``"rcit"``, ``"chisq"``, ``"gsq"``, ``"fisherz"``.
        conditioning: Optional columns to condition on (every pair is then tested
            conditionally; HSIC has no conditional form and is reported as skipped).
        options: Per-test keyword options, e.g. ``{"kci": {"est_width": "median"}}``.
        discrete: Columns treated as discrete by chi-square / G-square; when given, every
            column not listed (trait columns included) counts as continuous. ``None`` applies
            the cardinality rule (integer-valued, at most ``max_categories`` values) to every
            column.
        max_categories: Cardinality rule threshold.
        min_rows: Minimum complete rows per pair.
        seed: Seed for randomised tests (RCIT, permutation HSIC) when ``key`` is None.
        key: Explicit ``jax.random`` key (overrides ``seed``); pair (i, j) uses
            ``fold_in(fold_in(key, i), j)``.
        block_size: Pairs evaluated together.
        approx: KCI / HSIC path: ``"exact"`` (kernels factored to round-off), ``"lowrank"``
            (rank-capped incomplete Cholesky, memory linear in n; see ``_scalable``) or
            ``"auto"`` (low-rank for pair groups of at least ``approx_threshold`` rows).
            HSIC's permutation null has no low-rank form: ``auto`` keeps it exact.
        approx_threshold: Rows from which ``auto`` takes the low-rank path.
        approx_threshold_conditional: The same for conditional KCI (its exact null variance
            costs O(n^2 r)).
        first_feature_index: Position of ``features[0]`` in a longer feature list this call
            is a slice of (``independence.chunk``), so that randomised tests draw the same
            per-pair keys as the whole matrix would.
        progress: Called with a number of pairs each time that many are done, e.g. a tqdm
            bar's ``update``: per test, first the pairs that cannot run (their status says why),
            then each group of pairs with the same complete rows as it finishes.

    Returns:
        Tidy DataFrame with columns feature, trait, test, n, statistic, p_value, q_value
        (Benjamini-Hochberg within each test), effect_size, status, approx (``exact``,
        ``lowrank``, ``rff`` for RCIT's random features, empty when the test did not run),
        rank (largest kernel rank used by KCI / HSIC, Fourier features per variable for
        RCIT; missing otherwise), params (JSON).

    Example:
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> df = pd.DataFrame({"f": rng.normal(size=200), "g": rng.integers(0, 3, 200)})
        >>> df["t"] = (df["g"] + rng.integers(0, 2, 200)).astype(float)
        >>> out = test_matrix(df, ["f", "g"], ["t"], tests=["kci", "chisq"])
        >>> out.set_index(["feature", "test"]).loc[("f", "chisq"), "status"]
        'skipped: continuous'
    """
    tests = list(tests)
    for t in tests:
        check_test_name(t)
    check_approx(approx)
    for name, value in (("approx_threshold", approx_threshold),
                        ("approx_threshold_conditional", approx_threshold_conditional)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive number of rows, got {value}")
    options = {k: dict(v) for k, v in (options or {}).items()}
    unknown = set(options) - set(TESTS)
    if approx == "lowrank" and "hsic" in tests and options.get("hsic", {}).get("null_dist") == "permutation":
        raise ValueError("approx='lowrank' has no permutation null for HSIC; use hsic.null_dist=gamma or approx=auto")
    if unknown:
        raise ValueError(f"options for unknown tests: {sorted(unknown)}")
    conditioning = list(conditioning or [])
    missing = [c for c in [*features, *traits, *conditioning] if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in data frame: {missing}")
    discrete_set = None if discrete is None else set(discrete)
    cols: dict[str, _Column] = {}
    for name in dict.fromkeys([*features, *traits, *conditioning]):
        flag = None if discrete_set is None else (name in discrete_set)
        cols[name] = _Column(name, df[name], max_categories, flag)
    zcols = [cols[c] for c in conditioning]
    base_key = key if key is not None else jax.random.key(seed)
    offset = int(first_feature_index)

    pair_list = [(i, j) for i in range(len(features)) for j in range(len(traits))]
    status: dict[tuple[int, int], str] = {}
    groups: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    masks: dict[bytes, np.ndarray] = {}
    for i, j in pair_list:
        st, mask = _pair_status(cols[features[i]], cols[traits[j]], zcols, min_rows)
        if st is not None:
            status[(i, j)] = st
            continue
        k = mask.tobytes()  # exact key: dict lookup compares the full bytes, no hash collisions
        groups[k].append((i, j))
        masks[k] = mask

    results: dict[tuple[str, int, int], TestResult] = {}
    done = progress or (lambda pairs: None)
    for test in tests:
        opts = options.get(test, {})
        done(len(status))
        for gk, gpairs in groups.items():
            mask = masks[gk]
            m = int(mask.sum())
            z = np.column_stack([c.values[mask] for c in zcols]) if zcols else None
            run_pairs = gpairs
            if test in ("chisq", "gsq"):
                run_pairs = []
                for i, j in gpairs:
                    if not (cols[features[i]].discrete and cols[traits[j]].discrete):
                        results[(test, i, j)] = TestResult.skipped(test, m, C.SKIP_CONTINUOUS)
                    elif zcols and not all(c.discrete for c in zcols):
                        results[(test, i, j)] = TestResult.skipped(test, m, "skipped: continuous conditioning")
                    else:
                        run_pairs.append((i, j))
            if not run_pairs:
                done(len(gpairs))
                continue
            try:
                with C.float64():
                    out = _run_group(test, features, traits, cols, mask, z, run_pairs, opts, base_key, block_size,
                                     use_lowrank(approx, m, int(approx_threshold_conditional if zcols
                                                                 else approx_threshold)), offset)
            except NUMERICAL_ERRORS as err:
                out = [TestResult.skipped(test, m, f"failed: {type(err).__name__}: {err}") for _ in run_pairs]
            for (i, j), r in zip(run_pairs, out):
                results[(test, i, j)] = r.checked()
            done(len(gpairs))

    rows = []
    for test in tests:
        for i, j in pair_list:
            r = results.get((test, i, j))
            if r is None:
                r = TestResult.skipped(test, 0, status[(i, j)])
            path, rank = approx_and_rank(test, r)
            rows.append({"feature": features[i], "trait": traits[j], "test": test, "n": r.n,
                         "statistic": r.statistic, "p_value": r.p_value, "q_value": math.nan,
                         "effect_size": r.effect_size, "status": r.status, "approx": path, "rank": rank,
                         "params": json.dumps(r.params, default=float, sort_keys=True)})
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["n"] = table["n"].astype("int64")
    table["rank"] = table["rank"].astype("Int64")
    for test in tests:
        sel = table["test"] == test
        table.loc[sel, "q_value"] = bh_qvalues(table.loc[sel, "p_value"].to_numpy(dtype=float))
    return table


def approx_and_rank(test: str, r: TestResult) -> tuple[str, int | None]:
    """The ``approx`` and ``rank`` columns of one result (see :func:`test_matrix`)."""
    if not r.params:
        return "", None
    if test in ("kci", "hsic"):
        ranks = [v for k, v in r.params.items() if k.startswith("rank_")]
        return r.params.get("approx", "exact"), int(max(ranks)) if ranks else None
    if test == "rcit":
        return "rff", int(r.params.get("num_f2", 0)) or None
    return "exact", None


def _run_group(test, features, traits, cols, mask, z, pairs, opts, base_key, block_size, lowrank=False, offset=0):
    fi = sorted({i for i, _ in pairs})
    tj = sorted({j for _, j in pairs})
    xpos = {i: k for k, i in enumerate(fi)}
    ypos = {j: k for k, j in enumerate(tj)}
    xs = [cols[features[i]].values[mask][:, None] for i in fi]
    ys = [cols[traits[j]].values[mask][:, None] for j in tj]
    local = [(xpos[i], ypos[j]) for i, j in pairs]
    if lowrank and test == "kci":
        return kci_lowrank(xs, ys, z, local, **opts)
    if lowrank and test == "hsic" and z is None and opts.get("null_dist", "gamma") == "gamma":
        return hsic_lowrank(xs, ys, local, **opts)
    if test == "kci":
        opts = {"batch_size": block_size, **opts}
        if z is None:
            return kci_unconditional_group(xs, ys, local, **opts)
        return kci_conditional_group(xs, ys, z, local, **opts)
    if test == "hsic":
        if z is not None:
            return [TestResult.skipped("hsic", int(mask.sum()), "skipped: HSIC has no conditional form") for _ in pairs]
        opts = {"batch_size": block_size, **opts}
        if opts.get("null_dist") == "permutation":
            return [hsic_group(xs, ys, [lp], key=_pair_key(base_key, i + offset, j), **opts)[0]
                    for lp, (i, j) in zip(local, pairs)]
        return hsic_group(xs, ys, local, **opts)
    if test == "rcit":
        keys = [_pair_key(base_key, i + offset, j) for i, j in pairs]
        return rcit_group(xs, ys, z, local, key=base_key, pair_keys=jax.numpy.stack(keys), **opts)
    if test in ("chisq", "gsq"):
        # discreteness was decided by the caller (cardinality rule or explicit list)
        opts = {"max_categories": None, **opts}
        return [contingency_test(xs[a], ys[b], z, g_square=test == "gsq", **opts) for a, b in local]
    if test == "fisherz":
        return [fisherz_test(xs[a], ys[b], z, **opts) for a, b in local]
    raise AssertionError(test)


def _pair_key(base_key, i: int, j: int):
    return jax.random.fold_in(jax.random.fold_in(base_key, i), j)


test_matrix.__test__ = False  # a library function, not a pytest test
