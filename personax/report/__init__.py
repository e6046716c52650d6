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
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from personax import artifacts as A
from personax.pipeline import RunDir
from personax.report._collect import collect
from personax.report._html import render_html
from personax.report._markdown import render_markdown
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

    wanted = {figure.name for figure in report.figures}
    for stale in set(run_dir.keys(A.REPORT_FIGURE)) - wanted:
        run_dir.locate(A.REPORT_FIGURE, stale).unlink()
    for figure in report.figures:
        run_dir.write(A.REPORT_FIGURE, figure.read_bytes(), key=figure.name)
    html_path = run_dir.write(A.REPORT_HTML, render_html(report))
    markdown_path = run_dir.write(A.REPORT_MD, render_markdown(report))
    notes = sum(type(b).__name__ == "Note" for s in report.sections for b in s.blocks)
    return {"html": html_path, "markdown": markdown_path, "sections": len(report.sections),
            "figures": len(report.figures), "notes": notes}
