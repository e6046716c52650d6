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

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from personax import __version__

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """A registered stage.

    Attributes:
        name: The name used in ``stages=[...]``.
        target: ``"module:function"``; imported only when the stage runs, so a
            pipeline that does not use a heavy stage never imports its libraries.
        config_keys: Top-level config keys whose values the stage depends on; they
            make up its config hash.
        requires: Stages whose outputs this stage reads.
    """

    name: str
    target: str
    config_keys: tuple[str, ...]
    requires: tuple[str, ...] = ()

    def load(self) -> Callable[[DictConfig, RunDir], Mapping[str, Any] | None]:
        module_name, _, function_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), function_name)


# Later stages (embeddings, traits, independence, crl, report) add one line here.
STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in [
        StageSpec("ingest", "personax.data.stage:run", config_keys=("data",)),
        StageSpec("embeddings", "personax.embeddings.stage:run", config_keys=("embeddings",), requires=("ingest",)),
        # crl reads whatever crl.modalities names (embeddings, or a benchmark's arrays from ingest).
        StageSpec("crl", "personax.crl.stage:run", config_keys=("crl",), requires=("ingest",)),
        StageSpec("independence", "personax.independence.stage:run", config_keys=("independence",), requires=("ingest",)),
        StageSpec("traits", "personax.traits.stage:run", config_keys=("traits",), requires=("ingest",)),
        # Last: reads every other stage's outputs that exist (recorded as inputs); its config hash
        # covers the config it prints (seed flows into each block), and `stages`, so a new stage list rebuilds it.
        StageSpec("report", "personax.report.stage:run", requires=("ingest",),
                  config_keys=("report", "stages", "data", "embeddings", "traits", "independence", "crl")),
    ]
}


class PipelineError(RuntimeError):
    """A pipeline cannot run as configured (unknown stage, missing input, ...)."""


class StageInputMissing(PipelineError):
    """A stage needs a file that an earlier stage should have written."""


# --------------------------------------------------------------------------- files


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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_npy(path: str | os.PathLike[str], array: Any) -> None:
    """Writes ``array`` as ``.npy`` (no pickled objects), atomically."""
    import numpy as np

    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: Path, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fingerprints a file (content SHA-256) or a folder (names, sizes, mtimes).

    A file whose size and mtime match ``previous`` keeps its recorded hash, so an
    unchanged large input is not re-read on every run.
    """
    if path.is_dir():
        digest = hashlib.sha256()
        count = 0
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = child.stat()
            digest.update(f"{child.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            count += 1
        return {"kind": "dir", "files": count, "digest": digest.hexdigest()}
    stat = path.stat()
    if (
        previous
        and previous.get("kind") == "file"
        and previous.get("size") == stat.st_size
        and previous.get("mtime_ns") == stat.st_mtime_ns
    ):
        return dict(previous)
    return {"kind": "file", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def _same_fingerprint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("kind") != b.get("kind"):
        return False
    if a["kind"] == "dir":
        return a.get("digest") == b.get("digest")
    return a.get("sha256") == b.get("sha256")


# --------------------------------------------------------------------------- run dir


class RunDir:
    """The run directory as one stage sees it: records what it reads and writes.

    Args:
        path: The run directory.
        stage: The stage using it (named in error messages).
    """

    def __init__(self, path: str | os.PathLike[str], stage: str = "?"):
        self.path = Path(path).resolve()
        self.stage = stage
        self.inputs: dict[str, Path] = {}
        self.outputs: dict[str, Path] = {}

    def _key(self, path: Path) -> str:
        try:
            return path.relative_to(self.path).as_posix()
        except ValueError:
            return str(path)

    def _resolve(self, relpath: str | os.PathLike[str]) -> Path:
        path = Path(relpath)
        return path if path.is_absolute() else self.path / path

    def input(self, relpath: str | os.PathLike[str], *, producer: str | None = None) -> Path:
        """Returns the path of a file this stage reads and records it as an input.

        Args:
            relpath: Path relative to the run directory, or an absolute path to an
                external input (a user's bios file, an image folder).
            producer: The stage expected to have written it (for the error message).

        Raises:
            StageInputMissing: The file does not exist.
        """
        path = self._resolve(relpath)
        if not path.exists():
            hint = f": run the '{producer}' stage first" if producer else ""
            raise StageInputMissing(
                f"stage '{self.stage}' needs {path}, which does not exist{hint}"
            )
        self.inputs[self._key(path)] = path
        return path

    def output(self, relpath: str | os.PathLike[str], *, directory: bool = False) -> Path:
        """Returns the path of a file (or folder) this stage writes and records it.

        Parent folders are created; with ``directory=True`` the folder itself too.
        """
        path = self._resolve(relpath)
        (path if directory else path.parent).mkdir(parents=True, exist_ok=True)
        self.outputs[self._key(path)] = path
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
        """True when ``name`` finished with this config and its files are unchanged."""
        entry = self.stages.get(name)
        if not entry or entry.get("status") != "done" or entry.get("config_hash") != chash:
            return False
        for record in [*entry.get("inputs", []), *entry.get("outputs", [])]:
            path = Path(record["path"])
            path = path if path.is_absolute() else run_dir / path
            if not path.exists() or not _same_fingerprint(fingerprint(path, record), record):
                return False
        return True


def _file_records(files: Mapping[str, Path], previous: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    known = {rec["path"]: rec for rec in previous}
    return [{"path": key, **fingerprint(path, known.get(key))} for key, path in sorted(files.items()) if path.exists()]


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
    specs = resolve_stages(list(config.stages))
    forced = _force_set(config.get("force", False), [spec.name for spec in specs])
    unknown_forced = forced - set(STAGES)
    if unknown_forced:
        raise PipelineError(f"force names unknown stage(s) {sorted(unknown_forced)}; known: {sorted(STAGES)}")
    manifest = Manifest(run_path)
    planned = [spec.name for spec in specs]
    for spec in specs:
        for needed in spec.requires:
            earlier = planned[: planned.index(spec.name)]
            if needed not in earlier and manifest.stages.get(needed, {}).get("status") != "done":
                raise PipelineError(
                    f"stage '{spec.name}' needs the outputs of stage '{needed}', which is neither "
                    f"earlier in stages={planned} nor finished in {run_path}; add it to stages"
                )

    statuses: dict[str, str] = {}
    for spec in specs:
        chash = config_hash(config, spec.config_keys)
        if spec.name not in forced and manifest.is_current(spec.name, chash, run_path):
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
                error=f"{type(err).__name__}: {err}",
                inputs=_file_records(run_dir.inputs),
                outputs=_file_records(run_dir.outputs),
            )
            manifest.record(spec.name, entry)
            raise
        entry.update(
            status="done",
            finished=_now(),
            duration_s=round(time.perf_counter() - start, 3),
            inputs=_file_records(run_dir.inputs),
            outputs=_file_records(run_dir.outputs),
            summary=dict(summary or {}),
        )
        manifest.record(spec.name, entry)
        log.info("stage %s: done in %.1f s", spec.name, entry["duration_s"])
        statuses[spec.name] = "done"
    return statuses
