"""What a synthetic run planted, and the one reader every stage scores against.

The ingest stage writes the truth (:data:`personax.artifacts.GROUND_TRUTH` for the
synthetic cohort, :data:`personax.artifacts.BENCHMARK_TRUTH` for variant digits);
:func:`planted_truth` is the only reader: traits, independence, crl and the report all
call it, so the files' layout is known here and nowhere else.

Example:
    >>> import tempfile
    >>> from personax.pipeline import RunDir
    >>> planted_truth(RunDir(tempfile.mkdtemp())) is None   # real data: nothing planted
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personax.artifacts import BENCHMARK_TRUTH, GROUND_TRUTH, read_json, write_json, write_parquet


@dataclasses.dataclass
class GroundTruth:
    """What was planted in a synthetic cohort.

    Attributes:
        kind: "celeb" or "athlete".
        seed: Generator seed.
        features: Observed feature columns of the person table.
        traits: Trait letters ("o", "c", "e", "a", "n"); the latent trait nodes.
        nodes: Every variable of the SCM, with its block: "feature", "trait"
            or "hidden".
        edges: (parent, child, weight) for every planted edge; the weight is the
            effect size in the child's noise standard deviations (1.0 where the
            effect is not a single number, e.g. a lookup table).
        latent_blocks: Latent blocks for multimodal CRL: "shared" (seen in face
            and bio), "image" (face only), "text" (bio only); each names planted
            latents (columns of ``trait_values``) or observed features.
        direct_effects: features x traits, 1 where the feature is a parent of
            the trait.
        marginal_dependence: features x traits, 1 where feature and trait are
            d-connected given nothing (an unconditional test should reject).
        trait_values: person_id plus the true continuous value of each trait and
            of every other planted latent (the celebrity faces' geometry).
        raters: Simulated rater name -> noise sd, bias and probability of 0.
    """

    kind: str
    seed: int
    features: list[str]
    traits: list[str]
    nodes: dict[str, str]
    edges: list[tuple[str, str, float]]
    latent_blocks: dict[str, list[str]]
    direct_effects: pd.DataFrame
    marginal_dependence: pd.DataFrame
    trait_values: pd.DataFrame
    raters: dict[str, dict[str, float]]

    def adjacency(self) -> pd.DataFrame:
        """Weighted adjacency over all nodes; entry [parent, child]."""
        names = list(self.nodes)
        matrix = pd.DataFrame(0.0, index=names, columns=names)
        for parent, child, weight in self.edges:
            matrix.loc[parent, child] = weight
        return matrix

    def latent_graph(self) -> pd.DataFrame:
        """Weighted adjacency over the CRL latents (``latent_blocks`` in order); [parent, child]."""
        names = [name for block in self.latent_blocks.values() for name in block]
        return self.adjacency().reindex(index=names, columns=names, fill_value=0.0)

    def save(self, directory: str | Path) -> None:
        """Writes ``ground_truth.json`` and ``trait_values.parquet`` into ``directory``."""
        directory = Path(directory)
        payload = {
            "kind": self.kind,
            "seed": self.seed,
            "features": self.features,
            "traits": self.traits,
            "nodes": self.nodes,
            "edges": [list(e) for e in self.edges],
            "latent_blocks": self.latent_blocks,
            "direct_effects": _matrix_to_json(self.direct_effects),
            "marginal_dependence": _matrix_to_json(self.marginal_dependence),
            "raters": self.raters,
        }
        write_json(directory / "ground_truth.json", payload)
        write_parquet(directory / "trait_values.parquet", self.trait_values)

    @classmethod
    def load(cls, directory: str | Path) -> GroundTruth:
        """Reads what :meth:`save` wrote."""
        directory = Path(directory)
        payload = read_json(directory / "ground_truth.json")
        return cls(
            kind=payload["kind"],
            seed=payload["seed"],
            features=payload["features"],
            traits=payload["traits"],
            nodes=payload["nodes"],
            edges=[(p, c, float(w)) for p, c, w in payload["edges"]],
            latent_blocks=payload["latent_blocks"],
            direct_effects=_matrix_from_json(payload["direct_effects"]),
            marginal_dependence=_matrix_from_json(payload["marginal_dependence"]),
            trait_values=pd.read_parquet(directory / "trait_values.parquet"),
            raters=payload["raters"],
        )


def _matrix_to_json(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    return {row: {col: int(frame.loc[row, col]) for col in frame.columns} for row in frame.index}


def _matrix_from_json(obj: dict[str, dict[str, int]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(obj, orient="index").astype(int)


@dataclasses.dataclass
class BenchmarkTruth:
    """The variant-digits benchmark's true latents (rows as in the person table) and graph."""

    blocks: dict[str, np.ndarray]
    graph: pd.DataFrame

    def to_json(self) -> dict[str, Any]:
        return {"graph": {"nodes": list(self.graph.index), "adjacency": self.graph.to_numpy().tolist()},
                "blocks": {block: np.asarray(values).tolist() for block, values in self.blocks.items()}}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> BenchmarkTruth:
        nodes = payload["graph"]["nodes"]
        return cls({b: np.asarray(v, dtype=float) for b, v in payload["blocks"].items()},
                   pd.DataFrame(payload["graph"]["adjacency"], index=nodes, columns=nodes))


@dataclasses.dataclass
class PlantedTruth:
    """What the run planted, in the forms the stages score against.

    Attributes:
        cohort: The synthetic cohort's truth (None for the benchmark).
        benchmark: The variant-digits truth (None for a cohort).
    """

    cohort: GroundTruth | None = None
    benchmark: BenchmarkTruth | None = None

    @property
    def marginal_dependence(self) -> pd.DataFrame | None:
        """features x trait letters, 1 where an unconditional test should reject."""
        return None if self.cohort is None else self.cohort.marginal_dependence

    def trait_values(self, person_ids: pd.Series) -> np.ndarray | None:
        """True trait values (n x 5, OCEAN order) of ``person_ids`` (NaN where unknown)."""
        if self.cohort is None:
            return None
        values = self.cohort.trait_values.set_index("person_id")
        return values.reindex(pd.Index(person_ids.astype(str)))[list(self.cohort.traits)].to_numpy(dtype=float)

    def latent_blocks(self, persons: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The planted latent blocks of the people at positions ``rows`` of ``persons``."""
        if self.benchmark is not None:
            return {b: v[rows] for b, v in self.benchmark.blocks.items()}
        # A block's columns are planted latents (trait_values) or observed features (gender, birth year).
        kept = persons.iloc[rows].reset_index(drop=True)
        planted = self.cohort.trait_values
        values = kept.drop(columns=[c for c in planted.columns if c in kept and c != "person_id"]).merge(
            planted, on="person_id", how="left")
        blocks = {}
        for block, columns in self.cohort.latent_blocks.items():
            present = [c for c in columns if c in values.columns and values[c].notna().all()]
            if present:
                blocks[block] = values[present].to_numpy(dtype=float)
        return blocks

    @property
    def graph(self) -> pd.DataFrame | None:
        """The true graph over the CRL latents, blocks in the order :meth:`latent_blocks` gives them."""
        return self.benchmark.graph if self.benchmark is not None else self.cohort.latent_graph()


def planted_truth(run_dir: Any) -> PlantedTruth | None:
    """Reads what the run planted (recorded as an input of the calling stage); None for real data."""
    if run_dir.exists(BENCHMARK_TRUTH):
        return PlantedTruth(benchmark=BenchmarkTruth.from_json(run_dir.read(BENCHMARK_TRUTH)))
    if run_dir.exists(GROUND_TRUTH):
        return PlantedTruth(cohort=run_dir.read(GROUND_TRUTH))
    return None
