"""The ``report`` stage: the run's report, last in the pipeline.

Requires only ``ingest``; reads the outputs of every other stage that ran (each
file read is recorded as an input, and so is every other stage's output folder,
so the report reruns when any of them changes). Writes ``report/report.html``
(self-contained: figures inlined as base64), ``report/report.md`` and the PNGs
it links under ``report/figures/``. Options: ``config.report`` (title, how many
rejected rows and dependent pairs to list).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from personax import artifacts as A
from personax.pipeline import RunDir
from personax.report import build_report


def run(config: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Builds the report from the run directory (see the module docstring)."""
    written = build_report(run_dir, config)
    return {"html": A.REPORT_HTML.relpath(), "markdown": A.REPORT_MD.relpath(),
            **{k: written[k] for k in ("sections", "figures", "notes")}}
