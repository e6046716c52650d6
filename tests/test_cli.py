"""End to end: `python -m personax.run` in a temporary directory, resume, and sweeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "personax.run", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# The default stages and options, at a small size, with the crl stage's fit and its search kept short:
# what this checks is the run and its resume, not the fit.
SMALL_DEFAULT = ("data.n=150", "crl.fit.max_epochs=30", "crl.fit.orient_epochs=3", "+crl.fit.orient_steps=50")


@pytest.mark.slow  # ~90 s CPU (the default pipeline twice); every stage runs end to end in tests/report and tests/test_experiments
def test_default_run_then_resume(tmp_path):
    _run(tmp_path, *SMALL_DEFAULT)
    run_dir = tmp_path / "runs" / "demo"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["ingest"]["status"] == "done"
    assert len(pd.read_parquet(run_dir / "data/persons.parquet")) == 150
    assert (run_dir / "data/ground_truth/ground_truth.json").is_file()
    assert (run_dir / ".hydra/config.yaml").is_file()
    second = _run(tmp_path, *SMALL_DEFAULT)
    assert (run_dir / "embeddings/image.npy").is_file() and (run_dir / "embeddings/text_bio.npy").is_file()
    assert "stage ingest: up to date, skipped" in second.stdout + second.stderr
    history = json.loads((run_dir / "manifest.json").read_text())["history"]
    statuses = [(h["stage"], h["status"]) for h in history]
    stages = [stage for stage, _ in statuses[: len(statuses) // 2]]  # the default list, whatever it holds
    assert stages[0] == "ingest" and stages[-1] == "report"
    assert statuses == [(s, "done") for s in stages] + [(s, "skipped") for s in stages]
    assert (run_dir / "report/report.html").is_file() and (run_dir / "report/report.md").is_file()


def test_experiment_and_bad_input_exit_nonzero_with_the_reason(tmp_path):
    _run(tmp_path, "+experiment=smoke", "stages=[ingest]")
    assert (tmp_path / "runs/smoke/data/persons.parquet").is_file()
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,-3\n")
    failed = subprocess.run(
        [sys.executable, "-m", "personax.run", "data=raw", f"data.bios={bios}", "name=bad"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert failed.returncode != 0
    assert "bios.csv row 1 (person_id 'a'), column 'height_cm': negative value -3" in failed.stderr


def test_multirun_sequential_and_joblib(tmp_path):
    _run(tmp_path, "-m", "seed=0,1", "data.n=40", "data.images=false", "name=sweep", "stages=[ingest]")
    _run(tmp_path, "-m", "seed=2,3", "data.n=40", "data.images=false", "name=par", "stages=[ingest]", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2")
    for name, seeds in (("sweep", [0, 1]), ("par", [2, 3])):
        jobs = sorted((tmp_path / "multirun" / name).glob("*/[0-9]*"))
        assert len(jobs) == 2
        bios = [pd.read_parquet(job / "data/persons.parquet").bio.iloc[0] for job in jobs]
        assert bios[0] != bios[1]  # different seeds, different people
        for job in jobs:
            assert json.loads((job / "manifest.json").read_text())["stages"]["ingest"]["status"] == "done"
