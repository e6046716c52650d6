"""Compose tests: every experiment composes, and the command line beats the experiment file."""

from __future__ import annotations

from pathlib import Path

import pytest

from personax.data.stage import SOURCES
from personax.pipeline import STAGES
from personax.run import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
DATA_SOURCES = sorted(p.stem for p in (config_dir() / "data").glob("*.yaml"))


def test_default_config_runs_the_synthetic_cohort(compose_cfg):
    cfg = compose_cfg()
    assert cfg.data.source == "synthetic" and cfg.data.n == 2000 and cfg.name == "demo"
    assert all(stage in STAGES for stage in cfg.stages)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(compose_cfg, experiment):
    cfg = compose_cfg([f"+experiment={experiment}"])
    assert cfg.name and cfg.data.source in SOURCES
    assert all(stage in STAGES for stage in cfg.stages), f"{experiment} lists a stage that does not exist"


@pytest.mark.parametrize("source", DATA_SOURCES)
def test_every_data_config_composes(compose_cfg, source):
    cfg = compose_cfg([f"data={source}"])
    assert cfg.data.source in SOURCES and cfg.data.dataset in ("celeb", "athlete", "variant_digits")


def test_command_line_beats_the_experiment(compose_cfg):
    assert compose_cfg(["+experiment=smoke"]).data.n == 100
    assert compose_cfg(["+experiment=smoke", "data.n=77"]).data.n == 77


def test_seed_flows_into_the_data(compose_cfg):
    assert compose_cfg(["seed=5"]).data.seed == 5


def test_configs_ship_with_the_package_layout():
    assert (config_dir() / "config.yaml").is_file() and Path(config_dir()).name == "conf"
