"""Embeddings: face images and texts to vectors, zero-shot face attributes, privacy transform.

Public surface:

* :func:`load_clip`, :func:`embed_images`, :func:`save_checkpoint`,
  :func:`zero_shot_face_attributes` — open_clip image side (no downloads: local
  checkpoints, locally cached pretrained tags, or seeded random weights);
* :func:`sentence_transformer`, :func:`clip_text`, :func:`embed_texts` — text side
  (offline all-MiniLM-L6-v2 by default);
* :class:`EmbeddingCache` — crash-safe vector cache keyed by content hash and model;
* :class:`PrivacyTransform` — seeded invertible transform of embeddings.

Example:
    >>> from personax.embeddings import PrivacyTransform
    >>> PrivacyTransform.from_seed(3, seed=1).rotation.shape
    (3, 3)
"""

from personax.embeddings._cache import EmbeddingCache
from personax.embeddings._clip import (
    TINY_CLIP,
    ClipModel,
    embed_images,
    load_clip,
    register_model_configs,
    save_checkpoint,
    zero_shot_face_attributes,
)
from personax.embeddings._privacy import PrivacyTransform
from personax.embeddings._text import TextEncoder, clip_text, embed_texts, sentence_transformer

__all__ = [
    "TINY_CLIP",
    "ClipModel",
    "EmbeddingCache",
    "PrivacyTransform",
    "TextEncoder",
    "clip_text",
    "embed_images",
    "embed_texts",
    "load_clip",
    "register_model_configs",
    "save_checkpoint",
    "sentence_transformer",
    "zero_shot_face_attributes",
]
