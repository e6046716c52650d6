"""Safe checks of users' face images, and their mode-aware conversion to 8-bit RGB.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> check_image("../etc/passwd", root).reason
    'image path escapes the image root'
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_BYTES = 20_000_000
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels; PIL's own bomb guard is ~89 MP
# Transparent pixels are shown on mid grey: neither white nor black, so transparency does not
# look like a bright or a dark face to the image model.
NEUTRAL_BACKGROUND = (128, 128, 128)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


def to_rgb(image: Image.Image, background: tuple[int, int, int] = NEUTRAL_BACKGROUND) -> Image.Image:
    """Converts an image of any common mode to 8-bit RGB, scaling by the mode's value range.

    PIL's own ``convert("RGB")`` clips 16-bit and 32-bit integer images to 255
    (a 16-bit grayscale photo becomes white) and truncates float images, so
    those modes are scaled here instead:

    * ``I;16*`` (16-bit): ``round(v / 257)``, so 0..65535 maps onto 0..255;
    * ``I`` (32-bit integer, how some decoders give 16-bit data): taken as
      16-bit, values must lie in 0..65535;
    * ``F`` (float): values in [0, 1] are scaled by 255, values in [0, 255] kept;
    * alpha modes (``LA``, ``RGBA``, ``PA``, palette or grey with a transparent
      colour): composited on ``background`` (mid grey by default);
    * ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``RGB``: PIL's conversion.

    Raises:
        ValueError: Values outside the ranges above, non-finite floats, or a mode
            PIL cannot turn into RGB.

    Example:
        >>> import numpy as np
        >>> grey16 = Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16))
        >>> grey16.mode, np.asarray(to_rgb(grey16))[0, 0].tolist()
        ('I;16', [128, 128, 128])
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"32-bit integer image with values {values.min()}..{values.max()} outside 0..65535; "
                "save it as an 8- or 16-bit image"
            )
        return _grey_to_rgb(np.round(values.astype(np.float32) / np.float32(257.0)))
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("float image with NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise ValueError(f"float image with values {low:g}..{high:g} outside [0, 1] and [0, 255]")
        return _grey_to_rgb(np.round(values * 255.0 if high <= 1.0 else values))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise ValueError(f"cannot convert image mode {mode!r} to RGB: {err}") from err


def _grey_to_rgb(values: np.ndarray) -> Image.Image:
    grey = np.clip(values, 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=-1))


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
    """``root / relpath`` with links resolved, or None if it leaves ``root``.

    Raises:
        ValueError: A NUL byte in the path.
        OSError, RuntimeError: A symlink loop (the type depends on the Python version).
    """
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

    Every failure (a NUL byte or a symlink loop in the path, a file that is not
    an image, a mode :func:`to_rgb` cannot convert) comes back as a reason; only
    a bug raises.

    Args:
        relpath: Path relative to ``root`` (absolute paths must also lie inside).
        root: The image root folder.
        max_bytes: Largest accepted file size.
        max_pixels: Largest accepted width x height.
    """
    if "\0" in os.fspath(relpath):
        return ImageCheck(None, "image path contains a NUL byte")
    try:
        path = resolve_inside(relpath, root)
    except RuntimeError as err:  # Python < 3.13 reports a symlink loop so
        return ImageCheck(None, f"image path cannot be resolved: {err}")
    except (OSError, ValueError) as err:
        return ImageCheck(None, f"image path cannot be resolved: {err.strerror if isinstance(err, OSError) else err}")
    if path is None:
        return ImageCheck(None, "image path escapes the image root")
    if _UNDECODED.search(str(path)):
        return ImageCheck(None, "image file name is not valid UTF-8")
    try:
        if not path.is_file():
            return ImageCheck(None, "image file not found")
        size = path.stat().st_size
    except OSError as err:
        return ImageCheck(None, f"image file cannot be read: {err.strerror or err}")
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
                try:
                    to_rgb(image)
                except ValueError as err:  # a mode or value range that cannot be shown as RGB
                    return ImageCheck(None, f"image cannot be converted to RGB: {err}")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return ImageCheck(None, f"image too large (possible decompression bomb): {err}")
    except UnidentifiedImageError:
        return ImageCheck(None, "not a readable image (unknown or corrupt format)")
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return ImageCheck(None, f"unreadable or truncated image: {err}")
    except Exception as err:  # noqa: BLE001 - decoders of hostile files raise many types
        return ImageCheck(None, f"image decoder failed: {type(err).__name__}: {err}")
    return ImageCheck(path, None, width, height)


_UNDECODED = re.compile(r"[\udc80-\udcff]")
