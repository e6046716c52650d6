"""Sweeps: the submitit launchers (local run, Slurm config) and `personax.sweep` summaries."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from personax.run import config_dir
from personax.sweep import collect_jobs, main, summarize_multirun, write_summary
from tests.conftest import run_cli

# ----------------------------------------------------------------------------- launchers


def test_submitit_local_launcher_runs_a_seed_sweep(tmp_path):
    run_cli(tmp_path, "-m", "+experiment=smoke", "stages=[ingest]", "data.images=false", "data.n=40",
            "seed=0,1", "name=local", "hydra/launcher=submitit_local")
    jobs = sorted((tmp_path / "multirun/local").glob("*/[0-9]*"))
    assert [job.name for job in jobs] == ["0", "1"]
    for job, seed in zip(jobs, ("0", "1")):
        assert json.loads((job / "manifest.json").read_text())["stages"]["ingest"]["status"] == "done"
        assert f"seed={seed}" in yaml.safe_load((job / ".hydra/overrides.yaml").read_text())
    assert (jobs[0].parent / ".submitit").is_dir()  # submitit's own logs sit beside the job folders


def test_slurm_launcher_config_composes_into_an_sbatch_script(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    monkeypatch.setenv("PERSONAX_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("PERSONAX_SLURM_MEM_GB", "64")
    monkeypatch.delenv("PERSONAX_SLURM_ACCOUNT", raising=False)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["+experiment=smoke", "hydra/launcher=personax_slurm", "hydra.launcher.timeout_min=30"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.mem_gb, launcher.timeout_min, launcher.account) == ("gpu", 64, 30, None)
    assert launcher.name == "personax_smoke"
    assert launcher.submitit_folder.startswith("multirun/smoke/")

    # What the plugin's launch() hands to submitit; a fake `srun` check lets submitit write the
    # batch script without a cluster.
    params = dict(instantiate(launcher).params)
    folder = params.pop("submitit_folder")
    max_num_timeout = params.pop("max_num_timeout")
    base = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name",
            "stderr_to_stdout"}
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = submitit.AutoExecutor(folder=tmp_path / folder, cluster="slurm", slurm_max_num_timeout=max_num_timeout)
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m personax.run", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --mem=64GB", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --job-name=personax_smoke"):
        assert line in script
    assert "--gpus-per-node" not in script and "--account" not in script


# ----------------------------------------------------------------------------- summaries


def _write_job(sweep: Path, name: str, overrides: list[str], stages: dict[str, dict], *,
               files: dict[str, dict] | None = None, planned: list[str] | None = None) -> Path:
    """A job folder as `python -m personax.run -m` leaves it: .hydra records, manifest, result files."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra/config.yaml").write_text(yaml.safe_dump({"stages": planned or list(stages), "seed": 0}))
    (job / "manifest.json").write_text(json.dumps({"stages": {k: {"stage": k, **v} for k, v in stages.items()}}))
    for relpath, content in (files or {}).items():
        (job / relpath).parent.mkdir(parents=True, exist_ok=True)
        (job / relpath).write_text(json.dumps(content))
    return job


def _synthetic_sweep(tmp_path: Path) -> tuple[Path, dict]:
    """seed=0,1,2 x crl.shared_dim=2,4 in Hydra's job order; job 3 failed, job 5 never started."""
    sweep = tmp_path / "multirun/x/2025-01-01_00-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None},
        "overrides": {"task": ["+experiment=smoke", "seed=0,1,2", "crl.shared_dim=2,4"]}}}))
    rng = np.random.default_rng(0)
    values: dict = {}
    for number, (seed, dim) in enumerate(itertools.product((0, 1, 2), (2, 4))):
        overrides = ["+experiment=smoke", f"seed={seed}", f"crl.shared_dim={dim}"]
        if number == 5:
            continue
        if number == 3:
            _write_job(sweep, str(number), overrides, {
                "ingest": {"status": "done", "duration_s": 1.0, "summary": {"persons": 120}},
                "crl": {"status": "failed", "duration_s": 0.5, "error": "ValueError: only 3 people"}})
            continue
        mcc, elbo, seconds = rng.uniform(0.5, 1), rng.normal(-50, 5), rng.uniform(1, 3)
        values.setdefault(str(dim), []).append({"mcc": mcc, "elbo": elbo, "seconds": seconds})
        _write_job(sweep, str(number), overrides, {
            "ingest": {"status": "done", "duration_s": 1.0, "summary": {"persons": 120, "source": "synthetic"}},
            "crl": {"status": "done", "duration_s": seconds, "summary": {"best_val_elbo": elbo, "people": 120}}},
            files={"crl/metrics.json": {"best_val_elbo": elbo, "people": 120,
                                        "recovery": {"shared": {"mcc": mcc, "verdict": "recovered" if mcc >= 0.8
                                                                else "not recovered"}}}})
    return sweep, values


def test_summary_groups_by_non_seed_overrides_and_matches_numpy(tmp_path):
    sweep, values = _synthetic_sweep(tmp_path)
    summary = summarize_multirun(sweep)
    assert list(summary.columns) == ["crl.shared_dim", "metric", "n", "mean", "sd"]
    for dim, jobs in values.items():
        part = summary[summary["crl.shared_dim"] == dim].set_index("metric")
        for metric, key in (("crl.recovery.shared.mcc", "mcc"), ("crl.best_val_elbo", "elbo"),
                            ("crl.duration_s", "seconds")):
            expected = np.array([job[key] for job in jobs])
            assert part.loc[metric, "n"] == len(expected)
            assert part.loc[metric, "mean"] == pytest.approx(expected.mean())
            if len(expected) > 1:
                assert part.loc[metric, "sd"] == pytest.approx(expected.std(ddof=1))
            else:  # one finished job: no spread
                assert math.isnan(part.loc[metric, "sd"])
        assert part.loc["ingest.persons", "mean"] == 120
        assert "ingest.source" not in part.index  # strings are not metrics
        # a verdict counts as 1 where recovered: the mean is the share of the group's jobs that recovered it
        assert part.loc["crl.recovery.shared.recovered", "mean"] == pytest.approx(
            np.mean([job["mcc"] >= 0.8 for job in jobs]))
    assert summary.set_index(["crl.shared_dim", "metric"]).loc[("2", "ingest.persons"), "sd"] == 0
    assert summary.set_index(["crl.shared_dim", "metric"]).loc[("2", "crl.people"), "n"] == 3
    assert summary.set_index(["crl.shared_dim", "metric"]).loc[("4", "crl.people"), "n"] == 1  # job 3 failed, 5 missing


def test_failed_incomplete_and_missing_jobs_are_listed(tmp_path):
    sweep, _ = _synthetic_sweep(tmp_path)
    _write_job(sweep.parent / "other", "0", ["seed=0"], {})  # another sweep: not read
    # A job killed mid-stage, and one that asked for a stage it never reached.
    sweep2 = tmp_path / "sweep2"
    _write_job(sweep2, "0", ["seed=0"], {"ingest": {"status": "done", "duration_s": 1.0}})
    _write_job(sweep2, "1", ["seed=1"], {"ingest": {"status": "running"}})
    _write_job(sweep2, "2", ["seed=2"], {"ingest": {"status": "done", "duration_s": 1.0}}, planned=["ingest", "crl"])
    (sweep2 / "3").mkdir()  # the launcher made the folder, nothing else happened
    (sweep2 / ".submitit").mkdir()

    jobs = collect_jobs(sweep).set_index("job")
    assert jobs.loc["3", "status"] == "failed" and "ValueError: only 3 people" in jobs.loc["3", "problem"]
    assert jobs.loc["5", "status"] == "missing" and jobs.loc["5", "crl.shared_dim"] == "4"
    assert (jobs.drop(index=["3", "5"])["status"] == "done").all()
    jobs2 = collect_jobs(sweep2).set_index("job")
    assert jobs2["status"].to_dict() == {"0": "done", "1": "incomplete", "2": "incomplete", "3": "incomplete"}
    assert "never ran" in jobs2.loc["2", "problem"] and "no manifest.json" in jobs2.loc["3", "problem"]
    assert summarize_multirun(sweep2).set_index("metric").loc["ingest.duration_s", "n"] == 1

    paths = write_summary(sweep)
    markdown = paths["summary.md"].read_text()
    assert "6 jobs: 4 done, 1 failed, 1 missing." in markdown
    assert "`crl.recovery.<block>.recovered` and `.graph_recovered`: the share of the group's jobs" in markdown
    assert "| crl.recovery.shared.recovered |" in markdown
    assert "Varied: `crl.shared_dim` (2, 4)." in markdown and "Repetitions over `seed`: 0, 1, 2." in markdown
    left_out = markdown.split("## Jobs left out")[1]
    assert "| 3 | failed | seed=1 crl.shared_dim=4 | stage crl failed: ValueError: only 3 people |" in left_out
    assert "| 5 | missing |" in left_out
    table = pd.read_csv(paths["summary.csv"], dtype={"crl.shared_dim": str})
    assert set(table["crl.shared_dim"]) == {"2", "4"}
    assert pd.read_csv(paths["jobs.csv"])["status"].value_counts().to_dict() == {"done": 4, "failed": 1, "missing": 1}


def test_plan_from_sweeper_params_and_a_rerun_job_is_not_missing(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": {"seed": "0,1,2"}},
        "overrides": {"task": ["data.n=40"]}}}))
    _write_job(sweep, "0", ["data.n=40", "seed=0"], {"ingest": {"status": "done", "duration_s": 1.0}})
    # Job 1 rerun by hand with another data.n: its folder is its record, not a missing job.
    _write_job(sweep, "1", ["data.n=50", "seed=1"], {"ingest": {"status": "done", "duration_s": 1.0}})
    jobs = collect_jobs(sweep).set_index("job")
    assert jobs["status"].to_dict() == {"0": "done", "1": "done", "2": "missing"}
    assert jobs.loc["2", "seed"] == "2" and jobs.loc["1", "data.n"] == "50"


def test_cli_writes_to_out_and_refuses_a_folder_without_jobs(tmp_path, capsys):
    sweep, _ = _synthetic_sweep(tmp_path)
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"summary.csv", "jobs.csv", "summary.md"}
    assert not (sweep / "summary.csv").exists()
    assert "job 3: failed: stage crl failed" in capsys.readouterr().out
    assert main([str(sweep.parent)]) == 2  # multirun/x, one level above the sweep
    assert str(sweep) in capsys.readouterr().err


def test_overrides_are_read_with_safe_load_only(tmp_path):
    sweep = tmp_path / "sweep"
    job = _write_job(sweep, "0", ["seed=0"], {"ingest": {"status": "done", "duration_s": 1.0}})
    (job / ".hydra/overrides.yaml").write_text("- !!python/object/apply:os.system ['touch pwned']\n")
    jobs = collect_jobs(sweep)
    assert jobs.loc[0, "status"] == "incomplete" and "unreadable Hydra record" in jobs.loc[0, "problem"]
    assert not Path("pwned").exists()


def test_real_seed_sweep_end_to_end(tmp_path):
    """ingest + traits with the offline lexicon rater only: about a second a job, seed-dependent numbers."""
    run_cli(tmp_path, "-m", "+experiment=smoke", "stages=[ingest,traits]", "data.images=false", "data.n=40,60",
            "seed=0,1", "name=e2e", "traits.raters.embedding.enabled=false", "traits.aggregate.bayes.enabled=false",
            "traits.reliability.figure=false")
    (sweep,) = (tmp_path / "multirun/e2e").iterdir()
    paths = write_summary(sweep)
    jobs = collect_jobs(sweep)
    assert len(jobs) == 4 and (jobs["status"] == "done").all()
    summary = pd.read_csv(paths["summary.csv"], dtype={"data.n": str}).set_index(["data.n", "metric"])
    assert summary.loc[("40", "ingest.persons"), "mean"] == 40 and summary.loc[("60", "ingest.persons"), "n"] == 2
    alpha = jobs[jobs["data.n"] == "60"]["traits.alpha.mean"].to_numpy()
    assert summary.loc[("60", "traits.alpha.mean"), "sd"] == pytest.approx(alpha.std(ddof=1))
    assert alpha[0] != alpha[1] and not math.isnan(summary.loc[("40", "traits.duration_s"), "mean"])
    assert "## traits" in paths["summary.md"].read_text()
