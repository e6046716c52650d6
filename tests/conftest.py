"""Shared fixtures: composing configs and running stages in temporary run directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from personax.run import config_dir


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The run config as `python -m personax.run <overrides>` would build it."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []), return_hydra_config=False)


def pytest_collection_modifyitems(config, items):
    """Slow tests (marked ``slow``) run under CI (``CI`` set), with ``PERSONAX_SLOW=1`` or ``-m slow``.

    The README's test command stays quick on a laptop; CI runs the same command with ``CI=true``
    and so runs everything.
    """
    if os.environ.get("CI") or os.environ.get("PERSONAX_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: runs under CI, or set PERSONAX_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


MAX_TEST_WORKERS = 4


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (the default in pyproject.toml): one worker per usable core, at most four.

    Each worker holds its own JAX runtime and compiled fits (about 1-2 GB), so a large machine
    gains little from more workers and would pay for them in memory.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(usable, MAX_TEST_WORKERS))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keeps every test's embedding cache out of the user's home folder."""
    monkeypatch.setenv("PERSONAX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture
def run_path(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def run_cli(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m personax.run <args>`` in ``cwd``, as a user types it; fails the test with the output's
    tail unless it exits 0."""
    result = subprocess.run([sys.executable, "-m", "personax.run", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
