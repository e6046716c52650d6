"""The independence pipeline stage on a small hand-built person table and trait table."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from personax import artifacts as A
from personax.data.schema import insufficient_as_missing, ordered_trait_columns, rater_of
from personax.data.truth import GroundTruth
from personax.independence import stage
from personax.pipeline import PipelineError, RunDir

CONF = Path(__file__).resolve().parents[2] / "conf" / "independence" / "default.yaml"


def _persons(n=300, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "person_id": [f"p{i}" for i in range(n)],
        "height_cm": rng.normal(175, 8, n),
        "birth_month": pd.array(rng.integers(1, 13, n), dtype="Int64"),
        "gender": pd.array(rng.integers(0, 2, n), dtype="Int64"),
        "Big_Nose": pd.array(rng.choice([-1, 1], n), dtype="Int8"),
    })
    truth = {"height_cm": {"o": 1, "c": 0}, "birth_month": {"o": 0, "c": 0},
             "gender": {"o": 0, "c": 1}, "Big_Nose": {"o": 0, "c": 0}}
    for rater in ["ra", "rb"]:
        o = np.digitize(df.height_cm + rng.normal(0, 5, n), [172, 178]) + 1
        c = np.clip(df.gender.to_numpy(dtype=int) + rng.integers(1, 3, n), 1, 3)
        o[rng.random(n) < 0.1] = 0  # 0 = insufficient information
        df[f"trait_{rater}_o"] = o.astype(float)
        df[f"trait_{rater}_c"] = c.astype(float)
    df.loc[:4, "height_cm"] = np.nan
    dependence = pd.DataFrame.from_dict(truth, orient="index").astype(int)
    planted = GroundTruth(kind="celeb", seed=0, features=list(truth), traits=["o", "c"], nodes={}, edges=[],
                          latent_blocks={}, direct_effects=dependence, marginal_dependence=dependence,
                          trait_values=pd.DataFrame({"person_id": df.person_id}), raters={})
    return df, planted


@pytest.fixture
def run_dir(tmp_path):
    persons, truth = _persons()
    writer = RunDir(tmp_path)
    traits = [c for c in persons if c.startswith("trait_")]
    writer.write(A.PERSONS, persons.drop(columns=traits))
    # the traits stage's table: score 0 stored as missing
    writer.write(A.TRAIT_SCORES, insufficient_as_missing(persons[["person_id", *traits]]))
    writer.write(A.GROUND_TRUTH, truth)
    return tmp_path


def _config(**overrides):
    cfg = OmegaConf.create({"seed": 0, "independence": OmegaConf.load(CONF)})
    for k, v in overrides.items():
        cfg.independence[k] = v
    return cfg


def test_stage_writes_table_heatmaps_summary_and_recovery(run_dir):
    rd = RunDir(run_dir, "independence")
    summary = stage.run(_config(), rd)
    out = run_dir / "level1"
    table = pd.read_parquet(out / "pvalues.parquet")
    tests = ["kci", "hsic", "rcit", "chisq", "gsq"]
    assert set(table.test) == set(tests)
    assert set(table.feature) == {"height_cm", "birth_month", "gender", "Big_Nose"}
    assert list(dict.fromkeys(table.trait)) == ["trait_ra_o", "trait_ra_c", "trait_rb_o", "trait_rb_c"]
    assert set(table.rater) == {"ra", "rb"}
    for t in tests:
        assert (out / f"heatmap_{t}.png").stat().st_size > 10_000
    # trait score 0 is missing, and rows missing in the feature are dropped per pair
    raw, _ = _persons()
    row = table[(table.test == "kci") & (table.feature == "height_cm") & (table.trait == "trait_ra_o")].iloc[0]
    assert row.n == int(((raw.trait_ra_o != 0) & raw.height_cm.notna()).sum())
    assert (table.feature_source == "person table").all()
    text = (out / "summary.md").read_text()
    assert "| height_cm |" in text and "trait_ra_o" in text
    rec = json.loads((out / "recovery.json").read_text())
    kci = rec["tests"]["kci"]
    assert kci["all"]["recall"] == 1.0 and kci["all"]["precision"] >= 0.75
    assert set(kci["raters"]) == {"ra", "rb"}
    assert rec["tests"]["chisq"]["skipped"] == 4  # height is continuous: 1 feature x 4 trait columns
    assert summary["recovery_f1"]["kci"] == kci["all"]["f1"]
    assert set(rd.outputs) >= {"level1/pvalues.parquet", "level1/summary.md", "level1/recovery.json"}
    assert "data/ground_truth" in rd.inputs and "traits/scores.parquet" in rd.inputs


def test_stage_without_ground_truth_and_with_options(run_dir):
    import shutil

    shutil.rmtree(run_dir / "data" / "ground_truth")
    cfg = _config(tests=["kci", "fisherz", "chisq"], features=["height_cm", "gender"], traits="raters",
                  conditioning=["birth_month"], discrete_features=["gender", "birth_month"])
    summary = stage.run(cfg, RunDir(run_dir, "independence"))
    assert not (run_dir / "level1" / "recovery.json").exists()
    table = pd.read_parquet(run_dir / "level1" / "pvalues.parquet")
    assert set(table.feature) == {"height_cm", "gender"}
    assert (table[table.test != "chisq"].status == "ok").all()
    chisq = table[table.test == "chisq"].set_index("feature").status
    assert (chisq["gender"] == "ok").all() and (chisq["height_cm"] == "skipped: continuous").all()
    assert summary["tests"]["kci"]["ok"] == 8


def test_trait_column_selection():
    cols = ["trait_o", "trait_gpt4o_c", "trait_gpt4o_o", "trait_ds_o", "height_cm"]
    assert ordered_trait_columns(cols) == ["trait_gpt4o_o", "trait_gpt4o_c", "trait_ds_o", "trait_o"]
    assert ordered_trait_columns(cols, "raters") == ["trait_gpt4o_o", "trait_gpt4o_c", "trait_ds_o"]
    assert ordered_trait_columns(["trait_o", "trait_c", "x"], "aggregate") == ["trait_o", "trait_c"]
    assert rater_of("trait_o") == "aggregate" and rater_of("trait_ds_o") == "ds"


def test_every_rater_and_the_aggregate_are_tested(run_dir):
    scores = pd.read_parquet(run_dir / "traits" / "scores.parquet")
    scores["trait_o"] = scores[["trait_ra_o", "trait_rb_o"]].median(axis=1)
    RunDir(run_dir).write(A.TRAIT_SCORES, scores)
    stage.run(_config(tests=["fisherz"]), RunDir(run_dir, "independence"))
    table = pd.read_parquet(run_dir / "level1" / "pvalues.parquet")
    assert list(dict.fromkeys(table.trait)) == ["trait_ra_o", "trait_ra_c", "trait_rb_o", "trait_rb_c", "trait_o"]
    assert set(table.rater) == {"ra", "rb", "aggregate"}


def test_zero_shot_face_attributes_reach_level1_when_the_table_has_none(run_dir):
    persons = pd.read_parquet(run_dir / "data" / "persons.parquet")
    RunDir(run_dir).write(A.PERSONS, persons.drop(columns=["Big_Nose"]))
    rng = np.random.default_rng(1)
    RunDir(run_dir).write(A.FACE_ATTRIBUTE_SCORES, pd.DataFrame({
        "person_id": persons.person_id, "Big_Nose": pd.array(rng.choice([-1, 1], len(persons)), dtype="Int8"),
        "weights": "random (meaningless)"}))
    summary = stage.run(_config(tests=["chisq"]), RunDir(run_dir, "independence"))
    table = pd.read_parquet(run_dir / "level1" / "pvalues.parquet")
    nose = table[table.feature == "Big_Nose"]
    assert len(nose) == 4 and (nose.feature_source == "zero-shot CLIP (random (meaningless))").all()
    assert summary["face_attributes"] == "zero-shot CLIP (random (meaningless))"


def test_a_missing_conditioning_column_is_a_clear_error(run_dir):
    """Regression (13.6): a conditioning column that does not exist gave a bare KeyError."""
    with pytest.raises(KeyError, match=r"independence.conditioning names \['nope'\], not in the person table"):
        stage.run(_config(conditioning=["nope"]), RunDir(run_dir, "independence"))


def test_the_stage_cannot_read_undeclared_artifacts(run_dir):
    with pytest.raises(PipelineError, match="without declaring it"):
        RunDir(run_dir, "independence").read(A.CRL_METRICS)


def test_a_rerun_after_a_crash_keeps_the_tests_that_had_finished(run_dir, tmp_path_factory, monkeypatch):
    """The stage killed during its second test (an exception standing in for the crash) keeps the
    first test's rows; the rerun computes only the second, and its table is the uninterrupted run's.
    A checkpoint of other options or other code is not used, and every checkpoint goes when the stage
    finishes."""
    import shutil

    fresh = tmp_path_factory.mktemp("fresh")
    shutil.copytree(run_dir, fresh, dirs_exist_ok=True)
    config = _config(tests=["fisherz", "chisq"])
    stage.run(config, RunDir(fresh, "independence"))
    uninterrupted = pd.read_parquet(fresh / "level1" / "pvalues.parquet")
    assert not (fresh / "level1" / "checkpoint").exists()

    real, ran = stage.test_matrix, []

    def counting(*args, tests, **kwargs):
        ran.extend(tests)
        return real(*args, tests=tests, **kwargs)

    def crashing_on_chisq(*args, tests, **kwargs):
        if tests == ["chisq"]:
            raise KeyboardInterrupt("killed")
        return counting(*args, tests=tests, **kwargs)

    monkeypatch.setattr(stage, "test_matrix", crashing_on_chisq)
    with pytest.raises(KeyboardInterrupt):
        stage.run(config, RunDir(run_dir, "independence"))
    assert [key.split("-")[0] for key in RunDir(run_dir).keys(A.LEVEL1_CHECKPOINT)] == ["fisherz"]

    ran.clear()
    monkeypatch.setattr(stage, "test_matrix", counting)
    summary = stage.run(config, RunDir(run_dir, "independence"))
    assert ran == ["chisq"] and summary["resumed_tests"] == ["fisherz"]
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "level1" / "pvalues.parquet"), uninterrupted,
                                  check_exact=True)
    assert not (run_dir / "level1" / "checkpoint").exists()

    ran.clear()  # the same crash, then a rerun with other options: the first test's rows are not reused
    monkeypatch.setattr(stage, "test_matrix", crashing_on_chisq)
    with pytest.raises(KeyboardInterrupt):
        stage.run(config, RunDir(run_dir, "independence"))
    # what a kill -9 in the middle of writing chisq's checkpoint leaves: atomic_path's hidden temporary
    interrupted = RunDir(run_dir).locate(A.LEVEL1_CHECKPOINT, "chisq-0123456789abcdef")
    interrupted.with_name(f".{interrupted.stem}.tmp-99999{interrupted.suffix}").write_bytes(b"half a parquet")
    monkeypatch.setattr(stage, "test_matrix", counting)
    ran.clear()
    summary = stage.run(_config(tests=["fisherz", "chisq"], min_rows=20), RunDir(run_dir, "independence"))
    assert ran == ["fisherz", "chisq"] and "resumed_tests" not in summary
    assert not (run_dir / "level1" / "checkpoint").exists()  # the unused one is gone too, and the leftover

    ran.clear()  # the same crash, then a rerun under other code (a changed test): nothing is reused
    monkeypatch.setattr(stage, "test_matrix", crashing_on_chisq)
    with pytest.raises(KeyboardInterrupt):
        stage.run(config, RunDir(run_dir, "independence"))
    monkeypatch.setattr(stage, "test_matrix", counting)
    monkeypatch.setattr(stage, "_code_digest", lambda: "the code of another commit")
    ran.clear()
    summary = stage.run(config, RunDir(run_dir, "independence"))
    assert ran == ["fisherz", "chisq"] and "resumed_tests" not in summary
    summary = stage.run(_config(tests=[]), RunDir(run_dir, "independence"))  # no test: an empty table, no checkpoint
    assert summary["tests"] == {} and pd.read_parquet(run_dir / "level1" / "pvalues.parquet").empty
