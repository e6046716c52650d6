"""The self-contained HTML report: one file, figures inlined as base64 data URIs.

Rendered with Jinja2 with autoescaping on, so every value from the run directory
(names, labels, reasons, config values) is HTML-escaped.
"""

from __future__ import annotations

import base64

import jinja2

from personax.report._model import Figure, Report, is_number

# On load, the page counts its images and the ones that failed to decode
# (data-images / data-broken-images on <body>), so a headless browser can check it.
_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ report.title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0 auto;
       max-width: 1100px; padding: 1.5em 2em 4em; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { display: inline; font-size: 1.35em; }
section { border-bottom: 2px solid #ddd; padding: 0.6em 0; }
details > summary { cursor: pointer; padding: 0.2em 0; }
h3 { margin: 1.2em 0 0.5em; font-size: 1.05em; }
.meta { color: #666; margin: 0.1em 0; font-size: 0.9em; }
nav ol { columns: 3; font-size: 0.9em; margin: 0.5em 0; }
.summary-box { background: #f5f8fc; border: 1px solid #b9cde5; border-radius: 6px; padding: 0.4em 1.2em 0.8em; }
.summary-box ul { margin: 0.2em 0 0.6em; padding-left: 1.3em; }
.summary-box li { margin: 0.15em 0; }
li.warning { color: #8a3b00; }
li.warning::marker { content: "⚠ "; }
li a.goto { font-size: 0.85em; margin-left: 0.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[data-order="ascending"]::after { content: " ▲"; }
th[data-order="descending"]::after { content: " ▼"; }
tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: bottom; color: #666; font-size: 0.9em; text-align: left; padding-top: 0.3em; }
.note { color: #555; background: #f6f6f6; border-left: 4px solid #bbb; padding: 0.4em 0.8em; font-style: italic; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.8em; border: 1px solid #e5e5e5; }
</style>
</head>
<body>
<header>
<h1>{{ report.title }}</h1>
{% for line in report.subtitle %}<p class="meta">{{ line }}</p>
{% endfor %}</header>
<nav><ol>
{% for section in report.sections %}<li><a href="#{{ section.anchor }}">{{ section.title }}</a></li>
{% endfor %}</ol></nav>
{% for section in report.sections %}
<section id="{{ section.anchor }}"{% if loop.first %} class="summary-box"{% endif %}>
<details{% if section.open %} open{% endif %}>
<summary><h2>{{ section.title }}</h2></summary>
{% for kind, block, src in blocks(section) %}
{% if kind == "paragraph" %}<p>{{ block.text }}</p>
{% elif kind == "note" %}<p class="note">{{ block.text }}</p>
{% elif kind == "heading" %}<h3>{{ block.text }}</h3>
{% elif kind == "findings" %}<h3>{{ block.title }}</h3>
<ul>
{% for item in block.items %}<li class="{{ item.kind }}">{{ item.text }}{% if item.anchor %} <a class="goto" href="#{{ item.anchor }}">(details)</a>{% endif %}</li>
{% endfor %}</ul>
{% elif kind == "table" %}{% if block.collapsed %}<details><summary>show {{ block.rows | length }} rows</summary>{% endif %}<table class="sortable">
{% if block.caption %}<caption>{{ block.caption }}</caption>{% endif %}
<thead><tr>{% for column in block.columns %}<th title="click to sort">{{ column }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in block.rows %}{% set r = loop.index0 %}<tr>{% for value in row %}<td{% if is_number(value) %} class="num"{% endif %}>{% if (r, loop.index0) in block.strong %}<strong>{{ value }}</strong>{% else %}{{ value }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>{% if block.collapsed %}</details>{% endif %}
{% elif kind == "figure" %}<figure><img src="{{ src }}" alt="{{ block.caption }}"><figcaption>{{ block.caption }}</figcaption></figure>
{% elif kind == "code" %}{% if block.collapsed %}<details><summary>{{ block.summary or "show" }}</summary>{% endif %}<pre><code>{{ block.text }}</code></pre>{% if block.collapsed %}</details>{% endif %}
{% endif %}
{% endfor %}
</details>
</section>
{% endfor %}
<script>
// Sorting: a click on a column header sorts the table's rows by that column (numbers
// numerically, "–" last; a second click reverses). A link to a section unfolds it.
// On load the page counts its images and the ones that failed to decode
// (data-images / data-broken-images on <body>), so a headless browser can check it.
function personaxSortKey(td) {
  var text = td.textContent.trim();
  if (text === "" || text === "–") { return null; }
  if (td.classList.contains("num")) { return parseFloat(text.replace("−", "-").replace(/,/g, "")); }
  return text.toLowerCase();
}
function personaxSort(th) {
  var table = th.closest("table"), body = table.tBodies[0], column = th.cellIndex;
  var order = th.dataset.order === "ascending" ? "descending" : "ascending", sign = order === "ascending" ? 1 : -1;
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = personaxSortKey(a.cells[column]), y = personaxSortKey(b.cells[column]);
    if (x === null || y === null) { return (x === null) - (y === null); }
    if (typeof x === "number" && typeof y === "number") { return sign * (x - y); }
    return sign * String(x).localeCompare(String(y));
  });
  rows.forEach(function (row) { body.appendChild(row); });
  Array.prototype.forEach.call(th.parentNode.cells, function (h) { delete h.dataset.order; });
  th.dataset.order = order;
}
document.addEventListener("click", function (event) {
  var th = event.target.closest("table.sortable th");
  if (th) { personaxSort(th); return; }
  var link = event.target.closest("a[href^='#']");
  var target = link && document.getElementById(link.getAttribute("href").slice(1));
  if (target) { var details = target.querySelector("details"); if (details) { details.open = true; } }
});
window.addEventListener("load", function () {
  var images = document.images, broken = 0;
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) { broken++; }
  }
  document.body.dataset.images = String(images.length);
  document.body.dataset.brokenImages = String(broken);
});
</script>
</body>
</html>
"""

_ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                  lstrip_blocks=True)


def data_uri(figure: Figure) -> str:
    """The PNG as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(figure.read_bytes()).decode("ascii")


def _blocks(section):
    for block in section.blocks:
        yield type(block).__name__.lower(), block, data_uri(block) if isinstance(block, Figure) else ""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    return _ENVIRONMENT.from_string(_TEMPLATE).render(report=report, blocks=_blocks, is_number=is_number)
