"""The data tests exercise the ingest stage alone: their runs stop after it."""

from __future__ import annotations

import pytest


@pytest.fixture
def compose_cfg(compose_cfg):
    # An explicit stages=... in a test's overrides comes later and wins.
    return lambda overrides=(): compose_cfg(["stages=[ingest]", *overrides])
