"""Root pytest configuration: the doctests of personax/ (collected with --doctest-modules)."""

from __future__ import annotations

import os

import pytest

# The tests compile far more than they compute (hundreds of tiny fits and stage runs, each a new
# XLA program): at XLA's CPU backend optimisation level 0 a smoke run's crl stage compiled in 27 s
# instead of 46 s, and the crl tests took 242 s instead of 459 s
# (experiments/benchmarks/results/test_suite_parallel.md). The operations are the same; only their
# machine code is less optimised, and every tolerance holds at both levels. Set here, before any
# JAX backend starts, so pytest-xdist workers and the subprocess tests inherit it; users' runs keep
# XLA's default. An XLA_FLAGS that already sets the level wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# Doctests that fit a model (~15 s CPU each): slow, like the tests that fit one (tests/conftest.py
# skips slow tests unless CI or PERSONAX_SLOW=1).
SLOW_DOCTESTS = {"personax/crl/_fit.py::personax.crl._fit", "personax/crl/_reference.py::personax.crl._reference",
                 "personax/crl/_checkpoint.py::personax.crl._checkpoint"}


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py's hook skips what is marked slow
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
