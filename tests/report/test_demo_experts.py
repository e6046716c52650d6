"""experiments/demo_level2/experts.py on the tiny run of every stage (the report tests' ``full_run``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo_level2"


def _experts():
    spec = importlib.util.spec_from_file_location("demo_level2_experts", DEMO / "experts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_experts_reads_the_stages_split_and_encoding(full_run):
    """Its encoded blocks score exactly the stage's recovery.json MCC (so it sees the same people,
    split and model), and it names every measurement the stage loaded, by block."""
    experts = _experts()
    result = experts.diagnose(full_run)
    recovery = json.loads((full_run / "crl/recovery.json").read_text())
    measurements = json.loads((full_run / "crl/metrics.json").read_text())["measurements"]
    for block, row in result["blocks"].items():
        assert abs(row["encoded_mcc"] - recovery[block]["mcc"]) < 1e-9, block
        expected = [n for m, names in measurements.items() if block in ("shared", m) for n in names]
        assert list(row["per_measurement"]) == expected
        assert all(cells["mean_precision"] > 0 for cells in row["per_measurement"].values())
    assert list(result["blocks"]["shared"]["mcc_without"]) == [n for names in measurements.values() for n in names]
    text = experts.markdown([{"seed": 0, **result}])
    assert "## Seed 0, block shared" in text and "| image_embedding |" in text


def test_experts_command_parses():
    """The command its docstring and the demo README show."""
    args = _experts().argument_parser().parse_args(["--seeds", "0", "3"])
    assert args.seeds == [0, 3] and args.tag == "experts" and args.overrides == []
