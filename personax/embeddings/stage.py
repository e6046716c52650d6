"""The ``embeddings`` stage: face images and texts to vectors, zero-shot face attributes, privacy transform.

Reads the person table (and, for a text source in the trait table, ``trait_scores``) and
every image it points at (fingerprinted by content, so a replaced image re-embeds); writes
the artifacts declared in :mod:`personax.artifacts`:

* ``image_embedding`` (n x d float32, NaN rows for skipped images) and ``image_index``
  (person_id, row, image_sha256, status: "ok" or the reason it was skipped);
* ``image_pixels`` (n x side² grey thumbnails, NaN rows for skipped images) when
  ``embeddings.pixels.enabled``: a model-free second measurement of each face;
* ``text_embedding[<source>]`` and ``text_index[<source>]`` for each text source
  (the bio by default);
* ``face_attributes`` when the table has no face attributes (zero-shot CLIP), which the
  independence stage then tests;
* ``private_embedding[<name>]`` when ``embeddings.privacy.enabled`` (seed from an
  environment variable);
* ``embedding_info``: models, weights, dimensions, and warnings such as random weights.

A cache shared across runs (``embeddings.cache_dir``) keys vectors by content hash and
model, so a rerun embeds only new images and texts, and a crash loses at most one batch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from personax.data.schema import FACE_ATTRIBUTES
from personax.embeddings._cache import EmbeddingCache
from personax.embeddings._clip import embed_images, load_clip, zero_shot_face_attributes
from personax.embeddings._pixels import thumbnails
from personax.embeddings._privacy import PrivacyTransform
from personax.embeddings._text import clip_text, embed_texts, sentence_transformer
from personax import artifacts as A
from personax.pipeline import RunDir

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_WARNING = (
    "CLIP weights are randomly initialised (no pretrained tag or checkpoint was given): image embeddings "
    "carry only low-level visual information, and zero-shot face attributes from them are meaningless. "
    "Give embeddings.image.checkpoint=/path/to/weights.safetensors for real ones."
)


def image_files(persons: pd.DataFrame, run_dir: RunDir) -> list[str | None]:
    """Each person's image file: relative paths are inside the run directory (synthetic faces)."""
    if "image_path" not in persons:
        return [None] * len(persons)
    files: list[str | None] = []
    for value in persons["image_path"]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            files.append(None)
        else:
            path = Path(str(value))
            files.append(str(path if path.is_absolute() else run_dir.path / path))
    return files


def run(config: DictConfig, run_dir: RunDir) -> dict[str, Any]:
    """Embeds the run's images and texts as configured in ``config.embeddings``."""
    options = config.embeddings
    persons = run_dir.read(A.PERSONS)
    cache = EmbeddingCache(Path(options.cache_dir).expanduser() / "embeddings.sqlite") if options.cache_dir else None
    info: dict[str, Any] = {"warnings": []}
    arrays: dict[str, np.ndarray] = {}
    clip = None
    image_vectors = None
    pixels = options.get("pixels") or {}
    if options.image.enabled or pixels.get("enabled", False):  # both read the images the table points at
        files = image_files(persons, run_dir)
        run_dir.input_files("images referenced by the person table",
                            {pid: f for pid, f in zip(persons.person_id, files) if f is not None})

    if options.image.enabled:
        image = options.image
        clip = load_clip(image.model, pretrained=image.pretrained, checkpoint=image.checkpoint,
                         seed=int(image.seed), device=options.device)
        result = embed_images(
            files, clip, cache,
            batch_size=int(image.batch_size), num_workers=int(image.num_workers), normalize=bool(image.normalize),
            max_bytes=int(image.max_image_bytes), max_pixels=int(image.max_image_pixels),
        )
        image_vectors = arrays["image"] = result.vectors
        run_dir.write(A.IMAGE_EMBEDDING, result.vectors)
        run_dir.write(A.IMAGE_INDEX, pd.DataFrame({"person_id": persons.person_id, "row": np.arange(len(persons)),
                                                   "image_sha256": result.hashes,
                                                   "status": [r or "ok" for r in result.reasons]}))
        skipped = [r for r in result.reasons if r and r != "no image"]
        info["image"] = {"model": clip.key, "random_weights": clip.random_weights, "dim": int(result.vectors.shape[1]),
                         "embedded": int(np.isfinite(result.vectors).all(axis=1).sum()), "encoded_now": result.encoded,
                         "skipped": len(skipped)}
        if clip.random_weights:
            info["warnings"].append(RANDOM_WEIGHTS_WARNING)
            log.warning(RANDOM_WEIGHTS_WARNING)
        for reason in skipped[:5]:
            log.warning("image skipped: %s", reason)

    if pixels.get("enabled", False):
        side = int(pixels.get("side", 32))
        values, _ = thumbnails(files, side=side, max_bytes=int(options.image.max_image_bytes),
                               max_pixels=int(options.image.max_image_pixels))
        run_dir.write(A.IMAGE_PIXELS, values)
        info["pixels"] = {"side": side, "images": int(np.isfinite(values).all(axis=1).sum())}

    if options.text.enabled and options.text.sources:
        text = options.text
        if text.encoder == "open_clip":
            if clip is None:
                raise ValueError("embeddings.text.encoder=open_clip needs embeddings.image.enabled=true (the same model)")
            encoder = clip_text(clip)
        elif text.encoder == "sentence-transformers":
            encoder = sentence_transformer(text.model, device=options.device, batch_size=int(text.batch_size))
        else:
            raise ValueError(f"embeddings.text.encoder must be sentence-transformers or open_clip, got {text.encoder!r}")
        info["text"] = {"model": encoder.key, "dim": encoder.dim, "sources": {}}
        for name, source in text.sources.items():
            table = A.artifact(str(source.table))
            if table not in (A.PERSONS, A.TRAIT_SCORES):
                raise ValueError(f"text source '{name}': table must be persons or trait_scores, got {source.table!r}")
            frame = persons if table is A.PERSONS else run_dir.read(table)
            if source.column not in frame.columns:
                raise KeyError(f"text source '{name}': column {source.column!r} not in {table.relpath()} "
                               f"(columns: {list(frame.columns)})")
            aligned = persons[["person_id"]].merge(frame[["person_id", source.column]], on="person_id", how="left")
            texts = [t if isinstance(t, str) else None for t in aligned[source.column]]
            result = embed_texts(texts, encoder, cache, desc=f"embedding {name}")
            arrays[f"text_{name}"] = result.vectors
            run_dir.write(A.TEXT_EMBEDDING, result.vectors, key=name)
            run_dir.write(A.TEXT_INDEX, pd.DataFrame({
                "person_id": persons.person_id, "row": np.arange(len(persons)), "text_sha256": result.hashes,
                "status": ["ok" if h else "no text" for h in result.hashes]}), key=name)
            info["text"]["sources"][name] = {"embedded": sum(h is not None for h in result.hashes),
                                             "encoded_now": result.encoded}

    zero_shot = options.face_attributes.zero_shot
    has_attributes = persons[list(FACE_ATTRIBUTES)].notna().any().any()
    if image_vectors is not None and (zero_shot is True or (zero_shot == "auto" and not has_attributes)):
        scores = zero_shot_face_attributes(image_vectors, clip)
        scores.insert(0, "person_id", persons.person_id.to_numpy())
        scores["weights"] = "random (meaningless)" if clip.random_weights else clip.key
        run_dir.write(A.FACE_ATTRIBUTE_SCORES, scores)
        info["face_attributes"] = {"zero_shot": True, "random_weights": clip.random_weights}

    if options.privacy.enabled:
        seed_text = os.environ.get(options.privacy.seed_env)
        if not seed_text:
            raise ValueError(f"embeddings.privacy.enabled=true needs the secret seed in the environment variable "
                             f"{options.privacy.seed_env} (it is never written to configs or outputs)")
        seed = int.from_bytes(__import__("hashlib").sha256(seed_text.encode()).digest()[:8], "little")
        for name, array in arrays.items():
            transform = PrivacyTransform.from_seed(array.shape[1], seed, elementwise=bool(options.privacy.elementwise))
            run_dir.write(A.PRIVATE_EMBEDDING, transform.transform(array).astype(np.float32), key=name)
        info["privacy"] = {"transformed": sorted(arrays), "elementwise": bool(options.privacy.elementwise)}

    run_dir.write(A.EMBEDDING_INFO, info)
    if cache:
        cache.close()
    return {k: v for k, v in info.items() if k != "warnings"} | {"warnings": len(info["warnings"])}
