"""Griffe extension for the API reference: adapt personax's docstrings to Markdown rendering.

personax's docstrings are Google style with two habits from Sphinx that griffe renders badly:

* doctests under ``Example:``, which griffe's Google parser reads as an admonition (the
  ``>>>`` lines then become nested Markdown quotes); they are read as ``Examples:``;
* reST roles such as ``:func:`fit```, which Markdown shows literally; they become inline code.

Only what the documentation shows changes, never the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


class DocstringCompat(griffe.Extension):
    """Rewrites ``Example:`` headings and reST roles in every loaded docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)
