"""The documentation site builds with `mkdocs build --strict` (broken links, bad docstrings fail).

The docs tools (mkdocs, mkdocs-material, mkdocstrings[python]) come with the `test` extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}\n{result.stdout}"
    for page in ("index.html", "configuration/index.html", "reproduction/index.html", "api/crl/index.html"):
        assert (site / page).is_file(), page
    # The API reference really is generated from the docstrings.
    assert "load_pretrained" in (site / "api/personax/index.html").read_text(encoding="utf-8")
