"""The report as plain data: sections of blocks, rendered to HTML and to Markdown.

Every value in a block is text or a number from the run directory; the renderers
escape it (``_html.py``, ``_markdown.py``), so the collectors never build markup.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union


@dataclasses.dataclass
class Paragraph:
    text: str


@dataclasses.dataclass
class Note:
    """A one-line remark set apart from the text (a stage that did not run, a warning)."""

    text: str


@dataclasses.dataclass
class Heading:
    text: str


@dataclasses.dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclasses.dataclass
class Figure:
    """A PNG of the run directory; ``name`` is its file name under ``report/figures/``."""

    path: Path
    name: str
    caption: str


@dataclasses.dataclass
class Code:
    text: str
    language: str = ""


Block = Union[Paragraph, Note, Heading, Table, Figure, Code]


@dataclasses.dataclass
class Section:
    title: str
    blocks: list[Block] = dataclasses.field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclasses.dataclass
class Report:
    title: str
    subtitle: list[str]
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


def cell(value: Any) -> str:
    """One table cell as text: floats to 3 decimals (or 3 significant digits), None as ``–``.

    Example:
        >>> [cell(v) for v in (None, 0.123456, 1234.5, 2.5e-7, True, "x")]
        ['–', '0.123', '1234.500', '2.5e-07', 'True', 'x']
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        value = float(value)
        if math.isnan(value):
            return "–"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2g}"
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {cell(v)}" for k, v in value.items())
    return str(value)


def records_table(records: Sequence[Mapping[str, Any]], caption: str = "") -> Table:
    """A table from a list of dicts (columns in first-seen order)."""
    columns = list(dict.fromkeys(k for record in records for k in record))
    return Table([str(c) for c in columns], [[cell(r.get(c)) for c in columns] for r in records], caption)


def mapping_table(rows: Mapping[str, Mapping[str, Any]], index: str, caption: str = "") -> Table:
    """A table from ``{row name: {column: value}}``; the row names fill the first column ``index``."""
    return records_table([{index: name, **dict(values)} for name, values in rows.items()], caption)


def key_value_table(values: Mapping[str, Any], caption: str = "", header: tuple[str, str] = ("", "value")) -> Table:
    """A two-column table from a flat mapping."""
    return Table(list(header), [[str(k), cell(v)] for k, v in values.items()], caption)
