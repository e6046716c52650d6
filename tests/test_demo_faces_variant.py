"""The demo's face ablations (experiments/demo_level2/faces_variant.py) change what they say, and
``run.py --faces`` runs them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from personax.data.synthetic import make_cohort
from personax.embeddings._pixels import grey_thumbnail, thumbnails

DEMO = Path(__file__).resolve().parents[1] / "experiments/demo_level2"
N, SEED = 40, 3


def _run(variant: str, run_dir: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The variant's person table, its thumbnails (image_pixels) and the thumbnails of its saved faces."""
    subprocess.run([sys.executable, str(DEMO / "faces_variant.py"), variant, f"seed={SEED}", f"data.n={N}",
                    "stages=[ingest,embeddings]", f"hydra.run.dir={run_dir}", "embeddings.cache_dir=null",
                    "embeddings.image.enabled=false", "embeddings.text.enabled=false"],
                   check=True, capture_output=True, text=True)
    persons = pd.read_parquet(run_dir / "data/persons.parquet")
    from_files, _ = thumbnails([str(run_dir / p) for p in persons.image_path], side=32, progress=False)
    return persons, np.load(run_dir / "embeddings/image_pixels.npy"), from_files


def _grey(faces: np.ndarray) -> np.ndarray:
    return np.stack([grey_thumbnail(Image.fromarray(face), side=32) for face in faces])


@pytest.mark.slow  # ~10 s: the ingest and thumbnail stages twice, in subprocesses
def test_each_face_variant_changes_what_it_says(tmp_path):
    drawn = _grey(make_cohort(N, kind="celeb", seed=SEED, images=True).faces)  # the default drawing

    second, pixels, files = _run("second_rendering", tmp_path / "second")
    assert np.allclose(files, drawn, atol=1e-6)  # the saved faces (so the CLIP embedding) are the defaults'
    # the thumbnail is another drawing of the same face: close, but not the same picture
    same_face = [np.corrcoef(pixels[i], files[i])[0, 1] for i in range(N)]
    other_face = [np.corrcoef(pixels[i], files[(i + 1) % N])[0, 1] for i in range(N)]
    assert max(same_face) < 0.999 and np.median(same_face) > np.median(other_face)

    plain, pixels, files = _run("plain", tmp_path / "plain")
    pd.testing.assert_frame_equal(plain, second)  # the same person table, whichever faces are drawn
    assert np.allclose(pixels, files)
    assert np.ptp(files[:, 0]) == 0 < np.ptp(drawn[:, 0])  # a corner pixel: one background for everyone


def test_run_py_launches_the_chosen_face_variant(monkeypatch):
    spec = importlib.util.spec_from_file_location("demo_level2_run", DEMO / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        raise RuntimeError("stop here")  # only the command matters

    monkeypatch.setattr(module.subprocess, "run", fake_run)
    for faces in ("drawn", "plain"):
        with pytest.raises(RuntimeError):
            module.run_seed(1000, ["crl.fit.contrastive=1"], faces)
    assert commands[0][1:3] == ["-m", "personax.run"]
    assert commands[1][1:3] == [str(DEMO / "faces_variant.py"), "plain"]
    assert all("seed=1000" in c and "crl.fit.contrastive=1" in c for c in commands)
