"""Export an executed notebook to a self-contained, sanitized HTML page for auditors."""

from __future__ import annotations

import re

from nbformat import NotebookNode

# The lab template adds its own scripts (MathJax and require.js from a CDN); an audit page
# runs nothing and fetches nothing. Cell outputs are already sanitized by nbconvert.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.I | re.S)


def to_html(nb: NotebookNode) -> str:
    """Render ``nb`` as HTML with untrusted output sanitized and no script at all."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab", sanitize_html=True, embed_images=True
    )
    body, _ = exporter.from_notebook_node(nb)
    html = str(body)
    while _SCRIPT.search(html):
        html = _SCRIPT.sub("", html)
    return html
