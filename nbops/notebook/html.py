"""Export an executed notebook to a self-contained, sanitized HTML page for auditors."""

from __future__ import annotations

import contextlib
import re
import threading

from nbformat import NotebookNode

# The lab template adds its own scripts (MathJax and require.js from a CDN); an audit page
# runs nothing and fetches nothing. Cell outputs are already sanitized by nbconvert.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.I | re.S)
_warming: threading.Thread | None = None


def prepare() -> None:
    """Import nbconvert and compile its templates in the background (about half a second).

    Called once the kernel runs cells, when this process mostly waits, so the export after
    the last cell does not pay for it. :func:`to_html` waits for it; a failure here only
    means :func:`to_html` does the work itself.
    """
    global _warming
    if _warming is None:
        _warming = threading.Thread(target=_warm, name="nbops-html-warm-up", daemon=True)
        _warming.start()


def _warm() -> None:
    import nbformat

    with contextlib.suppress(Exception):
        _render(nbformat.v4.new_notebook())  # type: ignore[no-untyped-call]


def to_html(nb: NotebookNode) -> str:
    """Render ``nb`` as HTML with untrusted output sanitized and no script at all."""
    if _warming is not None:
        _warming.join()
    html = _render(nb)
    while _SCRIPT.search(html):
        html = _SCRIPT.sub("", html)
    return html


def _render(nb: NotebookNode) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab", sanitize_html=True, embed_images=True
    )
    body, _ = exporter.from_notebook_node(nb)
    return str(body)
