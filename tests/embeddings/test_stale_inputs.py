"""Resume never keeps stale inputs: images are inputs by content (issue 13, item 2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
from PIL import Image

from personax.pipeline import run_pipeline

PEOPLE = ["a1", "a2", "a3"]


def _cohort(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for pid in PEOPLE:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(faces / f"{pid}.png")
    bios = tmp_path / "bios.csv"
    pd.DataFrame({"person_id": PEOPLE, "name": ["A", "B", "C"], "bio": ["x", "y", "z"]}).to_csv(bios, index=False)
    return bios, faces


def _config(compose_cfg, bios, faces):
    return compose_cfg(["data=raw", f"data.bios={bios}", f"data.image_root={faces}", "stages=[ingest,embeddings]",
                        "embeddings.text.enabled=false", "embeddings.face_attributes.zero_shot=false"])


def _statuses(run_path):
    return {k: v["status"] for k, v in json.loads((run_path / "manifest.json").read_text())["stages"].items()}


def test_replacing_an_image_reembeds_it(compose_cfg, run_path, tmp_path):
    """Regression: persons.parquet is byte-identical, yet the image behind a row changed."""
    bios, faces = _cohort(tmp_path)
    cfg = _config(compose_cfg, bios, faces)
    run_pipeline(cfg, run_path)
    before = np.load(run_path / "embeddings/image.npy")
    assert run_pipeline(cfg, run_path) == {"ingest": "skipped", "embeddings": "skipped"}
    Image.new("RGB", (32, 32), (10, 200, 30)).save(faces / "a2.png")
    assert run_pipeline(cfg, run_path)["embeddings"] == "done"
    after = np.load(run_path / "embeddings/image.npy")
    assert np.allclose(before[[0, 2]], after[[0, 2]]) and not np.allclose(before[1], after[1])


def test_deleting_an_image_reruns_ingest(compose_cfg, run_path, tmp_path):
    """Regression: a deleted image left ingest "up to date", pointing at a missing file."""
    bios, faces = _cohort(tmp_path)
    cfg = _config(compose_cfg, bios, faces)
    cfg.data.strict = False
    run_pipeline(cfg, run_path)
    (faces / "a3.png").unlink()
    assert run_pipeline(cfg, run_path) == {"ingest": "done", "embeddings": "done"}
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    assert persons.set_index("person_id").image_path.isna().to_dict() == {"a1": False, "a2": False, "a3": True}
    assert "a3" in set(pd.read_parquet(run_path / "data/rejected.parquet").person_id)


def test_a_moved_run_directory_still_finds_its_faces(compose_cfg, tmp_path):
    """Regression: a run directory moved with mv embedded 0 of 30 images (absolute face paths)."""
    cfg = compose_cfg(["data.n=30", "data.image_size=32", "stages=[ingest,embeddings]",
                       "embeddings.text.enabled=false", "embeddings.face_attributes.zero_shot=false"])
    first = tmp_path / "first"
    run_pipeline(cfg, first)
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    assert run_pipeline(cfg, moved) == {"ingest": "skipped", "embeddings": "skipped"}
    cfg.force = ["embeddings"]
    run_pipeline(cfg, moved)
    info = json.loads((moved / "embeddings/info.json").read_text())
    assert info["image"]["embedded"] == 30
    assert _statuses(moved) == {"ingest": "done", "embeddings": "done"}
