"""A model-free image measurement: each face as a small grey thumbnail.

Written by hand because it is a few lines of PIL: the image is checked and converted
exactly as for CLIP (:func:`personax.data.images.check_image`, :func:`to_rgb`), then
box-filtered to ``side x side`` grey values in [0, 1]. It is a second, independent
measurement of the same face for the CRL image modality (a fixed function of the
pixels, so unlike random-weight CLIP it keeps geometry such as a mouth's curve).

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.full((8, 8, 3), 255, dtype=np.uint8)).save(folder / "a.png")
    >>> pixels, reasons = thumbnails([str(folder / "a.png"), None], side=4, progress=False)
    >>> pixels.shape, float(pixels[0].max()), bool(np.isnan(pixels[1]).all()), reasons
    ((2, 16), 1.0, True, [None, 'no image'])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from personax.data.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, check_image, to_rgb


def thumbnails(paths: Sequence[str | None], *, side: int = 32, max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True) -> tuple[np.ndarray, list[str | None]]:
    """Grey ``side x side`` thumbnails, flattened: (n, side**2) float32, NaN rows where no usable image.

    Returns:
        The thumbnails and, per image, None or the reason it was skipped.
    """
    from tqdm.auto import tqdm

    if side < 1:
        raise ValueError(f"embeddings.pixels.side must be positive, got {side}")
    out = np.full((len(paths), side * side), np.nan, dtype=np.float32)
    reasons: list[str | None] = [None] * len(paths)
    for i, path in enumerate(tqdm(paths, desc="image pixels", unit="image", disable=not progress, leave=False)):
        if path is None or (isinstance(path, float) and np.isnan(path)):
            reasons[i] = "no image"
            continue
        file = Path(path)
        check = check_image(file.name, file.parent, max_bytes=max_bytes, max_pixels=max_pixels)
        if not check.ok:
            reasons[i] = check.reason
            continue
        with Image.open(file) as image:
            out[i] = grey_thumbnail(image, side=side)
    return out, reasons


def grey_thumbnail(image: Image.Image, *, side: int) -> np.ndarray:
    """One image as ``side x side`` box-filtered grey values in [0, 1], flattened (float32)."""
    grey = to_rgb(image).convert("L").resize((side, side), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32).reshape(-1) / 255.0
