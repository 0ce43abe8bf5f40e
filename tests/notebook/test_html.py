"""The audit page: markdown rendered, outputs sanitized, nothing that runs or loads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from nbops.notebook import html

pytestmark = pytest.mark.unit

# A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

DATAFRAME = """<div>
<style scoped>
    .dataframe tbody tr th:only-of-type {
        vertical-align: middle;
    }
    .dataframe thead th {
        text-align: right;
    }
</style>
<table border="1" class="dataframe">
  <thead>
    <tr style="text-align: right;">
      <th></th>
      <th>feature</th>
      <th>score</th>
    </tr>
  </thead>
  <tbody>
    <tr>
      <th>0</th>
      <td>age</td>
      <td>0.91</td>
    </tr>
    <tr>
      <th>1</th>
      <td>income</td>
      <td>0.42</td>
    </tr>
  </tbody>
</table>
</div>"""

# Each would run code or load something if it reached the page as written.
PAYLOADS = """<p>Harmless caption 42</p>
<script>alert(1)</script>
<img src=x onerror=alert(1)>
<a href="javascript:alert(1)">click me</a>
<iframe src=https://evil.example/frame></iframe>
<img src="https://tracker.example/pixel.png" alt="pixel">
<object data="https://evil.example/o.swf"></object>
<embed src="https://evil.example/e.swf">
<link rel="stylesheet" href="https://evil.example/x.css">
<style>@import url(https://evil.example/x.css); body { background: url(https://tracker.example/bg.png) }</style>
<p style="background-image: url(https://tracker.example/bg.png); color: red" onclick="alert(1)">styled</p>
<svg onload="alert(1)"><image href="https://tracker.example/svg.png"/></svg>
<video src="https://evil.example/v.mp4" poster="https://tracker.example/poster.png"></video>
<form action="https://evil.example/post"><button formaction="javascript:alert(1)">go</button></form>
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<base href="https://evil.example/">
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link</a>
<div onmouseover="alert(1)">hover text</div>
"""

TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[3], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m \x1b[38;5;241m1\x1b[39m\x1b[38;5;241m/\x1b[39m\x1b[38;5;241m0\x1b[39m\n",
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
]

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Page(HTMLParser):
    """Every element of a page with its attributes and text, as a browser would see them."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self._texts: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)
        if not any(element.tag == "style" for element in self._open):
            self._texts.append(data)

    @property
    def text(self) -> str:
        """The page's text outside ``<style>`` elements."""
        return "".join(self._texts)

    def find(self, tag: str, **attrs: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and all(e.attrs.get(k) == v for k, v in attrs.items())]


def css(declarations: str) -> str:
    """A ``style`` attribute without spaces or a trailing semicolon."""
    return declarations.replace(" ", "").rstrip(";")


def render(*cells: nbformat.NotebookNode, **metadata: object) -> Page:
    nb = new_notebook()
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    nb.metadata.update(metadata)
    nb.cells = list(cells)
    return Page(html.to_html(nb))


def code(*outputs: nbformat.NotebookNode, source: str = "result") -> nbformat.NotebookNode:
    return new_code_cell(source, execution_count=1, outputs=list(outputs))


def html_output(markup: str) -> nbformat.NotebookNode:
    return new_output("display_data", data={"text/html": markup, "text/plain": "<fallback>"})


def assert_runs_and_loads_nothing(page: Page) -> None:
    """No element, attribute or stylesheet of ``page`` runs code or makes the browser fetch."""
    tags = {e.tag for e in page.elements}
    assert not tags & {"script", "iframe", "frame", "object", "embed", "applet", "link", "base", "form", "svg"}
    assert not [
        e for e in page.find("meta") if "http-equiv" in e.attrs and e.attrs["http-equiv"] != "Content-Security-Policy"
    ]
    for element in page.elements:
        for name, value in element.attrs.items():
            assert not name.startswith("on"), (element.tag, name, value)
            if name in ("href", "src", "action", "formaction", "poster", "data", "srcset", "background"):
                assert not value.strip().lower().startswith("javascript:"), (element.tag, name, value)
            if name in ("src", "srcset", "poster", "data", "background"):
                assert value.startswith("data:"), (element.tag, name, value[:80])
            if name == "href" and element.tag == "a":
                assert not value.lower().startswith("data:"), value[:80]
            if name == "style":
                assert "url(" not in value.lower() and "@import" not in value.lower(), value
    styles = [e.text for e in page.find("style")]
    for css in styles:
        assert "@import" not in css.lower()
        for match in re.finditer(r"url\(\s*['\"]?", css, re.I):
            assert css[match.end() : match.end() + 5].lower() == "data:", css[match.start() : match.start() + 80]


def test_markdown_renders_headings_lists_links_tables_and_embedded_images() -> None:
    cell = new_markdown_cell(
        "# Train\n\n"
        "Fits the *model* on **all** rows.\n\n"
        "- first step\n- second step\n\n"
        "See [the docs](https://example.com/docs).\n\n"
        "| metric | value |\n|---|---|\n| auc | 0.93 |\n\n"
        "![attached](attachment:dot.png) ![inline](data:image/png;base64," + PNG + ")\n\n"
        "```python\nimport numpy as np\n```\n"
    )
    cell.attachments = {"dot.png": {"image/png": PNG}}
    page = render(cell)

    assert "&lt;h1" not in page.source and "<h1" not in page.text
    assert [h.text.rstrip("¶") for h in page.find("h1")] == ["Train"]
    assert [e.text for e in page.find("em")] == ["model"] and [e.text for e in page.find("strong")] == ["all"]
    assert [li.text for li in page.find("li")] == ["first step", "second step"] and page.find("ul")
    links = page.find("a", href="https://example.com/docs")
    assert [a.text for a in links] == ["the docs"]
    assert links[0].attrs["rel"] == "noopener noreferrer"
    assert [th.text for th in page.find("th")] == ["metric", "value"]
    assert [td.text for td in page.find("td")] == ["auc", "0.93"] and page.find("table")
    images = {img.attrs["alt"]: img.attrs["src"] for img in page.find("img")}
    assert images == {"attached": f"data:image/png;base64,{PNG}", "inline": f"data:image/png;base64,{PNG}"}
    keywords = [span.text for span in page.find("span", **{"class": "kn"})]  # pygments: highlighted code block
    assert keywords == ["import"]
    assert_runs_and_loads_nothing(page)


def test_code_and_streams_are_readable_and_highlighted() -> None:
    cell = code(
        new_output("stream", name="stdout", text="[0 1 2]\n<b>printed, not bold</b>\n"),
        new_output("stream", name="stderr", text="a warning\n"),
        source="import numpy as np\nprint(np.arange(3))",
    )
    page = render(cell)

    assert [s.text for s in page.find("span", **{"class": "kn"})] == ["import"]
    assert [s.text for s in page.find("span", **{"class": "nn"})] == ["numpy", "np"]
    assert "In [1]:" in page.text.replace("\xa0", " ")
    outputs = [e.text for e in page.find("pre") if "[0 1 2]" in e.text]
    assert outputs == ["[0 1 2]\n<b>printed, not bold</b>\n"]  # printed markup stays text
    assert not page.find("b")
    assert page.find("div", **{"data-mime-type": "application/vnd.jupyter.stderr"})
    assert_runs_and_loads_nothing(page)


def test_page_keeps_the_lab_styling_without_the_template_scripts() -> None:
    page = render(new_markdown_cell("Math stays as its source: $x^2$"))

    assert not page.find("script")  # require.js, MathJax and mermaid from the CDN
    assert "cdnjs" not in page.source
    styles = [e.text for e in page.find("style")]
    assert any("--jp-layout-color0" in css for css in styles)  # JupyterLab theme
    assert any(".jp-RenderedHTMLCommon" in css for css in styles)  # JupyterLab notebook CSS
    assert any(".highlight .kn" in css for css in styles)  # Pygments
    body = page.find("body")[0]
    assert "jp-Notebook" in body.attrs["class"].split()
    csp = page.find("meta", **{"http-equiv": "Content-Security-Policy"})[0].attrs["content"]
    assert "default-src 'none'" in csp and "img-src data:" in csp
    assert "$x^2$" in page.text
    assert_runs_and_loads_nothing(page)


def test_dataframe_html_output_is_still_a_table() -> None:
    page = render(
        code(new_output("execute_result", data={"text/html": DATAFRAME, "text/plain": "df"}, execution_count=1))
    )

    tables = page.find("table", **{"class": "dataframe"})
    assert len(tables) == 1 and tables[0].attrs["border"] == "1"
    assert [th.text for th in page.find("th")] == ["", "feature", "score", "0", "1"]
    assert [td.text for td in page.find("td")] == ["age", "0.91", "income", "0.42"]
    assert css(page.find("tr")[0].attrs["style"]) == "text-align:right"
    assert "vertical-align" not in page.text  # the scoped <style> is gone, not shown as text
    assert not any(".dataframe" in e.text for e in page.find("style"))
    assert_runs_and_loads_nothing(page)


@pytest.mark.parametrize(
    "cell",
    [
        pytest.param(code(html_output(PAYLOADS)), id="html-output"),
        pytest.param(code(new_output("display_data", data={"text/markdown": PAYLOADS})), id="markdown-output"),
        pytest.param(new_markdown_cell("# Notes\n\n" + PAYLOADS), id="markdown-cell"),
        pytest.param(new_raw_cell(PAYLOADS, metadata={"raw_mimetype": "text/html"}), id="raw-html-cell"),
    ],
)
def test_malicious_html_is_defused_and_harmless_text_survives(cell: nbformat.NotebookNode) -> None:
    page = render(cell)

    assert_runs_and_loads_nothing(page)
    assert "Harmless caption 42" in page.text
    assert "click me" in page.text and "styled" in page.text and "hover text" in page.text
    assert "alert" not in page.text  # script bodies are dropped, not shown
    for element in page.elements:
        for value in element.attrs.values():
            assert "evil.example" not in value and "tracker.example" not in value, (element.tag, value)
    assert [css(p.attrs["style"]) for p in page.find("p") if p.text == "styled"] == ["color:red"]
    for link in page.find("a"):
        assert "href" not in link.attrs or link.attrs["href"].startswith(("https://", "#")), link.attrs
        assert link.attrs["rel"] == "noopener noreferrer"
    assert "pixel" in [img.attrs.get("alt") for img in page.find("img") if "src" not in img.attrs]  # source dropped


def test_scripts_widgets_and_remote_files_in_outputs_load_nothing() -> None:
    remote_png = new_output("display_data", data={"image/png": PNG})
    remote_png.metadata = {"filenames": {"image/png": "https://tracker.example/plot.png"}}
    cell = code(
        new_output("display_data", data={"application/javascript": "alert(1)", "text/plain": "<Javascript object>"}),
        new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
                "text/plain": "IntProgress(value=3)",
            },
        ),
        new_output("display_data", data={"image/png": PNG}),
        remote_png,
    )
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {"note": "widget-state-marker"}}}}
    page = render(cell, title="</title><script>alert(1)</script>", widgets=state)

    assert_runs_and_loads_nothing(page)
    assert "IntProgress(value=3)" in page.text and "<Javascript object>" in page.text  # text fallbacks
    assert [img.attrs.get("src") for img in page.find("img")] == [f"data:image/png;base64,{PNG}", None]
    assert [t.text for t in page.find("title")] == ["</title><script>alert(1)</script>"]
    assert "widget-state-marker" not in page.source  # the template's widget-state <script>


def test_error_output_renders_readable_traceback() -> None:
    cell = code(
        new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=TRACEBACK), source="1/0"
    )
    page = render(cell)

    errors = [e.text for e in page.find("div", **{"data-mime-type": "application/vnd.jupyter.stderr"})]
    assert len(errors) == 1
    assert "ZeroDivisionError: division by zero" in errors[0]
    assert "----> 1 1/0" in errors[0]
    assert "\x1b" not in page.source and "[0;31m" not in page.source
    assert [s.text for s in page.find("span", **{"class": "ansi-red-fg"})][-1] == "ZeroDivisionError"
    operators = [css(s.attrs["style"]) for s in page.find("span") if s.text == "/" and "style" in s.attrs]
    assert operators == ["color:rgb(98,98,98)"]  # 256-colour ANSI keeps its colour
    assert_runs_and_loads_nothing(page)


def test_prepare_warms_up_in_the_background() -> None:
    html.prepare()
    page = render(new_markdown_cell("## Evaluate"))

    assert [h.text.rstrip("¶") for h in page.find("h2")] == ["Evaluate"]
    assert html._warming is not None and not html._warming.is_alive()


@pytest.mark.parametrize(
    "css",
    [
        '@import "https://fonts.example/a.css";',
        "@IMPORT url(a.css);",
        "a { background: url(https://tracker.example/a.png) }",
        'a { background: URL( "//tracker.example/a.png" ) }',
        r"a { background: u\72l(https://tracker.example/a.png) }",
        'a { background: image-set("a.png" 1x) }',
        "@media print { a { background: url(data:image/png;base64,AA), url(b.png) } }",
        "@font-face { src: url(https://fonts.example/f.woff2) }",
        "a {} </style><script>alert(1)</script>",
    ],
)
def test_a_template_stylesheet_that_would_load_is_left_out(css: str) -> None:
    assert not html._loads_nothing(css)


@pytest.mark.parametrize(
    "css",
    [
        "a { background: url(data:image/png;base64,AA) }",
        "a { background: url('data:image/svg+xml;utf8,x') } /* url(https://example.com) */",
        ".jp-Notebook { color: var(--jp-ui-font-color1) }",
    ],
)
def test_a_template_stylesheet_that_loads_nothing_is_kept(css: str) -> None:
    assert html._loads_nothing(css)
