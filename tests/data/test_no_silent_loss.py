"""Issue 13 items 4, 8 and 12 (faces): the ingest counts every input it could not use.

Strict runs fail naming file, row and field; lenient runs record each loss in
``data/rejected.parquet``; "no usable image at all" is an error either way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from personax.data.schema import DataValidationError
from personax.pipeline import run_pipeline
from tests.data.test_readers_images import png_bytes


def _raw(compose_cfg, bios: Path, *extra: str):
    return compose_cfg(["data=raw", f"data.bios={bios}", *extra])


def _rejected(run_path: Path) -> pd.DataFrame:
    return pd.read_parquet(run_path / "data/rejected.parquet")


def _faces(root: Path, *names: str) -> Path:
    root.mkdir(exist_ok=True)
    for name in names:
        (root / name).write_bytes(png_bytes())
    return root


# ----------------------------------------------------------------------------- item 4


TRUNCATED = (
    "person_id,height_cm,birth_year,birth_month,birth_day,bio\n"
    "a,170,1980,1,2,Fine.\n"
    "b,171\n"  # 2 of 6 fields: pandas would fill four empty values
    "c,172,1981,3,4,Also fine.\n"
)


def test_truncated_csv_row_is_an_error_naming_file_and_row(compose_cfg, run_path, tmp_path):
    bios = tmp_path / "bios.csv"
    bios.write_text(TRUNCATED)
    with pytest.raises(DataValidationError, match=r"bios.csv row 2: row has 2 fields but the header has 6 "
                                                  r"\(line 3; truncated row\?\)"):
        run_pipeline(_raw(compose_cfg, bios), run_path)


def test_truncated_csv_row_is_rejected_when_lenient(compose_cfg, run_path, tmp_path):
    bios = tmp_path / "bios.csv"
    bios.write_text(TRUNCATED + "d,173,1982,5,6,Extra,field\n")
    run_pipeline(_raw(compose_cfg, bios, "data.strict=false"), run_path)
    assert pd.read_parquet(run_path / "data/persons.parquet").person_id.tolist() == ["a", "c"]
    rejected = _rejected(run_path)
    assert rejected.row.tolist() == [2, 4]
    assert "header has 6" in rejected.reason[0] and "unquoted delimiter" in rejected.reason[1]


def test_float_typed_ids_still_match_images(compose_cfg, run_path, tmp_path):
    faces = _faces(tmp_path / "faces", "0.png", "1.png")
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\n0.0,170\n1.0,180\n")  # as pandas writes a float id column
    run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}"), run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.image_path.tolist() == [str(faces / "0.png"), str(faces / "1.png")]


def test_float_typed_parquet_ids_become_whole_numbers(compose_cfg, run_path, tmp_path):
    faces = _faces(tmp_path / "faces", "3.png", "4.png")
    bios = tmp_path / "bios.parquet"
    pd.DataFrame({"person_id": [3.0, 4.0, 4.5], "height_cm": [170.0, 180.0, 190.0]}).to_parquet(bios)
    run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}", "data.strict=false"), run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.person_id.tolist() == ["3", "4"] and persons.image_path.notna().all()
    assert _rejected(run_path).reason.tolist() == ["person_id must be text or a whole number"]


def test_wrong_image_root_is_an_error_even_when_lenient(compose_cfg, run_path, tmp_path):
    _faces(tmp_path / "faces", "a.png", "b.png")
    wrong = tmp_path / "other"
    wrong.mkdir()
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,170\nb,180\n")
    with pytest.raises(DataValidationError, match=r"0 of 2 persons have a usable image in the image root .*other "
                                                  r"\(0 image files there\); check data.image_root"):
        run_pipeline(_raw(compose_cfg, bios, f"data.image_root={wrong}", "data.strict=false"), run_path)
    assert len(_rejected(run_path)) == 2  # each loss is still listed
    assert not (run_path / "data/persons.parquet").exists()


def test_partial_image_matches_are_recorded_per_row(compose_cfg, run_path, tmp_path):
    faces = _faces(tmp_path / "faces", "a.png")
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,170\nb,180\n")
    with pytest.raises(DataValidationError, match=r"bios.csv row 2 \(person_id 'b'\), column 'image_path': "
                                                  r"no image file named b\.<"):
        run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}"), run_path)
    run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}", "data.strict=false"), run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.image_path.isna().tolist() == [False, True]
    assert _rejected(run_path).action.tolist() == ["no image; person kept"]


def test_text_only_table_without_images_is_not_a_loss(compose_cfg, run_path, tmp_path):
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,170\n")
    run_pipeline(_raw(compose_cfg, bios), run_path)
    assert pd.read_parquet(run_path / "data/persons.parquet").image_path.isna().all()


# ----------------------------------------------------------------------------- item 8


def _jsonl(path: Path, *records: dict | str) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_nul_byte_in_image_path_is_a_recorded_row_not_a_crash(compose_cfg, run_path, tmp_path):
    faces = _faces(tmp_path / "faces", "ok.png")
    bios = _jsonl(tmp_path / "bios.jsonl", {"person_id": "a", "image_path": "ok.png"},
                  {"person_id": "b", "image_path": "x\u0000y.png"})
    with pytest.raises(DataValidationError, match=r"bios.jsonl row 2 \(person_id 'b'\), column 'image_path': "
                                                  r"image path contains a NUL byte"):
        run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}"), run_path)
    run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}", "data.strict=false"), run_path)
    assert pd.read_parquet(run_path / "data/persons.parquet").person_id.tolist() == ["a", "b"]
    assert _rejected(run_path).reason.tolist() == ["image path contains a NUL byte"]


def test_symlink_loop_in_the_image_root_is_a_recorded_row(compose_cfg, run_path, tmp_path):
    faces = _faces(tmp_path / "faces", "a.png")
    os.symlink("loop.png", faces / "loop.png")  # points at itself
    os.symlink("d2", faces / "d1")
    os.symlink("d1", faces / "d2")
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,170\nloop,180\n")
    run_pipeline(_raw(compose_cfg, bios, f"data.image_root={faces}", "data.strict=false"), run_path)
    rejected = _rejected(run_path)
    assert rejected.row.tolist() == [2] and rejected.person_id.tolist() == ["loop"]
    assert "cannot be resolved" in rejected.reason[0] or "not found" in rejected.reason[0]


def test_401_digit_integer_in_jsonl_is_a_rejected_row(compose_cfg, run_path, tmp_path):
    bios = _jsonl(tmp_path / "bios.jsonl", {"person_id": "a", "height_cm": 170},
                  '{"person_id": "b", "height_cm": ' + "9" * 401 + "}",
                  '{"person_id": "c", "height_cm": ' + "9" * 5000 + "}",  # over Python's int-reading limit
                  '{"person_id": "d", "bio": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataValidationError, match=r"bios.jsonl row 2 \(person_id 'b'\), column 'height_cm': "
                                                  r"expected a number"):
        run_pipeline(_raw(compose_cfg, bios), run_path)
    run_pipeline(_raw(compose_cfg, bios, "data.strict=false"), run_path)
    assert pd.read_parquet(run_path / "data/persons.parquet").person_id.tolist() == ["a"]
    rejected = _rejected(run_path)
    assert rejected.row.tolist() == [2, 3, 4]
    assert "not readable JSON" in rejected.reason[1] and rejected.reason[2] == "JSON nested too deeply"


# ----------------------------------------------------------------------------- item 12 (faces)


def test_killed_face_drawing_leaves_no_orphan_faces(compose_cfg, run_path, monkeypatch):
    from personax.data import stage

    real = stage.Image.fromarray
    calls = []

    def dies_on_the_fourth(array):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a Ctrl-C or a kill mid-drawing
        return real(array)

    monkeypatch.setattr(stage.Image, "fromarray", dies_on_the_fourth)
    cfg = compose_cfg(["data.n=20", "data.simulated_raters=[]"])
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, run_path)
    entry = json.loads((run_path / "manifest.json").read_text())["stages"]["ingest"]
    assert entry["status"] == "failed"
    assert not any(record["path"].startswith("data/faces") for record in entry["outputs"])
    assert not (run_path / "data/faces").exists()
    assert not list((run_path / "data").glob(".faces.tmp-*"))
    monkeypatch.setattr(stage.Image, "fromarray", real)
    run_pipeline(cfg, run_path)
    assert len(list((run_path / "data/faces").glob("*.png"))) == 20


def test_a_stray_image_next_to_a_text_only_table_is_not_a_face(compose_cfg, run_path, tmp_path):
    (tmp_path / "logo.png").write_bytes(png_bytes())
    bios = tmp_path / "bios.csv"
    bios.write_text("person_id,height_cm\na,170\nb,180\n")
    run_pipeline(_raw(compose_cfg, bios), run_path)
    assert pd.read_parquet(run_path / "data/persons.parquet").image_path.isna().all()
    assert len(_rejected(run_path)) == 0
    (tmp_path / "a.png").write_bytes(png_bytes())  # now images are named after people: b's is missing
    with pytest.raises(DataValidationError, match=r"row 2 \(person_id 'b'\), column 'image_path': no image file"):
        run_pipeline(_raw(compose_cfg, bios), tmp_path / "second")
