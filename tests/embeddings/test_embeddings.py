"""Embeddings: tiny random open_clip (no downloads), offline MiniLM, cache, bad images, privacy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from personax.data.synthetic import make_cohort
from personax.embeddings import (
    EmbeddingCache,
    PrivacyTransform,
    clip_text,
    embed_images,
    embed_texts,
    load_clip,
    save_checkpoint,
    sentence_transformer,
    zero_shot_face_attributes,
)
from personax import independence
from personax.pipeline import run_pipeline


@pytest.fixture(scope="module")
def clip():
    return load_clip(seed=0)


@pytest.fixture(scope="module")
def minilm():
    return sentence_transformer()


@pytest.fixture
def faces(tmp_path: Path) -> list[str]:
    cohort = make_cohort(12, kind="celeb", seed=0)
    paths = []
    for pid, face in zip(cohort.table.person_id, cohort.faces):
        path = tmp_path / f"{pid}.png"
        Image.fromarray(face).save(path)
        paths.append(str(path))
    return paths


def test_images_embed_skip_bad_files_and_hit_the_cache(clip, faces, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image" * 20)
    paths = [*faces, str(corrupt), str(tmp_path / "missing.png"), None]
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    first = embed_images(paths, clip, cache, batch_size=5, progress=False)
    assert first.vectors.shape == (15, 64) and first.encoded == 13
    assert np.isfinite(first.vectors[:12]).all() and np.isnan(first.vectors[12:]).all()
    assert np.allclose(np.linalg.norm(first.vectors[:12], axis=1), 1.0, atol=1e-5)
    assert first.reasons[12] == "not a readable image (unknown or corrupt format)"
    assert first.reasons[13:] == ["image file not found", "no image"]
    # A rerun reads every good image from the cache; a new image is the only one encoded.
    again = embed_images(paths, clip, cache, progress=False)
    assert again.encoded == 1  # only the corrupt file is retried
    np.testing.assert_array_equal(again.vectors[:12], first.vectors[:12])
    Image.open(faces[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "new.png")
    grown = embed_images([*faces, str(tmp_path / "new.png")], clip, cache, progress=False)
    assert grown.encoded == 1 and cache.count(f"{clip.key}|normalize=True") == 13


def test_checkpoint_reloads_to_identical_outputs(clip, faces, tmp_path):
    path = save_checkpoint(clip, tmp_path / "tiny.safetensors")
    reloaded = load_clip(checkpoint=path)
    assert not reloaded.random_weights and reloaded.key.startswith("open_clip/personax-tiny-clip/ckpt-")
    a = embed_images(faces, clip, progress=False).vectors
    b = embed_images(faces, reloaded, progress=False).vectors
    np.testing.assert_array_equal(a, b)
    other = embed_images(faces, load_clip(seed=1), progress=False).vectors
    assert not np.allclose(a, other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clip(checkpoint=tmp_path / "absent.safetensors")


def test_minilm_is_offline_cached_and_meaningful(minilm, tmp_path):
    texts = ["She is outgoing and loves parties.", "He is sociable and talkative at events.",
             "He plans every project carefully.", None]
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    result = embed_texts(texts, minilm, cache, progress=False)
    assert result.vectors.shape == (4, 384) and np.isnan(result.vectors[3]).all() and result.encoded == 3
    v = result.vectors / np.linalg.norm(result.vectors, axis=1, keepdims=True)
    assert v[0] @ v[1] > v[0] @ v[2]  # two extraverted descriptions are closer than a conscientious one
    assert embed_texts(texts, minilm, cache, progress=False).encoded == 0


def test_clip_text_tower_and_zero_shot_attributes(clip, faces):
    text = embed_texts(["a face", "a smiling face"], clip_text(clip), progress=False)
    assert text.vectors.shape == (2, 64)
    images = embed_images(faces, clip, progress=False).vectors
    scores = zero_shot_face_attributes(np.vstack([images, np.full((1, 64), np.nan)]), clip)
    assert set(scores.Big_Nose.dropna().unique()) <= {-1, 1} and scores.Big_Nose.isna().tolist()[-1]
    assert scores.Big_Nose_prob.iloc[:-1].between(0, 1).all()


def test_privacy_transform_is_invertible_and_keeps_structure():
    rng = np.random.default_rng(0)
    n, d = 300, 6
    x = rng.normal(size=(n, d))
    dependent = np.tanh(x.sum(axis=1) / np.sqrt(d)) + 0.3 * rng.normal(size=n)
    independent = rng.normal(size=n)
    rotation_only = PrivacyTransform.from_seed(d, seed=7, elementwise=False)
    z = rotation_only.transform(x)
    np.testing.assert_allclose(np.linalg.norm(z[:, None] - z[None], axis=-1),
                               np.linalg.norm(x[:, None] - x[None], axis=-1), atol=1e-9)
    full = PrivacyTransform.from_seed(d, seed=7)
    np.testing.assert_allclose(full.inverse(full.transform(x)), x, atol=1e-9)
    assert not np.allclose(full.transform(x), x)
    assert not np.allclose(PrivacyTransform.from_seed(d, seed=8).rotation, full.rotation)
    # Independence results on the transformed embedding match those on the original (alpha 0.05).
    # KCI with the median width: causal-learn's default width rule has little power on 6-d inputs.
    for y, expect_dependent in ((dependent, True), (independent, False)):
        for transformed in (x, rotation_only.transform(x), full.transform(x)):
            result = independence.test_pair(transformed, y, test="kci", est_width="median")
            assert (result.p_value < 0.05) == expect_dependent, (expect_dependent, result.p_value)


def test_stage_writes_outputs_caches_and_keeps_the_seed_secret(compose_cfg, run_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PERSONAX_PRIVACY_SEED", "s3cret-seed-value")
    overrides = ["stages=[ingest,embeddings]", "data.n=30", "embeddings.privacy.enabled=true"]
    run_pipeline(compose_cfg(overrides), run_path)
    image = np.load(run_path / "embeddings/image.npy")
    bio = np.load(run_path / "embeddings/text_bio.npy")
    assert image.shape == (30, 64) and bio.shape == (30, 384) and np.isfinite(image).all()
    pixels = np.load(run_path / "embeddings/image_pixels.npy")  # 32x32 grey thumbnails in [0, 1]
    assert pixels.shape == (30, 32 * 32) and 0.0 <= pixels.min() and pixels.max() <= 1.0 and pixels.std() > 0.05
    index = pd.read_parquet(run_path / "embeddings/image_index.parquet")
    assert index.status.eq("ok").all() and index.image_sha256.str.len().eq(64).all()
    private = np.load(run_path / "embeddings/private/image.npy")
    assert private.shape == image.shape and not np.allclose(private, image)
    info = json.loads((run_path / "embeddings/info.json").read_text())
    assert info["image"]["random_weights"] and "randomly initialised" in info["warnings"][0]
    assert not (run_path / "embeddings/face_attributes.parquet").exists()  # the table has them
    for file in run_path.rglob("*"):
        if file.is_file() and file.suffix in (".json", ".yaml", ".parquet", ".log"):
            assert b"s3cret-seed-value" not in file.read_bytes(), file
    # Forced rerun: everything comes from the cache.
    run_pipeline(compose_cfg([*overrides, "force=[embeddings]"]), run_path)
    info = json.loads((run_path / "embeddings/info.json").read_text())
    assert info["image"]["encoded_now"] == 0 and info["text"]["sources"]["bio"]["encoded_now"] == 0
    monkeypatch.delenv("PERSONAX_PRIVACY_SEED")
    with pytest.raises(ValueError, match="PERSONAX_PRIVACY_SEED"):
        run_pipeline(compose_cfg([*overrides, "force=[embeddings]"]), run_path)


def test_stage_scores_face_attributes_when_the_table_has_none(compose_cfg, run_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONAX_CACHE_DIR", str(tmp_path / "cache"))
    cfg = compose_cfg(["stages=[ingest,embeddings]", "data.n=20", "data.dataset=athlete", "embeddings.text.enabled=false"])
    run_pipeline(cfg, run_path)
    scores = pd.read_parquet(run_path / "embeddings/face_attributes.parquet")
    assert len(scores) == 20 and scores.weights.eq("random (meaningless)").all()


def test_worker_processes_give_the_same_vectors(clip, faces):
    inline = embed_images(faces, clip, batch_size=4, progress=False).vectors
    workers = embed_images(faces, clip, batch_size=4, num_workers=1, progress=False).vectors
    np.testing.assert_allclose(inline, workers, atol=1e-6)
