"""Issue 13 soak test: 200 hostile rows from a fixed seed; none is lost, none crashes the ingest.

Every row of the generated bio table must end either in ``data/persons.parquet``
or in ``data/rejected.parquet`` with a reason, each kind of hostility in the place
its kind calls for, and no file outside the image root may be opened. The kinds
cover encodings, truncated and overlong rows, bad numbers, bad images and
hostile paths (``..``, absolute paths, symlinks out of the root, symlink loops,
a FIFO, a device, NUL bytes). Seed 13; about 3 s on two cores.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from personax.data.schema import DataValidationError
from personax.pipeline import run_pipeline
from tests.data.test_readers_images import png_bytes, png_header_only

SEED = 13
ROWS = 200
HEADER = ["person_id", "name", "birth_year", "birth_month", "birth_day", "height_cm", "weight_kg", "gender", "bio",
          "image_path"]

# kind -> where the row must end: "rejected" (the row), "image" (kept with its image), "no image" (kept, image refused)
KINDS = {
    # encodings
    "latin1_bio": "rejected", "utf16_name": "rejected", "undecodable_path": "rejected", "undecodable_id": "rejected",
    "nul_in_bio": "image",
    "bom_in_name": "image", "rtl_control_name": "image", "quoted_newline_bio": "image",
    # truncations and row shape
    "truncated_row": "rejected", "extra_fields": "rejected", "empty_id": "rejected", "duplicate_id": "rejected",
    # numbers
    "nan_height": "rejected", "inf_weight": "rejected", "huge_int_year": "rejected", "text_in_number": "rejected",
    "negative_height": "rejected", "impossible_date": "rejected", "comma_decimal": "rejected",
    "hex_number": "rejected",
    # images
    "truncated_png": "no image", "zero_bytes": "no image", "text_as_png": "no image", "bomb_header": "no image",
    "float_tiff_out_of_range": "no image", "png_16bit": "image", "rgba_png": "image", "gif_palette": "image",
    "jpeg_cmyk": "image",
    # paths
    "dotdot": "no image", "absolute_outside": "no image", "symlink_out": "no image", "symlink_dir_out": "no image",
    "symlink_loop": "no image", "nul_in_path": "no image", "missing_file": "no image", "long_name": "no image",
    "directory": "no image", "fifo": "no image", "device": "no image", "absolute_inside": "image",
    "dotdot_back_inside": "image", "good": "image",
}

_AUDIT: dict[str, list] = {"active": [], "opened": []}


def _audit(event: str, args: tuple) -> None:
    if _AUDIT["active"] and event in ("open", "os.listdir", "os.scandir") and args and args[0] is not None:
        _AUDIT["opened"].append(os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else "")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while a soak run is active


def _quote(field: bytes) -> bytes:
    if any(c in field for c in (b",", b'"', b"\n", b"\r")):
        return b'"' + field.replace(b'"', b'""') + b'"'
    return field


def _image_bytes(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "png_16bit":
        Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(buffer, format="PNG")
    elif kind == "rgba_png":
        Image.new("RGBA", (8, 8), (200, 10, 10, 100)).save(buffer, format="PNG")
    elif kind == "gif_palette":
        Image.new("P", (8, 8), 3).save(buffer, format="GIF")
    elif kind == "jpeg_cmyk":
        Image.new("CMYK", (8, 8), (0, 128, 255, 0)).save(buffer, format="JPEG")
    elif kind == "float_tiff_out_of_range":
        Image.fromarray(np.full((8, 8), -5.0, dtype=np.float32)).save(buffer, format="TIFF")
    elif kind == "truncated_png":
        return png_bytes(16, 16)[:60]
    elif kind == "zero_bytes":
        return b""
    elif kind == "text_as_png":
        return b"this is not an image\n"
    elif kind == "bomb_header":
        return png_header_only(30_000, 30_000)
    else:
        return png_bytes()
    return buffer.getvalue()


# Faults that only replace fields of the row (kind -> column -> raw bytes).
_FIELD_FAULTS = {
    "latin1_bio": {"bio": "Café résumé".encode("latin-1")},
    "utf16_name": {"name": "Zoë".encode("utf-16")},
    "undecodable_path": {"image_path": b"caf\xe9.png"},
    "nul_in_bio": {"bio": b"before\x00after"},
    "bom_in_name": {"name": "\ufeffPerson".encode()},
    "rtl_control_name": {"name": "\u202eevil\u202c".encode()},
    "quoted_newline_bio": {"bio": b'Line one,\nline "two"\r\nthree'},
    "empty_id": {"person_id": b""},
    "duplicate_id": {"person_id": b"s000"},
    "nan_height": {"height_cm": b"NaN"},
    "inf_weight": {"weight_kg": b"1e999"},
    "huge_int_year": {"birth_year": b"9" * 401},
    "text_in_number": {"height_cm": b"12abc"},
    "negative_height": {"height_cm": b"-170"},
    "impossible_date": {"birth_month": b"2", "birth_day": b"30"},
    "comma_decimal": {"weight_kg": b"72,5"},
    "hex_number": {"birth_year": b"0x7c6"},
}


def make_hostile_inputs(base: Path, *, seed: int = SEED, rows: int = ROWS) -> tuple[Path, Path, list[str]]:
    """Writes ``base/bios.csv``, the image root ``base/root`` and secrets in ``base/outside``; returns kinds."""
    rng = np.random.default_rng(seed)
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_bytes())
    (outside / "dir").mkdir()
    (outside / "dir" / "secret.png").write_bytes(png_bytes())
    (root / "sub").mkdir()
    names = list(KINDS)
    kinds = ["good"] + [names[k % len(names)] for k in rng.permutation(rows - 1)]
    lines = [b",".join(h.encode() for h in HEADER)]
    for i, kind in enumerate(kinds):
        pid = f"s{i:03d}"
        year, month, day = (int(rng.integers(1940, 2005)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
        row = {
            "person_id": pid.encode(), "name": f"Person {i}".encode(), "birth_year": str(year).encode(),
            "birth_month": str(month).encode(), "birth_day": str(day).encode(),
            "height_cm": f"{rng.uniform(150, 200):.1f}".encode(), "weight_kg": f"{rng.uniform(45, 120):.1f}".encode(),
            "gender": rng.choice([b"female", b"male"]), "bio": f"Bio of person {i}.".encode(),
            "image_path": f"{pid}.png".encode(),
        }
        image = _image_bytes(kind)
        (root / f"{pid}.png").write_bytes(image)
        row.update(_FIELD_FAULTS.get(kind, {}))
        if kind == "undecodable_id":
            row["person_id"] = pid.encode() + b"\xff\xfe"
        elif kind == "dotdot":
            row["image_path"] = b"../outside/secret.png"
        elif kind == "absolute_outside":
            row["image_path"] = os.fsencode(outside / "secret.png")
        elif kind == "symlink_out":
            (root / f"{pid}.png").unlink()
            os.symlink(outside / "secret.png", root / f"{pid}.png")
        elif kind == "symlink_dir_out":
            os.symlink(outside / "dir", root / f"{pid}_dir")
            row["image_path"] = f"{pid}_dir/secret.png".encode()
        elif kind == "symlink_loop":
            (root / f"{pid}.png").unlink()
            os.symlink(f"{pid}.png", root / f"{pid}.png")
        elif kind == "nul_in_path":
            row["image_path"] = f"{pid}\x00.png".encode()
        elif kind == "missing_file":
            row["image_path"] = f"missing_{pid}.png".encode()
        elif kind == "long_name":
            row["image_path"] = b"x" * 300 + b".png"
        elif kind == "directory":
            row["image_path"] = b"sub"
        elif kind == "fifo":
            (root / f"{pid}.png").unlink()
            os.mkfifo(root / f"{pid}.png")  # reading it would block forever
        elif kind == "device":
            row["image_path"] = b"/dev/zero"
        elif kind == "absolute_inside":
            row["image_path"] = os.fsencode(root / f"{pid}.png")
        elif kind == "dotdot_back_inside":
            row["image_path"] = f"sub/../{pid}.png".encode()
        fields = [_quote(row[h]) for h in HEADER]
        if kind == "truncated_row":
            fields = fields[: int(rng.integers(1, len(HEADER)))]
        elif kind == "extra_fields":
            fields += [b"extra"] * int(rng.integers(1, 4))
        lines.append(b",".join(fields))
    bios = base / "bios.csv"
    bios.write_bytes(b"\n".join(lines) + b"\n")
    return bios, root, kinds


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and symlinks")
def test_soak_200_hostile_rows_none_lost_none_crashes_nothing_outside_the_root_read(compose_cfg, tmp_path):
    bios, root, kinds = make_hostile_inputs(tmp_path)
    assert set(kinds) == set(KINDS)  # every kind is in the sample
    run_path = tmp_path / "run"
    cfg = compose_cfg(["data=raw", f"data.bios={bios}", f"data.image_root={root}", "data.strict=false"])
    _AUDIT["opened"].clear()
    _AUDIT["active"].append(True)
    try:
        run_pipeline(cfg, run_path)
    finally:
        _AUDIT["active"].clear()
    assert any(p.startswith(str(root)) for p in _AUDIT["opened"])  # the hook sees the images being read
    outside = str((tmp_path / "outside").resolve())
    leaked = [p for p in _AUDIT["opened"] if p.startswith(outside) or p.startswith("/dev/zero")]
    assert not leaked, leaked

    persons = pd.read_parquet(run_path / "data/persons.parquet")
    rejected = pd.read_parquet(run_path / "data/rejected.parquet")
    assert (rejected.reason.str.len() > 0).all()
    rejected_rows = set(rejected.row[rejected.action == "row rejected"])
    image_problems = dict(zip(rejected.row[rejected.action != "row rejected"], rejected.reason[rejected.action != "row rejected"]))
    kept = persons.set_index("person_id")
    assert len(persons) + len(rejected_rows) == ROWS  # no row lost, none counted twice
    for i, kind in enumerate(kinds):
        row, pid = i + 1, f"s{i:03d}"
        fate = KINDS[kind]
        if fate == "rejected":
            assert row in rejected_rows, (row, kind)
            continue
        assert row not in rejected_rows and pid in kept.index, (row, kind)
        image = kept.loc[pid, "image_path"]
        if fate == "image":
            assert not pd.isna(image) and row not in image_problems, (row, kind, image_problems.get(row))
            assert Path(image).resolve().is_relative_to(root.resolve())
        else:
            assert pd.isna(image) and row in image_problems, (row, kind)

    # Strict: the same input is one DataValidationError naming rows, nothing else.
    with pytest.raises(DataValidationError, match=r"bios.csv row \d+"):
        run_pipeline(compose_cfg(["data=raw", f"data.bios={bios}", f"data.image_root={root}"]), tmp_path / "strict")


JSONL_KINDS = {
    "good": "image", "invalid_json": "rejected", "not_an_object": "rejected", "int_401_digits": "rejected",
    "int_5000_digits": "rejected", "deep_nesting": "rejected", "float_id": "image", "fractional_id": "rejected",
    "null_id": "rejected", "bool_id": "rejected", "bool_height": "rejected",
    "nan_literal": "image",  # json.dumps writes a missing float as NaN: read as missing, like a parquet NaN
    "object_as_bio": "rejected", "array_as_name": "rejected", "invalid_utf8_in_string": "rejected",
    "number_as_image_path": "no image", "escaped_nul_in_path": "no image", "dotdot_path": "no image",
    "misspelt_key": "rejected",
}


def test_soak_jsonl_hostile_lines_each_end_in_a_table(compose_cfg, tmp_path):
    rng = np.random.default_rng(SEED + 1)
    root = tmp_path / "root"
    root.mkdir()
    names = list(JSONL_KINDS)
    kinds = ["good"] + [names[k % len(names)] for k in rng.permutation(99)]
    lines = []
    for i, kind in enumerate(kinds):
        pid = f"j{i:03d}"
        (root / f"{pid}.png").write_bytes(png_bytes())
        record = {"person_id": pid, "height_cm": round(float(rng.uniform(150, 200)), 1), "bio": "b",
                  "image_path": f"{pid}.png"}
        raw = None
        if kind == "invalid_json":
            raw = b'{"person_id": "' + pid.encode() + b'", "height_cm": }'
        elif kind == "not_an_object":
            raw = b'["' + pid.encode() + b'"]'
        elif kind == "int_401_digits":
            raw = b'{"person_id": "' + pid.encode() + b'", "height_cm": ' + b"9" * 401 + b"}"
        elif kind == "int_5000_digits":
            raw = b'{"person_id": "' + pid.encode() + b'", "height_cm": ' + b"9" * 5000 + b"}"
        elif kind == "deep_nesting":
            raw = b'{"person_id": "' + pid.encode() + b'", "bio": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        elif kind == "float_id":
            record["person_id"] = 10_000.0 + i
            (root / f"{10_000 + i}.png").write_bytes(png_bytes())
            record["image_path"] = f"{10_000 + i}.png"
        elif kind == "fractional_id":
            record["person_id"] = i + 0.5
        elif kind == "null_id":
            record["person_id"] = None
        elif kind == "bool_id":
            record["person_id"] = True
        elif kind == "bool_height":
            record["height_cm"] = True
        elif kind == "nan_literal":
            raw = b'{"person_id": "' + pid.encode() + b'", "height_cm": NaN, "image_path": "' + pid.encode() + b'.png"}'
        elif kind == "object_as_bio":
            record["bio"] = {"text": "nested"}
        elif kind == "array_as_name":
            record["name"] = ["a", "b"]
        elif kind == "invalid_utf8_in_string":
            raw = b'{"person_id": "' + pid.encode() + b'", "bio": "caf\xe9"}'
        elif kind == "number_as_image_path":
            record["image_path"] = 5
        elif kind == "escaped_nul_in_path":
            record["image_path"] = f"{pid}\u0000.png"
        elif kind == "misspelt_key":
            record["heigth_cm"] = record.pop("height_cm")
        elif kind == "dotdot_path":
            record["image_path"] = "../../etc/passwd"
        lines.append(raw if raw is not None else __import__("json").dumps(record).encode())
    bios = tmp_path / "bios.jsonl"
    bios.write_bytes(b"\n".join(lines) + b"\n")
    run_path = tmp_path / "run"
    run_pipeline(compose_cfg(["data=raw", f"data.bios={bios}", f"data.image_root={root}", "data.strict=false"]),
                 run_path)
    persons = pd.read_parquet(run_path / "data/persons.parquet")
    rejected = pd.read_parquet(run_path / "data/rejected.parquet")
    rejected_rows = set(rejected.row[rejected.action == "row rejected"])
    image_problems = set(rejected.row[rejected.action != "row rejected"])
    assert len(persons) + len(rejected_rows) == len(kinds)
    kept = set(persons.person_id)
    for i, kind in enumerate(kinds):
        line, fate = i + 1, JSONL_KINDS[kind]
        pid = str(10_000 + i) if kind == "float_id" else f"j{i:03d}"
        if fate == "rejected":
            assert line in rejected_rows, (line, kind)
        else:
            assert pid in kept and line not in rejected_rows, (line, kind)
            assert (line in image_problems) == (fate == "no image"), (line, kind)
