"""Griffe extension for the API reference: adapt personax's docstrings to Markdown rendering.

personax's docstrings are Google style with two habits from Sphinx that griffe renders badly:

* doctests under ``Example:``, which griffe's Google parser reads as an admonition (the
  ``>>>`` lines then become nested Markdown quotes); they are read as ``Examples:``;
* reST roles such as ``:func:`fit```, which Markdown shows literally; they become inline code;
* one entry for several names (``learning_rate, batch_size, max_epochs: Training.``), which the
  Google parser reads as one name with a made-up type; it becomes one entry per name.

Only what the documentation shows changes, never the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
_GROUPED = re.compile(r"^([ \t]+)([A-Za-z_]\w*(?:,[ \t]*[A-Za-z_]\w*)+):[ \t]+(.*)$", re.MULTILINE)


def _split_grouped(match: re.Match) -> str:
    indent, names, text = match.group(1), [n.strip() for n in match.group(2).split(",")], match.group(3)
    return "\n".join(f"{indent}{name}: {text}" for name in names)


class DocstringCompat(griffe.Extension):
    """Rewrites ``Example:`` headings and reST roles in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            text = _GROUPED.sub(_split_grouped, text)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)
