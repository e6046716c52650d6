"""Reading users' bio tables (CSV, TSV, JSONL, parquet) without losing row positions.

Values come back as Python objects (text stays text) so that validation can say
exactly which value was wrong. Bytes that are not UTF-8 are kept as lone
surrogates and reported per row by :func:`personax.data.schema.validate_persons`.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bios.jsonl"
    >>> _ = path.write_text('{"person_id": "a"}\\nnot json\\n')
    >>> table = read_table(path)
    >>> list(table.frame.person_id), table.problems[0].row
    (['a'], 2)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from personax.data.schema import DataValidationError, Problem

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclasses.dataclass
class RawTable:
    """A table as read: object columns, each row's number in the file, parse problems."""

    frame: pd.DataFrame
    rows: list[int]
    problems: list[Problem]
    source: str


def _fail(source: str, reason: str, hint: str = "") -> DataValidationError:
    return DataValidationError([Problem(source, 0, None, "", "", reason)], hint=hint)


def read_table(path: str | Path, fmt: str = "auto") -> RawTable:
    """Reads a bio table.

    Args:
        path: The file.
        fmt: "csv", "tsv", "jsonl", "parquet" or "auto" (by suffix).

    Raises:
        FileNotFoundError: No such file.
        DataValidationError: Empty file, no data rows, or a file that is not of
            its format (the message names the file).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"bio table {path} does not exist")
    if fmt == "auto":
        fmt = FORMATS.get(path.suffix.lower(), "")
        if not fmt:
            raise _fail(source, f"cannot tell the format from suffix {path.suffix!r}; set data.format to one of "
                                f"{sorted(set(FORMATS.values()))}")
    if path.stat().st_size == 0 or (fmt != "parquet" and not path.read_bytes().strip()):
        raise _fail(source, "the file is empty")
    if fmt in ("csv", "tsv"):
        try:
            frame = pd.read_csv(
                path,
                sep="," if fmt == "csv" else "\t",
                dtype=object,
                keep_default_na=False,
                na_values=[""],
                encoding="utf-8",
                encoding_errors="surrogateescape",
            )
        except pd.errors.ParserError as err:
            raise _fail(source, f"not a well-formed {fmt.upper()} file: {err}") from err
        rows = list(range(1, len(frame) + 1))
        problems: list[Problem] = []
    elif fmt == "jsonl":
        frame, rows, problems = _read_jsonl(path)
    elif fmt == "parquet":
        try:
            frame = pd.read_parquet(path).astype(object)
        except Exception as err:  # pyarrow raises several types for a non-parquet file
            raise _fail(source, f"not a readable parquet file: {err}") from err
        rows = list(range(1, len(frame) + 1))
        problems = []
    else:
        raise _fail(source, f"unknown format {fmt!r}; use one of {sorted(set(FORMATS.values()))}")
    if len(frame) == 0 and not problems:
        raise _fail(source, "the file has no data rows")
    return RawTable(frame=frame, rows=rows, problems=problems, source=source)


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, list[int], list[Problem]]:
    records, rows, problems = [], [], []
    source = str(path)
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", "surrogateescape").strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                problems.append(Problem(source, line_number, None, "", text[:60], f"not valid JSON: {err.msg}"))
                continue
            if not isinstance(record, dict):
                problems.append(Problem(source, line_number, None, "", text[:60], "a JSON object per line is expected"))
                continue
            records.append(record)
            rows.append(line_number)
    frame = pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()
    return frame, rows, problems


def apply_column_mapping(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None,
    ignore_columns: Sequence[str] = (),
    *,
    source: str,
) -> pd.DataFrame:
    """Renames file columns to canonical names and drops ignored ones.

    Args:
        frame: The table as read.
        columns: canonical name -> column name in the file.
        ignore_columns: File columns to drop.
        source: File name for errors.

    Raises:
        DataValidationError: A mapped column is not in the file.
    """
    columns = dict(columns or {})
    absent = sorted(v for v in columns.values() if v not in frame.columns)
    if absent:
        raise _fail(
            source,
            f"mapped columns {absent} are not in the file (columns present: {list(frame.columns)})",
            hint="Fix data.columns (canonical_name: column_in_file).",
        )
    renamed = frame.drop(columns=[c for c in ignore_columns if c in frame.columns])
    return renamed.rename(columns={file_col: canonical for canonical, file_col in columns.items()})
