"""Root pytest configuration: XLA's optimisation level for the tests, and the doctests of personax/
(collected with --doctest-modules)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from personax._compilation_cache import enable_compilation_cache

# The tests compile far more than they compute (hundreds of tiny fits and stage runs, each a new
# XLA program): at XLA's CPU backend optimisation level 0 a smoke run's crl stage compiled in 27 s
# instead of 46 s, and the crl tests took 242 s instead of 459 s
# (experiments/benchmarks/results/test_suite_parallel.md). The operations are the same; only their
# machine code is less optimised, and every tolerance holds at both levels. Set here, before any
# JAX backend starts, so pytest-xdist workers and the subprocess tests inherit it; users' runs keep
# XLA's default. An XLA_FLAGS that already sets the level wins, and so does a test marked
# `xla_default_level`, which runs in a child process of its own (below).
CHILD_AT_XLA_DEFAULT_LEVEL = "PERSONAX_TEST_AT_XLA_DEFAULT_LEVEL"
TEST_CACHE_OWNER = "PERSONAX_TEST_COMPILATION_CACHE_OWNER"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "") and not os.environ.get(
        CHILD_AT_XLA_DEFAULT_LEVEL):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# One persistent XLA compilation cache for the whole test session, shared by every xdist worker and
# every subprocess a test starts (they inherit the variable): the tests fit many models of the same
# shapes, each a new program, and a later fit loads what an earlier one compiled (the crl stage's
# resume test: 172 s -> 104 s). The results are those of the same programs compiled afresh. A fresh
# folder per session, so no entry from another jaxlib is ever read (docs/crl.md, "Compile time");
# any size limit turns on JAX's file lock, so concurrent workers never read a half-written entry.
# The process that made the folder removes it at the end. An existing PERSONAX_COMPILATION_CACHE wins.
if "PERSONAX_COMPILATION_CACHE" not in os.environ:
    os.environ["PERSONAX_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="personax-test-xla-")
    os.environ[TEST_CACHE_OWNER] = str(os.getpid())
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))  # read by the subprocesses' JAX
enable_compilation_cache(os.environ["PERSONAX_COMPILATION_CACHE"])
import jax  # noqa: E402  (after XLA_FLAGS is set; enable_compilation_cache has imported it)

jax.config.update("jax_compilation_cache_max_size", int(os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))


def pytest_unconfigure(config):
    if os.environ.get(TEST_CACHE_OWNER) == str(os.getpid()):
        shutil.rmtree(os.environ["PERSONAX_COMPILATION_CACHE"], ignore_errors=True)


# Doctests that fit a model (~15 s CPU each): slow, like the tests that fit one (tests/conftest.py
# skips slow tests unless CI or PERSONAX_SLOW=1).
SLOW_DOCTESTS = {"personax/crl/_fit.py::personax.crl._fit", "personax/crl/_reference.py::personax.crl._reference",
                 "personax/crl/_checkpoint.py::personax.crl._checkpoint",
                 "personax/crl/_order.py::personax.crl._order.order_blocks",  # ~27 s: a fit and the order search
                 "personax/crl/_orient.py::personax.crl._orient.orient_shared"}  # ~23 s: a fit and the axes' search


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py's hook skips what is marked slow
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("xla_default_level") and not os.environ.get(CHILD_AT_XLA_DEFAULT_LEVEL):
            item.runtest = _in_a_child_at_xla_default_level(item)


def _in_a_child_at_xla_default_level(item):
    """A test that runs one program for thousands of steps (marked `xla_default_level`) is about three
    times slower at level 0 (experiments/benchmarks/results/test_suite_parallel.md, "The tests that
    compute"), so it runs in a child pytest whose XLA keeps its default level; the child's output is
    this test's failure message."""

    def runtest() -> None:
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_backend_optimization_level")]
        env = {**os.environ, "XLA_FLAGS": " ".join(flags), CHILD_AT_XLA_DEFAULT_LEVEL: "1",
               "PERSONAX_SLOW": "1"}  # it was selected here, so it runs there, slow or not
        child = subprocess.run([sys.executable, "-m", "pytest", item.nodeid, "-n", "0", "-q", "-p", "no:cacheprovider"],
                               cwd=item.config.rootpath, env=env, capture_output=True, text=True, timeout=1200)
        if child.returncode != 0 or "1 passed" not in child.stdout:  # a child that skipped it has not run it
            pytest.fail(f"in a child process at XLA's default optimisation level:\n{child.stdout[-6000:]}{child.stderr[-3000:]}",
                        pytrace=False)

    return runtest
