"""Reading the released PersonaX parquet files (CelebPersona, AthlePersona).

The release's column names could not be verified offline, so the mapping from
release columns to canonical names lives in ``conf/data/<name>.yaml`` and any
mismatch fails with the full lists of missing and unexpected columns. The
defaults follow the names used in the study's own notebooks.

Embedding columns (image 1024-d, text 3584-d in the release) are either one
column holding a vector per row, or a family of scalar columns sharing a prefix
(``img_0 ... img_1023``); either way they come out as ``n x d`` float32 arrays.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"ID": ["a"], "Height": [180.0], "img_0": [0.1], "img_1": [0.2]})
    >>> check_release_columns(frame, {"person_id": "ID", "height_cm": "Height"},
    ...                       {"image": {"prefix": "img_"}}, [], source="x.parquet")
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personax.data.schema import DataValidationError, Problem

GET_THE_DATA = (
    "The PersonaX release (CelebPersona, AthlePersona) is distributed by the study's authors "
    "(arXiv 2509.11362; see the 'PersonaX' project page for the download and its terms of use). "
    "Download the parquet file, then run e.g. `python -m personax.run data=celebpersona "
    "data.path=/path/to/CelebPersona.parquet`. Without the release, the default run uses the "
    "synthetic cohort (data=synthetic)."
)


def _prefix_columns(columns: Sequence[str], prefix: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    matched = [(int(m.group(1)), c) for c in columns if (m := pattern.match(c))]
    return [c for _, c in sorted(matched)]


def _embedding_columns(spec: Any, columns: Sequence[str]) -> tuple[list[str], str]:
    """Columns used by one embedding spec, and a label for messages."""
    if isinstance(spec, str):
        return [spec], spec
    if isinstance(spec, Mapping) and "column" in spec:
        return [spec["column"]], spec["column"]
    if isinstance(spec, Mapping) and "prefix" in spec:
        return _prefix_columns(columns, spec["prefix"]), f"{spec['prefix']}<i>"
    raise ValueError(f"embedding spec must be a column name, {{column: name}} or {{prefix: p}}, got {spec!r}")


def check_release_columns(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    embeddings: Mapping[str, Any],
    ignore_columns: Sequence[str],
    *,
    source: str,
) -> None:
    """Fails unless the file has exactly the mapped, embedding and ignored columns.

    Raises:
        DataValidationError: Lists missing and unexpected columns and how to fix
            the mapping from the command line.
    """
    present = list(frame.columns)
    expected = set(columns.values())
    missing = sorted(v for v in columns.values() if v not in present)
    for name, spec in embeddings.items():
        used, label = _embedding_columns(spec, present)
        if not used or any(c not in present for c in used):
            missing.append(f"{label} (embedding '{name}')")
        expected.update(used)
    expected.update(c for c in ignore_columns)
    unexpected = sorted(c for c in present if c not in expected)
    if missing or unexpected:
        reason = "the release file's columns do not match the configured mapping"
        if missing:
            reason += f"; missing: {missing}"
        if unexpected:
            reason += f"; unexpected: {unexpected}"
        raise DataValidationError(
            [Problem(source, 0, None, "", "", reason)],
            hint="Override the mapping from the command line, e.g. data.columns.height_cm=YourColumn, "
            "'data.embeddings.image={prefix: emb_}', or data.ignore_columns='[colA,colB]'; "
            f"the defaults are in conf/data/. Columns in the file: {present[:60]}"
            + (" ..." if len(present) > 60 else ""),
        )


def embedding_array(frame: pd.DataFrame, spec: Any) -> np.ndarray:
    """Stacks one embedding's column(s) into an ``n x d`` float32 array (NaN where a row is unusable)."""
    used, _ = _embedding_columns(spec, list(frame.columns))
    if len(used) > 1:
        return frame[used].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    values = frame[used[0]].tolist()
    lengths = [len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1 for v in values]
    dim = max(set(lengths), key=lengths.count) if values else 0
    out = np.full((len(values), max(dim, 0)), np.nan, dtype=np.float32)
    for i, (value, length) in enumerate(zip(values, lengths)):
        if length == dim and dim > 0:
            try:
                out[i] = np.asarray(value, dtype=np.float32)
            except (TypeError, ValueError):
                pass
    return out


@dataclasses.dataclass
class ReleaseTable:
    """A release file mapped to canonical column names, plus its embeddings."""

    frame: pd.DataFrame
    embeddings: dict[str, np.ndarray]
    source: str


def read_release(
    path: str | Path | None,
    columns: Mapping[str, str],
    embeddings: Mapping[str, Any],
    ignore_columns: Sequence[str] = (),
) -> ReleaseTable:
    """Reads a released parquet file and maps it to canonical names.

    Args:
        path: The parquet file (or a folder of parquet parts).
        columns: canonical name -> release column.
        embeddings: embedding name -> column spec (see module docstring).
        ignore_columns: Release columns to drop (e.g. derived ones we recompute).

    Raises:
        FileNotFoundError: No path, or nothing at it; says how to get the data.
        DataValidationError: Column mismatch.
    """
    if not path:
        raise FileNotFoundError(f"no release file configured (data.path is empty). {GET_THE_DATA}")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"release file {path} does not exist. {GET_THE_DATA}")
    source = str(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a non-parquet file
        raise DataValidationError([Problem(source, 0, None, "", "", f"not a readable parquet file: {err}")]) from err
    if len(frame) == 0:
        raise DataValidationError([Problem(source, 0, None, "", "", "the file has no rows")])
    check_release_columns(frame, columns, embeddings, ignore_columns, source=source)
    arrays = {name: embedding_array(frame, spec) for name, spec in embeddings.items()}
    mapped = frame[list(columns.values())].astype(object)
    mapped.columns = list(columns.keys())
    return ReleaseTable(frame=mapped.reset_index(drop=True), embeddings=arrays, source=source)
