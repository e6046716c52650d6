"""Reading users' bio tables (CSV, TSV, JSONL, parquet) without losing row positions.

Values come back as Python objects (text stays text) so that validation can say
exactly which value was wrong. Bytes that are not UTF-8 are kept as lone
surrogates and reported per row by :func:`personax.data.schema.validate_persons`.
A CSV/TSV row with fewer or more fields than the header, a JSONL line that is not
valid JSON (or nests too deeply, or holds an integer too long to read) becomes a
:class:`Problem` for that row; the other rows are read.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bios.jsonl"
    >>> _ = path.write_text('{"person_id": "a"}\\nnot json\\n')
    >>> table = read_table(path)
    >>> list(table.frame.person_id), table.problems[0].row
    (['a'], 2)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Mapping, Sequence
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
    fields_per_row: bool = False  # JSONL: each record has its own keys (CSV: one header for all)


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
        frame, rows, problems = _read_delimited(path, "," if fmt == "csv" else "\t")
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
    return RawTable(frame=frame, rows=rows, problems=problems, source=source, fields_per_row=fmt == "jsonl")


def _read_delimited(path: Path, delimiter: str) -> tuple[pd.DataFrame, list[int], list[Problem]]:
    """Reads CSV/TSV with the standard library's reader, so that each record's field count is seen.

    pandas fills a short row with empty values silently; here a row whose field
    count differs from the header's is a problem of that row. Rows are numbered
    as data records (header excluded, blank lines skipped), the way pandas does.
    """
    source = str(path)
    text = path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    records: list[list[str | None]] = []
    rows: list[int] = []
    problems: list[Problem] = []
    row = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # e.g. a field over the csv module's size limit; the next record still reads
            if header is None:
                raise _fail(source, f"not a well-formed {delimiter!r}-separated file: {err} (line {reader.line_num})") from err
            row += 1
            problems.append(Problem(source, row, None, "", "", f"unreadable row (line {reader.line_num}): {err}"))
            continue
        if not record:
            continue
        if header is None:
            header = [name.strip() or f"Unnamed: {i}" for i, name in enumerate(record)]
            duplicated = sorted({name for name in header if header.count(name) > 1})
            if duplicated:
                raise _fail(source, f"the header names columns {duplicated} more than once")
            continue
        row += 1
        if len(record) != len(header):
            shown = delimiter.join(record)
            problems.append(Problem(
                source, row, None, "", shown[:60] + ("..." if len(shown) > 60 else ""),
                f"row has {len(record)} fields but the header has {len(header)} (line {reader.line_num}; "
                + ("truncated row?)" if len(record) < len(header) else "an unquoted delimiter in a value?)"),
            ))
            continue
        records.append([value if value != "" else None for value in record])
        rows.append(row)
    if header is None:
        raise _fail(source, "the file has no header row")
    frame = pd.DataFrame(records, columns=header, dtype=object) if records else pd.DataFrame(columns=header, dtype=object)
    return frame, rows, problems


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
            except (ValueError, RecursionError) as err:  # an integer over 4300 digits; nesting too deep
                reason = "JSON nested too deeply" if isinstance(err, RecursionError) else f"not readable JSON: {err}"
                problems.append(Problem(source, line_number, None, "", text[:60], reason))
                continue
            if not isinstance(record, dict):
                problems.append(Problem(source, line_number, None, "", text[:60], "a JSON object per line is expected"))
                continue
            records.append(record)
            rows.append(line_number)
    frame = pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()
    return frame, rows, problems


def reject_stray_fields(table: RawTable, frame: pd.DataFrame, is_known: Callable[[str], bool]) -> pd.DataFrame:
    """JSONL: a field that only some records have and that is not a known column rejects those records.

    A misspelt key on one line (``heigth_cm``) costs that line, not the whole file.
    A field that every record has is a whole-file matter (left for validation to
    report with the hint to map or ignore it). Updates ``table.rows`` and
    ``table.problems``; returns the frame without those records and fields.

    Args:
        table: The table as read (its ``rows`` and ``problems`` are updated).
        frame: ``table.frame`` after column mapping (same rows).
        is_known: Whether a (mapped) column name is a known column.
    """
    if not table.fields_per_row or frame.empty:
        return frame
    present = frame.notna()
    stray = [c for c in frame.columns if not is_known(str(c)) and not present[c].all()]
    if not stray:
        return frame
    bad = present[stray].any(axis=1).to_numpy()
    for pos in bad.nonzero()[0]:
        fields = [c for c in stray if present.iloc[pos][c]]
        pid = frame.iloc[pos].get("person_id")
        table.problems.append(Problem(
            table.source, table.rows[pos], pid if isinstance(pid, str) else None, str(fields[0]), "",
            f"unexpected field(s) {fields} in this record (map them with data.columns or drop them with "
            "data.ignore_columns)"))
    table.rows = [row for row, drop in zip(table.rows, bad) if not drop]
    return frame.loc[~bad, [c for c in frame.columns if c not in stray]].reset_index(drop=True)


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
