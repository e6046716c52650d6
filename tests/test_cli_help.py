"""The command line a newcomer sees: --help, quiet third-party logs, the report path as the last line."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

from personax._config_checks import check_config
from personax.run import _QuietThirdParty, config_dir
from tests.conftest import compose_config


def _help() -> str:
    result = subprocess.run([sys.executable, "-m", "personax.run", "--help"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_help_lists_stages_experiments_outputs_and_examples_that_compose():
    text = _help()
    assert len(text.splitlines()) < 80  # not a config dump
    for stage in ("ingest", "traits", "embeddings", "independence", "crl", "report"):
        assert re.search(rf"^\s+{stage}\s+\S", text, re.MULTILINE), stage
    for experiment in sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml")):
        assert re.search(rf"^\s+{experiment}\s+\S", text, re.MULTILINE), f"--help does not describe {experiment}"
    assert "runs/<name>/" in text and "report" in text
    examples = re.findall(r"^\s+python -m personax\.run(.*)$", text, re.MULTILINE)
    assert len(examples) >= 3
    for example in examples:
        config = compose_config(example.split())
        check_config(config)


def test_third_party_info_lines_stay_out_of_the_console():
    quiet = _QuietThirdParty()

    def record(name: str, level: int, path: str = "/x/personax/run.py") -> logging.LogRecord:
        return logging.LogRecord(name, level, path, 1, "message", None, None)

    for name in ("open_clip", "jax._src.xla_bridge", "matplotlib.font_manager", "sentence_transformers.base.model",
                 "httpx"):
        assert not quiet.filter(record(name, logging.INFO)), name
        assert quiet.filter(record(name, logging.WARNING)), name
    assert not quiet.filter(record("root", logging.INFO, "/venv/site-packages/open_clip/factory.py"))
    assert quiet.filter(record("root", logging.WARNING, "/venv/site-packages/open_clip/factory.py"))
    assert quiet.filter(record("personax.pipeline", logging.INFO))


def test_the_last_line_is_the_report_path(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "personax.run", "+experiment=smoke", "data.n=30", "data.images=false",
         "stages=[ingest,report]", "name=last"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"report: {tmp_path / 'runs/last/report/report.html'}"
    assert Path(last.removeprefix("report: ")).is_file()
