"""The canonical person table: one schema for CelebPersona, AthlePersona and users' data.

Every ingest source ends in :func:`validate_persons`, which converts a table whose
columns already carry canonical names into canonical dtypes, derives the date
features, and splits it into valid rows and a list of :class:`Problem` records
naming file, row, column and reason. Nothing valid is dropped: a row is rejected
only for a problem in that row.

Example:
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"person_id": ["a", "b"], "birth_year": ["1990", "1990"],
    ...                     "birth_month": ["2", "2"], "birth_day": ["28", "30"]})
    >>> result = validate_persons(raw, source="bios.csv", dataset="celeb")
    >>> list(result.table.person_id), result.problems[0].reason
    (['a'], 'impossible date 1990-02-30')
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

DATASETS = ("celeb", "athlete")
TRAITS = ("o", "c", "e", "a", "n")
TRAIT_NAMES = {
    "o": "Openness",
    "c": "Conscientiousness",
    "e": "Extraversion",
    "a": "Agreeableness",
    "n": "Neuroticism",
}
FACE_ATTRIBUTES = (
    "Arched_Eyebrows",
    "Big_Nose",
    "Pointy_Nose",
    "Bushy_Eyebrows",
    "Big_Lips",
    "Oval_Face",
    "Double_Chin",
    "Receding_Hairline",
    "Narrow_Eyes",
    "High_Cheekbones",
)

# Per-rater scores are trait_<rater>_<t>; the aggregate is trait_<t>.
RATER_TRAIT_COLUMN = re.compile(r"^trait_([a-z0-9]+)_([ocean])$")
AGGREGATE_TRAIT_COLUMN = re.compile(r"^trait_([ocean])$")

# Plausibility bounds; a value outside is a data error, not an outlier.
RANGES: dict[str, tuple[float, float, str]] = {
    "latitude": (-90.0, 90.0, "degrees"),
    "longitude": (-180.0, 180.0, "degrees"),
    "height_cm": (30.0, 280.0, "cm"),
    "weight_kg": (10.0, 400.0, "kg"),
}
MIN_BIRTH_YEAR = 1000
TRAIT_SCORE_RANGE = (0.0, 5.0)  # 0 = insufficient information; 1..3 or 1..5 scales

STRING_COLUMNS = ("person_id", "name", "bio", "image_path")
INT_COLUMNS = ("birth_year", "birth_month", "birth_day")
CODED_COLUMNS = ("group", "gender")
FLOAT_COLUMNS = ("latitude", "longitude", "height_cm", "weight_kg")
DERIVED_COLUMNS = ("day_of_year", "day_sin", "day_cos")

CANONICAL_COLUMNS: tuple[str, ...] = (
    "person_id",
    "name",
    "dataset",
    "group",
    "gender",
    "birth_year",
    "birth_month",
    "birth_day",
    "day_of_year",
    "day_sin",
    "day_cos",
    "latitude",
    "longitude",
    "height_cm",
    "weight_kg",
    *FACE_ATTRIBUTES,
    "bio",
    "image_path",
)
# Columns a source may provide (derived ones are always computed here).
INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in CANONICAL_COLUMNS if c not in DERIVED_COLUMNS)


def is_trait_column(column: str) -> bool:
    """True for ``trait_<rater>_<t>`` and ``trait_<t>`` columns."""
    return bool(RATER_TRAIT_COLUMN.match(column) or AGGREGATE_TRAIT_COLUMN.match(column))


def trait_columns(columns: Sequence[str]) -> list[str]:
    """The trait columns among ``columns``, in their original order."""
    return [c for c in columns if is_trait_column(c)]


# The Level I feature vocabulary: every person-table column that can be tested against the traits.
FEATURE_COLUMNS: tuple[str, ...] = (
    "height_cm", "weight_kg", "birth_year", "birth_month", "birth_day", "day_of_year", "day_sin", "day_cos",
    "latitude", "longitude", "group", "gender", *FACE_ATTRIBUTES,
)
AGGREGATE_RATER = "aggregate"


def rater_column(rater: str, trait: str) -> str:
    """``trait_<rater>_<t>``, one rater's score of trait ``t``.

    Example:
        >>> rater_column("gpt4o", "o")
        'trait_gpt4o_o'
    """
    return f"trait_{rater}_{trait}"


def aggregate_column(trait: str) -> str:
    """``trait_<t>``, the aggregate score of trait ``t`` (drop 0s, median over raters)."""
    return f"trait_{trait}"


def rater_of(column: str) -> str:
    """``trait_<rater>_<t>`` -> rater; ``trait_<t>`` -> ``"aggregate"``.

    Example:
        >>> rater_of("trait_sima_o"), rater_of("trait_o")
        ('sima', 'aggregate')
    """
    match = RATER_TRAIT_COLUMN.match(column)
    if match:
        return match.group(1)
    if AGGREGATE_TRAIT_COLUMN.match(column):
        return AGGREGATE_RATER
    raise ValueError(f"{column!r} is not a trait column (trait_<rater>_<t> or trait_<t>)")


def raters_in(columns: Sequence[str]) -> list[str]:
    """Raters with all five ``trait_<rater>_<t>`` columns among ``columns``, in order of appearance.

    Example:
        >>> raters_in([f"trait_sima_{t}" for t in "ocean"] + ["trait_simb_o", "trait_o"])
        ['sima']
    """
    found: dict[str, set[str]] = {}
    for column in columns:
        match = RATER_TRAIT_COLUMN.match(column)
        if match:
            found.setdefault(match.group(1), set()).add(match.group(2))
    return [rater for rater, letters in found.items() if letters >= set(TRAITS)]


def ordered_trait_columns(columns: Sequence[str], which: str = "all") -> list[str]:
    """Trait columns for analysis: per rater (raters in order of appearance), then the aggregate.

    Args:
        columns: Column names of a trait table.
        which: ``"all"`` (every rater's columns and the aggregate ``trait_<t>``),
            ``"raters"`` or ``"aggregate"``.

    Example:
        >>> ordered_trait_columns(["trait_o", "trait_r_e", "trait_r_o", "x"])
        ['trait_r_o', 'trait_r_e', 'trait_o']
    """
    if which not in ("all", "raters", "aggregate"):
        raise ValueError(f"which trait columns: 'all', 'raters' or 'aggregate', got {which!r}")
    present = set(columns)
    out: list[str] = []
    if which in ("all", "raters"):
        raters = list(dict.fromkeys(m.group(1) for c in columns if (m := RATER_TRAIT_COLUMN.match(c))))
        out += [rater_column(r, t) for r in raters for t in TRAITS if rater_column(r, t) in present]
    if which in ("all", "aggregate"):
        out += [aggregate_column(t) for t in TRAITS if aggregate_column(t) in present]
    return out


def insufficient_as_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with trait score 0 ("insufficient information") set to missing in every trait column.

    0 is not a low score; left as a number it would enter tests and models as one.

    Example:
        >>> insufficient_as_missing(pd.DataFrame({"trait_r_o": [0.0, 2.0]})).trait_r_o.tolist()
        [nan, 2.0]
    """
    out = frame.copy()
    for column in trait_columns(list(out.columns)):
        values = pd.to_numeric(out[column], errors="coerce").astype(float)
        out[column] = values.mask(values == 0)
    return out


def empty_person_table() -> pd.DataFrame:
    """An empty table with the canonical columns and dtypes (no trait columns)."""
    return _cast_canonical(pd.DataFrame({c: pd.Series([], dtype=object) for c in INPUT_COLUMNS}))


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a row (or one field of it) was not accepted.

    Attributes:
        source: The file the row came from.
        row: 1-based data row in that file (header excluded); for JSONL, the line;
            0 for a problem of the whole file.
        person_id: The row's id, if it had one.
        column: The canonical column at fault ("" for the whole row).
        value: The offending value, as text (truncated).
        reason: What is wrong, in words.
        action: "row rejected", or "image removed; person kept".
    """

    source: str
    row: int
    person_id: str | None
    column: str
    value: str
    reason: str
    action: str = "row rejected"

    def __post_init__(self) -> None:
        # Bytes that were not UTF-8 (read in as lone surrogates) are shown as \xNN: a report
        # must be writable (parquet, logs) whatever the input held.
        for field in ("source", "person_id", "column", "value", "reason"):
            text = getattr(self, field)
            if isinstance(text, str) and _SURROGATE.search(text):
                shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                object.__setattr__(self, field, _SURROGATE.sub("?", shown))

    def describe(self) -> str:
        where = f"{self.source} row {self.row}" if self.row else self.source
        if self.person_id:
            where += f" (person_id {self.person_id!r})"
        field = f", column '{self.column}'" if self.column else ""
        value = f" [value: {self.value}]" if self.value else ""
        return f"{where}{field}: {self.reason}{value}"


PROBLEM_COLUMNS = [f.name for f in dataclasses.fields(Problem)]
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def problems_frame(problems: Sequence[Problem]) -> pd.DataFrame:
    """The problems as a table (the layout of ``rejected.parquet``)."""
    frame = pd.DataFrame([dataclasses.asdict(p) for p in problems], columns=PROBLEM_COLUMNS)
    return frame.astype({"row": "int64"}) if len(frame) else frame.astype({"row": "int64", **{c: object for c in PROBLEM_COLUMNS if c != "row"}})


class DataValidationError(ValueError):
    """Input data failed validation; the message names file, row, column and reason."""

    def __init__(self, problems: Sequence[Problem], hint: str = "", limit: int = 20):
        self.problems = list(problems)
        lines = [p.describe() for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        message = f"{len(self.problems)} problem(s) in the input:\n  " + "\n  ".join(lines)
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


STRICT_HINT = (
    "Fix the rows above, or set data.strict=false to move bad rows to rejected.parquet "
    "(with their reasons) and go on with the rest."
)


@dataclasses.dataclass
class ValidationResult:
    """Valid rows in canonical dtypes, plus every problem found.

    Attributes:
        table: The valid rows, canonical columns then trait columns.
        problems: Every problem found, sorted by row.
        label_maps: Label -> code maps used for ``group`` and ``gender``.
        kept: Position in the input of each row of ``table``.
    """

    table: pd.DataFrame
    problems: list[Problem]
    label_maps: dict[str, dict[str, int]]
    kept: list[int]

    def drop(self, positions: Sequence[int], problems: Sequence[Problem]) -> None:
        """Rejects more rows of ``table`` (positions in ``table``) for ``problems``."""
        drop = set(positions)
        keep = [i for i in range(len(self.table)) if i not in drop]
        self.table = self.table.iloc[keep].reset_index(drop=True)
        self.kept = [self.kept[i] for i in keep]
        self.problems = sorted([*self.problems, *problems], key=lambda p: (p.row, p.column))


def _text(value: Any, limit: int = 80) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _invalid_utf8(value: str) -> str | None:
    """Describes undecodable bytes (read in as lone surrogates), or None."""
    match = re.search(r"[\udc80-\udcff]", value)
    if match:
        return f"not valid UTF-8 text (byte 0x{ord(match.group()) - 0xDC00:02x} at character {match.start()})"
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:  # an integer too large for a float (a 401-digit JSON number) is not a number here
        if isinstance(value, (int, float, np.integer, np.floating)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    except (ValueError, OverflowError):
        return None
    return None


def _as_int(value: Any) -> tuple[int | None, str | None]:
    number = _as_number(value)
    if number is None:
        return None, f"expected an integer, got {_text(value)}"
    if not math.isfinite(number) or number != int(number):
        return None, f"expected an integer, got {_text(value)}"
    return int(number), None


def _code_column(
    values: pd.Series, column: str, given_map: Mapping[str, int] | None
) -> tuple[pd.Series, dict[str, int], dict[int, str]]:
    """Integer-codes a categorical column. Returns codes, label map, per-row errors.

    Integer values are taken as codes (as in the released files) and must be
    codes of ``given_map`` when one is given; text values are labels, coded by
    ``given_map`` or else in sorted order after its codes.
    """
    label_map = {str(k): int(v) for k, v in (given_map or {}).items()}
    present = values[~values.map(_missing)]
    errors: dict[int, str] = {}
    codes = pd.Series(pd.NA, index=values.index, dtype="Int64")
    as_ints = {idx: _as_int(v)[0] for idx, v in present.items()}
    if present.size and all(code is not None for code in as_ints.values()):
        known = set(label_map.values())
        for idx, code in as_ints.items():
            if known and code not in known:
                errors[idx] = f"{column} code {code} is not in the label map {label_map}"
            else:
                codes[idx] = code
        if not label_map:
            label_map = {str(c): c for c in sorted(set(as_ints.values()))}
        return codes, label_map, errors
    next_code = max(label_map.values(), default=-1) + 1
    for label in sorted({str(v).strip() for v in present} - set(label_map)):
        label_map[label] = next_code
        next_code += 1
    for idx, value in present.items():
        codes[idx] = label_map[str(value).strip()]
    return codes, label_map, errors


def days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def date_features(year: int, month: int, day: int) -> tuple[int, float, float]:
    """Day of year (1-based) and its sin/cos on the year's circle.

    The angle is ``2*pi*(day_of_year - 1) / days_in_year``, so 31 December and
    1 January are neighbours.
    """
    doy = _dt.date(year, month, day).timetuple().tm_yday
    angle = 2.0 * math.pi * (doy - 1) / days_in_year(year)
    return doy, math.sin(angle), math.cos(angle)


def _cast_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in CANONICAL_COLUMNS:
        if column in STRING_COLUMNS:
            out[column] = frame.get(column, pd.Series(None, index=frame.index, dtype=object)).astype(object)
        elif column == "dataset":
            out[column] = pd.Categorical(frame.get(column, pd.Series(None, index=frame.index)), categories=DATASETS)
        elif column in (*INT_COLUMNS, *CODED_COLUMNS, "day_of_year"):
            out[column] = pd.array(frame.get(column, pd.Series(pd.NA, index=frame.index)), dtype="Int64")
        elif column in FACE_ATTRIBUTES:
            out[column] = pd.array(frame.get(column, pd.Series(pd.NA, index=frame.index)), dtype="Int8")
        else:
            out[column] = pd.to_numeric(frame.get(column, pd.Series(np.nan, index=frame.index)), errors="coerce").astype("float64")
    for column in trait_columns(list(frame.columns)):
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return out


def validate_persons(
    raw: pd.DataFrame,
    *,
    source: str,
    dataset: str,
    label_maps: Mapping[str, Mapping[str, int]] | None = None,
    row_numbers: Sequence[int] | None = None,
) -> ValidationResult:
    """Validates a table with canonical column names and converts it to canonical dtypes.

    Args:
        raw: One row per person; columns are canonical names (any subset that
            includes ``person_id``) and trait columns. Values may be text.
        source: File name used in problem reports.
        dataset: "celeb" or "athlete"; fills ``dataset`` where the table has none.
        label_maps: Known label -> code maps for ``group`` and ``gender``.
        row_numbers: Row number to report for each row (default 1..n).

    Returns:
        The valid rows (canonical columns then trait columns, original order and a
        fresh index), the problems, and the label maps used.

    Raises:
        DataValidationError: ``raw`` has no ``person_id`` column or unknown columns.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    unknown = [c for c in raw.columns if c not in INPUT_COLUMNS and not is_trait_column(c)]
    if unknown or "person_id" not in raw.columns:
        reasons = []
        if "person_id" not in raw.columns:
            reasons.append("missing required column 'person_id'")
        if unknown:
            reasons.append(f"unexpected columns {unknown}")
        raise DataValidationError(
            [Problem(source, 0, None, "", "", "; ".join(reasons) + f" (columns present: {list(raw.columns)})")],
            hint="Map your columns to canonical names with data.columns (canonical_name: your_column) "
            "or list columns to drop in data.ignore_columns.",
        )
    frame = raw.reset_index(drop=True).copy()
    rows = list(row_numbers) if row_numbers is not None else list(range(1, len(frame) + 1))
    problems: list[Problem] = []
    bad_rows: set[int] = set()
    # object dtype: an id with undecodable bytes (lone surrogates) cannot be an arrow string
    ids = pd.Series([None if _missing(v) else str(v).strip() for v in frame["person_id"]], index=frame.index,
                    dtype=object)

    def reject(idx: int, column: str, value: Any, reason: str) -> None:
        problems.append(Problem(source, rows[idx], ids[idx], column, _text(value), reason))
        bad_rows.add(idx)

    # Text columns: present, decodable, ids unique.
    for column in [c for c in STRING_COLUMNS if c in frame.columns]:
        for idx, value in frame[column].items():
            if _missing(value):
                if column == "person_id":
                    reject(idx, column, value, "missing person_id")
                frame.at[idx, column] = None
                continue
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as err:
                    reject(idx, column, value[:40], f"not valid UTF-8 text ({err.reason} at byte {err.start})")
                    continue
            if isinstance(value, (dict, list, tuple, np.ndarray)):  # JSON objects and arrays are not text
                reject(idx, column, value, f"expected text, got a JSON {'object' if isinstance(value, dict) else 'array'}")
                continue
            if column == "person_id" and isinstance(value, (bool, np.bool_)):
                reject(idx, column, value, "person_id must be text or a whole number")
                continue
            if column == "person_id" and isinstance(value, (float, np.floating)):
                # A numeric id column read as floats (3.0): the id is the whole number, as in file names.
                if not (math.isfinite(value) and value == int(value)):
                    reject(idx, column, value, "person_id must be text or a whole number")
                    continue
                value = str(int(value))
                ids[idx] = value
            if not isinstance(value, str):
                value = str(value)
            problem = _invalid_utf8(value)
            if problem:
                reject(idx, column, value.encode("utf-8", "surrogateescape")[:40], problem)
                continue
            frame.at[idx, column] = value.strip() if column == "person_id" else value
    first_seen: dict[str, int] = {}
    for idx, pid in ids.items():
        if pid is None or idx in bad_rows:
            continue
        if pid in first_seen:
            reject(idx, "person_id", pid, f"duplicate person_id (first at row {rows[first_seen[pid]]})")
        else:
            first_seen[pid] = idx

    # dataset
    if "dataset" in frame.columns:
        for idx, value in frame["dataset"].items():
            if _missing(value):
                frame.at[idx, "dataset"] = dataset
            elif str(value).strip() not in DATASETS:
                reject(idx, "dataset", value, f"dataset must be one of {list(DATASETS)}")
            else:
                frame.at[idx, "dataset"] = str(value).strip()
    else:
        frame["dataset"] = dataset

    # Integer columns and dates.
    for column in [c for c in INT_COLUMNS if c in frame.columns]:
        converted = []
        for idx, value in frame[column].items():
            if _missing(value):
                converted.append(pd.NA)
                continue
            number, error = _as_int(value)
            if error:
                reject(idx, column, value, error)
                converted.append(pd.NA)
            else:
                converted.append(number)
        frame[column] = pd.array(converted, dtype="Int64")
    this_year = _dt.date.today().year
    doy, day_sin, day_cos = ([pd.NA] * len(frame) for _ in range(3))
    for idx in range(len(frame)):
        year = frame["birth_year"].iloc[idx] if "birth_year" in frame.columns else pd.NA
        month = frame["birth_month"].iloc[idx] if "birth_month" in frame.columns else pd.NA
        day = frame["birth_day"].iloc[idx] if "birth_day" in frame.columns else pd.NA
        if year is not pd.NA and not MIN_BIRTH_YEAR <= year <= this_year:
            reject(idx, "birth_year", year, f"birth year {year} outside [{MIN_BIRTH_YEAR}, {this_year}]")
            continue
        if month is not pd.NA and not 1 <= month <= 12:
            reject(idx, "birth_month", month, f"birth month {month} outside 1..12")
            continue
        if day is not pd.NA and not 1 <= day <= 31:
            reject(idx, "birth_day", day, f"birth day {day} outside 1..31")
            continue
        if day is not pd.NA and month is pd.NA:
            reject(idx, "birth_month", "", "birth day given without a birth month")
            continue
        if month is not pd.NA and day is not pd.NA:
            check_year = year if year is not pd.NA else 2000  # a leap year: 29 Feb is possible
            try:
                _dt.date(int(check_year), int(month), int(day))
            except ValueError:
                shown = f"{year:04d}" if year is not pd.NA else "????"
                reject(idx, "birth_day", day, f"impossible date {shown}-{month:02d}-{day:02d}")
                continue
            if year is not pd.NA:
                doy[idx], day_sin[idx], day_cos[idx] = date_features(int(year), int(month), int(day))
    frame["day_of_year"], frame["day_sin"], frame["day_cos"] = doy, day_sin, day_cos

    # Bounded floats.
    for column in [c for c in FLOAT_COLUMNS if c in frame.columns]:
        low, high, unit = RANGES[column]
        converted = []
        for idx, value in frame[column].items():
            if _missing(value):
                converted.append(np.nan)
                continue
            number = _as_number(value)
            if number is None:
                reject(idx, column, value, f"expected a number, got {_text(value)}")
                converted.append(np.nan)
            elif not math.isfinite(number):
                reject(idx, column, value, "not a finite number")
                converted.append(np.nan)
            elif not low <= number <= high:
                what = "negative value" if number < 0 and low >= 0 else "value"
                reject(idx, column, value, f"{what} {number:g} outside the plausible range [{low:g}, {high:g}] {unit}")
                converted.append(np.nan)
            else:
                converted.append(number)
        frame[column] = converted

    # Face attributes: CelebA coding, -1 or +1.
    for column in [c for c in FACE_ATTRIBUTES if c in frame.columns]:
        converted = []
        for idx, value in frame[column].items():
            if _missing(value):
                converted.append(pd.NA)
                continue
            number, error = _as_int(value)
            if error or number not in (-1, 1):
                reject(idx, column, value, "face attribute must be -1 or +1 (CelebA coding)")
                converted.append(pd.NA)
            else:
                converted.append(number)
        frame[column] = converted

    # Trait scores.
    low, high = TRAIT_SCORE_RANGE
    for column in trait_columns(list(frame.columns)):
        converted = []
        for idx, value in frame[column].items():
            if _missing(value):
                converted.append(np.nan)
                continue
            number = _as_number(value)
            if number is None or not math.isfinite(number) or not low <= number <= high:
                reject(idx, column, value, f"trait score must be a number in [{low:g}, {high:g}] (0 = insufficient information)")
                converted.append(np.nan)
            else:
                converted.append(number)
        frame[column] = converted

    # Categorical codes.
    maps: dict[str, dict[str, int]] = {}
    for column in CODED_COLUMNS:
        if column not in frame.columns:
            continue
        codes, maps[column], errors = _code_column(frame[column], column, (label_maps or {}).get(column))
        for idx, error in errors.items():
            reject(idx, column, frame.at[idx, column], error)
        frame[column] = codes

    keep = [idx for idx in range(len(frame)) if idx not in bad_rows]
    table = _cast_canonical(frame.iloc[keep]).reset_index(drop=True)
    problems.sort(key=lambda p: (p.row, p.column))
    return ValidationResult(table=table, problems=problems, label_maps=maps, kept=keep)
