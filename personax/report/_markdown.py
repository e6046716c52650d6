"""The Markdown twin of the report; figures are relative links to PNGs under ``report/figures/``.

Values from the run directory are escaped so that a Markdown renderer shows them as
text: ``<``, ``>`` and ``&`` become HTML entities (no raw HTML gets through), the
Markdown punctuation that could start a link, emphasis or code is backslash-escaped,
and table cells lose their ``|`` and line breaks.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from personax.artifacts import REPORT_FIGURE, REPORT_MD
from personax.report._model import Code, Figure, Findings, Heading, Note, Paragraph, Report, Table

# Where report.md's figure links point: the report_figure artifact's folder, relative to report.md.
FIGURES_DIR = PurePosixPath(REPORT_FIGURE.path).parent.relative_to(PurePosixPath(REPORT_MD.path).parent).as_posix()
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Underscores inside a word (person_id) cannot start emphasis and are left alone.
_PUNCTUATION = re.compile(r"([\\`*\[\]|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|^#)")


def escape(text: str) -> str:
    """Text for Markdown, inline.

    Example:
        >>> print(escape("<script>alert(1)</script> | *x* _y_ person_id"))
        &lt;script&gt;alert(1)&lt;/script&gt; \\| \\*x\\* \\_y\\_ person_id
    """
    text = "".join(_ENTITIES.get(ch, ch) for ch in str(text))
    text = _PUNCTUATION.sub(r"\\\1", text)
    return " ".join(text.splitlines())


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(escape(c) or " " for c in table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(f"**{escape(v)}**" if (r, c) in table.strong else escape(v) for c, v in enumerate(row))
              + " |" for r, row in enumerate(table.rows)]
    if table.caption:
        lines += ["", f"*{escape(table.caption)}*"]
    return lines


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(report: Report) -> str:
    """The report as Markdown (figures linked as ``figures/<name>``)."""
    lines = [f"# {escape(report.title)}", ""]
    lines += [f"{escape(line)}  " for line in report.subtitle] + [""]
    lines += [f"{k}. [{escape(s.title)}](#{s.anchor})" for k, s in enumerate(report.sections, 1)] + [""]
    for section in report.sections:
        lines += [f"## {escape(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                lines += [escape(block.text)]
            elif isinstance(block, Note):
                lines += [f"> *{escape(block.text)}*"]
            elif isinstance(block, Findings):
                lines += [f"**{escape(block.title)}**", ""]
                lines += [f"- {'Warning: ' if item.kind == 'warning' else ''}{escape(item.text)}"
                          + (f" ([details](#{item.anchor}))" if item.anchor else "") for item in block.items]
            elif isinstance(block, Heading):
                lines += [f"### {escape(block.text)}"]
            elif isinstance(block, Table):
                lines += _table(block)
            elif isinstance(block, Figure):
                lines += [f"![{escape(block.caption)}]({FIGURES_DIR}/{block.name})", "", f"*{escape(block.caption)}*"]
            elif isinstance(block, Code):
                fence = _fence(block.text)
                lines += [f"{fence}{block.language}", block.text.rstrip("\n"), fence]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
