"""Safe checks of users' face images before anything decodes them for real.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> check_image("../etc/passwd", root).reason
    'image path escapes the image root'
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_BYTES = 20_000_000
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels; PIL's own bomb guard is ~89 MP


@dataclasses.dataclass(frozen=True)
class ImageCheck:
    """Outcome of :func:`check_image`: a resolved path, or the reason it was refused."""

    path: Path | None
    reason: str | None = None
    width: int = 0
    height: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


def resolve_inside(relpath: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path | None:
    """``root / relpath`` with links resolved, or None if it leaves ``root``."""
    root = Path(root).resolve()
    candidate = Path(relpath)
    candidate = (candidate if candidate.is_absolute() else root / candidate).resolve()
    return candidate if candidate.is_relative_to(root) else None


def check_image(
    relpath: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageCheck:
    """Checks that an image lies inside ``root``, is not empty or huge, and decodes.

    The pixel count is read from the header before any decoding, so a
    decompression bomb is refused without being expanded in memory.

    Args:
        relpath: Path relative to ``root`` (absolute paths must also lie inside).
        root: The image root folder.
        max_bytes: Largest accepted file size.
        max_pixels: Largest accepted width x height.
    """
    path = resolve_inside(relpath, root)
    if path is None:
        return ImageCheck(None, "image path escapes the image root")
    if not path.is_file():
        return ImageCheck(None, "image file not found")
    size = path.stat().st_size
    if size == 0:
        return ImageCheck(None, "empty image file (0 bytes)")
    if size > max_bytes:
        return ImageCheck(None, f"image file too large ({size} bytes > max_image_bytes={max_bytes})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return ImageCheck(
                        None,
                        f"image too large: {width}x{height} pixels > max_image_pixels={max_pixels} "
                        "(possible decompression bomb)",
                    )
                image.load()  # decodes fully: catches truncated files that verify() misses
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return ImageCheck(None, f"image too large (possible decompression bomb): {err}")
    except UnidentifiedImageError:
        return ImageCheck(None, "not a readable image (unknown or corrupt format)")
    except (OSError, SyntaxError, ValueError) as err:
        return ImageCheck(None, f"unreadable or truncated image: {err}")
    return ImageCheck(path, None, width, height)
