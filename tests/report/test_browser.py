"""The report in a real browser (headless Chromium): images decode, the summary comes first, tables sort.

Needs Debian's ``chromium`` (``apt-get install chromium``). Without it the test is
skipped, except under CI (the ``CI`` environment variable set), where it fails.
``PERSONAX_KEEP_SCREENSHOT=path.png`` keeps the screenshot of the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Injected into a copy of the page: clicks every column header of every table twice and checks,
# with its own reading of the cells, that the rows came out ascending and then descending
# (empty cells and "–" last), that number cells are right-aligned, and what the first section is.
SORT_CHECK = r"""
<script>
window.addEventListener("load", function () {
  function key(td) {
    var text = td.textContent.trim();
    if (text === "" || text === "–") { return null; }
    return td.classList.contains("num") ? parseFloat(text.replace(/,/g, "")) : text.toLowerCase();
  }
  function ordered(keys, sign) {
    var seenNull = false;
    for (var i = 0; i < keys.length; i++) {
      if (keys[i] === null) { seenNull = true; continue; }
      if (seenNull) { return false; }
      if (i > 0 && keys[i - 1] !== null) {
        var a = keys[i - 1], b = keys[i];
        var cmp = (typeof a === "number" && typeof b === "number") ? a - b : String(a).localeCompare(String(b));
        if (sign * cmp > 0) { return false; }
      }
    }
    return true;
  }
  var failures = [], columns = 0, moved = 0, numbers = 0, misaligned = 0;
  var tables = document.querySelectorAll("table");
  tables.forEach(function (table, t) {
    if (!table.classList.contains("sortable") || !table.tHead) { failures.push("table " + t + ": not sortable"); return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, c) {
      var before = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[c].textContent; });
      [1, -1].forEach(function (sign) {
        th.click();
        var keys = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return key(r.cells[c]); });
        if (!ordered(keys, sign)) { failures.push("table " + t + " column " + c + (sign > 0 ? " ascending" : " descending")); }
      });
      var after = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[c].textContent; });
      if (after.join("\u0001") !== before.join("\u0001")) { moved++; }
      columns++;
    });
    table.querySelectorAll("td.num").forEach(function (td) {
      numbers++;
      if (getComputedStyle(td).textAlign !== "right") { misaligned++; }
    });
  });
  var first = document.querySelector("section");
  var links = first ? first.querySelectorAll("a[href^='#']") : [];
  var dangling = Array.prototype.filter.call(links, function (a) { return !document.getElementById(a.getAttribute("href").slice(1)); });
  document.body.dataset.check = JSON.stringify({tables: tables.length, columns: columns, moved: moved, failures: failures,
    numbers: numbers, misaligned: misaligned, first: first ? first.id : null, links: links.length, dangling: dangling.length,
    open: Array.prototype.map.call(document.querySelectorAll("section > details"), function (d) { return d.open; })});
});
</script>
"""


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


def _body(dom: str) -> str:
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:2000]
    return body.group(0)


def _image_counts(dom: str) -> tuple[int, int]:
    body = _body(dom)
    images = re.search(r'data-images="(\d+)"', body)
    broken = re.search(r'data-broken-images="(\d+)"', body)
    assert images and broken, f"the page's load script did not run: {body}"
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


def _check(chromium: str, html: str, tmp_path: Path) -> dict:
    page = tmp_path / "checked.html"
    page.write_text(html.replace("</body>", SORT_CHECK + "</body>"))
    body = _body(_browse(chromium, page, tmp_path / "profile", "--dump-dom"))
    found = re.search(r'data-check="([^"]*)"', body)
    assert found, f"the check script did not run: {body[:500]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_summary_comes_first_and_every_table_sorts(chromium, full_run, tmp_path):
    html = (full_run / "report/report.html").read_text()
    check = _check(chromium, html, tmp_path)
    assert check["first"] == "summary" and check["links"] >= 5 and check["dangling"] == 0, check
    assert check["tables"] >= 10 and check["failures"] == [], check
    assert check["moved"] >= 5, check  # clicks reorder rows, not just leave sorted tables alone
    assert check["numbers"] > 50 and check["misaligned"] == 0, check
    assert check["open"][0] is True and check["open"][-1] is False, check  # summary open, provenance folded

    # The check catches a table whose sorting is broken: reverse the page's comparison.
    broken = html.replace("return sign * (x - y);", "return sign * (y - x);")
    assert broken != html
    assert _check(chromium, broken, tmp_path)["failures"], "a broken sort went unnoticed"


def test_the_report_renders_as_a_page(chromium, full_run, tmp_path):
    shot = tmp_path / "report.png"
    _browse(chromium, full_run / "report/report.html", tmp_path / "profile", f"--screenshot={shot}",
            "--window-size=1280,2400")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 10  # text, tables and figures, not a blank page
    if os.environ.get("PERSONAX_KEEP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["PERSONAX_KEEP_SCREENSHOT"])
