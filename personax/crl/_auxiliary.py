"""Observed auxiliary covariates for the iVAE-style prior (``crl.auxiliary: [group, gender]``).

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"gender": ["f", "m", "f"], "birth_year": [1950, 1970, 1990]})
    >>> design, names = auxiliary_design(table, ["gender", "birth_year"])
    >>> names, design.astype(float).round(2).tolist()
    (['gender=m', 'birth_year'], [[0.0, -1.22], [1.0, 0.0], [0.0, 1.22]])
    >>> auxiliary_design(pd.DataFrame({"group": [0, 2, 1]}), ["group"], categorical=["group"])[1]
    ['group=1', 'group=2']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def auxiliary_design(table: pd.DataFrame, columns: Sequence[str], *, source: str = "the person table",
                     categorical: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """A numeric design matrix of the named columns: categories one-hot (first level
    dropped), numbers standardised.

    ``categorical`` names columns that hold category codes (ingest's label maps:
    occupation 0..7) and are one-hot encoded although their values are numbers.

    Raises:
        ValueError: naming the column (and the first row) that is absent or missing.
    """
    parts, names = [], []
    for column in columns:
        if column not in table.columns:
            raise ValueError(f"crl.auxiliary: {source} has no column {column!r} (columns: {list(table.columns)[:20]})")
        values = table[column]
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise ValueError(f"crl.auxiliary: column {column!r} of {source} is missing in row {row} "
                             f"({int(values.isna().sum())} rows in all)")
        if column not in categorical and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            x = values.to_numpy(dtype=np.float64)
            std = x.std()
            parts.append(((x - x.mean()) / (std if std > 0 else 1.0))[:, None])
            names.append(column)
        else:
            levels = sorted(values.astype(str).unique())
            for level in levels[1:]:
                parts.append((values.astype(str) == level).to_numpy(dtype=np.float64)[:, None])
                names.append(f"{column}={level}")
    design = np.hstack(parts) if parts else np.zeros((len(table), 0))
    return design.astype(np.float32), names
