"""The stage runner: manifest records, resume, force, failures, unknown stages, order, lock, copies."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from personax import artifacts, pipeline
from personax.artifacts import PERSONS, Artifact
from personax.pipeline import PipelineError, RunDir, RunDirInUse, StageInputMissing, StageSpec, run_pipeline

CALLS: list[str] = []
NUMBERS = Artifact("numbers", "a/numbers.json", "produce", "json", "toy")
TOTAL = Artifact("total", "b/total.md", "consume", "markdown", "toy")
PARTIAL = Artifact("partial", "c/partial.md", "explode", "markdown", "toy")


def _produce(config, run_dir: RunDir):
    CALLS.append("produce")
    run_dir.write(NUMBERS, list(range(config.produce.count)))
    return {"count": config.produce.count}


def _consume(config, run_dir: RunDir):
    CALLS.append("consume")
    run_dir.write(TOTAL, str(sum(run_dir.read(NUMBERS))))


def _explode(config, run_dir: RunDir):
    CALLS.append("explode")
    run_dir.write(PARTIAL, "half")
    raise RuntimeError("boom")


@pytest.fixture
def toy_stages(monkeypatch):
    module = types.ModuleType("toy_stages")
    module.produce, module.consume, module.explode = _produce, _consume, _explode
    monkeypatch.setitem(sys.modules, "toy_stages", module)
    monkeypatch.setattr(artifacts, "ARTIFACTS", {a.name: a for a in (NUMBERS, TOTAL, PARTIAL)})
    monkeypatch.setattr(
        pipeline,
        "STAGES",
        {
            "produce": StageSpec("produce", "toy_stages:produce", config_keys=("produce",)),
            "consume": StageSpec("consume", "toy_stages:consume", config_keys=(), inputs=(NUMBERS,)),
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
    assert (run_path / "b/total.md").read_text() == "3"


def test_unchanged_stages_are_skipped(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    CALLS.clear()
    assert run_pipeline(_config(["produce", "consume"]), run_path) == {"produce": "skipped", "consume": "skipped"}
    assert CALLS == []


def test_a_config_change_reruns_the_stage_and_everything_downstream(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"], count=5), run_path)
    assert CALLS == ["produce", "consume"] and (run_path / "b/total.md").read_text() == "10"


def test_a_changed_or_deleted_file_reruns_what_depends_on_it(toy_stages, run_path):
    run_pipeline(_config(["produce", "consume"]), run_path)
    (run_path / "b/total.md").unlink()
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"]), run_path)
    assert CALLS == ["consume"]
    (run_path / "a/numbers.json").write_text("[100]")
    CALLS.clear()
    run_pipeline(_config(["produce", "consume"]), run_path)
    # produce restores the same content, so consume's inputs match its record again.
    assert CALLS == ["produce"] and (run_path / "b/total.md").read_text() == "3"
    (run_path / "a/numbers.json").write_text("[100]")
    CALLS.clear()
    run_pipeline(_config(["consume"]), run_path)
    assert CALLS == ["consume"] and (run_path / "b/total.md").read_text() == "100"


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


def test_a_full_disk_that_stops_the_failure_record_keeps_the_stages_own_error(toy_stages, run_path, monkeypatch):
    run_pipeline(_config(["produce"]), run_path)
    record = pipeline.Manifest.record

    def record_unless_failed(self, name, entry):
        if entry.get("status") == "failed":  # the disk filled up under the stage
            raise OSError(errno.ENOSPC, "No space left on device")
        record(self, name, entry)

    monkeypatch.setattr(pipeline.Manifest, "record", record_unless_failed)
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(_config(["produce", "explode"]), run_path)
    manifest = json.loads((run_path / "manifest.json").read_text())
    assert manifest["stages"]["produce"]["status"] == "done"  # the finished stage's record is intact


def test_missing_requirements_and_unknown_names_fail_clearly(toy_stages, run_path):
    with pytest.raises(PipelineError, match=r"unknown stage\(s\) \['nope'\]; known stages: \['consume', 'explode', 'produce'\]"):
        run_pipeline(_config(["produce", "nope"]), run_path)
    with pytest.raises(PipelineError, match="needs numbers .a/numbers.json., written by stage 'produce'"):
        run_pipeline(_config(["consume"]), run_path)
    with pytest.raises(PipelineError, match="force names unknown stage"):
        run_pipeline(_config(["produce"], force=["typo"]), run_path)


def test_missing_input_names_the_producer(run_path):
    with pytest.raises(StageInputMissing, match="run the 'ingest' stage first"):
        RunDir(run_path, stage="independence").read(PERSONS)


def test_requires_is_derived_from_declared_inputs():
    assert pipeline.STAGES["independence"].requires == ("ingest", "traits")
    assert pipeline.STAGES["traits"].requires == ("ingest",)
    assert pipeline.STAGES["report"].requires == ()
    # the config decides what crl needs: trait scores make it require traits, a benchmark only ingest
    crl = pipeline.STAGES["crl"]
    needs = crl.needs(OmegaConf.create({"crl": {"modalities": {"text": ["trait_scores:each_rater"]}}}))
    assert {a.writer for a in needs} == {"ingest", "traits"}
    needs = crl.needs(OmegaConf.create({"crl": {"modalities": {"digit": ["benchmark_measurement[digit_0]"]}}}))
    assert {a.writer for a in needs} == {"ingest"}


def test_a_stage_may_only_touch_declared_artifacts(run_path):
    with pytest.raises(PipelineError, match="may not write 'persons'"):
        RunDir(run_path, stage="traits").write(PERSONS, None)
    with pytest.raises(PipelineError, match="reads 'crl_metrics'.*without declaring it"):
        RunDir(run_path, stage="traits").read(artifacts.CRL_METRICS)


def test_stage_order_is_validated_against_the_declarations(run_path):
    """Regression (13.7): stages=[independence,ingest] used to run independence on the old table."""
    from personax.pipeline import Manifest, check_order, resolve_stages

    config = OmegaConf.create({"crl": {"modalities": {}}})
    with pytest.raises(PipelineError, match="stage 'independence' reads data/persons.parquet .* put 'ingest' first"):
        check_order(resolve_stages(["independence", "ingest"]), config, Manifest(run_path), run_path)
    with pytest.raises(PipelineError, match="stages must be a list, e.g. stages=\\[ingest\\]"):
        run_pipeline(OmegaConf.create({"stages": "ingest"}), run_path)


def test_two_runs_in_one_directory_are_refused(toy_stages, run_path):
    """Regression (13.1): a second run into a directory in use fails with the holder's pid."""
    script = ("import fcntl, sys, time; h = open(sys.argv[1], 'a+'); fcntl.flock(h, fcntl.LOCK_EX); "
              "h.write('4242'); h.flush(); print('locked', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(run_path / pipeline.LOCK_NAME)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirInUse, match="in use by pid 4242"):
            run_pipeline(_config(["produce"]), run_path)
    finally:
        holder.kill()
        holder.wait()
    assert run_pipeline(_config(["produce"]), run_path) == {"produce": "done"}  # released with the process


def test_a_copied_or_moved_run_directory_resumes(toy_stages, tmp_path):
    """Fingerprints are by content: cp -r (new mtimes) and mv keep every stage up to date."""
    first = tmp_path / "a"
    run_pipeline(_config(["produce", "consume"]), first)
    copy = tmp_path / "b"
    shutil.copytree(first, copy)
    for path in copy.rglob("*"):
        os.utime(path, ns=(1, 1))  # copies get new times; content is what counts
    assert run_pipeline(_config(["produce", "consume"]), copy) == {"produce": "skipped", "consume": "skipped"}
    moved = tmp_path / "c"
    first.rename(moved)
    assert run_pipeline(_config(["produce", "consume"]), moved) == {"produce": "skipped", "consume": "skipped"}


def test_a_device_or_fifo_is_never_read(tmp_path):
    """Regression (13.9): data.bios=/dev/zero hung while the failure handler hashed it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert pipeline.fingerprint(fifo) == {"kind": "special"}
    with pytest.raises(FileNotFoundError, match="not a regular file or folder"):
        RunDir(tmp_path).external_input("/dev/zero", "data.bios")
    with pytest.raises(FileNotFoundError, match="not a regular file or folder"):
        RunDir(tmp_path).external_input(fifo, "data.bios")


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


def test_no_module_spells_a_run_directory_path():
    """Paths live in personax/artifacts.py only: no other module has a string literal naming a
    run-directory file (``data/persons.parquet``, ``level1/...``, ``crl/metrics.json``, ...)."""
    import ast

    root = Path(pipeline.__file__).resolve().parent
    declared = {a.path.split("/")[0] for a in artifacts.ARTIFACTS.values()}
    pattern = re.compile(rf"^({'|'.join(sorted(declared))})/[\w{{}}.-]+")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "artifacts.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if pattern.match(node.value):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert not offenders, "\n".join(offenders)


def test_the_docs_show_the_contract_as_declared():
    """docs/pipeline.md's artifact table is the declarations' table (regenerate it with artifact_table)."""
    from personax.sweep import READS

    docs = (Path(pipeline.__file__).resolve().parents[1] / "docs" / "pipeline.md").read_text(encoding="utf-8")
    assert pipeline.artifact_table({"personax.sweep": READS}) in docs


def test_no_stage_reads_another_stage_s_private_artifact():
    """A private artifact (a stage's working state, such as the crl fit's checkpoint) has no reader."""
    private = [item for item in artifacts.ARTIFACTS.values() if item.private]
    assert artifacts.CRL_FIT_CHECKPOINT in private and artifacts.LEVEL1_CHECKPOINT in private
    for spec in pipeline.STAGES.values():
        assert not [item.name for item in private if item.writer != spec.name and spec.reads(item)], spec.name


@pytest.mark.parametrize("item, keys", [
    (artifacts.TEXT_EMBEDDING, ["bio", "summary"]),  # a file-name prefix: embeddings/text_{key}.npy
    (artifacts.PRIVATE_EMBEDDING, ["image", "text_bio"]),  # a folder of its own: embeddings/private/{key}.npy
    (artifacts.REPORT_FIGURE, ["a.png", "b.png"]),  # the whole name: report/figures/{key}
])
def test_a_family_s_members_are_found_whether_it_has_a_folder_of_its_own_or_not(run_path, item, keys):
    writer = RunDir(run_path)
    for key in keys:
        path = writer.locate(item, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (run_path / item.family_folder() / ".hidden_tmp").write_bytes(b"x")  # an atomic write's temporary: not a member
    assert writer.keys(item) == keys
    with pytest.raises(TypeError, match="not a family"):
        PERSONS.family_folder()
