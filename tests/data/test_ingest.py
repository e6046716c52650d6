"""The ingest stage from each source, through the pipeline, with strict and lenient validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personax.data.schema import DataValidationError
from personax.data.synthetic import GroundTruth
from personax.pipeline import run_pipeline
from tests.data.test_readers_images import png_bytes, png_header_only


def _raw_config(compose_cfg, bios: Path, *extra: str):
    return compose_cfg(["data=raw", f"data.bios={bios}", *extra])


def _manifest(run_path: Path) -> dict:
    return json.loads((run_path / "manifest.json").read_text())


@pytest.fixture
def raw_files(tmp_path: Path) -> tuple[Path, Path]:
    faces = tmp_path / "faces"
    faces.mkdir()
    for pid in ("p1", "p2"):
        (faces / f"{pid}.png").write_bytes(png_bytes())
    (faces / "p3.png").write_bytes(b"")
    (faces / "p5.png").write_bytes(png_header_only(30_000, 30_000))
    bios = tmp_path / "bios.csv"
    bios.write_bytes(
        b"ID,Height,birth_year,birth_month,birth_day,group,bio\n"
        b"p1,180,1980,5,17,actor,Likes the stage.\n"
        b"p2,165,1990,2,30,writer,Quiet.\n"  # impossible date
        b"p3,170,1975,1,1,actor,Empty image.\n"
        b"p4,-170,1970,1,1,actor,Negative height.\n"
        b"p5,181,1985,7,7,model,Bomb image.\n"
        b"p1,182,1981,1,1,actor,Duplicate id.\n"
        b"p6,175,1966,3,3,writer,caf\xe9 bio\n"  # not UTF-8
    )
    return bios, faces


def test_raw_strict_lists_every_problem_and_keeps_the_report(compose_cfg, run_path, raw_files):
    bios, faces = raw_files
    cfg = _raw_config(compose_cfg, bios, f"data.image_root={faces}", "+data.columns.person_id=ID",
                      "+data.columns.height_cm=Height")
    with pytest.raises(DataValidationError) as info:
        run_pipeline(cfg, run_path)
    message = str(info.value)
    assert "bios.csv row 2 (person_id 'p2'), column 'birth_day': impossible date 1990-02-30" in message
    assert "row 4 (person_id 'p4'), column 'height_cm': negative value -170" in message
    assert "data.strict=false" in message
    assert _manifest(run_path)["stages"]["ingest"]["status"] == "failed"
    assert len(pd.read_parquet(run_path / "data/rejected.parquet")) == 6
    assert not (run_path / "data/persons.parquet").exists()


def test_raw_lenient_quarantines_bad_rows_and_keeps_people_with_bad_images(compose_cfg, run_path, raw_files):
    bios, faces = raw_files
    cfg = _raw_config(compose_cfg, bios, f"data.image_root={faces}", "data.strict=false",
                      "+data.columns.person_id=ID", "+data.columns.height_cm=Height")
    run_pipeline(cfg, run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.person_id.tolist() == ["p1", "p3", "p5"]
    assert persons.image_path.tolist()[0] == str((faces / "p1.png").resolve())
    assert persons.image_path.isna().tolist() == [False, True, True]
    rejected = pd.read_parquet(run_path / "data/rejected.parquet")
    reasons = {(r.row, r.column): (r.reason, r.action) for r in rejected.itertuples()}
    assert reasons[(2, "birth_day")][0] == "impossible date 1990-02-30"
    assert reasons[(3, "image_path")] == ("empty image file (0 bytes)", "image removed; person kept")
    assert "decompression bomb" in reasons[(5, "image_path")][0]
    assert reasons[(6, "person_id")][0] == "duplicate person_id (first at row 1)"
    assert "not valid UTF-8" in reasons[(7, "bio")][0]
    summary = _manifest(run_path)["stages"]["ingest"]["summary"]
    assert summary["persons"] == 3 and summary["rejected_rows"] == 4 and summary["bad_images"] == 2
    assert json.loads((run_path / "data/label_maps.json").read_text())["group"] == {"actor": 0, "model": 1, "writer": 2}


def test_raw_image_paths_must_stay_in_the_root(compose_cfg, run_path, tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(png_bytes())
    bios = tmp_path / "bios.jsonl"
    (root / "b.png").write_bytes(png_bytes())
    bios.write_text(json.dumps({"person_id": "a", "image_path": "../secret.png"}) + "\n"
                    + json.dumps({"person_id": "b", "image_path": "b.png"}) + "\n")
    run_pipeline(_raw_config(compose_cfg, bios, f"data.image_root={root}", "data.strict=false"), run_path)
    rejected = pd.read_parquet(run_path / "data/rejected.parquet")
    assert rejected.reason.tolist() == ["image path escapes the image root"]


def test_raw_parquet_source(compose_cfg, run_path, tmp_path):
    bios = tmp_path / "people.parquet"
    pd.DataFrame({"person_id": ["a", "b"], "height_cm": [170.0, 180.0], "trait_gpt_o": [1, 3]}).to_parquet(bios)
    run_pipeline(_raw_config(compose_cfg, bios, "data.dataset=athlete"), run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.dataset.tolist() == ["athlete", "athlete"] and persons.trait_gpt_o.tolist() == [1.0, 3.0]


def test_raw_without_a_bios_path(compose_cfg, run_path):
    with pytest.raises(FileNotFoundError, match="data.bios is not set"):
        run_pipeline(compose_cfg(["data=raw"]), run_path)


def _release_frame(n: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"a{i}" for i in range(n)],
            "Birthyear": [1990 + i for i in range(n)],
            "Birthmonth": [1, 2, 3, 4][:n],
            "Birthday": [10, 11, 12, 13][:n],
            "Type": ["NBA", "NFL", "NBA", "PGA"][:n],
            "Latitude": rng.uniform(-10, 10, n),
            "Longitude": rng.uniform(-10, 10, n),
            "Height": [200.0, 190.0, 205.0, 180.0][:n],
            "Weight": [100.0, 120.0, 110.0, 80.0][:n],
            **{f"final_{t}": [1.0, 2.0, 2.5, 3.0][:n] for t in "ocean"},
        }
    )
    frame["image_embedding"] = [rng.normal(size=6).astype(np.float32) for _ in range(n)]
    return frame


def test_release_source_maps_columns_and_extracts_embeddings(compose_cfg, run_path, tmp_path):
    path = tmp_path / "athle.parquet"
    frame = _release_frame()
    frame.loc[2, "image_embedding"] = np.array([np.nan] * 6, dtype=np.float32)
    frame.to_parquet(path)
    run_pipeline(compose_cfg(["data=athlepersona", f"data.path={path}", "data.strict=false"]), run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.person_id.tolist() == ["a0", "a1", "a2", "a3"]
    assert persons.group.tolist() == [0, 1, 0, 4] and persons.trait_a.tolist() == [1.0, 2.0, 2.5, 3.0]
    image = np.load(run_path / "data/release_embeddings/image.npy")
    assert image.shape == (4, 6) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], frame.image_embedding[0])
    index = pd.read_parquet(run_path / "data/release_embeddings/index.parquet")
    assert index.has_image.tolist() == [True, True, False, True]
    rejected = pd.read_parquet(run_path / "data/rejected.parquet")
    assert rejected.action.tolist() == ["embedding marked missing; person kept"]


def test_release_column_mismatch_lists_missing_and_unexpected(compose_cfg, run_path, tmp_path):
    path = tmp_path / "athle.parquet"
    _release_frame().rename(columns={"Height": "height", "Type": "League"}).to_parquet(path)
    with pytest.raises(DataValidationError) as info:
        run_pipeline(compose_cfg(["data=athlepersona", f"data.path={path}"]), run_path)
    message = str(info.value)
    assert "missing: ['Height', 'Type']" in message and "unexpected: ['League', 'height']" in message
    assert "data.columns.height_cm=" in message
    # ... and the mapping is overridable from the command line.
    run_pipeline(
        compose_cfg(["data=athlepersona", f"data.path={path}", "data.columns.height_cm=height", "data.columns.group=League"]),
        run_path,
    )
    assert len(pd.read_parquet(run_path / "data/persons.parquet")) == 4


def test_release_prefix_embeddings(compose_cfg, run_path, tmp_path):
    path = tmp_path / "athle.parquet"
    frame = _release_frame().drop(columns=["image_embedding"])
    for j in range(3):
        frame[f"img_{j}"] = np.arange(4, dtype=float) + j
    frame.to_parquet(path)
    run_pipeline(compose_cfg(["data=athlepersona", f"data.path={path}", "data.embeddings.image={prefix: img_}"]), run_path)
    np.testing.assert_array_equal(np.load(run_path / "data/release_embeddings/image.npy")[1], [1, 2, 3])


def test_release_missing_path_says_how_to_get_the_data(compose_cfg, run_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="no release file configured.*data.path=/path/to/CelebPersona.parquet"):
        run_pipeline(compose_cfg(["data=celebpersona"]), run_path)
    with pytest.raises(FileNotFoundError, match="does not exist. The PersonaX release"):
        run_pipeline(compose_cfg(["data=celebpersona", f"data.path={tmp_path / 'nope.parquet'}"]), run_path)


def test_synthetic_source_writes_table_faces_and_ground_truth(compose_cfg, run_path):
    run_pipeline(compose_cfg(["data.n=60", "data.image_size=32"]), run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    # faces are referenced relative to the run directory, so a moved run directory keeps them
    assert persons.image_path.map(lambda p: not Path(p).is_absolute()).all()
    assert len(persons) == 60 and persons.image_path.map(lambda p: (run_path / p).is_file()).all()
    assert persons.bio.str.len().min() > 20
    truth = GroundTruth.load(run_path / "data/ground_truth")
    assert truth.kind == "celeb" and truth.trait_values.person_id.tolist() == persons.person_id.tolist()
    assert set(truth.marginal_dependence.index) == set(truth.features)
    assert len(pd.read_parquet(run_path / "data/rejected.parquet")) == 0
