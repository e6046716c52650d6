"""The self-contained HTML report: one file, figures inlined as base64 data URIs.

Rendered with Jinja2 with autoescaping on, so every value from the run directory
(names, labels, reasons, config values) is HTML-escaped.
"""

from __future__ import annotations

import base64

import jinja2

from personax.report._model import Figure, Report

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
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin: 1.4em 0 0.5em; font-size: 1.05em; }
.meta { color: #666; margin: 0.1em 0; font-size: 0.9em; }
nav ol { columns: 2; font-size: 0.95em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
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
<section id="{{ section.anchor }}">
<h2>{{ section.title }}</h2>
{% for kind, block, src in blocks(section) %}
{% if kind == "paragraph" %}<p>{{ block.text }}</p>
{% elif kind == "note" %}<p class="note">{{ block.text }}</p>
{% elif kind == "heading" %}<h3>{{ block.text }}</h3>
{% elif kind == "table" %}<table>
{% if block.caption %}<caption>{{ block.caption }}</caption>{% endif %}
{% if block.columns | select | list %}<thead><tr>{% for column in block.columns %}<th>{{ column }}</th>{% endfor %}</tr></thead>{% endif %}
<tbody>
{% for row in block.rows %}<tr>{% for value in row %}<td>{{ value }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% elif kind == "figure" %}<figure><img src="{{ src }}" alt="{{ block.caption }}"><figcaption>{{ block.caption }}</figcaption></figure>
{% elif kind == "code" %}<pre><code>{{ block.text }}</code></pre>
{% endif %}
{% endfor %}
</section>
{% endfor %}
<script>
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
    return "data:image/png;base64," + base64.b64encode(figure.path.read_bytes()).decode("ascii")


def _blocks(section):
    for block in section.blocks:
        yield type(block).__name__.lower(), block, data_uri(block) if isinstance(block, Figure) else ""


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    return _ENVIRONMENT.from_string(_TEMPLATE).render(report=report, blocks=_blocks)
