"""Image embeddings and zero-shot face attributes with open_clip.

Weights come from a pretrained tag already in the user's local cache, a local
checkpoint file (``.safetensors`` preferred; ``.pt`` files are read with
``weights_only=True``), or a seeded random initialisation, which is what runs on a
fresh machine: random weights give real but semantically meaningless embeddings,
and every output built from them says so.

The package registers ``personax-tiny-clip`` (a 2-layer, 64-wide ViT and text
tower) with ``open_clip.add_model_config`` for tests and the demo.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from personax.data.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, check_image, to_rgb
from personax.data.schema import FACE_ATTRIBUTES
from personax.embeddings._cache import EmbeddingCache, sha256_bytes
from personax.pipeline import sha256_file

log = logging.getLogger(__name__)

TINY_CLIP = "personax-tiny-clip"
_CONFIG_DIR = Path(__file__).parent / "model_configs"

# (present, absent) wording per attribute for zero-shot scoring.
FACE_ATTRIBUTE_PROMPTS: dict[str, tuple[str, str]] = {
    "Arched_Eyebrows": ("arched eyebrows", "straight eyebrows"),
    "Big_Nose": ("a big nose", "a small nose"),
    "Pointy_Nose": ("a pointy nose", "a rounded nose"),
    "Bushy_Eyebrows": ("bushy eyebrows", "thin eyebrows"),
    "Big_Lips": ("big lips", "thin lips"),
    "Oval_Face": ("an oval face", "a round face"),
    "Double_Chin": ("a double chin", "a defined jawline"),
    "Receding_Hairline": ("a receding hairline", "a full hairline"),
    "Narrow_Eyes": ("narrow eyes", "wide open eyes"),
    "High_Cheekbones": ("high cheekbones", "flat cheekbones"),
}


def register_model_configs() -> None:
    """Makes personax's open_clip configs (``personax-tiny-clip``) known to open_clip."""
    import open_clip

    if TINY_CLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)


@dataclasses.dataclass
class ClipModel:
    """A loaded open_clip model.

    Attributes:
        model: The torch module (eval mode).
        preprocess: Image transform for the vision tower.
        tokenizer: Text tokenizer.
        key: Identifies architecture and weights (cache key).
        random_weights: True when no pretrained weights were loaded.
        device: Torch device name.
    """

    model: object
    preprocess: Callable
    tokenizer: Callable
    key: str
    random_weights: bool
    device: str = "cpu"


def load_clip(
    model_name: str = TINY_CLIP,
    *,
    pretrained: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> ClipModel:
    """Loads an open_clip model without any network access.

    Args:
        model_name: An open_clip architecture (``ViT-B-32``, ``personax-tiny-clip``, ...).
        pretrained: A pretrained tag whose weights are already in the local cache.
        checkpoint: A local checkpoint file; wins over ``pretrained``.
        seed: Seed of the random initialisation when neither is given.
        device: Torch device.

    Example:
        >>> clip = load_clip(seed=0)
        >>> clip.random_weights, clip.key
        (True, 'open_clip/personax-tiny-clip/random-seed0')
    """
    import open_clip
    import torch

    register_model_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model_name!r}; known: {open_clip.list_models()[:20]} ...")
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"CLIP checkpoint {path} does not exist")
        weights, weights_id = str(path), f"ckpt-{sha256_file(path)[:16]}"
    elif pretrained:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights must already be cached locally
        weights, weights_id = pretrained, f"pretrained-{pretrained}"
    else:
        weights, weights_id = None, f"random-seed{seed}"
        torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
    model.eval()
    return ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(model_name),
        key=f"open_clip/{model_name}/{weights_id}",
        random_weights=weights is None,
        device=device,
    )


def save_checkpoint(clip: ClipModel, path: str | os.PathLike[str]) -> Path:
    """Saves the weights as safetensors (loadable with ``load_clip(checkpoint=path)``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in clip.model.state_dict().items()}
    save_file(state, str(path))
    return path


class _ImageDataset:
    """Loads, checks and preprocesses images in DataLoader workers."""

    def __init__(self, paths: Sequence[str], preprocess: Callable, max_bytes: int, max_pixels: int):
        self.paths, self.preprocess = list(paths), preprocess
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image

        path = Path(self.paths[index])
        check = check_image(path.name, path.parent, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        if not check.ok:
            return index, None, check.reason
        with Image.open(path) as image:
            return index, self.preprocess(to_rgb(image)), None


def _collate(batch):
    return batch


@dataclasses.dataclass
class ImageEmbeddings:
    """Per input image: its vector (NaN row if skipped), content hash and skip reason."""

    vectors: np.ndarray
    hashes: list[str | None]
    reasons: list[str | None]
    encoded: int  # images actually run through the model (the rest came from the cache)


def embed_images(
    paths: Sequence[str | None],
    clip: ClipModel,
    cache: EmbeddingCache | None = None,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    normalize: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> ImageEmbeddings:
    """Embeds images, reusing cached vectors by content hash and model.

    Missing, empty, oversized, corrupt or truncated images get a NaN row and a
    reason; the others go on. Each encoded batch is committed to the cache at
    once, so an interrupted run loses at most one batch.

    Args:
        paths: Image paths (None where a person has no image).
        clip: A loaded model.
        cache: Optional cache.
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes (spawned) for decoding.
        normalize: L2-normalise the vectors (the CLIP convention).
        max_bytes: Largest accepted file.
        max_pixels: Largest accepted width x height.
        progress: Show a progress bar.
    """
    import torch
    from tqdm.auto import tqdm

    n = len(paths)
    hashes: list[str | None] = [None] * n
    reasons: list[str | None] = [None] * n
    for i, path in enumerate(paths):
        if path is None or (isinstance(path, float) and np.isnan(path)):
            reasons[i] = "no image"
            continue
        file = Path(path)
        if not file.is_file():
            reasons[i] = "image file not found"
        elif file.stat().st_size == 0:
            reasons[i] = "empty image file (0 bytes)"
        elif file.stat().st_size > max_bytes:
            reasons[i] = f"image file too large ({file.stat().st_size} bytes > max_image_bytes={max_bytes})"
        else:
            hashes[i] = sha256_bytes(file.read_bytes())
    model_key = f"{clip.key}|normalize={normalize}"
    found = cache.get_many(model_key, [h for h in hashes if h]) if cache else {}
    todo: dict[str, int] = {}  # hash -> first index with that content
    for i, digest in enumerate(hashes):
        if digest and digest not in found and digest not in todo:
            todo[digest] = i
    todo_indices = list(todo.values())
    dataset = _ImageDataset([paths[i] for i in todo_indices], clip.preprocess, max_bytes, max_pixels)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        multiprocessing_context="spawn" if num_workers > 0 else None,
    )
    bad_hashes: dict[str, str] = {}
    with tqdm(total=len(todo_indices), desc="embedding images", disable=not progress, leave=False) as bar:
        for batch in loader:
            good = [(j, tensor) for j, tensor, _ in batch if tensor is not None]
            for j, _, reason in batch:
                if reason is not None:
                    bad_hashes[hashes[todo_indices[j]]] = reason
            if good:
                with torch.no_grad():
                    images = torch.stack([t for _, t in good]).to(clip.device)
                    features = clip.model.encode_image(images, normalize=normalize).float().cpu().numpy()
                new = {hashes[todo_indices[j]]: features[k] for k, (j, _) in enumerate(good)}
                found.update(new)
                if cache:
                    cache.put_many(model_key, new)
            bar.update(len(batch))
    dim = next(iter(found.values())).shape[0] if found else int(clip.model.visual.output_dim)
    vectors = np.full((n, dim), np.nan, dtype=np.float32)
    for i, digest in enumerate(hashes):
        if digest in found:
            vectors[i] = found[digest]
        elif digest in bad_hashes:
            reasons[i] = bad_hashes[digest]
    return ImageEmbeddings(vectors=vectors, hashes=hashes, reasons=reasons, encoded=len(todo_indices))


def zero_shot_face_attributes(image_vectors: np.ndarray, clip: ClipModel) -> pd.DataFrame:
    """Scores the 10 face attributes from normalised image vectors with prompt pairs.

    Returns one column per attribute (+1 / -1, NA where the image is missing) and
    ``<attribute>_prob`` (probability of the "present" prompt). With random weights
    the result is meaningless; callers must say so.
    """
    import torch

    prompts = []
    for present, absent in FACE_ATTRIBUTE_PROMPTS.values():
        prompts += [f"a photo of a face with {present}", f"a photo of a face with {absent}"]
    with torch.no_grad():
        text = clip.model.encode_text(clip.tokenizer(prompts).to(clip.device), normalize=True).float().cpu().numpy()
        scale = float(clip.model.logit_scale.exp().item())
    logits = scale * (image_vectors @ text.T)  # n x 20
    out = pd.DataFrame(index=range(len(image_vectors)))
    for a, name in enumerate(FACE_ATTRIBUTES):
        pair = logits[:, 2 * a : 2 * a + 2]
        prob = 1.0 / (1.0 + np.exp(pair[:, 1] - pair[:, 0]))
        valid = np.isfinite(prob)
        out[name] = pd.array(np.where(valid, np.where(prob > 0.5, 1, -1), 0), dtype="Int8")
        out.loc[~valid, name] = pd.NA
        out[f"{name}_prob"] = prob
    return out
