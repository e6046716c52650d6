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
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from tqdm.auto import tqdm

from personax._config_checks import check_person_columns
from personax.data import images, readers, release, synthetic
from personax.data.schema import (
    DERIVED_COLUMNS,
    INPUT_COLUMNS,
    STRICT_HINT,
    DataValidationError,
    Problem,
    ValidationResult,
    is_trait_column,
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


def _save_faces(person_ids: pd.Series, faces: np.ndarray, run_dir: RunDir) -> list[str]:
    """Writes the faces into a temporary folder and moves it into place when all are written.

    A drawing killed half-way leaves no partial ``data/faces`` (and no output
    recorded for it); the last complete set stays until a new one replaces it.
    """
    final = run_dir.locate(A.FACES)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(".faces.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".faces.tmp-", dir=final.parent))
    try:
        names = []
        for pid, face in tqdm(zip(person_ids, faces), total=len(person_ids), desc="drawing faces", leave=False):
            Image.fromarray(face).save(staging / f"{pid}.png", compress_level=1)
            names.append(f"{pid}.png")
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    run_dir.output_path(A.FACES)
    # Relative to the run directory, so a moved or copied run directory still finds its faces.
    return [f"{A.FACES.relpath()}/{name}" for name in names]


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
        table["image_path"] = _save_faces(table.person_id, cohort.faces, run_dir)
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


def _integral_id(person_id: str) -> str | None:
    """'12.0' -> '12': the id a float-typed id column stood for (its image is 12.png)."""
    whole, dot, zeros = person_id.partition(".")
    return whole if dot and whole.lstrip("-").isdigit() and zeros and set(zeros) == {"0"} else None


def _images_in(root: Path) -> dict[str, str]:
    """Image file stem -> name in ``root`` (not recursive); unreadable entries are skipped."""
    by_stem: dict[str, str] = {}
    try:
        entries = sorted(root.iterdir()) if root.is_dir() else []
    except OSError:
        return by_stem
    for entry in entries:
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(entry.stem, entry.name)
    return by_stem


def _check_images(result: ValidationResult, root: Path, data: DictConfig, source: str, rows: list[int],
                  *, root_given: bool) -> dict[str, Any]:
    """Resolves and checks each image; a bad or missing image is recorded, its person kept.

    ``rows`` holds each table row's number in the source file, for the report.
    Images are expected when the table has an ``image_path`` column, when
    ``data.image_root`` is set, or when an image next to the bios file is named
    after a person (file stem == ``person_id``); then each
    person without a usable image is a problem of that row, and no usable image at
    all is an error whatever ``data.strict`` says (a wrong ``image_root``).

    Returns:
        Counts for the manifest, and under ``"error"`` the message of that error.
    """
    table = result.table
    problems = []
    by_column = "image_path" in table and table.image_path.notna().any()
    if not by_column:
        by_stem = _images_in(root)
        names = [by_stem.get(pid) or by_stem.get(_integral_id(pid) or "") for pid in table.person_id]
        if not root_given and not any(names):
            # A text-only data set: no image_path column, no image_root, and no image next to the
            # bios file is named after a person (a stray logo.png there is not a face).
            table["image_path"] = pd.Series([None] * len(table), dtype=object)
            log.info("no image_path column, no data.image_root, and no image in %s named after a person_id: "
                     "text-only data", root)
            return {"images_expected": 0, "images_usable": 0, "bad_images": 0}
        paths = []
        for pos, (pid, name) in enumerate(zip(table.person_id, names)):
            if name is None:
                problems.append(Problem(source, rows[pos], pid, "image_path", "",
                                        f"no image file named {pid}.<{'|'.join(sorted(s[1:] for s in IMAGE_SUFFIXES))}> "
                                        "in the image root", action="no image; person kept"))
            paths.append(name)
        table["image_path"] = pd.Series(paths, dtype=object)
    checked = []
    for pos, relpath in enumerate(tqdm(table.image_path, desc="checking images", leave=False)):
        if relpath is None or (isinstance(relpath, float) and np.isnan(relpath)):
            if by_column:
                problems.append(Problem(source, rows[pos], table.person_id[pos], "image_path", "",
                                        "image_path is empty", action="no image; person kept"))
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
                Problem(source, rows[pos], table.person_id[pos], "image_path", ascii(str(relpath))[1:-1][:80],
                        check.reason or "", action="image removed; person kept")
            )
    table["image_path"] = pd.Series(checked, dtype=object)
    result.problems = sorted([*result.problems, *problems], key=lambda p: (p.row, p.column))
    usable = sum(path is not None for path in checked)
    counts: dict[str, Any] = {"images_expected": len(table), "images_usable": usable, "bad_images": len(problems)}
    if usable == 0 and len(table):
        counts["error"] = (
            f"0 of {len(table)} persons have a usable image in the image root {root} "
            f"({len(_images_in(root))} image files there); check data.image_root"
            + (" and the image_path column" if by_column else " (without an image_path column, images are found by "
               "file stem == person_id)")
        )
    return counts


def _ingest_raw(data: DictConfig, run_dir: RunDir) -> tuple[ValidationResult, dict[str, Any]]:
    if not data.get("bios"):
        raise FileNotFoundError("data.bios is not set: give the path of your bio table (CSV, TSV, JSONL or parquet)")
    bios = run_dir.external_input(data.bios, "data.bios")
    raw = readers.read_table(bios, data.get("format", "auto"))
    frame = readers.apply_column_mapping(
        raw.frame, _container(data.get("columns")), list(data.get("ignore_columns") or []), source=raw.source
    )
    frame = readers.reject_stray_fields(raw, frame, lambda c: c in INPUT_COLUMNS or is_trait_column(c))
    result = validate_persons(
        frame,
        source=raw.source,
        dataset=data.dataset,
        label_maps=_container(data.get("label_maps")),
        row_numbers=raw.rows,
    )
    result.problems = sorted([*raw.problems, *result.problems], key=lambda p: (p.row, p.column))
    root = Path(data.image_root).expanduser().resolve() if data.get("image_root") else bios.parent
    if data.get("image_root"):
        if not root.is_dir():
            raise FileNotFoundError(f"data.image_root {root} is not a folder")
        run_dir.external_input(root, "data.image_root")  # by content: an image added or replaced reruns ingest
    counts = _check_images(result, root, data, raw.source, [raw.rows[k] for k in result.kept],
                           root_given=bool(data.get("image_root")))
    # Every image the table points at is an input by content: replacing or deleting one reruns ingest.
    run_dir.input_files("images referenced by the person table",
                        dict(zip(result.table.person_id, (p for p in result.table.image_path if p is not None))))
    return result, {**counts, "image_root": str(root)}


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
    fatal = extra.pop("error", None)
    if fatal:  # nothing usable of a kind of input: an error, strict or not
        raise DataValidationError([Problem(extra.get("image_root", data.source), 0, None, "image_path", "", fatal)])
    if result.problems and data.get("strict", True):
        raise DataValidationError(result.problems, hint=STRICT_HINT)
    for problem in result.problems[:5]:
        log.warning("%s (%s)", problem.describe(), problem.action)
    if len(result.problems) > 5:
        log.warning("... %d more problems; see %s", len(result.problems) - 5, rejected_path)
    if len(result.table) == 0:
        raise DataValidationError(result.problems, hint="No valid rows are left; nothing to analyse.")

    stages = config.get("stages")
    if isinstance(stages, (list, ListConfig)) and "independence" in stages:
        # Fail now, not after the slower stages: a conditioning column that the table lacks.
        check_person_columns(config, list(result.table.columns), A.PERSONS.relpath())
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
