"""The text tree and the self-contained HTML page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from nbops.audit.render import short
from tests.audit.samples import HOSTILE, SHA_A, SHA_B, sample

pytestmark = pytest.mark.unit


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_only_long_hex_is_shortened() -> None:
    assert short(SHA_A) == SHA_A[:12]
    assert short("0123456789abcdef0123456789abcdef") == "0123456789ab"
    assert short("succeeded") == "succeeded"
    assert short("nb/train.ipynb") == "nb/train.ipynb"


def test_text_is_a_tree_with_short_hashes_and_full_failures() -> None:
    text = sample(failing=True).to_text()
    lines = text.splitlines()
    assert lines[0] == "model m version 1  (aliases: champion)"
    assert any(line.startswith("├─ prep#1") for line in lines)
    assert any(line.startswith("└─ train#1") and line.endswith("[FAILED]") for line in lines)
    assert f"sha256 {SHA_B[:12]}  FAILED" in text  # the output line, hash cut to 12
    assert "audit: 1 of 2 checks FAILED:" in text
    failure = lines[-1]
    assert failure.startswith("  - train#1 file outputs/model.pkl: /store/runs/p/r/train/attempt-1/outputs/model.pkl")
    assert SHA_A in failure and SHA_B in failure
    assert "lr = 0.5  (override; notebook default 0.1)" in text
    assert "(dirty)" in text
    assert sample(failing=False).to_text().rstrip().endswith("audit: 2 checks, all passed")


def test_html_is_self_contained_escaped_and_shows_failures() -> None:
    page = sample(failing=True).to_html()
    assert "<script" not in page.lower()
    parser = Tags()
    parser.feed(page)
    names = [tag for tag, _ in parser.tags]
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(names)
    assert all(not (attrs.get("src") or attrs.get("href")) for _, attrs in parser.tags)
    assert names.count("style") == 1
    text = "".join(parser.text)
    assert HOSTILE in text  # shown as text, not markup
    assert "1 of 2 checks FAILED" in text and "Failed checks" in text
    assert "/store/runs/p/r/train/attempt-1/outputs/model.pkl" in text
    assert any(tag == "tr" and attrs.get("class") == "fail" for tag, attrs in parser.tags)
    assert "Failed checks" not in sample(failing=False).to_html()
