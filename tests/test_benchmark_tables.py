"""The CRL benchmark's tables say which seeds they used: development seeds are never called fresh."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments/crl_benchmark/run.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("crl_benchmark_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(benchmark, seeds: list[int]) -> str:
    frame = pd.DataFrame({"dataset": "digits", "seed": seeds, "method": "personax", "mcc": 0.8, "shd": 3.0,
                          "stopped": "epoch cap"})
    args = argparse.Namespace(dataset="digits", n=3000, image_size=16, epochs=100, restarts=1, seeds=seeds)
    return benchmark.summarise(frame, args).splitlines()[0]


@pytest.mark.parametrize("seeds,label", [
    ([1000, 1001, 1002], "3 seeds, not used in development"),
    ([0, 1, 2, 3, 4], "5 seeds, all used in development"),
    ([3, 1000], "development seeds among them: [3]"),
])
def test_the_title_says_whether_the_seeds_were_used_in_development(benchmark, seeds, label):
    assert label in _table(benchmark, seeds)
