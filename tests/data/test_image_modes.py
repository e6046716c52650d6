"""Issue 13 item 3: every image mode becomes the RGB picture it shows (no clipping to white)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personax.data.images import NEUTRAL_BACKGROUND, check_image, to_rgb
from personax.embeddings._clip import _ImageDataset


def _pixel(image: Image.Image) -> list[int]:
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    return np.asarray(rgb)[0, 0].tolist()


def test_16bit_grayscale_png_does_not_become_white(tmp_path: Path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # PIL decodes it as 16-bit
        assert _pixel(image) == [128, 128, 128]
    # The embeddings stage's loader goes through the same conversion.
    dataset = _ImageDataset([str(path)], preprocess=np.asarray, max_bytes=10**6, max_pixels=10**6)
    _, pixels, reason = dataset[0]
    assert reason is None and pixels[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("I;16", 65535, [255] * 3),
        ("I;16", 0, [0] * 3),
        ("I;16B", 257 * 10, [10] * 3),
        ("I;16L", 257 * 200, [200] * 3),
        ("I", 257 * 64, [64] * 3),  # 32-bit integer: how some decoders give 16-bit data
        ("F", 0.25, [64] * 3),  # float in [0, 1]
        ("F", 100.0, [100] * 3),  # float in [0, 255]
        ("L", 77, [77] * 3),
        ("1", 1, [255] * 3),
        ("RGB", (10, 20, 30), [10, 20, 30]),
        ("CMYK", (0, 255, 255, 0), [255, 0, 0]),  # pure red
    ],
)
def test_each_mode_is_scaled_by_its_value_range(mode, value, expected):
    assert _pixel(Image.new(mode, (3, 2), value)) == expected


def test_float_image_in_unit_range_is_scaled_not_truncated():
    image = Image.fromarray(np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3))
    assert np.asarray(to_rgb(image))[..., 0].ravel().tolist() == [0, 51, 102, 153, 204, 255]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("RGBA", (255, 255, 255, 0), list(NEUTRAL_BACKGROUND)),  # fully transparent white -> background
        ("RGBA", (200, 0, 0, 255), [200, 0, 0]),  # opaque stays
        ("RGBA", (0, 0, 0, 128), [64, 64, 64]),  # half-transparent black over grey
        ("LA", (255, 0), list(NEUTRAL_BACKGROUND)),
        ("LA", (30, 255), [30, 30, 30]),
    ],
)
def test_alpha_is_composited_on_a_neutral_grey(mode, value, expected):
    got = _pixel(Image.new(mode, (2, 2), value))
    assert np.abs(np.array(got) - expected).max() <= 1


def test_palette_with_a_transparent_entry_uses_the_background(tmp_path: Path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 255, 255, 10, 200, 30] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    with Image.open(path) as loaded:
        assert loaded.mode == "P"
        rgb = np.asarray(to_rgb(loaded))
    assert rgb[0, 0].tolist() == list(NEUTRAL_BACKGROUND) and rgb[0, 1].tolist() == [10, 200, 30]
    plain = Image.new("P", (1, 1))
    plain.putpalette([9, 8, 7] + [0] * 765)
    assert _pixel(plain) == [9, 8, 7]


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (Image.fromarray(np.full((2, 2), np.nan, dtype=np.float32)), "NaN or infinite"),
        (Image.fromarray(np.full((2, 2), 1000.0, dtype=np.float32)), "outside"),
        (Image.new("I", (2, 2), 70000), "outside 0..65535"),
    ],
)
def test_values_without_a_known_range_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        to_rgb(image)


def test_check_image_refuses_an_unconvertible_float_tiff(tmp_path: Path):
    Image.fromarray(np.full((4, 4), -5.0, dtype=np.float32)).save(tmp_path / "f.tif")
    check = check_image("f.tif", tmp_path)
    assert not check.ok and "cannot be converted to RGB" in check.reason
