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
from personax.data.truth import planted_truth
from personax.pipeline import MANIFEST_NAME, RunDir
from personax.report import _provenance as prov
from personax.report._level1 import RANK_EFFECT, planted_letters, rank_effects, small_multiples
from personax.report._model import (
    Code,
    Figure,
    Finding,
    Findings,
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
LEVEL1_TITLE = "Level I: independence tests"
CRL_TITLE = "Level II: CRL metrics"
SUMMARY_TITLE = "Summary"


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
            if item.writer == self.run_dir.stage or item.private:  # a stage's own working state
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


def _anchor(title: str) -> str:
    return Section(title).anchor


def _ran(ctx: _Context) -> list[Finding]:
    items = []
    persons = ctx.value(A.PERSONS)
    ingest = ctx.stage("ingest").get("summary", {})
    if persons is not None:
        truth = " with planted ground truth" if (ctx.run_dir.exists(A.GROUND_TRUTH)
                                                 or ctx.run_dir.exists(A.BENCHMARK_TRUTH)) else ""
        items.append(Finding(f"Data: {len(persons)} people from the {ingest.get('source', '?')} source "
                             f"({ingest.get('dataset', '?')}){truth}; "
                             f"{ingest.get('rejected_rows', 0)} row(s) rejected.", _anchor("Data"), "ran"))
    stages = ctx.manifest.get("stages", {})
    if stages:
        listed = ", ".join(f"{name} ({'this report' if name == ctx.run_dir.stage else record.get('status', '?')})"
                           for name, record in stages.items())
        items.append(Finding(f"Stages: {listed}.", _anchor("Provenance"), "ran"))
    info = ctx.value(A.EMBEDDING_INFO) or {}
    models = []
    if "image" in info:
        models.append(f"image: {info['image'].get('model')}")
    if "text" in info:
        models.append(f"text: {info['text'].get('model')}")
    metrics = ctx.value(A.CRL_METRICS) or {}
    if metrics.get("model"):
        models.append(f"CRL: {metrics['model']} ({metrics.get('epochs', '?')} epochs, {metrics.get('people', '?')} "
                      "people)")
    if models:
        items.append(Finding("Models: " + "; ".join(models) + ".", _anchor("Embeddings"), "ran"))
    reliability = ctx.value(A.TRAIT_RELIABILITY) or {}
    raters = list((reliability.get("aggregate") or {}).get("raters") or reliability.get("raters") or [])
    if raters:
        items.append(Finding(f"Raters: {', '.join(map(str, raters))}.", _anchor("Trait reliability"), "ran"))
    return items


def _found(ctx: _Context) -> list[Finding]:
    items = []
    table = ctx.value(A.LEVEL1_TABLE)
    level1 = _anchor(LEVEL1_TITLE)
    if table is not None:
        recovery = ctx.value(A.LEVEL1_RECOVERY) or {}
        alpha = float(recovery.get("alpha") or (ctx.config.get("independence") or {}).get("alpha") or 0.05)
        ran = table[table["status"] == "ok"]
        dependent = ran[ran["q_value"] < alpha]
        pairs = dependent[["feature", "trait"]].drop_duplicates()
        per_test = ", ".join(f"{test} {int((dependent['test'] == test).sum())}/{int((ran['test'] == test).sum())}"
                             for test in dict.fromkeys(table["test"]))
        items.append(Finding(f"Level I: {len(pairs)} of {len(ran[['feature', 'trait']].drop_duplicates())} "
                             f"(feature, trait column) pairs dependent at BH q < {alpha} in at least one test "
                             f"({per_test}).", level1))
        if len(pairs):
            frame = _level1_frame(ctx)
            if frame is not None:
                effects = rank_effects(frame, pairs, set(ctx.value(A.LABEL_MAPS) or {}))
                if effects.notna().any():
                    top = pairs.assign(effect=effects).sort_values("effect", ascending=False).head(3)
                    shown = ", ".join(f"{f} ~ {t} ({e:.2f})" for f, t, e in top[["feature", "trait", "effect"]]
                                      .itertuples(index=False))
                    items.append(Finding(f"Largest {RANK_EFFECT}s among them: {shown}.", level1))
        scored = (recovery.get("tests") or {})
        if scored:
            f1 = ", ".join(f"{test} {cell((s.get('all') or {}).get('f1'))}" for test, s in scored.items())
            items.append(Finding(f"Level I against the planted truth, F1: {f1}.", level1))
    graph = ctx.value(A.CRL_GRAPH)
    if graph and graph.get("nodes"):
        nodes, weights = graph["nodes"], graph.get("adjacency") or []
        # Ranked by standardised effect: |weight| depends on the latents' scale, which the fit does not fix.
        # Run directories from before 2026-12-04 have no effects: ranked by |weight|, as then.
        # An effect of null is undefined (the child latent is constant): listed first, as not to be read.
        effects = graph.get("effects")
        edges = sorted(((effects[i][j] if effects else abs(w), nodes[i], nodes[j], w) for i, row in enumerate(weights)
                        for j, w in enumerate(row) if w),
                       key=lambda edge: (edge[0] is None, edge[0] or 0.0), reverse=True)
        if effects:
            top = ", ".join(f"{a} → {b} ({'undefined, the child latent is constant' if e is None else f'{e:.2f}'}; "
                            f"weight {w:+.3f})" for e, a, b, w in edges[:5])
            label = "largest standardised effects (sd of the edge's term over the child's sd)"
        else:
            top = ", ".join(f"{a} → {b} ({w:+.2f})" for _, a, b, w in edges[:5])
            label = "largest |weight|"
        strong = (f" ({graph['strong_edges']} with a standardised effect above {graph['strong_threshold']:g})"
                  if "strong_edges" in graph and "strong_threshold" in graph else "")
        items.append(Finding(f"Learned latent graph: {len(edges)} edge(s) over {len(nodes)} latents{strong}"
                             + (f"; {label}: {top}" if top else "") + ".", _anchor("Latent graphs")))
    crl = ctx.value(A.CRL_RECOVERY) or {}
    for block, values in crl.items():
        if not isinstance(values, Mapping) or "mcc" not in values:
            continue
        if block == "all":  # every learned latent matched to a planted one, and the graph between them
            items.append(Finding(f"CRL, all latents: MCC {cell(values.get('mcc'))} against the planted latents"
                                 + (f"; {_graph_against_truth(values)}" if "shd_learned_graph" in values else "")
                                 + ".", _anchor(CRL_TITLE)))
            continue
        best = values.get("best_baseline")
        items.append(Finding(f"CRL block {block}: MCC {cell(values.get('mcc'))} against the planted latents"
                             + (f", best baseline {best} {cell(values.get('best_baseline_mcc'))}" if best else "")
                             + (f" (a linear readout fitted to the truth reaches {cell(values['supervised_readout_mcc'])})"
                                if values.get("supervised_readout_mcc") is not None else "")
                             + f": {values.get('verdict', '?')}.", _anchor(CRL_TITLE)))
    return items


# under the recovery table: its two kinds of MCC side by side, which must not be compared across
SPEARMAN_NOTE = ("mcc, the baselines' MCCs and the verdict use Pearson's correlation; mcc_spearman and "
                 "best_baseline_mcc_spearman score the block and its best baseline by Spearman's, which does not count "
                 "a monotone transform of a latent as an error: compare each only with its own kind.")


# under the restarts' agreement table (crl.fit.restarts >= 2); what it can and cannot say is measured in
# experiments/crl_benchmark/restart_agreement.py
RESTART_AGREEMENT_NOTE = (
    "Each pair of restarts compared block by block, as trained, before any search after the fit: axes is the MCC between "
    "their latents, content how much of one's block the other's predicts linearly (held-out R²); the median over "
    "the pairs and the lowest pair. Axes below {floor}: the restarts return the block turned differently, so its latents "
    "are not reproducible one by one. Agreement is about reproducibility, not recovery: on the numeric benchmark (10 "
    "seeds, 3 restarts) the restarts agreed (axes 0.91 or more) on each of the 4 modality blocks the returned model "
    "recovered below 0.85, and each of the 6 blocks they turned differently was recovered at 0.85 or more (docs/crl.md, "
    "\"Do the restarts agree?\"). The run returns restart {returned}, the one with the best validation ELBO.")
# added to the note where the record has a content floor (runs from 2026-12-07 on) and says on how many test rows
RESTART_CONTENT_NOTE = (" Content below {content_floor}: the restarts do not even find the same content in the block. "
                        "The agreement was computed on {test_rows} test rows; on a few dozen it is itself noisy.")


# where the summary and the "Latent graphs" section send a reader for why a latent with parents is not unique
TRANSITIVITY = ('the transitivity indeterminacy, Liu et al. 2022; docs/crl.md, "What the numeric benchmark '
                'identifies inside a modality block"')


# the summary's warning when the crl stage ran on a cohort with no planted truth to score it against
UNCHECKED_CRL = ("CRL on a cohort with no planted latents: nothing in this run checks its latents or its graph. On the "
                 "default run's synthetic cohort, built to meet the model's assumptions, the stage's default model "
                 "recovers no block of latents on any recorded seed: each stays below MCC 0.8 or below a linear "
                 "baseline on the same split (experiments/demo_level2/README.md; docs/limitations.md). Read the "
                 "latents and the graph's edges as hypotheses.")


def _direction_words(d: Mapping[str, Any]) -> str:
    """One edge of graph.json ``directions``: the edge, with its z and margin where it was tested."""
    if d.get("vuong_z") is None:
        return f"{d['parent']} → {d['child']}"
    return f"{d['parent']} → {d['child']} (z {d['vuong_z']:+.2f}, {d['margin_per_person']:+.4f} nats per person)"


def _undecided_directions(graph: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """graph.json's within-block edges whose direction the data do not decide, in words: those whose
    reverse fits as well (undetermined), those whose reverse fits better (reverse preferred), and
    those not tested (too few validation rows)."""
    directions = graph.get("directions") or []
    return tuple([_direction_words(d) for d in directions if d.get("verdict") == verdict]  # type: ignore[return-value]
                 for verdict in ("undetermined", "reverse preferred", "not tested"))


# what every verdict of the test of directions is about (docs/crl.md, "On variant digits the test often contradicts
# the planted direction" and "What turns the verdicts on variant digits"); a test recounts its numbers from the records
ENCODED_CAVEAT = ("The test compares orders of the encoded latents, not of the true ones, and where a block's learned latents "
                  "mix its true ones it can favour the wrong direction decisively: on variant digits it contradicted the "
                  "planted direction on 5 of its 13 definite verdicts, and the planted latents, mixed as the learned ones "
                  "mix them, gave the same 5 wrong verdicts")
# where the report sends a reader for the test of a within-block edge's direction
DIRECTIONS = 'Vuong\'s test between the block\'s orders; docs/crl.md, "Does the data decide a within-block edge\'s direction?"'


def _latents_with_parents(graph: Mapping[str, Any]) -> list[str]:
    """The latents of graph.json with at least one incoming edge (a nonzero weight), in its order."""
    nodes, weights = graph.get("nodes") or [], graph.get("adjacency") or []
    return [node for j, node in enumerate(nodes) if any(row[j] for row in weights if j < len(row))]


def _graph_not_recovered(values: Mapping[str, Any]) -> bool:
    """Whether recovery.json's "all" entry says the learned graph is not the planted one (run
    directories written before ``graph_verdict`` existed: any SHD above 0)."""
    verdict = values.get("graph_verdict")
    return verdict == "not recovered" if verdict else bool(values.get("shd_learned_graph"))


def _graph_against_truth(values: Mapping[str, Any]) -> str:
    """The learned graph against the planted one, in words, from recovery.json's "all" entry."""
    edges = (f" ({values['planted_edges']} planted edge(s), {values['learned_edges']} learned)"
             if "planted_edges" in values and "learned_edges" in values else "")
    # the verdict stays on the model's own graph (every nonzero edge); its strong edges are a reading of it
    strong = (f"; its edges with a standardised effect above {values['strong_threshold']:g} only: SHD "
              f"{values['shd_strong_graph']}" if "shd_strong_graph" in values and "strong_threshold" in values else "")
    pc = f"; PC on the learned latents: SHD {values['shd_pc_graph']}" if "shd_pc_graph" in values else ""
    verdict = "graph not recovered" if _graph_not_recovered(values) else "graph recovered"
    return f"learned graph SHD {values['shd_learned_graph']} against the planted graph{edges}{strong}{pc}: {verdict}"


def _unreliable(ctx: _Context) -> list[Finding]:
    items = []
    for name, record in ctx.manifest.get("stages", {}).items():
        if record.get("status") == "failed":
            items.append(Finding(f"Stage {name} failed: {record.get('error', '?')}.", _anchor("Provenance"),
                                 "warning"))
    info = ctx.value(A.EMBEDDING_INFO) or {}
    if (info.get("image") or {}).get("random_weights"):
        items.append(Finding("Image embeddings come from randomly initialised CLIP weights: they carry only "
                             "low-level visual information.", _anchor("Embeddings"), "warning"))
    table = ctx.value(A.LEVEL1_TABLE)
    if table is not None and "feature_source" in table:
        for source in sorted({s for s in table["feature_source"].dropna() if "random" in str(s)}):
            items.append(Finding(f"Face attributes in Level I come from {source}: those rows are meaningless.",
                                 _anchor(LEVEL1_TITLE), "warning"))
    reliability = ctx.value(A.TRAIT_RELIABILITY) or {}
    for rater, counts in (reliability.get("raters") or {}).items():
        failed = {k: counts.get(k) for k in ("failed", "refused", "invalid") if isinstance(counts, Mapping)
                  and counts.get(k)}
        if failed:
            items.append(Finding(f"Rater {rater}: " + ", ".join(f"{v} {k}" for k, v in failed.items())
                                 + " answer(s).", _anchor("Trait reliability"), "warning"))
    metrics = ctx.value(A.CRL_METRICS) or {}
    if metrics.get("stopped") == "epoch cap":  # the fit's own stop, before any training on after the search
        epochs = metrics.get("fit_epochs", metrics.get("epochs"))
        after = metrics.get("epochs", epochs) - epochs if isinstance(epochs, int) else 0
        searched = " and ".join(name for key, name in (("orientation", "the shared axes"),
                                                       ("reordering", "the within-block orders"))
                                if "trained_on_val_elbo" in (metrics.get(key) or {})) or "the shared axes"
        items.append(Finding(f"CRL training stopped at the epoch cap ({epochs} epochs), not by early stopping: the "
                             "model may not have converged" + (f" (the {after} epochs of training on after the search of "
                                                               f"{searched} do not change that)" if after else "")
                             + ".", _anchor("Training curves"), "warning"))
    for warning in metrics.get("warnings", []):
        items.append(Finding(f"CRL: {warning}.", _anchor(CRL_TITLE), "warning"))
    crl = ctx.value(A.CRL_RECOVERY) or {}
    if metrics.get("model") and not crl:  # the stage ran, and nothing scored what it found
        restarts = (" With crl.fit.restarts=3 or more the stage also reports whether independent restarts agree on each "
                    "block: whether its axes are reproducible, which needs no planted truth but, on the numeric "
                    "benchmark, did not tell recovered blocks from the others."
                    if metrics["model"] == "personax" and "restart_agreement" not in metrics else "")
        items.append(Finding(UNCHECKED_CRL + restarts, _anchor(CRL_TITLE), "warning"))
    below = {block: v.get("diagnosis") for block, v in crl.items()
             if isinstance(v, Mapping) and v.get("verdict") == "not recovered"}
    if below:
        blocks = "; ".join(f"{block} ({diagnosis})" if diagnosis else block for block, diagnosis in below.items())
        items.append(Finding(f"CRL blocks not recovered (MCC below 0.8 or below the best baseline): {blocks}.",
                             _anchor(CRL_TITLE), "warning"))
    graph = ctx.value(A.CRL_GRAPH) or {}
    undetermined, reverse, untested = _undecided_directions(graph)
    if reverse:
        items.append(Finding(f"The reverse direction fits the validation rows better than the learned one for {'; '.join(reverse)}: "
                             "the learned direction is in doubt, and so are the edges from s into that block, which follow "
                             f"the block's order. {ENCODED_CAVEAT} ({DIRECTIONS}).", _anchor("Latent graphs"), "warning"))
    if undetermined:
        items.append(Finding(f"The data do not decide the direction of {'; '.join(undetermined)}: the reverse fits the "
                             f"validation rows as well. Read each as an undirected link ({DIRECTIONS}).",
                             _anchor("Latent graphs"), "warning"))
    if untested:
        why = next((d.get("reason") for d in graph.get("directions") or []
                    if d.get("verdict") == "not tested" and d.get("reason")), None)
        items.append(Finding(f"The direction of {'; '.join(untested)} was not tested{f' ({why})' if why else ''}: "
                             f"nothing says the data decide it. Read each as an undirected link ({DIRECTIONS}).",
                             _anchor("Latent graphs"), "warning"))
    children = _latents_with_parents(graph)
    if children:
        items.append(Finding(
            f"CRL latents with parents in the learned graph ({', '.join(children)}) are identified at best up to "
            "adding a multiple of their parents: a causal prior with learned mechanisms fits z + c·parent about as well "
            f"as z, and the decoders absorb the difference ({TRANSITIVITY}). Read each as its own variation mixed "
            "with some of its parents'.",
            _anchor("Latent graphs"), "warning"))
    overall = crl.get("all")
    if isinstance(overall, Mapping) and "shd_learned_graph" in overall and _graph_not_recovered(overall):
        judged = [v for block, v in crl.items() if block != "all" and isinstance(v, Mapping) and "verdict" in v]
        although = ", although every block is recovered" if judged and not below else ""
        items.append(Finding("The learned latent graph is not the planted one (SHD "
                             f"{overall['shd_learned_graph']}, each missing, extra or reversed edge counting 1): "
                             f"read its edges as hypotheses{although}.", _anchor("Latent graphs"), "warning"))
    return items


def summary_section(ctx: _Context) -> Section:
    """The summary box: what ran, what was found and what is unreliable, each linking to its section."""
    section = Section(SUMMARY_TITLE)
    for title, build, empty in (("What ran", _ran, "Nothing: the run directory is empty."),
                                ("What was found", _found, "No findings: Level I and CRL did not run."),
                                ("What is unreliable", _unreliable, "No warnings.")):
        try:
            items = build(ctx)
        except Exception as err:  # noqa: BLE001 - the sections below still say what they can
            log.warning("report: summary %r failed: %s", title, err)
            items = [Finding(f"Could not be summarised: {type(err).__name__}: {err}", kind="warning")]
        section.blocks.append(Findings(title, items or [Finding(empty, kind="ran")]))
    return section


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
    section.blocks.append(key_value_table(facts, header=("fact", "value")))
    section.blocks.append(Heading("Columns"))
    section.blocks.append(Table(
        ["column", "type", "non-missing"],
        [[str(c), str(persons[c].dtype), f"{int(persons[c].notna().sum())} / {len(persons)}"] for c in persons.columns],
        collapsed=True,
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


def _level1_frame(ctx: _Context) -> pd.DataFrame | None:
    """The person table (with zero-shot face attributes, as the tests saw it) joined to the trait table."""
    persons, scores = ctx.value(A.PERSONS), ctx.value(A.TRAIT_SCORES)
    if persons is None or scores is None:
        return None
    from personax.independence.stage import _face_attributes  # the same merge the tests ran on

    persons, _ = _face_attributes(persons, ctx.run_dir)
    traits = [c for c in scores.columns if c != "person_id"]  # the trait table wins over same-named columns
    return persons.drop(columns=[c for c in traits if c in persons.columns]).merge(
        scores[["person_id", *traits]], on="person_id", how="left")


def independence_section(ctx: _Context) -> Section:
    section, table = ctx.start(LEVEL1_TITLE, A.LEVEL1_TABLE)
    if table is None:
        return section
    recovery = ctx.value(A.LEVEL1_RECOVERY) or {}
    alpha = float(recovery.get("alpha") or (ctx.config.get("independence") or {}).get("alpha") or 0.05)
    tests = list(dict.fromkeys(table["test"]))
    features = list(dict.fromkeys(table["feature"]))
    trait_columns = list(dict.fromkeys(table["trait"]))
    ran = table[table["status"] == "ok"]
    dependent = ran[ran["q_value"] < alpha]
    truth = planted_truth(ctx.run_dir)
    marginal = truth.marginal_dependence if truth is not None else None
    section.blocks.append(Paragraph(
        f"{len(features)} features x {len(trait_columns)} trait columns, tests {', '.join(tests)}. "
        f"A pair is dependent when its Benjamini-Hochberg q-value (within a test) is below {alpha}; "
        f"bold marks those decisions. The {RANK_EFFECT} is one measure for every pair, whichever test ran: "
        "|Spearman rho| between feature and trait column, or for a category-coded feature the correlation "
        "ratio eta of the trait's ranks over its categories (0 to 1; see the glossary). Each test's own "
        "effect_size (on its own scale) stays in level1/pvalues.parquet."))
    sources = sorted({s for s in table.get("feature_source", pd.Series(dtype=str)).dropna() if s != "person table"})
    for source in sources:
        warning = " These features are meaningless: the weights are random." if "random" in source else ""
        section.blocks.append(Note(f"Face attributes come from {source}.{warning}"))
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

    frame = _level1_frame(ctx)
    label_maps = ctx.value(A.LABEL_MAPS) or {}
    limit = int(ctx.options.get("max_dependent_pairs", 20))
    if len(dependent):
        pairs = dependent.groupby(["feature", "trait"], sort=False).agg(
            tests=("test", lambda t: ", ".join(t)), q_min=("q_value", "min"), n=("n", "max")).reset_index()
        pairs[RANK_EFFECT] = rank_effects(frame, pairs, set(label_maps)) if frame is not None else float("nan")
        if marginal is not None:
            pairs["planted"] = ["–" if (letters := planted_letters(marginal, f)) is None else
                                ("yes" if str(t)[-1] in letters else "no") for f, t in zip(pairs["feature"],
                                                                                         pairs["trait"])]
        pairs = pairs.sort_values([RANK_EFFECT, "q_min"], ascending=[False, True], na_position="last")
        shown = pairs.head(limit).rename(columns={"q_min": "smallest q", "tests": "dependent in"})
        columns = ["feature", "trait", RANK_EFFECT, "smallest q", "dependent in", "n",
                   *(["planted"] if "planted" in shown else [])]
        section.blocks.append(Heading("Dependent pairs, by effect size"))
        section.blocks.append(_frame_table(shown[columns], f"{len(shown)} of {len(pairs)} (feature, trait column) "
                                           f"pairs with q < {alpha} in at least one test, largest {RANK_EFFECT} "
                                           "first" + ("; planted: the synthetic cohort's truth makes the pair "
                                                      "dependent" if marginal is not None else "")))
    section.blocks.append(Heading("Dependent pairs per feature"))
    counts, strong = [], set()
    for r, feature in enumerate(features):
        cells = [feature]
        for c, test in enumerate(tests, 1):
            sub = ran[(ran["feature"] == feature) & (ran["test"] == test)]
            hits = int((sub["q_value"] < alpha).sum())
            cells.append(f"{hits}/{len(sub)}" if len(sub) else "–")
            if hits:
                strong.add((r, c))
        if marginal is not None:
            letters = planted_letters(marginal, feature)
            cells.append("–" if letters is None else (", ".join(letters) or "none"))
        counts.append(cells)
    section.blocks.append(Table(["feature", *tests, *(["planted dependent traits"] if marginal is not None else [])],
                                counts, f"dependent / tested trait columns at q < {alpha} (bold: at least one)"
                                + ("; planted: the trait letters the synthetic cohort's truth makes dependent"
                                   if marginal is not None else ""), strong=strong))
    aggregate = [c for c in trait_columns if re.fullmatch(r"trait_[a-z]", str(c))]
    shown_traits = aggregate or trait_columns
    planted = None
    if marginal is not None:
        planted = {(f, t): t[-1] in (planted_letters(marginal, f) or []) for f in features for t in shown_traits}
    png = small_multiples(table, features, shown_traits, tests, alpha, planted)
    which = "the aggregate trait columns" if aggregate else "every trait column"
    section.blocks.append(Figure(None, "level1_small_multiples.png",
                                 f"q-values per test, features x {which}; a dot marks q < {alpha}"
                                 + ("; an orange box a planted dependence" if planted else ""), png=png))
    return section


# What refitting the prior to posterior means alone cost the demo's fitted model (no turn; 32-draw means,
# spent seeds 1002 and 1003): the handicap of a candidate in runs made before the refit used posterior draws
REFIT_COST = "1.2–1.7"


def refit_caveat(record: Mapping[str, Any], candidate: str) -> str:
    """A rejected search's warning, for a run made before candidates' priors were refitted by the
    ELBO (its record has no ``prior_refit``), when its candidate was scored where it started (no epoch
    of the training on improved it): that start's prior was refitted to posterior means, a handicap."""
    if (record.get("decision") != "rejected" or record.get("prior_refit")
            or candidate not in (record.get("best_at_start") or [])):
        return ""
    return (f" The {candidate} candidate was scored where it started, as no epoch of the training on improved "
            "it, and this run (made before candidates' priors were refitted by the ELBO) refitted its prior to "
            f"the latents' posterior means: on the demo such a refit alone, with nothing turned, lowered the "
            f"validation ELBO by {REFIT_COST} nats per person, so this rejection may reflect the refit rather than "
            "the change; rerun the crl stage (docs/crl.md, \"The candidate's prior refit\").")


def compared_scores(record: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The scores a search's gate compared (the means over draws where it used them, else the fixed
    key's best validation ELBOs) and the words that say which."""
    if isinstance(record.get("compared_val_elbo"), Mapping):
        return record["compared_val_elbo"], f" (each the mean over {record.get('draws')} draws of the sampling noise)"
    return record.get("trained_on_val_elbo") or {}, ""


def _at_start(best_at_start: bool) -> str:
    """A score's qualifier when no epoch of the training on beat where that candidate started."""
    return " (where it started: no epoch of the training on beat it)" if best_at_start else ""


def orientation_sentence(record: Mapping[str, Any] | None) -> str:
    """What ``crl.fit.orient_shared`` did to the shared block, in a sentence ("" if it did not run)."""
    if not isinstance(record, Mapping) or "decision" not in record:
        return ""
    decision = record["decision"]
    if decision == "skipped":
        return f"Shared block's axes: not searched ({record.get('reason', 'no reason given')})."
    if decision == "kept":
        rounds = [r for r in record.get("rounds", []) if isinstance(r, Mapping)]
        kept = [r for r in rounds if r.get("decision") == "kept"]
        # several rounds: the last kept turn's comparison (a later round may have rejected its own)
        scores, draws = compared_scores(kept[-1] if kept else record)
        times = f" ({len(kept)} of {len(rounds)} searches kept a turn)" if rounds else ""
        turned, given = scores.get("turned"), scores.get("given")
        at_start = (kept[-1] if kept else record).get("best_at_start") or []
        within = ""
        if isinstance(turned, (int, float)) and isinstance(given, (int, float)) and turned < given:
            within = (f"; lower, but by less than the tolerance of {(kept[-1] if kept else record).get('tolerance')} "
                      "nats per person, so the search's turn was kept (docs/crl.md, \"The gate of the shared axes' turn\")")
        return (f"Shared block's axes: turned after the fit to the axes the causal prior fits best{times}; the "
                f"turned model, trained on, scored validation ELBO {turned}{_at_start('turned' in at_start)} against "
                f"{given}{_at_start('given' in at_start)} for the same training without the turn{draws}{within} "
                "(metrics.json orientation).")
    why = record.get("reason", "")
    sentence = f"Shared block's axes: kept as fitted after the search ({why})." if why else \
        "Shared block's axes: kept as fitted after the search."
    return sentence + refit_caveat(record, "turned")


def reordering_sentence(record: Mapping[str, Any] | None) -> str:
    """What ``crl.fit.order_search`` did to the within-block orders, in a sentence ("" if it did not run)."""
    if not isinstance(record, Mapping) or "decision" not in record:
        return ""
    decision, (scores, draws) = record["decision"], compared_scores(record)
    if decision == "skipped":
        return f"Within-block orders: not searched ({record.get('reason', 'no reason given')})."
    if decision == "kept":
        orders = "; ".join(f"{block}: {' < '.join(order)}" for block, order in (record.get("returned_orders") or {}).items())
        at_start = record.get("best_at_start") or []
        return (f"Within-block orders: changed after the fit to the orders the causal prior fits best ({orders}); "
                f"the reordered model, trained on, scored validation ELBO {scores.get('reordered')}"
                f"{_at_start('reordered' in at_start)} against {scores.get('given')}{_at_start('given' in at_start)} "
                f"for the same training without the change{draws} (metrics.json reordering).")
    why = record.get("reason", "")
    sentence = f"Within-block orders: kept as fitted after the search ({why})." if why else \
        "Within-block orders: kept as fitted after the search."
    return sentence + refit_caveat(record, "reordered")


def crl_metrics_section(ctx: _Context) -> Section:
    section, metrics = ctx.start(CRL_TITLE, A.CRL_METRICS)
    if metrics is None:
        return section
    for warning in metrics.get("warnings", []):
        section.blocks.append(Note(f"Warning: {warning}"))
    section.blocks.append(key_value_table({k: v for k, v in metrics.items()
                                           if not isinstance(v, Mapping) and k != "warnings"},
                                          A.CRL_METRICS.relpath(), header=("metric", "value")))
    for sentence in (orientation_sentence(metrics.get("orientation")), reordering_sentence(metrics.get("reordering"))):
        if sentence:
            section.blocks.append(Note(sentence))
    if metrics.get("measurements"):
        section.blocks.append(Heading("Measurements"))
        section.blocks.append(Table(["modality", "measurements (one per row of the model's inputs)"],
                                    [[m, ", ".join(names)] for m, names in metrics["measurements"].items()]))
    agreement = metrics.get("restart_agreement")
    if isinstance(agreement, Mapping) and agreement.get("blocks"):
        section.blocks.append(Heading(f"Agreement of the {agreement.get('restarts', '?')} restarts (test split)"))
        section.blocks.append(mapping_table(agreement["blocks"], "block", f"{A.CRL_METRICS.relpath()} restart_agreement"))
        note = RESTART_AGREEMENT_NOTE.format(floor=agreement.get("axes_floor"), returned=agreement.get("returned_restart"))
        if agreement.get("content_floor") is not None:
            note += RESTART_CONTENT_NOTE.format(content_floor=agreement["content_floor"],
                                                test_rows=agreement.get("test_rows", "?"))
        section.blocks.append(Note(note))
    recovery = ctx.value(A.CRL_RECOVERY)
    if recovery:
        section.blocks.append(Heading("Recovery of the planted latent blocks (test split)"))
        section.blocks.append(mapping_table(recovery, "block"))
        if any(isinstance(values, Mapping) and "mcc_spearman" in values for values in recovery.values()):
            section.blocks.append(Note(SPEARMAN_NOTE))
    _figures(section, ctx, [(A.CRL_MCC_FIGURE, None, "|corr| of learned (rows) vs planted (columns) latents")])
    return section


def graphs_section(ctx: _Context) -> Section:
    section = Section("Latent graphs")
    if not ctx.run_dir.exists(A.CRL_GRAPH_FIGURE):
        return ctx.absent(section, A.CRL_GRAPH_FIGURE)
    graph = ctx.value(A.CRL_GRAPH) or {}
    # the figure's widths are the standardised effects where graph.json has them (runs from 2026-12-04 on)
    width = "standardised effect" if graph.get("effects") else "|weight|"
    _figures(section, ctx, [(A.CRL_GRAPH_FIGURE, None, f"Learned latent DAG (edge width ~ {width}, red: negative weight)"),
                            (A.CRL_PC_GRAPH_FIGURE, None, "PC (causal-learn) on the learned latents")])
    # the graph's recovery next to it, as the summary says it (the "next to the learned graph")
    recovery = ctx.value(A.CRL_RECOVERY)
    overall = (recovery or {}).get("all")
    if isinstance(overall, Mapping) and "shd_learned_graph" in overall:
        against = _graph_against_truth(overall)
        section.blocks.append(Note(f"{against[0].upper()}{against[1:]}."))
    elif recovery is None:
        section.blocks.append(Note("No planted graph to check this one against: read its edges as hypotheses."))
    else:  # blocks scored, the graph not: the learned latents do not pair one to one with planted ones
        section.blocks.append(Note("Not scored against the planted graph: the learned blocks' sizes are not the planted "
                                   "ones, so their latents do not pair one to one. Read its edges as hypotheses."))
    if "directions" in graph:  # runs from 2026-12-07 on: the test of each within-block edge's direction
        level = graph.get("direction_level", 0.05)
        # runs from 2026-12-07 11:00 on: a decided direction also wins by at least this much
        floor = (f" and by at least {graph['direction_min_margin']:g} nats per person"
                 if graph.get("direction_min_margin") else "")
        rows = [f"{d['parent']} → {d['child']}: not tested ({d.get('reason') or 'no reason given'})"
                if d.get("vuong_z") is None else
                f"{d['parent']} → {d['child']}: {d['verdict']} (z {d['vuong_z']:+.2f}, p {d['p_value']:.3f}, "
                f"{d['margin_per_person']:+.4f} nats per person)" for d in graph["directions"]]
        section.blocks.append(Note(
            (f"Within-block edge directions, each against its reverse at the {level:g} level{floor} ({DIRECTIONS}; dashed in "
             "the figure when not decided): " + "; ".join(rows) + f". {ENCODED_CAVEAT}, so a decided direction is "
             "not thereby the planted one.") if rows else
            "No learned edge inside a modality block: no direction to test."))
    children = _latents_with_parents(graph)
    if children:  # said next to the graph, as in the summary
        section.blocks.append(Note(f"{', '.join(children)}: each is identified at best up to adding a multiple of its "
                                   f"parents in this graph ({TRANSITIVITY})."))
    return section


def curves_section(ctx: _Context) -> Section:
    section = Section("Training curves")
    if not ctx.run_dir.exists(A.CRL_CURVE):
        return ctx.absent(section, A.CRL_CURVE)
    _figures(section, ctx, [(A.CRL_CURVE, None, "CRL training loss and validation ELBO per epoch")])
    metrics = ctx.value(A.CRL_METRICS) or {}
    if metrics.get("stopped") and isinstance(metrics.get("fit_epochs"), int):
        cuts = metrics.get("learning_rate_cuts")
        section.blocks.append(Note(
            f"The fit ended after {metrics['fit_epochs']} epochs: {metrics['stopped']}"
            + (" (training went on until the validation ELBO stopped rising at the lowest learning rate)"
               if cuts is not None and metrics["stopped"] != "epoch cap" else "")
            + (f"; the learning rate was cut at epoch{'s' if len(cuts) > 1 else ''} {', '.join(map(str, cuts))}"
               if cuts else "") + "."))
    resumed = metrics.get("resumed_at_epoch")
    if resumed is not None:
        section.blocks.append(Note(f"The fit resumed from the checkpoint an interrupted run left after epoch {resumed}; "
                                   "the curve holds every epoch, the interrupted run's included, and the model is the "
                                   "one an uninterrupted fit on the same machine returns."))
    for record, search in (("orientation", "search of the shared axes"), ("reordering", "search of the block orders")):
        resumed = (metrics.get(record) or {}).get("trained_on_resumed_at_epoch")
        if resumed is not None:
            section.blocks.append(Note(f"The training on after the {search} resumed from the checkpoint an "
                                       f"interrupted run left after its epoch {resumed}; the model is the one an "
                                       "uninterrupted run on the same machine returns."))
    return section


def provenance_section(ctx: _Context) -> Section:
    section = Section("Provenance", open=False)
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
    versions = key_value_table(prov.package_versions(), header=("package", "version"))
    versions.collapsed = True
    section.blocks.append(versions)
    section.blocks.append(Heading("Resolved config"))
    if config:
        section.blocks.append(Paragraph("The config of the run that wrote this report; entries that look like "
                                        "secrets are shown as <redacted>. A stage that this run skipped ran with the "
                                        "config hash in the table above."))
        section.blocks.append(Code(prov.config_yaml(config), "yaml", collapsed=True, summary="Show the config"))
    else:
        section.blocks.append(Note("No config was given."))
    return section


SECTIONS: tuple[Callable[[_Context], Section], ...] = (
    summary_section, data_section, rejected_section, embeddings_section, traits_section, independence_section,
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
