"""HTML (Help Center article bodies, HTML comments) to readable plain text. Pure: no I/O.

The study trained on "plain text without markup", but a list flattened into one line or a link
without its address loses meaning, so the structure is kept in plain-text form:

- headings, paragraphs, table rows: their own lines, paragraphs separated by a blank line;
- lists: ``- item`` / ``1. item``, nested lists indented by two spaces;
- links: ``text (https://…)`` (just the address when the text is the address);
- code: inline code in backticks, ``<pre>`` blocks kept line for line;
- images: ``[image: alt text]`` when they have alt text; scripts and styles dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

_BLOCK = frozenset(
    {
        "p", "div", "section", "article", "header", "footer", "main", "aside", "nav",
        "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "figure", "figcaption",
        "dl", "dt", "dd", "address", "details", "summary",
    }
)  # fmt: skip
_LINE = frozenset({"tr", "li", "br", "hr"})
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_HTML_HINT = re.compile(r"<\s*(p|br|div|ul|ol|li|a\s|strong|em|b|i|span|pre|code|table|h[1-6])\b[^>]*>", re.I)


def looks_like_html(text: str) -> bool:
    """True when ``text`` contains common HTML tags (a comment body sent as HTML)."""
    return bool(_HTML_HINT.search(text))


@dataclass
class _List:
    ordered: bool
    count: int = 0


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pending_breaks = 0  # newlines owed before the next text
        self.skip_depth = 0
        self.pre_depth = 0
        self.lists: list[_List] = []
        self.links: list[tuple[str, int]] = []  # (href, index in parts where the link text starts)
        self.cells_in_row = 0

    # -- output helpers ---------------------------------------------------------------------

    def _break(self, count: int) -> None:
        if self.parts:
            self.pending_breaks = max(self.pending_breaks, count)

    def _emit(self, text: str) -> None:
        if self.pending_breaks:
            self.parts.append("\n" * self.pending_breaks)
            self.pending_breaks = 0
        self.parts.append(text)

    # -- parser callbacks -------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        attributes = dict(attrs)
        if tag in ("ul", "ol"):
            self._break(1 if self.lists else 2)
            self.lists.append(_List(ordered=tag == "ol"))
        elif tag == "li":
            self._break(1)
            depth = max(0, len(self.lists) - 1)
            current = self.lists[-1] if self.lists else _List(ordered=False)
            current.count += 1
            marker = f"{current.count}." if current.ordered else "-"
            self._emit("  " * depth + marker + " ")
        elif tag == "pre":
            self._break(2)
            self.pre_depth += 1
        elif tag == "code" and not self.pre_depth:
            self._emit("`")
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.parts)))
        elif tag == "img":
            alt = (attributes.get("alt") or "").strip()
            if alt:
                self._emit(f"[image: {alt}]")
        elif tag in ("td", "th"):
            if self.cells_in_row:
                self._emit(" | ")
            self.cells_in_row += 1
        elif tag == "tr":
            self._break(1)
            self.cells_in_row = 0
        elif tag == "br":
            self._emit("\n")
        elif tag == "hr" or tag in _BLOCK:
            self._break(2)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._break(1 if self.lists else 2)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self._break(2)
        elif tag == "code" and not self.pre_depth:
            self._emit("`")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            text = "".join(self.parts[start:]).strip()
            if href and not href.startswith(("#", "javascript:")):
                target = href[len("mailto:") :] if href.startswith("mailto:") else href
                if target != text:
                    self._emit(f" ({target})" if text and not text.endswith(" ") else target)
        elif tag in _LINE or tag in _BLOCK:
            self._break(1 if tag in _LINE else 2)

    def handle_data(self, data: str) -> None:
        if self.skip_depth or not data:
            return
        if self.pre_depth:
            self._emit(data)
            return
        text = _SPACES.sub(" ", data.replace("\n", " "))
        at_line_start = self.pending_breaks or not self.parts or self.parts[-1].endswith((" ", "\n"))
        if at_line_start:
            text = text.lstrip(" ")
        if text:
            self._emit(text)


def html_to_text(html: str) -> str:
    """Readable plain text for ``html``; see the module docstring for what is kept."""
    converter = _Converter()
    converter.feed(html)
    converter.close()
    lines = [line.rstrip() for line in "".join(converter.parts).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
