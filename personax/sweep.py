"""Summaries of Hydra sweeps: ``python -m personax.sweep SWEEP_DIR [--out DIR]``.

A sweep (``python -m personax.run -m seed=0,1,2 crl.shared_dim=2,4``) writes one job
folder per combination under ``multirun/<name>/<time>/<job number>/``. This module
reads each job's ``.hydra/overrides.yaml`` (which hyper-parameters it ran with),
``manifest.json`` (stage statuses, durations and summaries) and the stages' result
files, groups the jobs by their overrides other than the seed (the repetition
axis), and reports mean, sample SD (``ddof=1``) and n of every numeric result per
group. Jobs that failed, are still running or never started are listed with the
reason and left out of the means.

Files written into the sweep folder (or ``--out``):

* ``summary.csv``: one row per group and metric (group columns, ``metric``, ``n``,
  ``mean``, ``sd``);
* ``jobs.csv``: one row per job (status, problem, overrides, every metric);
* ``summary.md``: the same as tables, mean ± sd (n), and the jobs left out.

Example:
    >>> import pandas as pd
    >>> jobs = pd.DataFrame({"job": ["0", "1"], "status": ["done", "done"], "problem": ["", ""],
    ...                      "seed": ["0", "1"], "ingest.persons": [40.0, 42.0]})
    >>> summarize_jobs(jobs)[["metric", "n", "mean"]].to_dict("records")
    [{'metric': 'ingest.persons', 'n': 2, 'mean': 41.0}]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from personax import artifacts as A
from personax.artifacts import atomic_path
from personax.pipeline import MANIFEST_NAME

log = logging.getLogger(__name__)

#: Columns of :func:`collect_jobs` before the override and metric columns.
JOB_COLUMNS = ("job", "status", "problem")

@dataclasses.dataclass(frozen=True)
class ResultFile:
    """A stage's result artifact whose numbers a summary adds to the manifest's.

    Attributes:
        artifact: The declared artifact (a JSON file of the job's run directory).
        prefix: Metric name prefix (``<stage>`` or ``<stage>.<what>``).
        root: Key to descend into first (None: the whole file).
        keep: Top-level keys to take (None: all).
        skip: Keys left out at any depth.
        derived: Metrics computed from the file's contents besides its numbers (e.g. verdicts as 0 / 1).
    """

    artifact: A.Artifact
    prefix: str
    root: str | None = None
    keep: tuple[str, ...] | None = None
    skip: frozenset[str] = frozenset()
    derived: Callable[[Any], dict[str, float]] | None = None


#: Result files read besides ``manifest.json``; they add the detail the stages' manifest summaries leave out.
RESULT_FILES: tuple[ResultFile, ...] = (
    # the crl summary plus recovery.<block>.mcc on synthetic data, and each verdict as 0 / 1
    ResultFile(A.CRL_METRICS, "crl", derived=lambda data: recovered_flags(data.get("recovery"))),
    ResultFile(A.TRAIT_RELIABILITY, "traits", keep=("alpha", "recovery", "discrepancy")),
    ResultFile(A.LEVEL1_RECOVERY, "independence.recovery", root="tests", skip=frozenset({"raters"})),
)

#: Every artifact a sweep summary reads (its result files, and the Level I chunks it merges).
READS: tuple[A.Artifact, ...] = (*(spec.artifact for spec in RESULT_FILES), A.LEVEL1_TABLE)

#: Manifest summary numbers that repeat (rounded) what :data:`RESULT_FILES` give.
SUMMARY_SKIP: dict[str, frozenset[str]] = {
    "traits": frozenset({"alpha_mean", "recovery_mean"}),
    "independence": frozenset({"recovery_f1"}),
}


def is_repeat_key(key: str) -> bool:
    """True for a seed override (``seed``, ``crl.seed``, ...): the repetition axis, not a group.

    Example:
        >>> is_repeat_key("seed"), is_repeat_key("crl.seed"), is_repeat_key("data.n")
        (True, True, False)
    """
    return key == "seed" or key.endswith(".seed")


def parse_override(text: str) -> tuple[str, str]:
    """Splits a Hydra override into (key, value); ``+``/``++`` prefixes are dropped.

    Example:
        >>> parse_override("+experiment=smoke"), parse_override("~data.columns")
        (('experiment', 'smoke'), ('data.columns', '<deleted>'))
    """
    key, sep, value = text.partition("=")
    if key.startswith("~"):
        return key[1:], value if sep else "<deleted>"
    return key.lstrip("+"), value


def flatten_numbers(obj: Any, prefix: str = "", skip: frozenset[str] = frozenset()) -> dict[str, float]:
    """The numeric leaves of nested dicts as ``{"a.b.c": value}``; lists, strings and bools are left out.

    Example:
        >>> flatten_numbers({"a": {"b": 1, "c": "x", "d": [1]}, "e": 2.5, "f": True}, "s")
        {'s.a.b': 1.0, 's.e': 2.5}
    """
    out: dict[str, float] = {}
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if str(key) not in skip:
                out.update(flatten_numbers(value, f"{prefix}.{key}" if prefix else str(key), skip))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = float(obj)
    return out


def _read_yaml(path: Path) -> Any:
    with path.open() as handle:
        return yaml.safe_load(handle)


def _job_status(manifest: Mapping[str, Any], planned: Sequence[str] | None) -> tuple[str, str]:
    stages = manifest.get("stages", {})
    for name, entry in stages.items():
        if entry.get("status") == "failed":
            return "failed", f"stage {name} failed: {entry.get('error', '?')}"
    for name, entry in stages.items():
        if entry.get("status") != "done":
            return "incomplete", f"stage {name} is {entry.get('status', '?')} (still running, or the job was killed)"
    never = [name for name in planned or () if name not in stages]
    if never:
        return "incomplete", f"stages {never} never ran"
    return "done", ""


def job_metrics(job_dir: Path, manifest: Mapping[str, Any]) -> dict[str, float]:
    """A job's numeric results: per stage ``<stage>.duration_s`` and summary numbers, and :data:`RESULT_FILES`."""
    metrics: dict[str, float] = {}
    total = 0.0
    for name, entry in manifest.get("stages", {}).items():
        if isinstance(entry.get("duration_s"), (int, float)):
            metrics[f"{name}.duration_s"] = float(entry["duration_s"])
            total += float(entry["duration_s"])
        summary = {k: v for k, v in (entry.get("summary") or {}).items() if k not in SUMMARY_SKIP.get(name, ())}
        metrics.update(flatten_numbers(summary, name))
    if metrics:
        metrics["total.duration_s"] = total
    for spec in RESULT_FILES:
        path = job_dir / spec.artifact.relpath()
        if not path.is_file():
            continue
        try:
            data = spec.artifact.read(path)
        except (OSError, ValueError) as err:
            log.warning("%s: unreadable (%s), left out", path, err)
            continue
        if spec.root is not None:
            data = data.get(spec.root, {}) if isinstance(data, dict) else {}
        if spec.keep is not None and isinstance(data, dict):
            data = {key: data[key] for key in spec.keep if key in data}
        metrics.update(flatten_numbers(data, spec.prefix, spec.skip))
        if spec.derived is not None and isinstance(data, dict):
            metrics.update(spec.derived(data))
    return metrics


def recovered_flags(recovery: Any) -> dict[str, float]:
    """``crl.recovery.<block>.recovered`` (and ``crl.recovery.all.graph_recovered``): 1 where the verdict
    is "recovered", else 0, so that a group's mean is the share of its jobs that recovered it: the
    MCC's mean alone does not say whether any job passed the verdict.

    Example:
        >>> recovered_flags({"shared": {"mcc": 0.9, "verdict": "recovered"}, "text": {"verdict": "not recovered"},
        ...                  "all": {"graph_verdict": "not recovered"}})
        {'crl.recovery.shared.recovered': 1.0, 'crl.recovery.text.recovered': 0.0, 'crl.recovery.all.graph_recovered': 0.0}
    """
    flags: dict[str, float] = {}
    for block, values in (recovery or {}).items() if isinstance(recovery, Mapping) else ():
        if not isinstance(values, Mapping):
            continue
        if "verdict" in values:
            flags[f"crl.recovery.{block}.recovered"] = float(values["verdict"] == "recovered")
        if "graph_verdict" in values:
            flags[f"crl.recovery.{block}.graph_recovered"] = float(values["graph_verdict"] == "recovered")
    return flags


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders: children with a number for a name or a Hydra record."""
    found = [
        child for child in sweep_dir.iterdir()
        if child.is_dir() and not child.name.startswith(".")
        and (child.name.isdigit() or (child / ".hydra").is_dir() or (child / MANIFEST_NAME).is_file())
    ]
    return sorted(found, key=lambda p: _natural(p.name))


def planned_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """Each job's overrides as Hydra's basic sweeper expands ``multirun.yaml``; None if unknown.

    Lets a sweep whose jobs have not all started (queued on Slurm, or a crashed launcher) show
    the missing ones. Other sweepers (Optuna, ...) choose their jobs as they go: None.
    """
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        hydra_cfg = (_read_yaml(path) or {}).get("hydra", {})
        sweeper = hydra_cfg.get("sweeper") or {}
        if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        arguments += list(hydra_cfg.get("overrides", {}).get("task") or [])
        parsed = OverridesParser.create().parse_overrides(arguments)
        return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception as err:  # noqa: BLE001 - the plan is a nicety; the job folders are the record
        log.warning("%s: could not expand the sweep's job list (%s)", path, err)
        return None


def _read_job(job_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"job": job_dir.name, "status": "done", "problem": "", "overrides": None, "metrics": {}}
    overrides_path = job_dir / ".hydra" / "overrides.yaml"
    config_path = job_dir / ".hydra" / "config.yaml"
    planned_stages = None
    try:
        if overrides_path.is_file():
            row["overrides"] = [str(o) for o in _read_yaml(overrides_path) or []]
        if config_path.is_file():
            stages = (_read_yaml(config_path) or {}).get("stages")
            planned_stages = [str(s) for s in stages] if isinstance(stages, list) else None
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as err:
        row.update(status="incomplete", problem=f"unreadable Hydra record in {job_dir / '.hydra'}: {err}")
        return row
    manifest_path = job_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        row.update(status="incomplete", problem="no manifest.json: the job stopped before its first stage")
        return row
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        row.update(status="incomplete", problem=f"manifest.json unreadable: {err}")
        return row
    row["status"], row["problem"] = _job_status(manifest, planned_stages)
    row["metrics"] = job_metrics(job_dir, manifest)
    return row


def collect_jobs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job of a sweep: ``job``, ``status``, ``problem``, override columns, metric columns.

    ``status`` is ``done`` (every stage it was asked to run finished), ``failed`` (a stage
    failed; ``problem`` has its error), ``incomplete`` (a stage is still ``running`` or was
    killed, or stages never ran) or ``missing`` (in ``multirun.yaml``'s plan but no folder).
    Override columns hold the values as written on the command line (strings).

    Raises:
        FileNotFoundError: ``sweep_dir`` has no job folders.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a folder")
    rows = [_read_job(job_dir) for job_dir in _job_dirs(sweep_dir)]
    plan = planned_jobs(sweep_dir)
    if plan is not None:
        seen = {frozenset(row["overrides"]) for row in rows if row["overrides"] is not None}
        by_name = {row["job"]: row for row in rows}
        for number, overrides in enumerate(plan):
            name = str(number)
            if frozenset(overrides) in seen:
                continue
            if name in by_name:  # a folder without .hydra takes the plan's overrides; a rerun keeps its own
                if by_name[name]["overrides"] is None:
                    by_name[name]["overrides"] = overrides
                continue
            rows.append({"job": name, "status": "missing", "problem": "never started: no job folder",
                         "overrides": overrides, "metrics": {}})
    if not rows:
        subs = sorted(str(p) for p in sweep_dir.glob("*/multirun.yaml"))
        hint = f"; sweeps below it: {[str(Path(s).parent) for s in subs]}" if subs else ""
        raise FileNotFoundError(f"{sweep_dir} has no job folders (0/, 1/, ...){hint}")
    records, override_keys = [], {}
    for row in rows:
        if row["overrides"] is None and not row["problem"]:
            row["problem"] = "no .hydra/overrides.yaml"
        overrides = dict(parse_override(str(o)) for o in row["overrides"] or [])
        override_keys.update(dict.fromkeys(overrides))
        records.append({**{key: row[key] for key in JOB_COLUMNS}, **overrides, **row["metrics"]})
    frame = pd.DataFrame.from_records(records)
    metric_keys = sorted(c for c in frame.columns if c not in JOB_COLUMNS and c not in override_keys)
    frame = frame[[*JOB_COLUMNS, *override_keys, *metric_keys]]
    order = sorted(range(len(frame)), key=lambda i: _natural(frame["job"].iloc[i]))
    frame = frame.iloc[order].reset_index(drop=True)
    frame.attrs["override_keys"] = list(override_keys)
    return frame


def override_columns(jobs: pd.DataFrame) -> list[str]:
    """The override columns of a :func:`collect_jobs` frame (between ``problem`` and the metrics)."""
    if "override_keys" in jobs.attrs:
        return [c for c in jobs.attrs["override_keys"] if c in jobs.columns]
    return [c for c in jobs.columns if c not in JOB_COLUMNS and not pd.api.types.is_numeric_dtype(jobs[c])]


def group_columns(jobs: pd.DataFrame) -> list[str]:
    """Overrides that vary between jobs, seeds excepted: the sweep's hyper-parameters."""
    return [c for c in override_columns(jobs)
            if not is_repeat_key(c) and jobs[c].fillna("<default>").astype(str).nunique() > 1]


def summarize_jobs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD (ddof=1) and n of every metric over the finished jobs of each group.

    Groups are the combinations of :func:`group_columns`; with none, all jobs form one
    group. A metric a job does not have (a stage it did not run) does not count in n.
    Returns columns: the group columns, ``metric``, ``n``, ``mean``, ``sd`` (NaN for n < 2).
    """
    groups = group_columns(jobs)
    overrides = set(override_columns(jobs))
    metrics = [c for c in jobs.columns if c not in JOB_COLUMNS and c not in overrides]
    done = jobs[jobs["status"] == "done"]
    keyed = done.assign(**{c: done[c].fillna("<default>").astype(str) for c in groups})
    records = []
    parts = [((), keyed)]
    if groups:
        parts = sorted(((k if isinstance(k, tuple) else (k,), p) for k, p in keyed.groupby(groups, sort=False)),
                       key=lambda kp: [_natural(v) for v in kp[0]])
    for key, part in parts:
        for metric in metrics:
            values = part[metric].dropna().to_numpy(dtype=float)
            if len(values) == 0:
                continue
            records.append({**dict(zip(groups, key)), "metric": metric, "n": len(values),
                            "mean": float(values.mean()),
                            "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan})
    return pd.DataFrame.from_records(records, columns=[*groups, "metric", "n", "mean", "sd"])


def summarize_multirun(sweep_dir: str | Path) -> pd.DataFrame:
    """Summary of a sweep folder: :func:`summarize_jobs` of :func:`collect_jobs`.

    Example:
        ``summarize_multirun("multirun/smoke/2025-01-01_12-00-00")`` gives one row per
        group and metric with ``n``, ``mean`` and ``sd``; ``collect_jobs`` shows the jobs,
        failed ones included.
    """
    return summarize_jobs(collect_jobs(sweep_dir))


# --------------------------------------------------------------------------- report


def _cell(mean: float, sd: float, n: int) -> str:
    spread = "–" if math.isnan(sd) else f"{sd:.3g}"
    return f"{mean:.4g} ± {spread} ({n})"


def _table(header: Sequence[str], rows: Iterator[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def summary_markdown(sweep_dir: Path, jobs: pd.DataFrame, summary: pd.DataFrame) -> str:
    """``summary.md``: what varied, the mean ± sd (n) table per stage, and the jobs left out."""
    groups = group_columns(jobs)
    overrides = override_columns(jobs)
    repeats = [c for c in overrides if is_repeat_key(c) and jobs[c].nunique() > 1]
    constant = [c for c in overrides if c not in groups and c not in repeats]
    counts = jobs["status"].value_counts()
    lines = [f"# Sweep summary: {sweep_dir}", "",
             f"{len(jobs)} job{'s' * (len(jobs) != 1)}: " + ", ".join(f"{counts[s]} {s}" for s in ("done", "failed", "incomplete", "missing")
                                             if s in counts) + ".", ""]
    if groups:
        values = {c: sorted(jobs[c].fillna("<default>").astype(str).unique(), key=_natural) for c in groups}
        lines.append("Varied: " + "; ".join(f"`{c}` ({', '.join(v)})" for c, v in values.items()) + ".")
    for c in repeats:
        lines.append(f"Repetitions over `{c}`: {', '.join(sorted(jobs[c].dropna().astype(str).unique(), key=_natural))}.")
    if constant:
        lines.append("Same in every job: " + ", ".join(f"`{c}={jobs[c].dropna().iloc[0]}`" for c in constant
                                                        if jobs[c].notna().any()) + ".")
    lines += ["", "Cells: mean ± sample SD (n finished jobs) of each result, per group.", ""]
    if summary["metric"].astype(str).str.endswith("recovered").any():  # recovered_flags: verdicts as 0 / 1
        lines[-1:] = ["`crl.recovery.<block>.recovered` and `.graph_recovered`: the share of the group's jobs whose "
                      "verdict was \"recovered\" (1: all of them; 0: none).", ""]
    labels = [" ".join(f"{g}={v}" for g, v in zip(groups, key)) if groups else "all jobs"
              for key in summary[groups].itertuples(index=False, name=None)]
    summary = summary.assign(group_label=labels, stage_name=summary["metric"].str.split(".").str[0])
    columns = list(dict.fromkeys(summary["group_label"]))
    sections = sorted(summary.groupby("stage_name", sort=False), key=lambda kv: kv[0] == "total")  # totals last
    for stage, part in sections:
        cells = {(r.metric, r.group_label): _cell(r.mean, r.sd, r.n) for r in part.itertuples()}
        metrics = sorted(set(part["metric"]))
        rows = ([m, *(cells.get((m, col), "") for col in columns)] for m in metrics)
        lines += [f"## {stage}", "", _table(["metric", *columns], rows), ""]
    left_out = jobs[jobs["status"] != "done"]
    shown = [c for c in overrides if c in groups or is_repeat_key(c)]
    if len(left_out):
        lines += ["## Jobs left out", "",
                  _table(["job", "status", "overrides", "problem"],
                         ([r["job"], r["status"], " ".join(f"{c}={r[c]}" for c in shown if pd.notna(r[c])),
                           str(r["problem"]).replace("|", "\\|").replace("\n", " ")] for _, r in left_out.iterrows())), ""]
    return "\n".join(lines)


def _natural(value: str) -> tuple[int, float | str]:
    try:
        return 0, float(value)
    except ValueError:
        return 1, value


def write_summary(sweep_dir: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Writes ``summary.csv``, ``jobs.csv`` and ``summary.md`` into ``out`` (default: the sweep folder)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out) if out is not None else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    jobs = collect_jobs(sweep_dir)
    summary = summarize_jobs(jobs)
    paths = {"summary.csv": out / "summary.csv", "jobs.csv": out / "jobs.csv", "summary.md": out / "summary.md"}
    with atomic_path(paths["summary.csv"]) as tmp:
        summary.to_csv(tmp, index=False)
    with atomic_path(paths["jobs.csv"]) as tmp:
        jobs.to_csv(tmp, index=False)
    with atomic_path(paths["summary.md"]) as tmp:
        tmp.write_text(summary_markdown(sweep_dir, jobs, summary))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m personax.sweep",
        description="Summarise a personax sweep: mean ± sd (n) of every numeric result per hyper-parameter "
                    "group (seeds are repetitions); failed and incomplete jobs are listed.")
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder, multirun/<name>/<time>")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the sweep folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        paths = write_summary(args.sweep_dir, args.out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    jobs = pd.read_csv(paths["jobs.csv"], dtype={"job": str})
    counts = jobs["status"].value_counts().to_dict()
    print(f"{len(jobs)} jobs ({', '.join(f'{v} {k}' for k, v in counts.items())}); wrote "
          + ", ".join(str(p) for p in paths.values()))
    for row in jobs[jobs["status"] != "done"].itertuples():
        print(f"  job {row.job}: {row.status}: {row.problem}")
    from personax.independence._chunks import merge_sweep  # jobs run with independence.chunk=i/k

    for group, path in merge_sweep(args.sweep_dir, args.out).items():
        print(f"merged Level I chunks{' of ' + group if group else ''} (BH over the whole matrix): {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
