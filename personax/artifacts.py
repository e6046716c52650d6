"""The run-directory contract: every file a stage writes, declared once.

Each :class:`Artifact` names one file (or folder) of a run directory: its path, the
stage that writes it, its format and a typed read/write. Stages never spell a path:
they read and write through :class:`personax.pipeline.RunDir` with an artifact
(``run_dir.read(PERSONS)``, ``run_dir.write(LEVEL1_TABLE, frame)``), and each stage's
declared inputs (``personax.pipeline.STAGES``) decide which stages it requires. The
report and ``personax.sweep`` read through the same declarations.

Writes are atomic (a temporary file moved into place), so a crash never leaves a
half-written file under an artifact's name.

A few artifacts are families, one file per key (``TEXT_EMBEDDING`` has one file per
text source: ``TEXT_EMBEDDING.relpath("bio")`` is ``embeddings/text_bio.npy``).

Example:
    >>> from personax.artifacts import PERSONS, TEXT_EMBEDDING, artifact
    >>> PERSONS.relpath(), PERSONS.writer
    ('data/persons.parquet', 'ingest')
    >>> TEXT_EMBEDDING.relpath("bio")
    'embeddings/text_bio.npy'
    >>> artifact("level1_table").relpath()
    'level1/pvalues.parquet'
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ARTIFACTS", "Artifact", "artifact", "atomic_path", "parse_reference", "read_json", "remove_with_leftovers",
    "write_json", "write_npy", "write_parquet", "write_text",
]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------- atomic IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path next to ``path`` and moves it into place on success.

    A crash mid-write never leaves a half-written file under the final name.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, str(os.getpid()))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _temporary(path: Path, pid: str) -> Path:
    # Hidden, and ending like the target, so writers that infer the format from the suffix work.
    return path.with_name(f".{path.stem}.tmp-{pid}{path.suffix}")


def remove_with_leftovers(path: str | os.PathLike[str]) -> None:
    """Deletes ``path`` and the temporary files of :func:`atomic_path` writes to it that a killed
    process left behind (call it only while no other process writes there, e.g. under the run lock)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for leftover in path.parent.glob(_temporary(path, "*").name):
        leftover.unlink(missing_ok=True)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Reads a JSON file, naming the file when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def write_npy(path: str | os.PathLike[str], array: Any) -> None:
    """Writes ``array`` as ``.npy`` (no pickled objects), atomically."""
    import numpy as np

    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def write_parquet(path: str | os.PathLike[str], frame: Any) -> None:
    """Writes a data frame as parquet (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Writes text (UTF-8), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_png(path: Path, figure: Any, **savefig: Any) -> None:
    with atomic_path(path) as tmp:
        if isinstance(figure, bytes | bytearray):
            tmp.write_bytes(figure)
        else:  # a matplotlib figure
            figure.savefig(tmp, format="png", **savefig)


def _read_npy(path: Path) -> Any:
    import numpy as np

    return np.load(path, allow_pickle=False)  # never unpickle


def _read_parquet(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


def _read_truth(path: Path) -> Any:
    from personax.data.truth import GroundTruth

    return GroundTruth.load(path)


def _write_truth(path: Path, truth: Any) -> None:
    truth.save(path)


#: format -> (reader, writer); ``None`` where the artifact is used by path only
#: (a model folder written by ``save_pretrained``, an SQLite store, a folder of images).
_FORMATS: dict[str, tuple[Any, Any]] = {
    "parquet": (_read_parquet, write_parquet),
    "json": (read_json, write_json),
    "npy": (_read_npy, write_npy),
    "png": (None, _write_png),
    "markdown": (lambda p: Path(p).read_text(encoding="utf-8"), write_text),
    "html": (lambda p: Path(p).read_text(encoding="utf-8"), write_text),
    "ground_truth": (_read_truth, _write_truth),
    "folder": (None, None),
    "sqlite": (None, None),
    "msgpack": (None, None),
}


# --------------------------------------------------------------------------- declarations


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One file (or folder) of a run directory.

    Attributes:
        name: Identifier (``persons``), used in configs that name measurements.
        path: Path relative to the run directory; a family has one ``{key}`` field.
        writer: The only stage that writes it.
        format: ``parquet``, ``json``, ``npy``, ``png``, ``markdown``, ``html``,
            ``ground_truth`` (a folder read as :class:`personax.data.truth.GroundTruth`),
            ``folder``, ``sqlite`` or ``msgpack``.
        description: What it holds, for the docs and the closing artifact table.
        private: Only its writer reads it (the stage's own working state, such as a
            checkpoint): no other stage, the report included, may declare it as an input.
    """

    name: str
    path: str
    writer: str
    format: str
    description: str
    private: bool = False

    @property
    def is_family(self) -> bool:
        return "{key}" in self.path

    @property
    def is_folder(self) -> bool:
        return self.format in ("folder", "ground_truth")

    def relpath(self, key: str | None = None) -> str:
        """The path in the run directory (``key`` picks the member of a family)."""
        if self.is_family:
            if key is None or not _KEY.match(str(key)):
                raise ValueError(f"artifact {self.name!r} ({self.path}) needs a key of letters, digits, '_', '-' "
                                 f"or '.', got {key!r}")
            return self.path.format(key=key)
        if key is not None:
            raise ValueError(f"artifact {self.name!r} is a single file; it takes no key (got {key!r})")
        return self.path

    def read(self, path: Path) -> Any:
        """Reads the artifact at ``path`` as its typed value."""
        reader = _FORMATS[self.format][0]
        if reader is None:
            raise TypeError(f"artifact {self.name!r} ({self.format}) is read by path, not as a value")
        return reader(path)

    def write(self, path: Path, value: Any, **options: Any) -> None:
        """Writes ``value`` to ``path`` atomically in the artifact's format."""
        writer = _FORMATS[self.format][1]
        if writer is None:
            raise TypeError(f"artifact {self.name!r} ({self.format}) is written by path, not as a value")
        writer(path, value, **options)

    def family_folder(self) -> str:
        """The folder that holds a family's members, relative to the run directory."""
        if not self.is_family:
            raise TypeError(f"artifact {self.name!r} is not a family")
        folder, _, _ = self.path.split("{key}")[0].rpartition("/")  # not Path(...).parent: "a/b/" is a folder
        return folder

    def keys_in(self, run_path: Path) -> list[str]:
        """The keys of a family's members present in ``run_path`` (sorted)."""
        folder = run_path / self.family_folder()  # a single file has none: TypeError
        prefix, suffix = self.path.split("{key}")
        if not folder.is_dir():
            return []
        start = prefix.rpartition("/")[2]
        keys = []
        for child in folder.iterdir():
            name = child.name
            if name.startswith(start) and name.endswith(suffix) and not name.startswith("."):
                key = name[len(start): len(name) - len(suffix)]
                if _KEY.match(key):
                    keys.append(key)
        return sorted(keys)


ARTIFACTS: dict[str, Artifact] = {}


def _declare(name: str, path: str, writer: str, format: str, description: str, *, private: bool = False) -> Artifact:
    if name in ARTIFACTS:
        raise ValueError(f"artifact {name!r} declared twice")
    item = Artifact(name, path, writer, format, description, private)
    ARTIFACTS[name] = item
    return item


def artifact(name: str) -> Artifact:
    """The declared artifact called ``name`` (a clear error listing the known ones)."""
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise KeyError(f"unknown artifact {name!r}; declared: {sorted(ARTIFACTS)}") from None


def parse_reference(text: str) -> tuple[Artifact, str | None, str | None]:
    """Parses ``NAME``, ``NAME[KEY]``, ``NAME:COLUMNS`` or ``NAME[KEY]:COLUMNS``.

    Configs name measurements this way (``crl.modalities``), never by path.

    Example:
        >>> a, key, columns = parse_reference("text_embedding[bio]")
        >>> a.relpath(key), columns
        ('embeddings/text_bio.npy', None)
        >>> parse_reference("trait_scores:each_rater")[2]
        'each_rater'
    """
    match = re.fullmatch(r"([a-z0-9_]+)(?:\[([^\]]+)\])?(?::(.+))?", str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not an artifact reference (NAME, NAME[KEY], NAME:COLUMNS); "
                         f"artifacts: {sorted(ARTIFACTS)}")
    item = artifact(match.group(1))
    key = match.group(2)
    item.relpath(key)  # validates the key
    return item, key, match.group(3)


# ingest
PERSONS = _declare("persons", "data/persons.parquet", "ingest", "parquet",
                   "the canonical person table (one row per person; schema in personax.data.schema)")
REJECTED = _declare("rejected", "data/rejected.parquet", "ingest", "parquet",
                    "every input problem with file, row, column, reason and action (written even when strict fails)")
LABEL_MAPS = _declare("label_maps", "data/label_maps.json", "ingest", "json",
                      "label -> integer code of each coded column (group, gender)")
FACES = _declare("faces", "data/faces", "ingest", "folder", "synthetic cohort: the drawn face images")
GROUND_TRUTH = _declare("ground_truth", "data/ground_truth", "ingest", "ground_truth",
                        "synthetic cohort: the planted SCM, true trait values and latent blocks")
BENCHMARK_TRUTH = _declare("benchmark_truth", "data/benchmark_truth.json", "ingest", "json",
                           "variant digits: the true latents and graph")
BENCHMARK_MEASUREMENT = _declare("benchmark_measurement", "data/variant_digits/{key}.npy", "ingest", "npy",
                                 "variant digits: one measurement (<modality>_<k>) per file")
RELEASE_EMBEDDING = _declare("release_embedding", "data/release_embeddings/{key}.npy", "ingest", "npy",
                             "release: a precomputed embedding column block, rows as in the person table")
RELEASE_EMBEDDING_INDEX = _declare("release_embedding_index", "data/release_embeddings/index.parquet", "ingest",
                                   "parquet", "release: which person has which embedding")
# traits
TRAIT_SCORES = _declare("trait_scores", "traits/scores.parquet", "traits", "parquet",
                        "THE trait table: person_id, trait_<rater>_<t> for every rater (table columns, simulated, "
                        "lexicon, embedding, LLM), aggregate trait_<t>, Bayesian aggregate, status_<rater>")
TRAIT_ANSWERS = _declare("trait_answers", "traits/answers.parquet", "traits", "parquet",
                         "chat raters' answers in every format and repeat")
TRAIT_REQUESTS = _declare("trait_requests", "traits/requests.sqlite", "traits", "sqlite",
                          "the crash-safe request store of chat raters (unless traits.cache.path moves it)")
TRAIT_RELIABILITY = _declare("trait_reliability", "traits/reliability.json", "traits", "json",
                             "agreement, stability, discrepancy, order symmetry, recovery, rater summaries")
TRAIT_RELIABILITY_MD = _declare("trait_reliability_md", "traits/reliability.md", "traits", "markdown",
                                "the reliability report as Markdown")
TRAIT_RELIABILITY_FIGURE = _declare("trait_reliability_figure", "traits/reliability.png", "traits", "png",
                                    "the reliability figure")
# embeddings
IMAGE_EMBEDDING = _declare("image_embedding", "embeddings/image.npy", "embeddings", "npy",
                           "face image embedding (n x d float32, NaN rows where no image)")
IMAGE_PIXELS = _declare("image_pixels", "embeddings/image_pixels.npy", "embeddings", "npy",
                        "each face as a grey side x side thumbnail (n x side^2 float32 in [0, 1], NaN rows where "
                        "no image): a model-free second image measurement")
IMAGE_INDEX = _declare("image_index", "embeddings/image_index.parquet", "embeddings", "parquet",
                       "person_id, row, image_sha256, status of each image")
TEXT_EMBEDDING = _declare("text_embedding", "embeddings/text_{key}.npy", "embeddings", "npy",
                          "text embedding of one text source (bio by default)")
TEXT_INDEX = _declare("text_index", "embeddings/text_{key}_index.parquet", "embeddings", "parquet",
                      "person_id, row, text_sha256, status of one text source")
FACE_ATTRIBUTE_SCORES = _declare("face_attributes", "embeddings/face_attributes.parquet", "embeddings", "parquet",
                                 "zero-shot CLIP face attributes (when the table has none), with a 'weights' column")
PRIVATE_EMBEDDING = _declare("private_embedding", "embeddings/private/{key}.npy", "embeddings", "npy",
                             "privacy-transformed copy of an embedding")
EMBEDDING_INFO = _declare("embedding_info", "embeddings/info.json", "embeddings", "json",
                          "models, weights, dimensions, counts and warnings (e.g. random weights)")
# independence
LEVEL1_TABLE = _declare("level1_table", "level1/pvalues.parquet", "independence", "parquet",
                        "Level I: one row per (feature, trait column, test) with p, q, effect size, status")
LEVEL1_HEATMAP = _declare("level1_heatmap", "level1/heatmap_{key}.png", "independence", "png",
                          "Level I p-value heatmap of one test")
LEVEL1_SUMMARY = _declare("level1_summary", "level1/summary.md", "independence", "markdown",
                          "Level I dependent pairs per feature")
LEVEL1_RECOVERY = _declare("level1_recovery", "level1/recovery.json", "independence", "json",
                           "synthetic cohort: Level I decisions scored against the planted dependencies")
LEVEL1_CHECKPOINT = _declare("level1_checkpoint", "level1/checkpoint/{key}.parquet", "independence", "parquet",
                              "one test's finished rows while the stage runs, keyed by the test and a fingerprint "
                              "of its data, options and code (removed when the stage finishes): a rerun after a crash "
                              "keeps the tests that had finished", private=True)
# crl
CRL_MODEL = _declare("crl_model", "crl/model", "crl", "folder", "the fitted model (personax.load_pretrained)")
CRL_LATENTS = _declare("crl_latents", "crl/latents.parquet", "crl", "parquet",
                       "person_id, split and every learned latent")
CRL_GRAPH = _declare("crl_graph", "crl/graph.json", "crl", "json", "the learned weighted DAG over the latents, with each edge's standardised effect and how many are strong")
CRL_GRAPH_FIGURE = _declare("crl_graph_figure", "crl/graph.png", "crl", "png", "the learned DAG, drawn")
CRL_PC_GRAPH = _declare("crl_pc_graph", "crl/pc_graph.json", "crl", "json", "PC (causal-learn) on the latents")
CRL_PC_GRAPH_FIGURE = _declare("crl_pc_graph_figure", "crl/pc_graph.png", "crl", "png", "the PC graph, drawn")
CRL_FIT_CHECKPOINT = _declare("crl_fit_checkpoint", "crl/fit_checkpoint.msgpack", "crl", "msgpack",
                               "the fit's training state while the stage runs, and its training on's after the "
                               "searches, saved every 30 s (removed when the stage finishes): a rerun after a crash "
                               "resumes from it", private=True)
CRL_CURVE = _declare("crl_training_curve", "crl/training_curve.png", "crl", "png", "training / validation curves")
CRL_METRICS = _declare("crl_metrics", "crl/metrics.json", "crl", "json",
                       "fit summary: people, measurements used, ELBOs, edges, warnings, recovery")
CRL_RECOVERY = _declare("crl_recovery", "crl/recovery.json", "crl", "json",
                        "with ground truth: MCC / block R2 / SHD of the learned blocks")
CRL_MCC = _declare("crl_mcc", "crl/mcc.json", "crl", "json", "with ground truth: the MCC diagnostics")
CRL_MCC_FIGURE = _declare("crl_mcc_figure", "crl/mcc.png", "crl", "png",
                          "with ground truth: |corr| of learned vs planted latents")
# report
REPORT_HTML = _declare("report_html", "report/report.html", "report", "html", "the self-contained run report")
REPORT_MD = _declare("report_md", "report/report.md", "report", "markdown", "the report as Markdown")
REPORT_FIGURE = _declare("report_figure", "report/figures/{key}", "report", "png",
                         "a figure the Markdown report links")
