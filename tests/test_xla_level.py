"""The tests compile at XLA's optimisation level 0, and the few marked `xla_default_level` run at
XLA's default in a child process (conftest.py at the root)."""

from __future__ import annotations

import os

import pytest


def _level_flags() -> list[str]:
    return [f for f in os.environ.get("XLA_FLAGS", "").split() if f.startswith("--xla_backend_optimization_level")]


def test_the_tests_compile_at_a_set_level():
    assert len(_level_flags()) == 1  # level 0, unless the XLA_FLAGS pytest was started with set one


@pytest.mark.xla_default_level
def test_a_marked_test_runs_in_a_child_at_xla_s_default_level():
    assert _level_flags() == []
    assert os.environ["PERSONAX_TEST_AT_XLA_DEFAULT_LEVEL"] == "1"
