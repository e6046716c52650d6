"""Reading bio tables and checking images: every bad file gets its own clear reason."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from personax.data.images import check_image
from personax.data.readers import apply_column_mapping, read_table
from personax.data.schema import DataValidationError


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    root.mkdir()
    (root / "good.png").write_bytes(png_bytes())
    (root / "empty.png").write_bytes(b"")
    (root / "corrupt.png").write_bytes(b"this is not an image at all" * 10)
    full = png_bytes(64, 64)
    (root / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "bomb.png").write_bytes(png_header_only(30_000, 30_000))
    (root / "big.png").write_bytes(png_header_only(7_000, 7_000))
    (tmp_path / "outside.png").write_bytes(png_bytes())
    os.symlink(tmp_path / "outside.png", root / "link.png")
    return root


def test_a_good_image_resolves_inside_the_root(image_root):
    check = check_image("good.png", image_root)
    assert check.ok and check.path == (image_root / "good.png").resolve() and (check.width, check.height) == (8, 8)


@pytest.mark.parametrize(
    ("relpath", "reason"),
    [
        ("../outside.png", "image path escapes the image root"),
        ("link.png", "image path escapes the image root"),
        ("/etc/hostname", "image path escapes the image root"),
        ("missing.png", "image file not found"),
        ("empty.png", "empty image file (0 bytes)"),
        ("corrupt.png", "not a readable image"),
        ("truncated.png", "unreadable or truncated image"),
        ("bomb.png", "possible decompression bomb"),
        ("big.png", "7000x7000 pixels > max_image_pixels=40000000"),
    ],
)
def test_bad_images_are_refused_with_a_reason(image_root, relpath, reason):
    check = check_image(relpath, image_root)
    assert not check.ok and check.path is None
    assert reason in check.reason


def test_file_size_limit(image_root):
    check = check_image("good.png", image_root, max_bytes=10)
    assert "image file too large" in check.reason


def test_csv_keeps_text_and_row_numbers(tmp_path):
    path = tmp_path / "bios.csv"
    path.write_bytes(b"person_id,height_cm,bio\np1,180,hello\np2,,caf\xe9\n")
    table = read_table(path)
    assert table.rows == [1, 2] and table.frame.height_cm.tolist()[0] == "180"
    assert pd.isna(table.frame.height_cm.tolist()[1]) and "\udce9" in table.frame.bio.tolist()[1]


def test_jsonl_bad_lines_are_problems_not_failures(tmp_path):
    path = tmp_path / "bios.jsonl"
    path.write_text('{"person_id": "a"}\n\n[1, 2]\n{"person_id": "b"\n{"person_id": "c"}\n')
    table = read_table(path)
    assert table.frame.person_id.tolist() == ["a", "c"] and table.rows == [1, 5]
    assert [(p.row, p.reason.split(":")[0]) for p in table.problems] == [
        (3, "a JSON object per line is expected"),
        (4, "not valid JSON"),
    ]


@pytest.mark.parametrize("name", ["bios.csv", "bios.jsonl", "bios.parquet"])
def test_empty_files_fail_clearly(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DataValidationError, match=rf"{name}: the file is empty"):
        read_table(path)


def test_header_only_csv_has_no_rows(tmp_path):
    path = tmp_path / "bios.csv"
    path.write_text("person_id,bio\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        read_table(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "bios.parquet"
    path.write_text("person_id\na\n")
    with pytest.raises(DataValidationError, match="not a readable parquet file"):
        read_table(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "bios.xlsx").write_text("x")
    with pytest.raises(DataValidationError, match="set data.format"):
        read_table(tmp_path / "bios.xlsx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_table(tmp_path / "nope.csv")


def test_column_mapping_renames_and_names_absent_columns():
    frame = pd.DataFrame({"ID": ["a"], "Height": ["180"], "junk": [1]})
    mapped = apply_column_mapping(frame, {"person_id": "ID", "height_cm": "Height"}, ["junk"], source="f.csv")
    assert list(mapped.columns) == ["person_id", "height_cm"]
    with pytest.raises(DataValidationError, match=r"mapped columns \['Weight'\] are not in the file"):
        apply_column_mapping(frame, {"weight_kg": "Weight"}, source="f.csv")
