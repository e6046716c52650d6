"""Root pytest configuration: the doctests of personax/ (collected with --doctest-modules)."""

from __future__ import annotations

import pytest

# Doctests that fit a model (~15 s CPU each): slow, like the tests that fit one (tests/conftest.py
# skips slow tests unless CI or PERSONAX_SLOW=1).
SLOW_DOCTESTS = {"personax/crl/_fit.py::personax.crl._fit", "personax/crl/_reference.py::personax.crl._reference"}


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py's hook skips what is marked slow
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
