"""The run report: ``report/report.html`` (one self-contained file) and ``report/report.md``.

:func:`build_report` reads whatever the stages left in a run directory (the person
table, rejected rows, trait reliability, Level I tests, CRL metrics and figures,
the manifest) and writes both files; a section whose stage did not run says so in
one line. It is also the ``report`` pipeline stage (:mod:`personax.report.stage`).

Example:
    >>> # python -m personax.run stages=[ingest,embeddings,report]
    >>> from personax.report import build_report
    >>> # build_report("runs/demo", config)  -> {"html": Path(...), "markdown": Path(...), ...}
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from personax.pipeline import RunDir, atomic_path
from personax.report._collect import collect
from personax.report._html import render_html
from personax.report._markdown import FIGURES_DIR, render_markdown
from personax.report._model import Report
from personax.report._provenance import config_container, redact

__all__ = ["DEFAULTS", "Report", "build_report", "redact"]

DEFAULTS: dict[str, Any] = {"title": "personax run report", "max_rejected_rows": 20, "max_dependent_pairs": 20}


def build_report(
    run_dir: RunDir | str | os.PathLike[str],
    config: DictConfig | Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes ``report/report.html``, ``report/report.md`` and ``report/figures/*.png``.

    Args:
        run_dir: The run directory (a :class:`~personax.pipeline.RunDir` records what
            the report reads and writes, for the manifest).
        config: The run config, shown (with secrets redacted) under Provenance;
            ``config.report`` holds the options when ``options`` is not given.
        options: ``title``, ``max_rejected_rows``, ``max_dependent_pairs``.

    Returns:
        The paths written and the number of sections, figures and notes.
    """
    if not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir, stage="report")
    container = config_container(config)
    options = {**DEFAULTS, **(container.get("report") or {}), **(options or {})}
    report = collect(run_dir, container, options)

    figures_dir = run_dir.path / "report" / FIGURES_DIR
    wanted = {figure.name for figure in report.figures}
    if figures_dir.is_dir():
        for stale in figures_dir.glob("*.png"):
            if stale.name not in wanted:
                stale.unlink()
    for figure in report.figures:
        with atomic_path(run_dir.output(f"report/{FIGURES_DIR}/{figure.name}")) as tmp:
            shutil.copyfile(figure.path, tmp)
    html_path = run_dir.output("report/report.html")
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(report), encoding="utf-8")
    markdown_path = run_dir.output("report/report.md")
    with atomic_path(markdown_path) as tmp:
        tmp.write_text(render_markdown(report), encoding="utf-8")
    notes = sum(type(b).__name__ == "Note" for s in report.sections for b in s.blocks)
    return {"html": html_path, "markdown": markdown_path, "sections": len(report.sections),
            "figures": len(report.figures), "notes": notes}
