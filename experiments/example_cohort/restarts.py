"""Do independent restarts of Level II agree on the example cohort of docs/own_data.md?

Runs that page's first command (read from the page, so the two cannot drift) with
``crl.fit.restarts`` added, in a temporary run directory, and records each block's agreement
between the restarts (``crl/metrics.json`` ``restart_agreement``: the test rows' count, and per
block the median and lowest pair of the axes and content agreement) with the date and commit.

    .venv/bin/python experiments/example_cohort/restarts.py --restarts 3

Writes ``results/restarts<N>.json``. The docs' sentences about it are checked against the record
by ``tests/test_benchmark_tables.py``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).parent / "results"
PAGE = ROOT / "docs" / "own_data.md"


def own_data_command() -> list[str]:
    """docs/own_data.md's first ``python -m personax.run`` command, as words."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("python -m personax.run")]
    if not lines:
        raise ValueError(f"{PAGE}: no `python -m personax.run` command in a bash block")
    return shlex.split(lines[0])


def record(restarts: int) -> dict:
    """Runs the command with ``restarts`` restarts; returns what the record keeps."""
    from personax import artifacts as A
    from personax.pipeline import RunDir

    words = own_data_command()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, *words[1:], f"crl.fit.restarts={restarts}", f"hydra.run.dir={run_dir}",
                   f"embeddings.cache_dir={tmp}/cache"]
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        metrics = RunDir(run_dir).read(A.CRL_METRICS)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"command": " ".join(words) + f" crl.fit.restarts={restarts}",
            "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit, "restarts": restarts, "restart_agreement": metrics["restart_agreement"]}


def content_range(entry: dict) -> tuple[float, float]:
    """The lowest and highest median content agreement over the blocks."""
    blocks = entry["restart_agreement"]["blocks"].values()
    return min(b["content"] for b in blocks), max(b["content"] for b in blocks)


def argument_parser() -> argparse.ArgumentParser:
    """The command line (a test parses every command the docs show with it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=3)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = argument_parser().parse_args(argv)
    entry = record(args.restarts)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"restarts{args.restarts}.json"
    path.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main()
