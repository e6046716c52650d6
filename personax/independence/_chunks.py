"""Level I split into feature chunks (``independence.chunk=i/k``) and merged back.

A Hydra multirun over ``independence.chunk=1/k,...,k/k`` runs one slice of the feature list
per job with any launcher (joblib, submitit local or Slurm). A chunk's table carries the
columns ``chunk`` (``"i/k"``) and ``data_digest`` (hash of the data the matrix ran on) and
has no q-values: Benjamini-Hochberg needs every p-value of the matrix. :func:`merge_chunks`
concatenates the k tables, checks they are the complete, non-overlapping slices of one
matrix on the same data, and applies BH per test over the whole matrix, which gives the
same table as an unchunked run. :func:`merge_sweep` does this for a sweep folder and is
called by ``python -m personax.sweep``.

Example:
    >>> parse_chunk("2/3"), chunk_features(["a", "b", "c", "d"], (2, 3))
    ((2, 3), ['b', 'c'])
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import yaml

from personax.artifacts import LEVEL1_TABLE
from personax.independence._matrix import bh_qvalues

log = logging.getLogger(__name__)

CHUNK_COLUMNS = ("chunk", "data_digest")
_CHUNK_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_chunk(value) -> tuple[int, int] | None:
    """``"i/k"`` -> ``(i, k)`` with ``1 <= i <= k``; ``None`` / ``""`` -> None (no split).

    Raises:
        ValueError: With a one-line message for anything else.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    match = _CHUNK_RE.match(str(value))
    if not match:
        raise ValueError(f"independence.chunk must look like i/k (e.g. 1/4), got {value!r}")
    i, k = int(match.group(1)), int(match.group(2))
    if not 1 <= i <= k:
        raise ValueError(f"independence.chunk={value}: need 1 <= i <= k")
    return i, k


def chunk_slice(n_features: int, chunk: tuple[int, int] | None) -> slice:
    """Positions of chunk ``i`` of ``k`` in the feature list: contiguous, sizes differing by at most one."""
    if chunk is None:
        return slice(0, n_features)
    i, k = chunk
    if k > n_features:
        raise ValueError(f"independence.chunk={i}/{k}: only {n_features} features to split")
    bounds = np.linspace(0, n_features, k + 1).round().astype(int)
    return slice(int(bounds[i - 1]), int(bounds[i]))


def chunk_features(features: Sequence[str], chunk: tuple[int, int] | None) -> list[str]:
    """The features of chunk ``i`` of ``k`` (see :func:`chunk_slice`)."""
    return list(features)[chunk_slice(len(features), chunk)]


def data_digest(frame: pd.DataFrame) -> str:
    """A short content hash of the data a matrix ran on (column names and values)."""
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def mark_chunk(table: pd.DataFrame, chunk: tuple[int, int], digest: str) -> pd.DataFrame:
    """A chunk's table: ``chunk`` and ``data_digest`` columns, q-values left to the merge."""
    out = table.copy()
    out["q_value"] = np.nan
    out["chunk"] = f"{chunk[0]}/{chunk[1]}"
    out["data_digest"] = digest
    return out


def merge_chunks(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Merge the k chunk tables of one matrix; BH per test over the whole matrix.

    Raises:
        ValueError: When chunks are missing, repeated, from different splits, ran on
            different data, or overlap in their (feature, trait, test) rows.

    Example:
        >>> a = pd.DataFrame({"feature": ["f"], "trait": ["t"], "test": ["kci"], "p_value": [0.01],
        ...                   "q_value": [np.nan], "chunk": ["1/2"], "data_digest": ["d"]})
        >>> b = a.assign(feature="g", p_value=0.04, chunk="2/2")
        >>> merge_chunks([a, b])["q_value"].round(3).tolist()
        [0.02, 0.04]
    """
    if not frames:
        raise ValueError("no chunk tables to merge")
    for f in frames:
        missing = [c for c in CHUNK_COLUMNS if c not in f.columns]
        if missing or f["chunk"].nunique() != 1:
            raise ValueError("not a chunk table (run with independence.chunk=i/k): "
                             f"missing {missing or 'a single chunk value'}")
    chunks = [parse_chunk(f["chunk"].iloc[0]) for f in frames]
    ks = {k for _, k in chunks}
    if len(ks) != 1:
        raise ValueError(f"chunks from different splits: {sorted(f'{i}/{k}' for i, k in chunks)}")
    (k,) = ks
    seen = sorted(i for i, _ in chunks)
    if seen != list(range(1, k + 1)):
        absent = sorted(set(range(1, k + 1)) - set(seen))
        repeated = sorted({i for i in seen if seen.count(i) > 1})
        raise ValueError(f"incomplete split into {k} chunks: missing {[f'{i}/{k}' for i in absent]}"
                         + (f", repeated {[f'{i}/{k}' for i in repeated]}" if repeated else ""))
    digests = {f["data_digest"].iloc[0] for f in frames}
    if len(digests) != 1:
        raise ValueError(f"chunks ran on different data (data digests {sorted(digests)})")
    order = np.argsort([i for i, _ in chunks])
    tests = list(dict.fromkeys(t for o in order for t in frames[o]["test"]))
    # rows as an unchunked run writes them: test by test, features in chunk order
    table = pd.concat([frames[o].assign(_chunk=rank, _pos=np.arange(len(frames[o])))
                       for rank, o in enumerate(order)], ignore_index=True)
    table["_test"] = table["test"].map({t: k for k, t in enumerate(tests)})
    table = table.sort_values(["_test", "_chunk", "_pos"], kind="stable", ignore_index=True)
    table = table.drop(columns=["_test", "_chunk", "_pos"])
    dup = table.duplicated(["feature", "trait", "test"])
    if dup.any():
        row = table[dup].iloc[0]
        raise ValueError(f"chunks overlap: ({row.feature}, {row.trait}, {row.test}) appears twice")
    table = table.drop(columns=list(CHUNK_COLUMNS))
    for test in table["test"].unique():
        sel = (table["test"] == test).to_numpy()
        table.loc[sel, "q_value"] = bh_qvalues(table.loc[sel, "p_value"].to_numpy(dtype=float))
    return table


def _overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])] if path.is_file() else []


def merge_sweep(sweep_dir: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Merge the chunked Level I tables of a sweep folder.

    Jobs are grouped by their overrides other than ``independence.chunk``; each group with
    chunk tables is merged with :func:`merge_chunks`. One group is written to
    ``<out>/level1/pvalues.parquet``; several to ``<out>/merged/<n>/level1/pvalues.parquet``
    with ``<out>/merged/groups.csv`` naming each group's overrides. A group that cannot be
    merged (a chunk missing or failed) is logged and skipped.

    Returns:
        ``{"<group overrides>": path}`` for each table written.
    """
    from personax.sweep import _job_dirs  # the sweep's own notion of a job folder

    sweep_dir = Path(sweep_dir)
    out = Path(out) if out is not None else sweep_dir
    groups: dict[tuple[str, ...], list[pd.DataFrame]] = {}
    for job in _job_dirs(sweep_dir):
        table_path = job / LEVEL1_TABLE.relpath()
        if not table_path.is_file():
            continue
        table = LEVEL1_TABLE.read(table_path)
        if "chunk" not in table.columns:
            continue
        key = tuple(sorted(o for o in _overrides(job) if not o.lstrip("+~").startswith("independence.chunk=")))
        groups.setdefault(key, []).append(table)
    written: dict[str, Path] = {}
    for n, (key, frames) in enumerate(sorted(groups.items())):
        try:
            merged = merge_chunks(frames)
        except ValueError as err:
            log.warning("%s: Level I chunks of [%s] not merged: %s", sweep_dir, " ".join(key), err)
            continue
        base = out if len(groups) == 1 else out / "merged" / str(n)
        path = base / LEVEL1_TABLE.relpath()
        LEVEL1_TABLE.write(path, merged)
        written[" ".join(key)] = path
    if len(groups) > 1 and written:
        rows = [{"group": str(n), "overrides": " ".join(key)} for n, key in enumerate(sorted(groups))]
        pd.DataFrame(rows).to_csv(out / "merged" / "groups.csv", index=False)
    return written
