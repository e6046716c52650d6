"""End to end: `python -m personax.run` in a temporary directory: an experiment, bad input, and sweeps (the
default run and its resume: tests/test_experiments.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from tests.conftest import run_cli


def test_experiment_and_bad_input_exit_nonzero_with_the_reason(tmp_path):
    run_cli(tmp_path, "+experiment=smoke", "stages=[ingest]")
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
    run_cli(tmp_path, "-m", "seed=0,1", "data.n=40", "data.images=false", "name=sweep", "stages=[ingest]")
    run_cli(tmp_path, "-m", "seed=2,3", "data.n=40", "data.images=false", "name=par", "stages=[ingest]", "hydra/launcher=joblib",
         "hydra.launcher.n_jobs=2")
    for name, seeds in (("sweep", [0, 1]), ("par", [2, 3])):
        jobs = sorted((tmp_path / "multirun" / name).glob("*/[0-9]*"))
        assert len(jobs) == 2
        bios = [pd.read_parquet(job / "data/persons.parquet").bio.iloc[0] for job in jobs]
        assert bios[0] != bios[1]  # different seeds, different people
        for job in jobs:
            assert json.loads((job / "manifest.json").read_text())["stages"]["ingest"]["status"] == "done"


def test_the_last_lines_say_which_crl_results_were_not_recovered():
    from personax.run import crl_recovery_line

    done = {"status": "done", "summary": {"recovery_verdicts": {"shared": "not recovered", "image": "recovered",
                                                                "text": "not recovered", "graph": "not recovered"}}}
    assert crl_recovery_line(done) == ("crl: not recovered against the planted truth: shared, text, graph (the report's "
                                       "summary says why)")
    recovered = {"status": "done", "summary": {"recovery_verdicts": {"shared": "recovered", "graph": "recovered"}}}
    assert crl_recovery_line(recovered) is None
    unchecked = {"status": "done", "summary": {"recovery_verdicts": None}}
    assert crl_recovery_line(unchecked).startswith("crl: no planted latents, so nothing checks")
    assert crl_recovery_line(unchecked).endswith("with 1 restart, crl.fit.restarts=3 would tell whether its axes are "
                                                 "reproducible")
    agreement = {"restarts": 3, "returned_restart": 0, "axes_floor": 0.9,
                 "blocks": {"shared": {"axes": 0.95}, "image": {"axes": 0.71}, "text": {"axes": 0.93}}}
    turned = {"status": "done", "summary": {"recovery_verdicts": None, "restart_agreement": agreement}}
    assert crl_recovery_line(turned).endswith("its 3 restarts, as trained, turn image differently (axes agreement below 0.9): "
                                              "those latents are not reproducible one by one")
    agreement["content_floor"] = 0.9  # records from 2026-12-07 on: a block whose content differs is named as such
    agreement["blocks"]["text"]["content"] = 0.52
    assert crl_recovery_line(turned).endswith("its 3 restarts, as trained, find different content in text (content "
                                              "agreement below 0.9) and turn image differently (axes agreement below "
                                              "0.9): those latents are not reproducible one by one")
    agreement["blocks"]["text"]["content"] = 0.97
    agreement["blocks"]["image"]["axes"] = 0.91
    assert crl_recovery_line(turned).endswith("its 3 restarts, as trained, agree on every block's axes: reproducible, "
                                              "which does not make them the true ones")
    assert crl_recovery_line({"status": "failed", "summary": {"recovery_verdicts": None}}) is None
    assert crl_recovery_line({"status": "done", "summary": {}}) is None  # a run directory from before the line
