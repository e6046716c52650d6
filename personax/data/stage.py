"""The ``ingest`` stage: one canonical person table from any of three sources.

``config.data.source`` picks the source:

* ``synthetic`` — :func:`personax.data.synthetic.make_cohort`; also writes the
  faces and the ground truth.
* ``raw`` — a user's bio table (CSV / TSV / JSONL / parquet) and image folder.
* ``release`` — the released PersonaX parquet files, with their embeddings.
* ``variant_digits`` — the "variant digits" CRL benchmark
  (:func:`personax.data.synthetic.make_variant_digits`): no person table to
  validate; writes each measurement (``benchmark_measurement[<modality>_<k>]``)
  and the true latents and graph (``benchmark_truth``).

Outputs (artifacts declared in :mod:`personax.artifacts`): ``persons``, ``rejected``
(problems with file, row, column and reason; written even when a strict run
fails), ``label_maps``; plus ``faces`` and ``ground_truth`` (synthetic) or
``release_embedding[<name>]`` and its index (release). Synthetic faces are referenced
relative to the run directory, so a moved or copied run directory keeps them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from personax.data import images, readers, release, synthetic
from personax.data.schema import (
    DERIVED_COLUMNS,
    STRICT_HINT,
    DataValidationError,
    Problem,
    ValidationResult,
    problems_frame,
    validate_persons,
)
from personax import artifacts as A
from personax.data.truth import BenchmarkTruth
from personax.pipeline import RunDir

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "raw", "release", "variant_digits")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _ingest_variant_digits(data: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    bench = synthetic.make_variant_digits(
        int(data.n), seed=int(data.seed), measurements=int(data.get("measurements", 3)),
        image_size=int(data.get("image_size", 28)), mnist_path=data.get("mnist_path"),
        fashion_path=data.get("fashion_path"), exemplars=str(data.get("exemplars", "per_measurement")),
    )
    n = int(data.n)
    files = {}
    for modality, arrays in bench.modalities.items():
        for k, array in enumerate(arrays):
            run_dir.write(A.BENCHMARK_MEASUREMENT, array, key=f"{modality}_{k}")
            files.setdefault(modality, []).append(f"{A.BENCHMARK_MEASUREMENT.name}[{modality}_{k}]")
    persons = pd.DataFrame({"person_id": [f"digits{i:06d}" for i in range(n)], "dataset": "variant_digits"})
    run_dir.write(A.PERSONS, persons)
    run_dir.write(A.REJECTED, problems_frame([]))
    run_dir.write(A.LABEL_MAPS, {})
    truth = BenchmarkTruth({block: values for block, values in bench.latents.items() if values.shape[1]}, bench.graph)
    run_dir.write(A.BENCHMARK_TRUTH, truth.to_json())
    return {"source": "variant_digits", "dataset": "variant_digits", "persons": n, "rejected_rows": 0,
            "other_problems": 0, "measurements": files}


def _ingest_synthetic(data: DictConfig, run_dir: RunDir) -> tuple[ValidationResult, dict[str, Any]]:
    cohort = synthetic.make_cohort(
        int(data.n),
        kind=data.dataset,
        seed=int(data.seed),
        images=bool(data.get("images", True)),
        image_size=int(data.get("image_size", 64)),
        simulated_raters=list(data.get("simulated_raters", [])),
    )
    table = cohort.table.copy()
    if cohort.faces is not None:
        faces_dir = run_dir.output_path(A.FACES)
        paths = []
        for pid, face in tqdm(zip(table.person_id, cohort.faces), total=len(table), desc="drawing faces", leave=False):
            with A.atomic_path(faces_dir / f"{pid}.png") as tmp:
                Image.fromarray(face).save(tmp, format="png", compress_level=1)
            # Relative to the run directory, so a moved or copied run directory still finds its faces.
            paths.append(f"{A.FACES.relpath()}/{pid}.png")
        table["image_path"] = paths
        drawn = {Path(p).name for p in paths}
        for stale in faces_dir.glob("*.png"):  # faces of an earlier, larger cohort are not this run's outputs
            if stale.name not in drawn:
                stale.unlink()
    run_dir.write(A.GROUND_TRUTH, cohort.truth)
    # Derived date columns are recomputed by validation, which checks the generator too.
    table = table.drop(columns=list(DERIVED_COLUMNS))
    result = validate_persons(
        table.astype({c: object for c in table.columns if c != "dataset"}),
        source=f"synthetic cohort ({data.dataset}, n={data.n}, seed={data.seed})",
        dataset=data.dataset,
        label_maps=cohort.label_maps,
    )
    return result, {"ground_truth": A.GROUND_TRUTH.relpath()}


def _check_images(result: ValidationResult, root: Path, data: DictConfig, source: str, rows: list[int]) -> int:
    """Resolves and checks each image; a bad image is removed, its person kept.

    ``rows`` holds each table row's number in the source file, for the report.
    """
    table = result.table
    if "image_path" not in table or table.image_path.isna().all():
        by_stem = {}
        if root.is_dir():
            by_stem = {p.stem: p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        table["image_path"] = table.person_id.map(by_stem).astype(object)
        table.loc[table.image_path.isna(), "image_path"] = None
    problems = []
    checked = []
    for pos, relpath in enumerate(tqdm(table.image_path, desc="checking images", leave=False)):
        if relpath is None:
            checked.append(None)
            continue
        check = images.check_image(
            relpath,
            root,
            max_bytes=int(data.get("max_image_bytes", images.DEFAULT_MAX_BYTES)),
            max_pixels=int(data.get("max_image_pixels", images.DEFAULT_MAX_PIXELS)),
        )
        if check.ok:
            checked.append(str(check.path))
        else:
            checked.append(None)
            problems.append(
                Problem(source, rows[pos], table.person_id[pos], "image_path", str(relpath)[:80],
                        check.reason or "", action="image removed; person kept")
            )
    table["image_path"] = pd.Series(checked, dtype=object)
    result.problems = sorted([*result.problems, *problems], key=lambda p: (p.row, p.column))
    return len(problems)


def _ingest_raw(data: DictConfig, run_dir: RunDir) -> tuple[ValidationResult, dict[str, Any]]:
    if not data.get("bios"):
        raise FileNotFoundError("data.bios is not set: give the path of your bio table (CSV, TSV, JSONL or parquet)")
    bios = run_dir.external_input(data.bios, "data.bios")
    raw = readers.read_table(bios, data.get("format", "auto"))
    frame = readers.apply_column_mapping(
        raw.frame, _container(data.get("columns")), list(data.get("ignore_columns") or []), source=raw.source
    )
    result = validate_persons(
        frame,
        source=raw.source,
        dataset=data.dataset,
        label_maps=_container(data.get("label_maps")),
        row_numbers=raw.rows,
    )
    result.problems = sorted([*raw.problems, *result.problems], key=lambda p: (p.row, p.column))
    root = Path(data.image_root).expanduser().resolve() if data.get("image_root") else bios.parent
    if data.get("image_root") and not root.is_dir():
        raise FileNotFoundError(f"data.image_root {root} is not a folder")
    bad_images = _check_images(result, root, data, raw.source, [raw.rows[k] for k in result.kept])
    # Every image the table points at is an input by content: replacing or deleting one reruns ingest.
    run_dir.input_files("images referenced by the person table",
                        dict(zip(result.table.person_id, (p for p in result.table.image_path if p is not None))))
    return result, {"bad_images": bad_images, "image_root": str(root)}


def _ingest_release(data: DictConfig, run_dir: RunDir) -> tuple[ValidationResult, dict[str, Any]]:
    path = data.get("path")
    if path and Path(path).expanduser().exists():
        run_dir.external_input(path, "data.path")
    embeddings_spec = _container(data.get("embeddings")) or {}
    table = release.read_release(
        path, _container(data.columns), embeddings_spec, list(data.get("ignore_columns") or [])
    )
    result = validate_persons(
        table.frame, source=table.source, dataset=data.dataset, label_maps=_container(data.get("label_maps"))
    )
    index = pd.DataFrame({"person_id": result.table.person_id, "row": np.arange(len(result.table))})
    problems = []
    for name, array in table.embeddings.items():
        kept = array[result.kept]
        valid = np.isfinite(kept).all(axis=1) & (kept.shape[1] > 0)
        index[f"has_{name}"] = valid
        for pos in np.flatnonzero(~valid):
            problems.append(
                Problem(table.source, result.kept[pos] + 1, result.table.person_id[pos], name, "",
                        f"embedding '{name}' is missing, of the wrong length or not finite",
                        action="embedding marked missing; person kept")
            )
        run_dir.write(A.RELEASE_EMBEDDING, kept.astype(np.float32), key=name)
    run_dir.write(A.RELEASE_EMBEDDING_INDEX, index)
    result.problems = sorted([*result.problems, *problems], key=lambda p: (p.row, p.column))
    return result, {"embeddings": {k: list(v.shape) for k, v in table.embeddings.items()}}


def run(config: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Ingests ``config.data`` into the canonical person table.

    Args:
        config: The run config; this stage reads ``config.data``.
        run_dir: The run directory.

    Returns:
        Counts for the manifest: persons kept, rows rejected, other problems.

    Raises:
        DataValidationError: ``config.data.strict`` is true and a row or image
            has a problem (all problems are listed, and written to
            ``data/rejected.parquet`` first).
    """
    data = config.data
    if data.source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {data.source!r}")
    if data.source == "variant_digits":
        return _ingest_variant_digits(data, run_dir)
    ingest = {"synthetic": _ingest_synthetic, "raw": _ingest_raw, "release": _ingest_release}[data.source]
    result, extra = ingest(data, run_dir)

    rejected_path = run_dir.write(A.REJECTED, problems_frame(result.problems))
    rejected_rows = sum(p.action == "row rejected" for p in result.problems)
    if result.problems and data.get("strict", True):
        raise DataValidationError(result.problems, hint=STRICT_HINT)
    for problem in result.problems[:5]:
        log.warning("%s (%s)", problem.describe(), problem.action)
    if len(result.problems) > 5:
        log.warning("... %d more problems; see %s", len(result.problems) - 5, rejected_path)
    if len(result.table) == 0:
        raise DataValidationError(result.problems, hint="No valid rows are left; nothing to analyse.")

    run_dir.write(A.PERSONS, result.table)
    run_dir.write(A.LABEL_MAPS, result.label_maps)
    return {
        "source": data.source,
        "dataset": data.dataset,
        "persons": len(result.table),
        "rejected_rows": rejected_rows,
        "other_problems": len(result.problems) - rejected_rows,
        **extra,
    }
