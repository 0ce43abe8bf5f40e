"""Export an executed notebook to a self-contained, sanitized HTML page for auditors.

The page is an audit record: it runs nothing and fetches nothing, yet reads like the notebook
(rendered markdown, highlighted code, outputs, JupyterLab styling). It is put together from
two parts that never mix:

* **The notebook's content**, rendered by nbconvert's ``lab`` template *without* its page
  header and footer (``base.html.j2``: cells only) and *without* nbconvert's own bleach pass
  (``sanitize_html`` off, ``clean_html`` filter a no-op), so markdown renders instead of
  showing escaped tags. The whole of that rendering - markdown, code, every output, raw
  cells, anything the template emits for widgets or JavaScript - then goes through **nh3**
  once, as one fragment, with an allowlist: text and layout elements, tables, links and
  images; no ``script``/``style``/``iframe``/``object``/``embed``/``link``/``form`` elements,
  no event-handler attributes, URL schemes limited to http(s), mailto and data, every ``src``
  a ``data:`` URI (images embedded by nbconvert; remote or relative image sources are
  dropped, the ``alt`` text stays), ``data:`` never as a link target, ``rel="noopener
  noreferrer"`` on links, and ``style`` attributes reduced to properties that cannot
  reference a resource (colours, alignment, spacing, borders: pandas and ANSI colours keep
  working, ``background-image: url(...)`` does not survive).
* **The template's stylesheets**: the ``<style>`` blocks nbconvert inlines in a ``lab`` page
  (JupyterLab and Pygments CSS), taken once per process from the page nbconvert renders for
  an *empty* notebook, so no notebook content can reach them. Each is parsed with tinycss2
  and kept only if it has no ``@import`` and no ``url()`` other than ``data:``.

The page skeleton around them (doctype, title, ``<body>`` with the template's theme
attributes) is written here, with a Content-Security-Policy that lets the browser refuse
any script, frame or non-``data:`` load as a second line of defence. What the template's
header would add - require.js, MathJax and mermaid from a CDN, widget state - is simply
not part of the page, so math in markdown shows as its TeX source, mermaid diagrams as
their text and widgets as their text fallback. Display priorities leave out widget views
and JavaScript so their ``text/plain`` fallback is what shows.
"""

from __future__ import annotations

import contextlib
import threading
from html import escape
from html.parser import HTMLParser

import nh3
from nbformat import NotebookNode

_warming: threading.Thread | None = None
_rendering = threading.Lock()
_exporter: _Exporter | None = None

# Output types shown, best first. Widget views and JavaScript need a script to mean
# anything, so their plain-text fallback is shown instead.
_DISPLAY_PRIORITY = [
    "text/html",
    "text/markdown",
    "image/svg+xml",
    "text/latex",
    "image/png",
    "image/jpeg",
    "text/plain",
]

# nh3's (ammonia's) default element set has nothing that runs or loads except `img`, whose
# `src` is limited to data: URIs below; `input` is for markdown task lists (checkbox only),
# `tfoot` for tables.
_TAGS = nh3.ALLOWED_TAGS | {"input", "tfoot"}
_CLEAN_CONTENT_TAGS = {"script", "style", "iframe", "noscript", "template"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"class", "id", "title", "lang", "dir", "style"},
    "div": {"data-mime-type", "data-type"},  # the lab CSS styles stderr and code areas by these
    "table": {*nh3.ALLOWED_ATTRIBUTES["table"], "border"},  # pandas' `border="1"`
    "input": {"checked", "disabled"},
}
_ATTRIBUTE_VALUES = {"input": {"type": {"checkbox"}}}
_SET_ATTRIBUTES = {"input": {"disabled": "disabled"}}
_URL_SCHEMES = {"http", "https", "mailto", "data"}
# CSS properties a `style` attribute may keep: none of them takes a URL.
_STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-size",
    "font-family",
    "font-variant",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "vertical-align",
    "white-space",
    "word-break",
    "line-height",
    "letter-spacing",
    "width",
    "min-width",
    "max-width",
    "height",
    "min-height",
    "max-height",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "border-radius",
    "display",
    "float",
    "clear",
    "overflow",
    "overflow-x",
    "overflow-y",
    "opacity",
}

# Even if something slipped through, the browser refuses scripts, frames, plugins, forms
# and any load that is not inline: styles inline, images and fonts as data: URIs.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
)
_HEAD = (
    "<!DOCTYPE html>\n"
    '<html lang="en">\n'
    "<head>\n"
    '<meta charset="utf-8">\n'
    f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
)
_BODY = '<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">\n<main>\n'
_FOOT = "\n</main>\n</body>\n</html>\n"


def prepare() -> None:
    """Import nbconvert and compile its templates and stylesheet in the background (about
    half a second).

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
        nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
        nb.cells.append(nbformat.v4.new_markdown_cell("# Warm-up\n\n- *item*"))  # type: ignore[no-untyped-call]
        nb.cells.append(nbformat.v4.new_code_cell("print(1)"))  # type: ignore[no-untyped-call]
        _sanitize(_render(nb)[1])


def to_html(nb: NotebookNode) -> str:
    """Render ``nb`` as a self-contained HTML page with rendered markdown, every piece of
    notebook content sanitized by nh3, and nothing that runs or loads."""
    if _warming is not None:
        _warming.join()
    stylesheet, cells = _render(nb)
    title = escape(str(nb.metadata.get("title") or "Notebook"))
    return "".join((_HEAD, f"<title>{title}</title>\n", stylesheet, "</head>\n", _BODY, _sanitize(cells), _FOOT))


def _sanitize(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        strip_comments=True,
        link_rel="noopener noreferrer",
        tag_attribute_values=_ATTRIBUTE_VALUES,
        set_tag_attribute_values=_SET_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
    )


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    """Runs after nh3 has checked URL schemes: a source must be inline (a ``src`` makes the
    browser load it), and a ``data:`` URI is no link target."""
    if attribute == "src":
        return value if value.startswith("data:") else None
    if attribute == "href" and value.lstrip().lower().startswith("data:"):
        return None
    return value


def _keep(html: str) -> str:
    """Replaces nbconvert's bleach filter: everything rendered is cleaned by nh3 afterwards."""
    return html


class _Exporter:
    """nbconvert's lab exporter, built once (building one compiles the templates again), and
    the stylesheet of the page it renders."""

    def __init__(self) -> None:
        import nbformat
        from nbconvert import HTMLExporter
        from traitlets.config import Config

        self._nbconvert = HTMLExporter(  # type: ignore[no-untyped-call]
            config=Config({"NbConvertBase": {"display_data_priority": _DISPLAY_PRIORITY}}),
            template_name="lab",
            embed_images=True,
            sanitize_html=False,
            filters={"clean_html": _keep},
        )
        # The whole page for an empty notebook: no notebook content reaches its <style> blocks.
        page, _ = self._nbconvert.from_notebook_node(nbformat.v4.new_notebook())  # type: ignore[no-untyped-call]
        collector = _StyleCollector()
        collector.feed(str(page))
        collector.close()
        self.stylesheet = "".join(
            f'<style type="text/css">\n{css}\n</style>\n' for css in collector.styles if _loads_nothing(css)
        )
        # From now on the cells only, without the page (and its scripts) around them.
        self._nbconvert.template_file = "base.html.j2"

    def cells(self, nb: NotebookNode) -> str:
        """The cells as the lab template renders them, markdown unescaped, nothing sanitized."""
        body, _ = self._nbconvert.from_notebook_node(nb)
        return str(body)


def _render(nb: NotebookNode) -> tuple[str, str]:
    """The template's stylesheet and the unsanitized cells of ``nb``."""
    global _exporter
    with _rendering:  # an export registers filters on the exporter's Jinja environment
        if _exporter is None:
            _exporter = _Exporter()
        return _exporter.stylesheet, _exporter.cells(nb)


class _StyleCollector(HTMLParser):
    """The text of every ``<style>`` element of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.styles: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._current = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._current is not None:
            self.styles.append("".join(self._current))
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)


_CSS_URL_FUNCTIONS = {"url", "src", "image", "image-set", "-webkit-image-set", "cross-fade", "-webkit-cross-fade"}


def _is_data_uri(url: str) -> bool:
    return url.strip().lower().startswith("data:")


def _loads_nothing(css: str) -> bool:
    """Whether a stylesheet has no ``@import`` and no ``url()`` other than ``data:``, and
    cannot end its ``<style>`` element early. Checked on tinycss2's tokens, so comments and
    CSS escapes (``u\\72l(``) are seen as a browser sees them."""
    import tinycss2  # type: ignore[import-untyped]  # a dependency of nbconvert (bleach[css])

    if "</style" in css.lower():
        return False
    pending = [tinycss2.parse_component_value_list(css, skip_comments=True)]
    while pending:
        for token in pending.pop():
            kind = token.type
            if kind == "url":
                if not _is_data_uri(token.value):
                    return False
            elif kind == "function":
                if token.lower_name in _CSS_URL_FUNCTIONS:
                    # `url("...")` with a quoted argument is a function, not a url token;
                    # `image-set("a.png" 1x)` and friends take bare strings as URLs too.
                    strings = [arg.value for arg in token.arguments if arg.type == "string"]
                    if (token.lower_name in ("url", "src") and not strings) or not all(map(_is_data_uri, strings)):
                        return False
                pending.append(token.arguments)
            elif kind in ("() block", "[] block", "{} block"):
                pending.append(token.content)
            elif kind == "at-keyword" and token.lower_value == "import":
                return False
    return True
