"""The ``traits`` stage: per-rater Big Five scores, aggregates and the reliability report.

Reads the person table (and the label maps; on the synthetic cohort also the planted
trait values, to score recovery).
Runs every enabled rater in ``config.traits.raters``:

* ``kind: lexicon`` / ``kind: embedding``: offline raters of the ``bio`` text;
* ``kind: openai``: an OpenAI-compatible chat endpoint, asked in each format of
  ``traits.run_formats``, ``traits.repeats`` times, through the request store
  ``traits/requests.sqlite`` (``traits.cache.path`` moves it, e.g. to share it
  between run directories).

Writes ``traits/scores.parquet`` (artifact ``trait_scores``), the one trait table every
later stage reads: ``person_id``, ``trait_<rater>_<t>`` for every rater used (the raters run here in the primary format ``traits.format``, and, with
``aggregate.include_existing``, the per-rater columns already in the person table),
``status_<rater>`` for chat raters, the study's aggregate ``trait_<t>`` (drop 0s,
median) and the Bayesian aggregate ``trait_<t>_bayes_mean`` / ``trait_<t>_bayes_sd``.
A score 0 ("insufficient information") is stored as missing, so no later stage can
mistake it for a low score; the share of 0s per rater is in the reliability report.
Chat raters' answers in every format and repeat go to ``traits/answers.parquet``.
The reliability report is ``traits/reliability.json``, ``traits/reliability.md``
and ``traits/reliability.png``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from personax import artifacts as A
from personax.data.schema import insufficient_as_missing, raters_in
from personax.data.truth import planted_truth
from personax.pipeline import RunDir
from personax.traits import _reliability as rel
from personax.traits._aggregate import bayes_ordinal, median_rule
from personax.traits._cache import RequestStore
from personax.traits._client import ChatConfig, ChatRater, RaterConfigError, Task, require_answers
from personax.traits._common import TRAITS, aggregate_column, rater_column
from personax.traits._prompts import PromptFormat, render_messages

log = logging.getLogger(__name__)

RATER_NAME = re.compile(r"^[a-z0-9]+$")
CHAT_KINDS = ("openai", "chat")
_NOT_CHAT_FIELDS = ("kind", "enabled", "description")


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _formats(cfg: DictConfig) -> dict[str, PromptFormat]:
    return {key: PromptFormat.from_config(_container(node)) for key, node in (cfg.get("formats") or {}).items()}


def _person_inputs(persons: pd.DataFrame, cfg: DictConfig, label_maps: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, context label, context) per person, by dataset (the study's inputs)."""
    inputs = _container(cfg.inputs)
    group_names = {code: label for label, code in (label_maps.get("group") or {}).items()}
    rows = []
    for row in persons.itertuples(index=False):
        spec = inputs.get(getattr(row, "dataset", "celeb")) or inputs["celeb"]
        value = getattr(row, spec["field"], None)
        if spec["field"] == "group" and value is not None and not pd.isna(value):
            value = group_names.get(int(value), value)
        name = getattr(row, "name", None)
        rows.append(("" if name is None or pd.isna(name) else str(name), spec["label"],
                     "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)))
    return rows


def _chat_rater(name: str, node: dict[str, Any], cfg: DictConfig, persons: pd.DataFrame,
                formats: dict[str, PromptFormat], inputs: list[tuple[str, str, str]],
                store: RequestStore) -> tuple[np.ndarray, pd.DataFrame, dict[str, int]]:
    settings = {k: v for k, v in node.items() if k not in _NOT_CHAT_FIELDS}
    rater = ChatRater(ChatConfig.from_mapping(name, settings), _container(cfg.prompt))
    run_formats = list(cfg.run_formats)
    if cfg.format not in run_formats:
        run_formats.insert(0, cfg.format)
    unknown = [f for f in run_formats if f not in formats]
    if unknown:
        raise ValueError(f"traits.run_formats names unknown format(s) {unknown}; known: {sorted(formats)}")
    tasks = []
    for key in run_formats:
        fmt = formats[key]
        for repeat in range(int(cfg.repeats)):
            for pid, (person_name, label, context) in zip(persons.person_id, inputs):
                messages = render_messages(fmt, _container(cfg.prompt), name=person_name, context_label=label,
                                           context=context, max_chars=int(cfg.max_input_chars))
                tasks.append(Task(person_id=str(pid), fmt=fmt, repeat=repeat, messages=messages))
    outcomes = rater.run(tasks, store, progress=bool(cfg.progress))
    require_answers(name, outcomes)  # a rater that answered nothing fails the stage (401, wrong model)
    records = []
    for key, outcome in zip((k for k in run_formats for _ in range(int(cfg.repeats)) for _ in range(len(persons))),
                            outcomes):
        scores = outcome.scores or {}
        records.append({"person_id": outcome.person_id, "rater": name, "format_key": key, "format": outcome.format,
                        "repeat": outcome.repeat, "status": outcome.status, "error": outcome.error,
                        "cached": outcome.cached, **{t: float(scores[t]) if t in scores else np.nan for t in TRAITS}})
    answers = pd.DataFrame.from_records(records)
    primary = answers[(answers.format_key == cfg.format) & (answers.repeat == 0)].set_index("person_id")
    primary = primary.reindex(persons.person_id.astype(str))
    counts = {"requests": len(outcomes), "sent": sum(not o.cached for o in outcomes),
              "from_store": sum(o.cached for o in outcomes)}
    for status in ("ok", "failed", "refused", "invalid"):
        counts[status] = sum(o.status == status for o in outcomes)
    return primary[list(TRAITS)].to_numpy(dtype=float), answers, {**counts, "status": primary["status"].tolist()}


def run(config: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Rates, aggregates and reports (see the module docstring)."""
    cfg = config.traits
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    everyone = run_dir.read(A.PERSONS)
    # traits.limit caps who the raters here rate (a paid API, tried cheaply); the trait table still
    # has every person, with the columns already in the person table for all of them.
    persons = everyone.head(int(cfg.limit)).reset_index(drop=True) if cfg.get("limit") else everyone
    label_maps = run_dir.read_optional(A.LABEL_MAPS) or {}
    formats = _formats(cfg)
    if cfg.format not in formats:
        raise ValueError(f"traits.format={cfg.format!r} is not one of the formats {sorted(formats)}")
    texts = persons["bio"].fillna("").astype(str).tolist() if "bio" in persons else [""] * len(persons)

    out = pd.DataFrame({"person_id": persons.person_id.astype(str)})
    ran: dict[str, np.ndarray] = {}
    answers: list[pd.DataFrame] = []
    rater_summary: dict[str, Any] = {}
    store: RequestStore | None = None
    inputs = None
    try:
        for name, node in (cfg.get("raters") or {}).items():
            node = _container(node) or {}
            if not node.get("enabled", True):
                continue
            if not RATER_NAME.match(name):
                raise RaterConfigError(f"rater name {name!r} must be lowercase letters and digits (it names columns)")
            kind = node.get("kind")
            start = time.perf_counter()
            if kind == "lexicon":
                from personax.traits._lexicon import LexiconRater

                scores = LexiconRater(negation_window=int(node.get("negation_window", 3))).score(texts)
                rater_summary[name] = {"kind": kind}
            elif kind == "embedding":
                from personax.traits._embedding import EmbeddingRater

                scores = EmbeddingRater(min_similarity=float(node.get("min_similarity", 0.3)),
                                        margin=float(node.get("margin", 0.02)),
                                        batch_size=int(node.get("batch_size", 128))).score(texts)
                rater_summary[name] = {"kind": kind}
            elif kind in CHAT_KINDS:
                if store is None:
                    path = Path(cfg.cache.path).expanduser() if cfg.cache.get("path") else run_dir.output_path(
                        A.TRAIT_REQUESTS)
                    store = RequestStore(path, synchronous=str(cfg.cache.synchronous))
                if inputs is None:
                    inputs = _person_inputs(persons, cfg, label_maps)
                scores, frame, counts = _chat_rater(name, node, cfg, persons, formats, inputs, store)
                answers.append(frame)
                out[f"status_{name}"] = counts.pop("status")
                rater_summary[name] = {"kind": kind, "model": node.get("model"), **counts}
            else:
                raise RaterConfigError(f"rater '{name}': unknown kind {kind!r} (lexicon, embedding or openai)")
            rater_summary[name]["seconds"] = round(time.perf_counter() - start, 2)
            rater_summary[name]["insufficient_share"] = float(np.mean(scores == 0))
            ran[name] = scores
            for j, trait in enumerate(TRAITS):
                out[rater_column(name, trait)] = scores[:, j]
    finally:
        if store is not None:
            store.close()
    if len(persons) < len(everyone):
        out = everyone[["person_id"]].astype({"person_id": str}).merge(out, on="person_id", how="left")
        for name in ran:
            ran[name] = np.vstack([ran[name], np.full((len(everyone) - len(persons), len(TRAITS)), np.nan)])
            if f"status_{name}" in out:
                out[f"status_{name}"] = out[f"status_{name}"].fillna("not rated (traits.limit)")
    persons = everyone

    # Per-rater columns already in the person table (simulated raters, a release's or a user's LLM
    # columns) always reach the trait table; include_existing decides whether they join the aggregate.
    existing: dict[str, np.ndarray] = {}
    for name in raters_in(list(persons.columns)):
        if name in ran:
            continue
        existing[name] = persons[[rater_column(name, t) for t in TRAITS]].to_numpy(dtype=float)
        for j, trait in enumerate(TRAITS):
            out[rater_column(name, trait)] = existing[name][:, j]
    if not cfg.aggregate.include_existing:
        existing = {}
    available = {**existing, **ran}
    chosen = list(cfg.aggregate.raters) if cfg.aggregate.get("raters") else list(available)
    missing = [r for r in chosen if r not in available]
    if missing:
        raise ValueError(f"traits.aggregate.raters names {missing}, which have no scores; available: {sorted(available)}")
    pool = {name: available[name] for name in chosen}

    if pool:
        for j, trait in enumerate(TRAITS):
            out[aggregate_column(trait)] = median_rule(np.stack([m[:, j] for m in pool.values()], axis=1))
    else:  # no per-rater scores: the table's own aggregate (e.g. a release that ships only trait_<t>)
        for trait in TRAITS:
            if aggregate_column(trait) in persons:
                out[aggregate_column(trait)] = persons[aggregate_column(trait)].to_numpy(dtype=float)
    bayes_cfg = cfg.aggregate.bayes
    bayes = None
    if pool and bayes_cfg.enabled:
        start = time.perf_counter()
        log.info("bayesian aggregate (%s, %s raters x %d people) ...", bayes_cfg.method, len(pool),
                 len(next(iter(pool.values()))))
        bayes = bayes_ordinal(pool, method=str(bayes_cfg.method), steps=int(bayes_cfg.steps),
                              samples=int(bayes_cfg.samples), warmup=int(bayes_cfg.get("warmup", 400)),
                              seed=int(bayes_cfg.seed))
        log.info("bayesian aggregate (%s) in %.1f s", bayes_cfg.method, time.perf_counter() - start)
        for j, trait in enumerate(TRAITS):
            out[f"{aggregate_column(trait)}_bayes_mean"] = bayes["mean"][:, j]
            out[f"{aggregate_column(trait)}_bayes_sd"] = bayes["sd"][:, j]
    run_dir.write(A.TRAIT_SCORES, insufficient_as_missing(out))
    all_answers = pd.concat(answers, ignore_index=True) if answers else None
    if all_answers is not None:
        run_dir.write(A.TRAIT_ANSWERS, all_answers)

    report = _reliability(cfg, run_dir, persons, out, pool, bayes, all_answers, formats)
    report["raters"] = rater_summary
    report["aggregate"] = {"raters": chosen, "rule": "drop 0s, median",
                           "bayes": None if bayes is None else {
                               "method": str(bayes_cfg.method),
                               "bias": {r: dict(zip(TRAITS, map(float, bayes["bias"][k]))) for k, r in enumerate(pool)},
                               "discrimination": {r: float(bayes["discrimination"][k]) for k, r in enumerate(pool)}}}
    run_dir.write(A.TRAIT_RELIABILITY, report)
    run_dir.write(A.TRAIT_RELIABILITY_MD, _markdown(report))
    if cfg.reliability.figure:
        with A.atomic_path(run_dir.output_path(A.TRAIT_RELIABILITY_FIGURE)) as tmp:
            rel.plot_reliability(tmp, report.get("recovery"), report["alpha"],
                                 pd.DataFrame(report["stability"]) if report["stability"] else None)
    summary: dict[str, Any] = {"persons": len(out), "raters_run": list(ran), "aggregated_over": chosen,
                               "alpha_mean": report["alpha"].get("mean")}
    for name, info in rater_summary.items():
        if info["kind"] in CHAT_KINDS:
            summary[name] = {k: info[k] for k in ("sent", "from_store", "failed", "refused", "invalid")}
    if report.get("recovery"):
        summary["recovery_mean"] = {k: round(v["mean"], 3) for k, v in report["recovery"].items()}
    return summary


def _reliability(cfg: DictConfig, run_dir: RunDir, persons: pd.DataFrame, out: pd.DataFrame,
                 pool: dict[str, np.ndarray], bayes: dict[str, np.ndarray] | None,
                 answers: pd.DataFrame | None, formats: dict[str, PromptFormat]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "notes": "Zeros (insufficient information) are left out of every statistic. Stability: mean over people "
                 "of the SD over repeated identical queries. Discrepancy: mean |difference| between formats "
                 "(3-level scores mapped onto 1..5 against 5-level formats). Alpha: Krippendorff, ordinal.",
        "alpha": rel.krippendorff_alpha(pool),
        "stability": [],
        "discrepancy": None,
        "order_symmetry": [],
    }
    if answers is not None:
        long = answers.assign(format=answers["format_key"])
        report["stability"] = rel.stability(long).to_dict(orient="records")
        levels = {key: fmt.levels for key, fmt in formats.items()}
        table = rel.discrepancy_table(long, levels)
        report["discrepancy"] = {"table": table.reset_index().to_dict(orient="records"),
                                 "mean": float(np.nanmean(table["mean"])) if len(table) else None}
        specs = {key: {"levels": f.levels, "answer_type": f.answer_type, "order": f.order} for key, f in formats.items()}
        report["order_symmetry"] = rel.order_symmetry(long, specs, alpha=float(cfg.reliability.alpha))
    planted = planted_truth(run_dir) if cfg.reliability.recovery else None
    truth = None if planted is None else planted.trait_values(out.person_id)
    if truth is not None:
        sets = {name: matrix for name, matrix in pool.items()}
        if "trait_o" in out:
            sets["aggregate (median)"] = out[[aggregate_column(t) for t in TRAITS]].to_numpy(dtype=float)
        if bayes is not None:
            sets["aggregate (bayes)"] = bayes["mean"]
        report["recovery"] = rel.recovery(sets, truth)
    return report


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# Trait reliability report", "", report["notes"], ""]
    if report.get("recovery"):
        lines += ["## Recovery of the planted traits (Spearman)", "",
                  "Over the people each score set rates (coverage: the share with a non-zero score).", ""]
        frame = pd.DataFrame.from_dict(report["recovery"], orient="index")
        frame["coverage"] = frame[[f"{t}_coverage" for t in TRAITS]].mean(axis=1)
        frame = frame[[*TRAITS, "mean", "coverage"]]
        frame.index.name = "scores"
        lines += [rel.markdown_table(frame), ""]
    lines += ["## Agreement between raters (Krippendorff's alpha, ordinal)", "",
              rel.markdown_table(pd.DataFrame([report["alpha"]])), ""]
    if report["stability"]:
        lines += ["## Stability (SD over repeated queries)", "", rel.markdown_table(pd.DataFrame(report["stability"])), ""]
    if report.get("discrepancy") and report["discrepancy"]["table"]:
        frame = pd.DataFrame(report["discrepancy"]["table"]).set_index("format pair")
        lines += ["## Cross-format discrepancy (mean |difference|)", "", rel.markdown_table(frame), ""]
    if report["order_symmetry"]:
        lines += ["## Option-order symmetry (increasing vs decreasing, Wilcoxon signed-rank)", "",
                  rel.markdown_table(pd.DataFrame(report["order_symmetry"])), ""]
    return "\n".join(lines) + "\n"
