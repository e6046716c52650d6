"""The stage runner: manifest records, resume, force, failures, unknown stages."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from personax import pipeline
from personax.pipeline import PipelineError, RunDir, StageInputMissing, StageSpec, run_pipeline

CALLS: list[str] = []


def _produce(config, run_dir: RunDir):
    CALLS.append("produce")
    run_dir.output("a/numbers.json").write_text(json.dumps(list(range(config.produce.count))))
    return {"count": config.produce.count}


def _consume(config, run_dir: RunDir):
    CALLS.append("consume")
    numbers = json.loads(run_dir.input("a/numbers.json", producer="produce").read_text())
    run_dir.output("b/total.txt").write_text(str(sum(numbers)))


def _explode(config, run_dir: RunDir):
    CALLS.append("explode")
    run_dir.output("c/partial.txt").write_text("half")
    raise RuntimeError("boom")


@pytest.fixture
def toy_stages(monkeypatch):
    module = types.ModuleType("toy_stages")
    module.produce, module.consume, module.explode = _produce, _consume, _explode
    monkeypatch.setitem(sys.modules, "toy_stages", module)
    monkeypatch.setattr(
        pipeline,
        "STAGES",
        {
            "produce": StageSpec("produce", "toy_stages:produce", config_keys=("produce",)),
            "consume": StageSpec("consume", "toy_stages:consume", config_keys=(), requires=("produce",)),
            "explode": StageSpec("explode", "toy_stages:explode", config_keys=()),
        },
    )
    CALLS.clear()


def _config(stages, count=3, force=False):
    return OmegaConf.create({"stages": stages, "force": force, "produce": {"count": count}})


def test_manifest_records_each_stage(toy_stages, run_path):
    assert run_pipeline(_config(["produce", "consume"]), run_path) == {"produce": "done", "consume": "done"}
    manifest = json.loads((run_path / "manifest.json").read_text())
    produce, consume = manifest["stages"]["produce"], manifest["stages"]["consume"]
    assert produce["status"] == "done" and produce["summary"] == {"count": 3}
    assert [o["path"] for o in produce["outputs"]] == ["a/numbers.json"]
    assert [i["path"] for i in consume["inputs"]] == ["a/numbers.json"]
    assert consume["inputs"][0]["sha256"] == produce["outputs"][0]["sha256"]
    assert {"config_hash", "duration_s", "started", "finished"} <= set(produce)
    assert (run_path / "b/total.txt").read_text() == "3"


def test_unchanged_stages_are_skipped(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    CALLS.clear()
    assert run_pipeline(_config(["produce", "consume"]), run_path) == {"produce": "skipped", "consume": "skipped"}
    assert CALLS == []


def test_a_config_change_reruns_the_stage_and_everything_downstream(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"], count=5), run_path)
    assert CALLS == ["produce", "consume"] and (run_path / "b/total.txt").read_text() == "10"


def test_a_changed_or_deleted_file_reruns_what_depends_on_it(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    (run_path / "b/total.txt").unlink()
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"]), run_path)
    assert CALLS == ["consume"]
    (run_path / "a/numbers.json").write_text("[100]")
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"]), run_path)
    # produce restores the same content, so consume's inputs match its record again.
    assert CALLS == ["produce"] and (run_path / "b/total.txt").read_text() == "3"
    (run_path / "a/numbers.json").write_text("[100]")
    CALLS.clear()
    run_pipeline(_config(["consume"]), run_path)
    assert CALLS == ["consume"] and (run_path / "b/total.txt").read_text() == "100"


def test_force_reruns(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"], force=["consume"]), run_path)
    assert CALLS == ["consume"]
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"], force=True), run_path)
    assert CALLS == ["produce", "consume"]


def test_a_stage_reruns_alone_from_files_of_an_earlier_run(toy_stages, run_path):
    run_pipeline(_config(["produce"]), run_path)
    CALLS.clear()
    run_pipeline(_config(["consume"]), run_path)
    assert CALLS == ["consume"]


def test_a_failure_is_recorded_and_earlier_work_kept(toy_stages, run_path):
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(_config(["produce", "explode"]), run_path)
    manifest = json.loads((run_path / "manifest.json").read_text())
    assert manifest["stages"]["produce"]["status"] == "done"
    assert manifest["stages"]["explode"]["status"] == "failed"
    assert manifest["stages"]["explode"]["error"] == "RuntimeError: boom"
    CALLS.clear()
    with pytest.raises(RuntimeError):
        run_pipeline(_config(["produce", "explode"]), run_path)
    assert CALLS == ["explode"]  # the finished stage is not redone


def test_missing_requirements_and_unknown_names_fail_clearly(toy_stages, run_path):
    with pytest.raises(PipelineError, match=r"unknown stage\(s\) \['nope'\]; known stages: \['consume', 'explode', 'produce'\]"):
        run_pipeline(_config(["produce", "nope"]), run_path)
    with pytest.raises(PipelineError, match="needs the outputs of stage 'produce'"):
        run_pipeline(_config(["consume"]), run_path)
    with pytest.raises(PipelineError, match="force names unknown stage"):
        run_pipeline(_config(["produce"], force=["typo"]), run_path)


def test_missing_input_names_the_producer(run_path):
    with pytest.raises(StageInputMissing, match="run the 'ingest' stage first"):
        RunDir(run_path, stage="independence").input("data/persons.parquet", producer="ingest")


def test_a_corrupt_manifest_is_reported(toy_stages, run_path):
    (run_path / "manifest.json").write_text("{not json")
    with pytest.raises(PipelineError, match="is not valid JSON"):
        run_pipeline(_config(["produce"]), run_path)


def test_external_inputs_are_fingerprinted(tmp_path: Path):
    source = tmp_path / "bios.csv"
    source.write_text("person_id\na\n")
    first = pipeline.fingerprint(source)
    assert pipeline.fingerprint(source, first) == first
    source.write_text("person_id\nb\n")
    assert pipeline.fingerprint(source, first)["sha256"] != first["sha256"]
