"""Shared fixtures for the independence tests."""

import warnings

import pytest

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)

