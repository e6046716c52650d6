"""The CRL benchmark script: its tables say which seeds they used (development seeds are never
called fresh) and give every personax variant its target rows; its variants and datasets are the
ones the docs name, and every command the docs show parses."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
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


def test_the_stage_objective_variant_is_read_from_the_stage_config(benchmark):
    from omegaconf import OmegaConf

    stage_fit = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/crl/default.yaml").fit
    variant = benchmark.MODEL_VARIANTS["personax-stage"]
    assert variant == {key: stage_fit[key] for key in benchmark.STAGE_OBJECTIVE}
    assert variant["shared_posterior"] == "mixture" and variant["contrastive"] > 0


def test_every_personax_variant_gets_its_own_target_rows(benchmark):
    frame = pd.DataFrame({"dataset": "numeric", "seed": [1000, 1001] * 2, "stopped": "epoch cap",
                          "method": ["personax", "personax", "personax-stage", "personax-stage"],
                          "mcc": [0.80, 0.82, 0.94, 0.96], "shd": [4.0, 4.0, 1.0, 0.0]})
    args = argparse.Namespace(dataset="numeric", n=5000, image_size=16, epochs=150, restarts=1, seeds=[1000, 1001])
    table = benchmark.summarise(frame, args)
    assert "| median MCC >= 0.93 | 0.810 | not met |" in table.split("target (personax-stage)")[0]
    stage_rows = table.split("target (personax-stage)")[1]
    assert "| median MCC >= 0.93 | 0.950 | met |" in stage_rows and "| median SHD <= 1 | 0.500 | met |" in stage_rows


def test_every_benchmark_command_the_docs_show_parses(benchmark):
    """Each ``crl_benchmark/run.py`` command in the README, docs and experiments' notes names only
    options and methods the script has (running them takes hours: they are parsed, not run)."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    shown = []
    for path in [root / "README.md", *sorted((root / "docs").rglob("*.md")), *sorted((root / "experiments").rglob("*.md"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.search(r"experiments/crl_benchmark/run\.py((?: [^`|]*)?)", line)
            if match and "python" in line:
                shown.append((path.name, shlex.split(match.group(1), comments=True)))
    assert len(shown) >= 4
    parser = benchmark.argument_parser()
    for name, words in shown:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{name}: the command `run.py {' '.join(words)}` does not parse")


def test_the_auxiliary_benchmark_has_the_groups_its_auxiliary_methods_need(benchmark):
    bench, dims, shared, _ = benchmark._data("numeric-auxiliary", 300, 0, 16)
    assert bench.auxiliary is not None and len(np.unique(bench.auxiliary)) == 13  # 2 x 6 latents + 1
    plain, *_ = benchmark._data("numeric", 300, 0, 16)
    assert plain.auxiliary is None and plain.graph.equals(bench.graph)
    assert {"personax-auxiliary", "personax-stage-auxiliary"} <= set(benchmark.MODEL_VARIANTS)


def test_the_demo_record_never_calls_a_development_seed_fresh():
    spec = importlib.util.spec_from_file_location("demo_level2_run", SCRIPT.parents[1] / "demo_level2/run.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    def header(seeds):
        frame = pd.DataFrame({"seed": seeds, "block": "shared", "mcc": 0.7, "best_baseline": "pca",
                              "best_baseline_mcc": 0.8, "verdict": "not recovered", "shd_learned_graph": 3,
                              "epochs": 300, "stopped": "epoch cap", "overrides": "", "faces": "drawn"})
        return "\n".join(demo.summarise(frame).splitlines()[:3])

    assert "on fresh seeds" in header([1000, 1001]) and "(not used while developing)" in header([1000, 1001])
    assert "fresh" not in header([0]) and "all used while developing: not evidence" in header([0])
    assert "used while developing among them: [3]" in header([3, 1000])
