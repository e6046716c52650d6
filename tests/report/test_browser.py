"""The report in a real browser (headless Chromium): every image decodes, and the page renders.

Needs Debian's ``chromium`` (``apt-get install chromium``). Without it the test is
skipped, except under CI (the ``CI`` environment variable set), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="session")  # session, like full_run, so that a skip comes before the run
def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    message = f"no Chromium binary on PATH (looked for {', '.join(BROWSERS)}); on Debian: apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}")
    pytest.skip(message)


def _browse(chromium: str, page: Path, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _image_counts(dom: str) -> tuple[int, int]:
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:2000]
    images = re.search(r'data-images="(\d+)"', body.group(0))
    broken = re.search(r'data-broken-images="(\d+)"', body.group(0))
    assert images and broken, f"the page's load script did not run: {body.group(0)}"
    return int(images.group(1)), int(broken.group(1))


def test_every_image_of_the_report_decodes_in_chromium(chromium, full_run, tmp_path):
    page = full_run / "report/report.html"
    figures = len(list((full_run / "report/figures").glob("*.png")))
    dom = _browse(chromium, page, tmp_path / "profile", "--dump-dom")
    assert _image_counts(dom) == (figures, 0) and figures >= 6
    assert "<h2>Level II: CRL metrics</h2>" in dom

    # The check itself catches a broken image: corrupt one inlined PNG.
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"data:image/png;base64,[A-Za-z0-9+/]{40}", "data:image/png;base64,AAAA",
                             page.read_text(), count=1))
    assert _image_counts(_browse(chromium, broken, tmp_path / "profile", "--dump-dom")) == (figures, 1)


def test_the_report_renders_as_a_page(chromium, full_run, tmp_path):
    shot = tmp_path / "report.png"
    _browse(chromium, full_run / "report/report.html", tmp_path / "profile", f"--screenshot={shot}",
            "--window-size=1280,4000")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (4000, 1280)
    assert pixels.std() > 10  # text, tables and figures, not a blank page
    if os.environ.get("PERSONAX_KEEP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["PERSONAX_KEEP_SCREENSHOT"])
