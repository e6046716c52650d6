"""The independence pipeline stage on a small hand-built person table."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from personax.independence import stage
from personax.pipeline import RunDir

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
    return df, {"features": list(truth), "traits": ["o", "c"], "marginal_dependence": truth}


@pytest.fixture
def run_dir(tmp_path):
    persons, truth = _persons()
    (tmp_path / "data" / "ground_truth").mkdir(parents=True)
    persons.to_parquet(tmp_path / "data" / "persons.parquet")
    (tmp_path / "data" / "ground_truth" / "ground_truth.json").write_text(json.dumps(truth))
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
    raw = pd.read_parquet(run_dir / "data" / "persons.parquet")
    row = table[(table.test == "kci") & (table.feature == "height_cm") & (table.trait == "trait_ra_o")].iloc[0]
    assert row.n == int(((raw.trait_ra_o != 0) & raw.height_cm.notna()).sum())
    text = (out / "summary.md").read_text()
    assert "| height_cm |" in text and "trait_ra_o" in text
    rec = json.loads((out / "recovery.json").read_text())
    kci = rec["tests"]["kci"]
    assert kci["all"]["recall"] == 1.0 and kci["all"]["precision"] >= 0.75
    assert set(kci["raters"]) == {"ra", "rb"}
    assert rec["tests"]["chisq"]["skipped"] == 4  # height is continuous: 1 feature x 4 trait columns
    assert summary["recovery_f1"]["kci"] == kci["all"]["f1"]
    assert set(rd.outputs) >= {"level1/pvalues.parquet", "level1/summary.md", "level1/recovery.json"}
    assert "data/ground_truth/ground_truth.json" in rd.inputs


def test_stage_without_ground_truth_and_with_options(run_dir):
    (run_dir / "data" / "ground_truth" / "ground_truth.json").unlink()
    cfg = _config(tests=["kci", "fisherz", "chisq"], features=["height_cm", "gender"],
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
    assert stage.trait_columns(cols, r"^trait_[a-z0-9]+_[ocean]$", r"^trait_[ocean]$") == [
        "trait_gpt4o_o", "trait_gpt4o_c", "trait_ds_o"]
    assert stage.trait_columns(["trait_o", "trait_c"], r"^trait_[a-z0-9]+_[ocean]$", r"^trait_[ocean]$") == [
        "trait_o", "trait_c"]
    assert stage.rater_of("trait_o") == "aggregate"
