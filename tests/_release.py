"""A fake PersonaX release file for tests: the released column layout, filled from a synthetic cohort.

The real CelebPersona / AthlePersona parquet files are not available offline. :func:`release_frame`
builds a table with exactly the columns that a data config (``conf/data/celebpersona.yaml``,
``conf/data/athlepersona.yaml``, or the same with command-line overrides) expects: every
``columns`` entry under its release name, the ``ignore_columns`` and the ``embeddings``. Values
come from :func:`personax.data.synthetic.make_cohort` where the canonical column exists there;
otherwise they are plausible random values (per-LLM trait scores: integers 1..3; the aggregate
``final_<t>``: the median of the per-LLM scores of that trait; embeddings: float32 vectors).

Example:
    >>> from tests.conftest import compose_config
    >>> frame = release_frame(compose_config(["data=athlepersona"]).data, n=5)
    >>> bool(frame["Type"].isin(["NBA", "NFL", "NHL", "ATP", "PGA", "Premier League", "Bundesliga"]).all())
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from personax.data.synthetic import make_cohort

# Derived columns the release carries but personax recomputes (conf/data/celebpersona.yaml's ignore_columns).
_DERIVED = {"Day index": "day_of_year", "Day_sin": "day_sin", "Day_cos": "day_cos"}
_TRAIT_SUFFIXES = tuple(f"_{t}" for t in "ocean")


def _container(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _plain(series: pd.Series) -> pd.Series:
    """Nullable pandas dtypes become plain numpy ones, as a parquet export of the study's frames would have."""
    if not pd.api.types.is_numeric_dtype(series.dtype):  # strings, categories
        return series.astype(object)
    if series.isna().any():
        return series.astype("float64")
    return series.astype("int64") if pd.api.types.is_integer_dtype(series.dtype) else series.astype("float64")


def release_frame(data: Mapping[str, Any] | DictConfig, n: int = 120, *, seed: int = 0, embedding_dim: int = 16) -> pd.DataFrame:
    """A fake release table for the data config ``data`` (a ``source: release`` config).

    Args:
        data: The composed ``cfg.data`` (``columns``, ``embeddings``, ``ignore_columns``,
            ``label_maps``, ``dataset``).
        n: Rows.
        seed: Seed of the cohort and of the random columns.
        embedding_dim: Length of each embedding vector (the release's image embedding is 1024-d).

    Returns:
        The frame, columns in the order: mapped columns, ignored columns, embeddings.
    """
    data = _container(data)
    rng = np.random.default_rng([seed, 7])
    cohort = make_cohort(n, kind=data["dataset"], seed=seed, images=False)
    table = cohort.table
    code_to_label = {
        column: {code: label for label, code in mapping.items()}
        for column, mapping in (data.get("label_maps") or {}).items()
    }
    out: dict[str, Any] = {}
    per_rater: dict[str, list[str]] = {t: [] for t in "ocean"}
    aggregate: dict[str, str] = {}
    for canonical, name in data["columns"].items():
        if canonical in table.columns:
            values = _plain(table[canonical])
            if canonical in code_to_label:  # the release stores labels (e.g. league names)
                values = values.map(code_to_label[canonical])
            out[name] = values.to_numpy()
        elif canonical.startswith("trait_") and canonical.endswith(_TRAIT_SUFFIXES):
            trait = canonical[-1]
            if canonical == f"trait_{trait}":
                aggregate[trait] = name
                continue
            out[name] = rng.integers(1, 4, n).astype(float)
            per_rater[trait].append(name)
        else:
            out[name] = rng.normal(size=n)
    for trait, name in aggregate.items():  # the study's final score: median of the LLMs' scores
        sources = per_rater[trait]
        out[name] = np.median(np.stack([out[s] for s in sources]), axis=0) if sources else rng.integers(1, 4, n).astype(float)
    for name in data.get("ignore_columns") or []:
        derived = _DERIVED.get(name)
        out[name] = _plain(table[derived]).to_numpy() if derived else rng.choice([-1, 1], n)
    frame = pd.DataFrame(out)
    for name, spec in (data.get("embeddings") or {}).items():
        vectors = rng.normal(size=(n, embedding_dim)).astype(np.float32)
        if isinstance(spec, Mapping) and "prefix" in spec:
            for j in range(embedding_dim):
                frame[f"{spec['prefix']}{j}"] = vectors[:, j]
        else:
            column = spec["column"] if isinstance(spec, Mapping) else spec
            frame[column] = list(vectors)
    return frame


def write_release(data: Mapping[str, Any] | DictConfig, path: Path, n: int = 120, **kwargs: Any) -> Path:
    """Writes :func:`release_frame` to ``path`` (parquet) and returns the path."""
    release_frame(data, n, **kwargs).to_parquet(path, index=False)
    return path
