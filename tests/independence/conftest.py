"""Shared fixtures for the independence tests."""

import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)


def pytest_collection_modifyitems(config, items):
    """Slow tests (marked ``slow``) run only with ``PERSONAX_SLOW=1`` or an explicit ``-m slow``."""
    import os

    if os.environ.get("PERSONAX_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set PERSONAX_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
