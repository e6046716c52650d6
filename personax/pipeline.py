"""The stage pipeline: a registry of stages, the run directory and its manifest.

Every stage has the same shape (like the flax examples' ``train_and_evaluate``)::

    def run(config: DictConfig, run_dir: RunDir) -> dict | None

It reads the files of earlier stages through :meth:`RunDir.input`, writes its own
through :meth:`RunDir.output`, and may return a small JSON-able summary. The runner
records each stage in ``manifest.json`` (stage, inputs and outputs with their
fingerprints, config hash, status, duration) and skips a stage on the next run in
the same directory when its config hash, inputs and outputs are all unchanged.

Example:
    >>> from personax.pipeline import STAGES
    >>> "ingest" in STAGES
    True
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fcntl
import hashlib
import importlib
import json
import logging
import os
import stat as _stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from personax import __version__
from personax import artifacts as A
from personax.artifacts import Artifact, write_json

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".personax.lock"


def _crl_measurements(config: DictConfig) -> list[Artifact]:
    """The artifacts ``crl.modalities`` names (so a crl run on trait scores requires ``traits``)."""
    modalities = (config.get("crl") or {}).get("modalities") or {}
    return [A.parse_reference(str(ref))[0] for refs in modalities.values() for ref in refs]


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """A registered stage.

    Attributes:
        name: The name used in ``stages=[...]``.
        target: ``"module:function"``; imported only when the stage runs, so a
            pipeline that does not use a heavy stage never imports its libraries.
        config_keys: Top-level config keys whose values the stage depends on; they
            make up its config hash.
        inputs: Artifacts the stage cannot run without; their writers are the stages
            it requires.
        optional_inputs: Artifacts it reads when they exist (ground truth, zero-shot
            face attributes, ...). Their writers must not run after it.
        config_inputs: Artifacts the config makes required (e.g. the measurements
            named in ``crl.modalities``); each must also be a declared input.
        after_any_rerun: Rerun whenever a stage before it ran in the same invocation,
            even with identical outputs (the report shows every stage's timings).
    """

    name: str
    target: str
    config_keys: tuple[str, ...]
    inputs: tuple[Artifact, ...] = ()
    optional_inputs: tuple[Artifact, ...] = ()
    config_inputs: Callable[[DictConfig], list[Artifact]] | None = None
    after_any_rerun: bool = False

    @property
    def outputs(self) -> tuple[Artifact, ...]:
        """Every artifact this stage writes (declared once, in :mod:`personax.artifacts`)."""
        return tuple(a for a in A.ARTIFACTS.values() if a.writer == self.name)

    @property
    def requires(self) -> tuple[str, ...]:
        """Stages whose outputs this stage cannot run without (derived from ``inputs``)."""
        return tuple(dict.fromkeys(a.writer for a in self.inputs if a.writer != self.name))

    def reads(self, item: Artifact) -> bool:
        return item in self.inputs or item in self.optional_inputs

    def needs(self, config: DictConfig) -> tuple[Artifact, ...]:
        """Required inputs under ``config``."""
        extra = self.config_inputs(config) if self.config_inputs else []
        for item in extra:
            if not self.reads(item):
                raise PipelineError(f"stage '{self.name}' cannot read artifact '{item.name}' ({item.path}); "
                                    f"it reads {sorted(a.name for a in (*self.inputs, *self.optional_inputs))}")
        return tuple(dict.fromkeys([*self.inputs, *extra]))

    def load(self) -> Callable[[DictConfig, RunDir], Mapping[str, Any] | None]:
        module_name, _, function_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), function_name)


_DATA = (A.PERSONS, A.LABEL_MAPS, A.REJECTED)
_TRUTH = (A.GROUND_TRUTH, A.BENCHMARK_TRUTH)

STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in [
        StageSpec("ingest", "personax.data.stage:run", config_keys=("data",)),
        StageSpec("traits", "personax.traits.stage:run", config_keys=("traits",), inputs=(A.PERSONS,),
                  optional_inputs=(A.LABEL_MAPS, A.GROUND_TRUTH)),
        StageSpec("embeddings", "personax.embeddings.stage:run", config_keys=("embeddings",), inputs=(A.PERSONS,),
                  optional_inputs=(A.TRAIT_SCORES,)),
        StageSpec("independence", "personax.independence.stage:run", config_keys=("independence",),
                  inputs=(A.PERSONS, A.TRAIT_SCORES), optional_inputs=(A.FACE_ATTRIBUTE_SCORES, *_TRUTH)),
        StageSpec("crl", "personax.crl.stage:run", config_keys=("crl",), inputs=(A.PERSONS,),
                  optional_inputs=(A.LABEL_MAPS, A.TRAIT_SCORES, A.IMAGE_EMBEDDING, A.TEXT_EMBEDDING, A.RELEASE_EMBEDDING,
                                   A.BENCHMARK_MEASUREMENT, A.PRIVATE_EMBEDDING, A.IMAGE_PIXELS, *_TRUTH),
                  config_inputs=_crl_measurements),
        # Last: reads whatever the other stages left. Its config hash covers the config it prints
        # (seed flows into each block) and `stages`, so a new stage list rebuilds it.
        StageSpec("report", "personax.report.stage:run",
                  config_keys=("report", "stages", "data", "embeddings", "traits", "independence", "crl"),
                  optional_inputs=tuple(a for a in A.ARTIFACTS.values() if a.writer != "report" and not a.private),
                  after_any_rerun=True),
    ]
}


class PipelineError(RuntimeError):
    """A pipeline cannot run as configured (unknown stage, missing input, ...)."""


class StageInputMissing(PipelineError):
    """A stage needs a file that an earlier stage should have written."""


class RunDirInUse(PipelineError):
    """Another process is running stages in the same run directory."""


# --------------------------------------------------------------------------- fingerprints


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _regular_or_folder(path: Path) -> str:
    """``file``, ``dir`` or ``special`` (a FIFO, a device: never read, it may never end)."""
    mode = path.stat().st_mode
    if _stat.S_ISREG(mode):
        return "file"
    if _stat.S_ISDIR(mode):
        return "dir"
    return "special"


def fingerprint(path: Path, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fingerprints a file or a folder by content (SHA-256), never by modification times.

    A folder's digest covers each file's relative name and content, so a run directory
    copied with ``cp -r`` (new mtimes) or moved with ``mv`` keeps its fingerprints. A file
    whose size and mtime match ``previous`` keeps its recorded hash (an unchanged large
    input is not re-read); a copy gets new mtimes, is re-hashed and matches by content.
    A device or FIFO is recorded as ``special`` and never read.
    """
    kind = _regular_or_folder(path)
    if kind == "special":
        return {"kind": "special"}
    if kind == "dir":
        return {"kind": "dir", **_files_digest(sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*")
                                                      if p.is_file() and not p.name.startswith(".")))}
    stat = path.stat()
    if (previous and previous.get("kind") == "file" and previous.get("size") == stat.st_size
            and previous.get("mtime_ns") == stat.st_mtime_ns):
        return dict(previous)
    return {"kind": "file", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def _files_digest(named: Iterable[tuple[str, Path]]) -> dict[str, Any]:
    digest = hashlib.sha256()
    count = missing = 0
    for name, path in named:
        try:
            content = sha256_file(path) if _regular_or_folder(path) == "file" else "not a regular file"
        except OSError:
            content = "missing"
            missing += 1
        digest.update(f"{name}\0{content}\n".encode())
        count += 1
    return {"files": count, "missing": missing, "digest": digest.hexdigest()}


def _same_fingerprint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("kind") != b.get("kind"):
        return False
    if a["kind"] in ("dir", "files"):
        return a.get("digest") == b.get("digest")
    if a["kind"] == "special":
        return False  # a device or FIFO can change at any time: never "up to date"
    return a.get("sha256") == b.get("sha256")


# --------------------------------------------------------------------------- run dir


class RunDir:
    """The run directory as one stage sees it: reads and writes declared artifacts.

    Every read and write goes through an :class:`~personax.artifacts.Artifact`, is
    recorded (the manifest fingerprints it), and is checked against the stage's
    declaration in :data:`STAGES`: a stage reads only its declared inputs and writes
    only its own artifacts. Writes are atomic.

    Args:
        path: The run directory.
        stage: The stage using it (named in error messages; ``"?"`` for library use,
            which skips the declaration checks).

    Example:
        >>> import tempfile, pandas as pd
        >>> from personax.artifacts import PERSONS
        >>> rd = RunDir(tempfile.mkdtemp(), stage="ingest")
        >>> rd.write(PERSONS, pd.DataFrame({"person_id": ["p1"]})).name
        'persons.parquet'
        >>> RunDir(rd.path, stage="traits").read(PERSONS).person_id.tolist()
        ['p1']
    """

    def __init__(self, path: str | os.PathLike[str], stage: str = "?"):
        self.path = Path(path).resolve()
        self.stage = stage
        self.inputs: dict[str, Path] = {}
        self.outputs: dict[str, Path] = {}
        self.file_groups: dict[str, list[tuple[str, Path]]] = {}

    # paths -----------------------------------------------------------------
    def _declared(self) -> StageSpec | None:
        return STAGES.get(self.stage)

    def _check(self, item: Artifact, writing: bool) -> None:
        spec = self._declared()
        if spec is None:
            return
        if writing and item.writer != self.stage:
            raise PipelineError(f"stage '{self.stage}' may not write '{item.name}' ({item.path}): "
                                f"it belongs to stage '{item.writer}'")
        if not writing and item.writer != self.stage and not spec.reads(item):
            raise PipelineError(f"stage '{self.stage}' reads '{item.name}' ({item.path}) without declaring it "
                                f"as an input in personax.pipeline.STAGES")

    def locate(self, item: Artifact, key: str | None = None) -> Path:
        """Where ``item`` lives in this run directory (nothing recorded)."""
        return self.path / item.relpath(key)

    def exists(self, item: Artifact, key: str | None = None) -> bool:
        """Whether the artifact is there (nothing recorded)."""
        return self.locate(item, key).exists()

    def keys(self, item: Artifact) -> list[str]:
        """The members of a family present in this run directory."""
        return item.keys_in(self.path)

    # reading ---------------------------------------------------------------
    def input_path(self, item: Artifact, key: str | None = None) -> Path:
        """The path of an artifact this stage reads, recorded as an input.

        Raises:
            StageInputMissing: It is not there (the message names the stage that writes it).
        """
        self._check(item, writing=False)
        path = self.locate(item, key)
        if not path.exists():
            raise StageInputMissing(
                f"stage '{self.stage}' needs {item.relpath(key)} ({item.name}), which does not exist in "
                f"{self.path}: run the '{item.writer}' stage first"
            )
        self.inputs[item.relpath(key)] = path
        return path

    def read(self, item: Artifact, key: str | None = None) -> Any:
        """Reads an artifact as its typed value (a DataFrame, a dict, an array, ...)."""
        return item.read(self.input_path(item, key))

    def read_optional(self, item: Artifact, key: str | None = None) -> Any:
        """Like :meth:`read`, or ``None`` when the artifact is not there."""
        return self.read(item, key) if self.exists(item, key) else None

    def external_input(self, path: str | os.PathLike[str], what: str) -> Path:
        """A user's file or folder outside the run directory (bios table, image root).

        Raises:
            FileNotFoundError: It does not exist or is not a regular file or folder
                (a device or FIFO could block forever).
        """
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise FileNotFoundError(f"{what} {path} does not exist")
        if _regular_or_folder(path) == "special":
            raise FileNotFoundError(f"{what} {path} is not a regular file or folder (a device or pipe cannot be read "
                                    "as data)")
        self.inputs[str(path)] = path
        return path

    def input_files(self, label: str, paths: Mapping[str, str | os.PathLike[str]]) -> None:
        """Records a group of files (e.g. the images the person table points at) as one input.

        ``paths`` maps a stable name (the person id) to the file; its fingerprint is the
        digest of every file's content, so replacing one image makes the stage rerun.
        """
        self.file_groups[label] = sorted((str(name), Path(path)) for name, path in paths.items())

    # writing ---------------------------------------------------------------
    def output_path(self, item: Artifact, key: str | None = None) -> Path:
        """The path of an artifact this stage writes itself (a folder, a model, a figure), recorded.

        Parent folders are created (a folder artifact too). Write files through
        :func:`~personax.artifacts.atomic_path`.
        """
        self._check(item, writing=True)
        path = self.locate(item, key)
        (path if item.is_folder else path.parent).mkdir(parents=True, exist_ok=True)
        self.outputs[item.relpath(key)] = path
        return path

    def write(self, item: Artifact, value: Any, key: str | None = None, **options: Any) -> Path:
        """Writes ``value`` as the artifact, atomically; returns its path."""
        path = self.output_path(item, key)
        item.write(path, value, **options)
        return path


# --------------------------------------------------------------------------- manifest


def config_hash(config: DictConfig, keys: Sequence[str]) -> str:
    """Hash of the resolved config values under ``keys`` (and the package version)."""
    selected = {key: OmegaConf.to_container(config[key], resolve=True) if key in config else None for key in keys}
    payload = json.dumps({"personax": __version__, "config": selected}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """``manifest.json`` of a run directory: one record per stage plus a history."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / MANIFEST_NAME
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError as err:
                raise PipelineError(
                    f"{self.path} is not valid JSON ({err}); move it away to start this run directory afresh"
                ) from err
        else:
            self.data = {"personax_version": __version__, "created": _now(), "stages": {}, "history": []}

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data["stages"]

    def save(self) -> None:
        self.data["updated"] = _now()
        write_json(self.path, self.data)

    def record(self, name: str, entry: dict[str, Any]) -> None:
        self.stages[name] = entry
        self.data["history"].append(
            {k: entry.get(k) for k in ("stage", "status", "finished", "duration_s", "config_hash")}
        )
        self.save()

    def is_current(self, name: str, chash: str, run_dir: Path) -> bool:
        """True when ``name`` finished with this config and its files are unchanged (by content)."""
        entry = self.stages.get(name)
        if not entry or entry.get("status") != "done" or entry.get("config_hash") != chash:
            return False
        for record in [*entry.get("inputs", []), *entry.get("outputs", [])]:
            if record.get("kind") == "files":
                current = {"kind": "files", **_files_digest(_group_paths(record, run_dir))}
                if not _same_fingerprint(current, record):
                    return False
                continue
            path = Path(record["path"])
            path = path if path.is_absolute() else run_dir / path
            if not path.exists() or not _same_fingerprint(fingerprint(path, record), record):
                return False
        return True


def _relative(run_path: Path, path: Path) -> str:
    try:
        return path.relative_to(run_path).as_posix()
    except ValueError:
        return str(path)


def _group_paths(record: Mapping[str, Any], run_dir: Path) -> list[tuple[str, Path]]:
    """The (name, path) pairs of a recorded file group; relative paths are inside the run directory."""
    return [(name, Path(path) if Path(path).is_absolute() else run_dir / path) for name, path in record["members"]]


def _file_records(run_dir: RunDir, files: Mapping[str, Path], previous: Sequence[Mapping[str, Any]] = (),
                  *, groups: Mapping[str, list[tuple[str, Path]]] | None = None) -> list[dict[str, Any]]:
    """Fingerprint records of a stage's files (and of its file groups, e.g. the images it read)."""
    known = {rec["path"]: rec for rec in previous}
    records = [{"path": key, **fingerprint(path, known.get(key))} for key, path in sorted(files.items())
               if path.exists()]
    for label, members in sorted((groups or {}).items()):
        stored = [(name, _relative(run_dir.path, path)) for name, path in members]
        records.append({"path": label, "kind": "files", "members": stored, **_files_digest(members)})
    return records


# --------------------------------------------------------------------------- runner


def _force_set(force: Any, stages: Sequence[str]) -> set[str]:
    if force is True:
        return set(stages)
    if not force:
        return set()
    if isinstance(force, str):
        return {force}
    return set(force)


def resolve_stages(names: Sequence[str]) -> list[StageSpec]:
    """Looks up stage names, failing with the list of known stages."""
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise PipelineError(f"unknown stage(s) {unknown}; known stages: {sorted(STAGES)}")
    return [STAGES[name] for name in names]


def run_pipeline(config: DictConfig, workdir: str | os.PathLike[str]) -> dict[str, str]:
    """Runs ``config.stages`` in order in ``workdir``; returns each stage's status.

    A stage is skipped ("skipped: up to date") when the manifest says it finished
    with the same config hash and its inputs and outputs are unchanged, unless
    ``config.force`` is true or names it. A failing stage is recorded as
    ``failed`` with its error and the exception propagates; stages that finished
    earlier keep their records and files.

    Example:
        >>> from omegaconf import OmegaConf
        >>> import tempfile
        >>> cfg = OmegaConf.create({"stages": [], "force": False})
        >>> run_pipeline(cfg, tempfile.mkdtemp())
        {}
    """
    run_path = Path(workdir).resolve()
    run_path.mkdir(parents=True, exist_ok=True)
    specs = resolve_stages(_stage_names(config.stages))
    forced = _force_set(config.get("force", False), [spec.name for spec in specs])
    unknown_forced = forced - set(STAGES)
    if unknown_forced:
        raise PipelineError(f"force names unknown stage(s) {sorted(unknown_forced)}; known: {sorted(STAGES)}")
    with _exclusive(run_path):
        manifest = Manifest(run_path)
        check_order(specs, config, manifest, run_path)
        return _run_stages(specs, config, manifest, run_path, forced)


def _stage_names(stages: Any) -> list[str]:
    if isinstance(stages, str):  # stages=ingest would otherwise be read letter by letter
        raise PipelineError(f"stages must be a list, e.g. stages=[{stages}], got the string {stages!r}")
    return [str(name) for name in stages]


class _exclusive:
    """An exclusive lock on the run directory, held while stages run.

    Two runs writing into one directory would mix their files and records; the second
    one fails at once with the first one's pid. The OS drops the lock when the process
    dies, so a crash never leaves the directory locked.
    """

    def __init__(self, run_path: Path):
        self.path = run_path / LOCK_NAME
        self.handle: Any = None

    def __enter__(self) -> _exclusive:
        self.handle = open(self.path, "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise RunDirInUse(f"run directory {self.path.parent} is in use by pid {holder}; wait for that run to "
                              "finish or choose another directory (name=...)") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()


def check_order(specs: Sequence[StageSpec], config: DictConfig, manifest: Manifest, run_path: Path) -> None:
    """Validates the stage list against the declarations and the run directory.

    Every required input's writer runs earlier in the list or has finished here, and no
    input (required or optional) is written by a stage that runs *later* in the list:
    that stage would read the old file and then see it replaced.

    Raises:
        PipelineError: naming the stage, the artifact and the fix.
    """
    planned = [spec.name for spec in specs]
    for position, spec in enumerate(specs):
        for item in (*spec.needs(config), *spec.optional_inputs):
            if item.writer in planned[position + 1:]:
                raise PipelineError(
                    f"stage '{spec.name}' reads {item.relpath() if not item.is_family else item.path} "
                    f"({item.name}), which stage '{item.writer}' writes after it in stages={planned}; "
                    f"put '{item.writer}' first")
        for item in spec.needs(config):
            if item.writer in planned[:position] or item.writer == spec.name:
                continue
            if manifest.stages.get(item.writer, {}).get("status") != "done":
                raise PipelineError(
                    f"stage '{spec.name}' needs {item.name} ({item.path}), written by stage '{item.writer}', which "
                    f"is neither earlier in stages={planned} nor finished in {run_path}; add it to stages")
            writer = STAGES[item.writer]
            recorded = manifest.stages[item.writer].get("config_hash")
            if recorded != config_hash(config, writer.config_keys):
                log.warning("stage %s reads %s from an earlier run of stage %s whose config differs from this one; "
                            "add '%s' to stages to rebuild it", spec.name, item.name, item.writer, item.writer)


def _run_stages(specs: Sequence[StageSpec], config: DictConfig, manifest: Manifest, run_path: Path,
                forced: set[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for spec in specs:
        chash = config_hash(config, spec.config_keys)
        upstream_ran = spec.after_any_rerun and "done" in statuses.values()
        if spec.name not in forced and not upstream_ran and manifest.is_current(spec.name, chash, run_path):
            log.info("stage %s: up to date, skipped", spec.name)
            manifest.data["history"].append({"stage": spec.name, "status": "skipped", "finished": _now()})
            manifest.save()
            statuses[spec.name] = "skipped"
            continue
        # Anything downstream of a stage that reruns must rerun too; its input
        # fingerprints change, so is_current() sees that without extra bookkeeping.
        run_dir = RunDir(run_path, stage=spec.name)
        entry: dict[str, Any] = {"stage": spec.name, "config_hash": chash, "started": _now()}
        manifest.stages[spec.name] = {**entry, "status": "running"}
        manifest.save()
        log.info("stage %s: running", spec.name)
        start = time.perf_counter()
        try:
            summary = spec.load()(config, run_dir)
        except BaseException as err:
            entry.update(
                status="failed",
                finished=_now(),
                duration_s=round(time.perf_counter() - start, 3),
                error=describe_error(err, config),
                inputs=_file_records(run_dir, run_dir.inputs, groups=run_dir.file_groups),
                outputs=_file_records(run_dir, run_dir.outputs),
            )
            try:
                manifest.record(spec.name, entry)
            except OSError as record_err:  # e.g. the disk that filled up under the stage: keep the stage's own error
                log.error("stage %s: its failure could not be recorded in %s: %s", spec.name, MANIFEST_NAME, record_err)
            raise err
        entry.update(
            status="done",
            finished=_now(),
            duration_s=round(time.perf_counter() - start, 3),
            inputs=_file_records(run_dir, run_dir.inputs, groups=run_dir.file_groups),
            outputs=_file_records(run_dir, run_dir.outputs),
            summary=dict(summary or {}),
        )
        manifest.record(spec.name, entry)
        log.info("stage %s: done in %.1f s", spec.name, entry["duration_s"])
        statuses[spec.name] = "done"
    return statuses


def describe_error(err: BaseException, config: DictConfig | None = None) -> str:
    """``Type: message`` for the manifest, with configured secrets redacted by value."""
    from personax._secrets import redact

    return redact(f"{type(err).__name__}: {err}", config)


def readers(item: Artifact) -> list[str]:
    """The stages that read ``item`` (declared inputs), in pipeline order."""
    return [name for name, spec in STAGES.items() if name != item.writer and spec.reads(item)]


def artifact_table(also_read_by: Mapping[str, Sequence[Artifact]] | None = None) -> str:
    """The run-directory contract as a Markdown table: artifact, path, writer, readers.

    Args:
        also_read_by: Readers outside the stages, e.g. ``{"personax.sweep": [...]}``.

    Example:
        >>> "| `persons` | `data/persons.parquet` | ingest |" in artifact_table()
        True
    """
    rows = []
    for item in A.ARTIFACTS.values():
        names = readers(item) + [who for who, items in (also_read_by or {}).items() if item in items]
        rows.append(f"| `{item.name}` | `{item.path}` | {item.writer} | {', '.join(names) or '—'} |")
    return "\n".join(rows)
