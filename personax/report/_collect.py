"""Reads a run directory into report sections, one builder per section.

Every file read goes through :meth:`RunDir.input`, so the manifest fingerprints it
and the report reruns when it changes. A section whose stage did not run (or
failed) holds a one-line note instead.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from personax import __version__
from personax import artifacts as A
from personax.data.schema import TRAITS
from personax.pipeline import MANIFEST_NAME, RunDir
from personax.report import _provenance as prov
from personax.report._model import (
    Code,
    Figure,
    Heading,
    Note,
    Paragraph,
    Report,
    Section,
    Table,
    cell,
    key_value_table,
    mapping_table,
    records_table,
)

log = logging.getLogger(__name__)

REJECTED_COLUMNS = ["row", "person_id", "column", "value", "reason", "action", "source"]
PAIR_COLUMNS = ["feature", "trait", "test", "n", "p_value", "q_value", "effect_size"]


class _Context:
    """The run directory, its manifest and the options, shared by the section builders."""

    def __init__(self, run_dir: RunDir, config: Mapping[str, Any], options: Mapping[str, Any]):
        self.run_dir = run_dir
        self.config = config
        self.options = options
        self.manifest = _load_manifest(run_dir.path)

    def read(self, item: A.Artifact, key: str | None = None) -> Path | None:
        """The path of an artifact, recorded as an input; None when it is not there."""
        if not self.run_dir.exists(item, key):
            return None
        return self.run_dir.input_path(item, key)

    def value(self, item: A.Artifact, key: str | None = None) -> Any:
        """The artifact's typed value (recorded as an input); None when it is not there."""
        return self.run_dir.read_optional(item, key)

    def start(self, title: str, item: A.Artifact, *, stale: bool = True) -> tuple[Section, Any]:
        """A new section and the artifact's value; ``None`` (and the note) when its stage left none."""
        section = Section(title)
        value = self.value(item)
        if value is None:
            self.absent(section, item)
            return section, None
        if stale:
            self.stale(section, item.writer)
        return section, value

    def stage(self, name: str) -> dict[str, Any]:
        return self.manifest.get("stages", {}).get(name) or {}

    def absent(self, section: Section, item: A.Artifact, key: str | None = None) -> Section:
        """Fills ``section`` with the one-line note that the artifact's stage did not run (or failed)."""
        stage, relpath = item.writer, item.relpath(key)
        record = self.stage(stage)
        if record.get("status") == "failed":
            text = f"Stage {stage} failed ({record.get('error', 'no error recorded')}), so {relpath} is missing."
        elif record.get("status") == "running":
            text = f"Stage {stage} did not finish (it is recorded as running), so {relpath} is missing."
        else:
            text = f"Stage {stage} did not run in this run directory (no {relpath})."
        section.blocks.append(Note(text))
        return section

    def stale(self, section: Section, stage: str) -> None:
        """Warns when the files shown are older than a failed last run of ``stage``."""
        if self.stage(stage).get("status") == "failed":
            section.blocks.append(Note(f"The last run of stage {stage} failed ({self.stage(stage).get('error')}); "
                                       "what follows are the files an earlier run left."))

    def figure(self, item: A.Artifact, caption: str, key: str | None = None) -> Figure | None:
        path = self.read(item, key)
        if path is None:
            return None
        relpath = item.relpath(key)
        return Figure(path, re.sub(r"[^A-Za-z0-9._-]", "_", relpath.replace("/", "_")), caption)

    def record_other_outputs(self) -> None:
        """Records every other stage's artifacts that exist as inputs, so that a stage that
        reruns (new files) makes the report rerun too, even for files no section shows."""
        for item in A.ARTIFACTS.values():
            if item.writer == self.run_dir.stage:
                continue
            for key in (self.run_dir.keys(item) if item.is_family else [None]):
                if self.run_dir.exists(item, key):
                    self.run_dir.input_path(item, key)


def _frame_table(frame: pd.DataFrame, caption: str = "") -> Table:
    return Table([str(c) for c in frame.columns], [[cell(v) for v in row] for row in frame.itertuples(index=False)],
                 caption)


def _load_manifest(run_path: Path) -> dict[str, Any]:
    path = run_path / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _figures(section: Section, ctx: _Context, figures: list[tuple[A.Artifact, str | None, str]]) -> None:
    for item, key, caption in figures:
        figure = ctx.figure(item, caption, key)
        if figure is not None:
            section.blocks.append(figure)


# --------------------------------------------------------------------------- sections


def data_section(ctx: _Context) -> Section:
    section, persons = ctx.start("Data", A.PERSONS)
    if persons is None:
        return section
    ingest = ctx.stage("ingest").get("summary", {})
    datasets = persons["dataset"].astype(str).value_counts().to_dict() if "dataset" in persons else {}
    facts: dict[str, Any] = {
        "persons": len(persons),
        "columns": len(persons.columns),
        "source": ingest.get("source", "–"),
        "dataset": ", ".join(f"{k} ({v})" for k, v in datasets.items()) or ingest.get("dataset", "–"),
    }
    if "image_path" in persons:
        facts["with an image"] = int(persons["image_path"].notna().sum())
    if ctx.run_dir.exists(A.GROUND_TRUTH):
        facts["ground truth"] = f"planted (synthetic cohort): {A.GROUND_TRUTH.relpath()}/"
    elif ctx.run_dir.exists(A.BENCHMARK_TRUTH):
        facts["ground truth"] = f"planted (variant digits): {A.BENCHMARK_TRUTH.relpath()}"
    section.blocks.append(key_value_table(facts, header=("", "")))
    section.blocks.append(Heading("Columns"))
    section.blocks.append(Table(
        ["column", "type", "non-missing"],
        [[str(c), str(persons[c].dtype), f"{int(persons[c].notna().sum())} / {len(persons)}"] for c in persons.columns],
    ))
    label_maps = ctx.value(A.LABEL_MAPS)
    if label_maps:
        section.blocks.append(Heading("Label maps"))
        limit = 12
        rows = []
        for name, labels in label_maps.items():
            items = sorted(labels.items(), key=lambda kv: (str(type(kv[1])), kv[1])) if isinstance(labels, Mapping) \
                else []
            shown = ", ".join(f"{code} = {label}" for label, code in items[:limit])
            if len(items) > limit:
                shown += f", … ({len(items) - limit} more)"
            rows.append([str(name), str(len(items)), shown])
        section.blocks.append(Table(["column", "labels", "codes"], rows, A.LABEL_MAPS.relpath()))
    return section


def rejected_section(ctx: _Context) -> Section:
    # A strict run that fails writes rejected.parquet first: these are the failed run's problems.
    section, frame = ctx.start("Rejected rows", A.REJECTED, stale=False)
    if frame is None:
        return section
    if frame.empty:
        section.blocks.append(Paragraph("No problems: every input row and image was accepted."))
        return section
    rejected = int((frame["action"] == "row rejected").sum()) if "action" in frame else len(frame)
    section.blocks.append(Paragraph(
        f"{rejected} row(s) rejected and {len(frame) - rejected} other problem(s) (the person kept). "
        "Every problem is listed in data/rejected.parquet."))
    limit = int(ctx.options.get("max_rejected_rows", 20))
    columns = [c for c in REJECTED_COLUMNS if c in frame] + [c for c in frame if c not in REJECTED_COLUMNS]
    shown = frame[columns].head(limit)
    caption = (f"The first {len(shown)} of {len(frame)} problems" if len(frame) > limit
               else f"All {len(frame)} problems")
    section.blocks.append(_frame_table(shown, caption))
    return section


def embeddings_section(ctx: _Context) -> Section:
    section, info = ctx.start("Embeddings", A.EMBEDDING_INFO)
    if info is None:
        return section
    for warning in info.get("warnings", []):
        section.blocks.append(Note(f"Warning: {warning}"))
    rows = {}
    if "image" in info:
        rows["image"] = info["image"]
    for name, source in (info.get("text", {}).get("sources") or {}).items():
        rows[f"text: {name}"] = {"model": info["text"].get("model"), "dim": info["text"].get("dim"), **source}
    if rows:
        section.blocks.append(mapping_table(rows, "embedding", A.EMBEDDING_INFO.relpath()))
    for key in ("face_attributes", "privacy"):
        if key in info:
            section.blocks.append(Paragraph(f"{key.replace('_', ' ')}: {cell(info[key])}"))
    return section


def traits_section(ctx: _Context) -> Section:
    section, report = ctx.start("Trait reliability", A.TRAIT_RELIABILITY)
    if report is None:
        return section
    if report.get("notes"):
        section.blocks.append(Paragraph(report["notes"]))
    if report.get("recovery"):
        section.blocks.append(Heading("Recovery of the planted traits (Spearman)"))
        rows = {}
        for name, values in report["recovery"].items():
            coverage = [values[f"{t}_coverage"] for t in TRAITS if f"{t}_coverage" in values]
            rows[name] = {**{t: values.get(t) for t in TRAITS}, "mean": values.get("mean"),
                          **({"coverage": sum(coverage) / len(coverage)} if coverage else {})}
        section.blocks.append(mapping_table(rows, "scores"))
    if report.get("alpha"):
        section.blocks.append(Heading("Agreement between raters (Krippendorff's alpha, ordinal)"))
        section.blocks.append(records_table([report["alpha"]]))
    if report.get("stability"):
        section.blocks.append(Heading("Stability (SD over repeated queries)"))
        section.blocks.append(records_table(report["stability"]))
    if (report.get("discrepancy") or {}).get("table"):
        section.blocks.append(Heading("Cross-format discrepancy (mean |difference|)"))
        section.blocks.append(records_table(report["discrepancy"]["table"]))
    if report.get("order_symmetry"):
        section.blocks.append(Heading("Option-order symmetry (Wilcoxon signed-rank)"))
        section.blocks.append(records_table(report["order_symmetry"]))
    if report.get("raters"):
        section.blocks.append(Heading("Raters"))
        section.blocks.append(mapping_table(report["raters"], "rater"))
    aggregate = report.get("aggregate") or {}
    if aggregate:
        section.blocks.append(Paragraph(f"Aggregate trait_<t>: {aggregate.get('rule', '')} over "
                                        f"{cell(aggregate.get('raters', []))}."))
    _figures(section, ctx, [(A.TRAIT_RELIABILITY_FIGURE, None, "Trait reliability")])
    return section


def independence_section(ctx: _Context) -> Section:
    section, table = ctx.start("Level I: independence tests", A.LEVEL1_TABLE)
    if table is None:
        return section
    recovery = ctx.value(A.LEVEL1_RECOVERY) or {}
    alpha = float(recovery.get("alpha") or (ctx.config.get("independence") or {}).get("alpha") or 0.05)
    tests = list(dict.fromkeys(table["test"]))
    features = list(dict.fromkeys(table["feature"]))
    ran = table[table["status"] == "ok"]
    dependent = ran[ran["q_value"] < alpha]
    section.blocks.append(Paragraph(
        f"{len(features)} features x {table['trait'].nunique()} trait columns, tests {', '.join(tests)}. "
        f"A pair is dependent when its Benjamini-Hochberg q-value (within a test) is below {alpha}."))
    per_test = {}
    for test in tests:
        row: dict[str, Any] = {"pairs tested": int((ran["test"] == test).sum()),
                               "dependent": int((dependent["test"] == test).sum()),
                               "not tested": int(((table["test"] == test) & (table["status"] != "ok")).sum())}
        scores = (recovery.get("tests") or {}).get(test, {}).get("all")
        if scores:
            row.update({"precision vs truth": scores.get("precision"), "recall vs truth": scores.get("recall"),
                        "F1 vs truth": scores.get("f1")})
        per_test[test] = row
    section.blocks.append(mapping_table(per_test, "test"))
    section.blocks.append(Heading("Dependent pairs per feature"))
    counts = []
    for feature in features:
        cells = [feature]
        for test in tests:
            sub = ran[(ran["feature"] == feature) & (ran["test"] == test)]
            cells.append(f"{int((sub['q_value'] < alpha).sum())}/{len(sub)}" if len(sub) else "–")
        counts.append(cells)
    section.blocks.append(Table(["feature", *tests], counts, f"dependent / tested trait columns at q < {alpha}"))
    limit = int(ctx.options.get("max_dependent_pairs", 20))
    if len(dependent):
        strongest = dependent.sort_values(["q_value", "p_value"]).head(limit)
        columns = [c for c in PAIR_COLUMNS if c in strongest]
        section.blocks.append(Heading("Strongest dependent pairs"))
        section.blocks.append(_frame_table(strongest[columns], f"{len(strongest)} of {len(dependent)}, by q-value"))
    _figures(section, ctx, [(A.LEVEL1_HEATMAP, test, f"{test}: p-values, features x trait columns")
                            for test in tests])
    return section


def crl_metrics_section(ctx: _Context) -> Section:
    section, metrics = ctx.start("Level II: CRL metrics", A.CRL_METRICS)
    if metrics is None:
        return section
    section.blocks.append(key_value_table({k: v for k, v in metrics.items() if not isinstance(v, Mapping)},
                                          A.CRL_METRICS.relpath(), header=("metric", "value")))
    if metrics.get("measurements"):
        section.blocks.append(Heading("Measurements"))
        section.blocks.append(Table(["modality", "measurements (one per row of the model's inputs)"],
                                    [[m, ", ".join(names)] for m, names in metrics["measurements"].items()]))
    recovery = ctx.value(A.CRL_RECOVERY)
    if recovery:
        section.blocks.append(Heading("Recovery of the planted latent blocks (test split)"))
        section.blocks.append(mapping_table(recovery, "block"))
    _figures(section, ctx, [(A.CRL_MCC_FIGURE, None, "|corr| of learned (rows) vs planted (columns) latents")])
    return section


def graphs_section(ctx: _Context) -> Section:
    section = Section("Latent graphs")
    if not ctx.run_dir.exists(A.CRL_GRAPH_FIGURE):
        return ctx.absent(section, A.CRL_GRAPH_FIGURE)
    _figures(section, ctx, [(A.CRL_GRAPH_FIGURE, None, "Learned latent DAG (edge width ~ |weight|, red: negative)"),
                            (A.CRL_PC_GRAPH_FIGURE, None, "PC (causal-learn) on the learned latents")])
    return section


def curves_section(ctx: _Context) -> Section:
    section = Section("Training curves")
    if not ctx.run_dir.exists(A.CRL_CURVE):
        return ctx.absent(section, A.CRL_CURVE)
    _figures(section, ctx, [(A.CRL_CURVE, None, "CRL training loss and validation ELBO per epoch")])
    return section


def provenance_section(ctx: _Context) -> Section:
    section = Section("Provenance")
    git = prov.git_state()
    commit = git["commit"] + (" (with uncommitted changes)" if git.get("dirty") else "")
    section.blocks.append(key_value_table({
        "personax": __version__,
        "git commit": commit,
        "run directory": str(ctx.run_dir.path),
        "manifest created": ctx.manifest.get("created", "–"),
    }, header=("", "")))
    section.blocks.append(Heading("Stages"))
    rows = []
    for name, record in ctx.manifest.get("stages", {}).items():
        status = record.get("status", "–")
        if name == ctx.run_dir.stage and status == "running":
            status = "running (this report)"
        rows.append([name, status, cell(record.get("started")), cell(record.get("duration_s")),
                     cell(record.get("config_hash")), cell(record.get("error"))])
    if rows:
        section.blocks.append(Table(["stage", "status", "started", "seconds", "config hash", "error"], rows,
                                    "From manifest.json"))
    else:
        section.blocks.append(Note("No manifest.json in this run directory."))
    config = prov.redact(ctx.config)
    found = prov.seeds(config)
    if found:
        section.blocks.append(Heading("Seeds"))
        section.blocks.append(key_value_table(found, header=("config entry", "seed")))
    section.blocks.append(Heading("Package versions"))
    section.blocks.append(key_value_table(prov.package_versions(), header=("package", "version")))
    section.blocks.append(Heading("Resolved config"))
    if config:
        section.blocks.append(Paragraph("The config of the run that wrote this report; entries that look like "
                                        "secrets are shown as <redacted>. A stage that this run skipped ran with the "
                                        "config hash in the table above."))
        section.blocks.append(Code(prov.config_yaml(config), "yaml"))
    else:
        section.blocks.append(Note("No config was given."))
    return section


SECTIONS: tuple[Callable[[_Context], Section], ...] = (
    data_section, rejected_section, embeddings_section, traits_section, independence_section,
    crl_metrics_section, graphs_section, curves_section, provenance_section,
)


def collect(run_dir: RunDir, config: Mapping[str, Any], options: Mapping[str, Any]) -> Report:
    """Reads the run directory into a :class:`Report` (recording every file read as an input)."""
    ctx = _Context(run_dir, config, options)
    ctx.record_other_outputs()
    sections = []
    for build in SECTIONS:
        try:
            sections.append(build(ctx))
        except Exception as err:  # noqa: BLE001 - one unreadable file must not cost the whole report
            log.warning("report: section %s failed: %s", build.__name__, err)
            sections.append(Section(build.__name__.removesuffix("_section").replace("_", " ").capitalize(),
                                    [Note(f"This section could not be built: {type(err).__name__}: {err}")]))
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    subtitle = [f"Run {config.get('name') or run_dir.path.name} — generated {now} by personax {__version__}",
                f"Run directory: {run_dir.path}"]
    return Report(str(options.get("title") or "personax run report"), subtitle, sections)
