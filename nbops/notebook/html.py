"""Export an executed notebook to a self-contained, sanitized HTML page for auditors."""

from __future__ import annotations

from nbformat import NotebookNode


def to_html(nb: NotebookNode) -> str:
    """Render ``nb`` as HTML with untrusted output sanitized (no scripts from cell outputs)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab", sanitize_html=True, embed_images=True
    )
    body, _ = exporter.from_notebook_node(nb)
    return str(body)
