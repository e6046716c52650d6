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
    """Rows of text cells; ``strong`` lists the (row, column) cells shown in bold."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    strong: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    collapsed: bool = False  # HTML: folded under "show N rows"


@dataclasses.dataclass
class Figure:
    """A PNG; ``name`` is its file name under ``report/figures/``.

    ``path`` is a PNG of the run directory; a figure the report draws itself carries
    its bytes in ``png`` instead (``path`` is then None).
    """

    path: Path | None
    name: str
    caption: str
    png: bytes | None = None

    def read_bytes(self) -> bytes:
        return self.png if self.png is not None else self.path.read_bytes()


@dataclasses.dataclass
class Code:
    """Preformatted text; ``collapsed`` shows it folded (HTML ``<details>``) under ``summary``."""

    text: str
    language: str = ""
    collapsed: bool = False
    summary: str = ""


@dataclasses.dataclass
class Finding:
    """One line of the summary box: ``kind`` is "ran", "found" or "warning"; ``anchor`` links a section."""

    text: str
    anchor: str = ""
    kind: str = "found"


@dataclasses.dataclass
class Findings:
    """A titled list of :class:`Finding` lines (the summary box's groups)."""

    title: str
    items: list[Finding] = dataclasses.field(default_factory=list)


Block = Union[Paragraph, Note, Heading, Table, Figure, Code, Findings]


@dataclasses.dataclass
class Section:
    """A report section; ``open`` is whether the HTML shows it unfolded at first."""

    title: str
    blocks: list[Block] = dataclasses.field(default_factory=list)
    open: bool = True

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


_NUMBER = re.compile(r"^[-+−]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?%?( / [-+]?\d+)?$|^[-+]?\d+/\d+$", re.IGNORECASE)


def is_number(text: str) -> bool:
    """Whether a cell reads as a number (right-aligned, sorted numerically in the HTML).

    Example:
        >>> [is_number(t) for t in ("0.123", "-2.5e-07", "12/40", "3 / 60", "kci", "–")]
        [True, True, True, True, False, False]
    """
    return bool(_NUMBER.match(text.strip()))


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
