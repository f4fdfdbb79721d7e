"""What the crawler reads from an HTML page: its links, the licence it states, and a robots ``nofollow``.

The stdlib `html.parser` is enough (no bs4): only start tags, the text of ``<a rel="license">`` and ``<base>`` matter.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

LICENSE_META_NAMES = frozenset({"license", "dc.rights", "dcterms.license", "dcterms.rights", "copyright"})
LINK_ATTRIBUTES = {
    "a": "href", "area": "href", "frame": "src", "iframe": "src", "embed": "src", "bgsound": "src", "object": "data",
    "source": "src",
}  # fmt: skip
CC_LINK = re.compile(r"https?://(www\.)?creativecommons\.org/(licenses|publicdomain)/")


class PageParser(HTMLParser):
    """Collects links, licence markup and a robots nofollow from one HTML page."""

    def __init__(self, base_url: str):
        super().__init__(convert_charrefs=True)
        self.base = base_url
        self.links: list[str] = []  # absolute, in page order, duplicates kept
        self.licenses: list[str] = []  # rel="license" links and licence meta tags
        self.cc_links: list[str] = []  # plain links to Creative Commons licences, used when nothing explicit
        self.nofollow = False
        self._anchor: list[Any] | None = None  # [href, words] of an open <a rel="license">

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "").strip() for name, value in attrs}
        rel = values.get("rel", "").lower().split()
        if tag == "base" and values.get("href"):
            self.base = _join(self.base, values["href"]) or self.base
        if tag == "meta":
            name, content = values.get("name", "").lower(), values.get("content", "")
            if name in LICENSE_META_NAMES and content:
                self.licenses.append(content)
            if name == "robots" and {"nofollow", "none"} & set(re.split(r"[\s,]+", content.lower())):
                self.nofollow = True
        href = _join(self.base, values["href"]) if values.get("href") else ""
        if "license" in rel and href:
            if tag == "a":
                self._anchor = [href, []]
            else:
                self.licenses.append(href)
        elif tag == "a" and CC_LINK.match(href):
            self.cc_links.append(href)
        target = values.get(LINK_ATTRIBUTES.get(tag, ""))
        if target:
            link = _join(self.base, target)
            if link:
                self.links.append(link)

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._anchor[1].extend(data.split())

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            href, words = self._anchor
            self.licenses.append(f"{' '.join(words)} ({href})" if words else href)
            self._anchor = None

    def license(self) -> str | None:
        """The licences found, joined with '; ', or None."""
        found = list(dict.fromkeys(self.licenses or self.cc_links))
        return "; ".join(found) or None


def parse_page(body: bytes, content_type: str, base_url: str) -> PageParser:
    """Decode a page as its Content-Type's charset says (else UTF-8, errors replaced) and parse it."""
    parser = PageParser(base_url)
    parser.feed(body.decode(page_charset(content_type), errors="replace"))
    parser.close()
    return parser


def page_charset(content_type: str) -> str:
    """The codec named by a Content-Type header's charset, if Python knows it; else utf-8."""
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type)
    if match:
        with contextlib.suppress(LookupError):
            return codecs.lookup(match.group(1)).name
    return "utf-8"


def _join(base: str, link: str) -> str:
    """`urljoin`, or '' for a link it cannot read (a malformed IPv6 host or port): one bad link must not stop a page."""
    try:
        return urljoin(base, link)
    except ValueError:
        return ""


__all__ = ["LICENSE_META_NAMES", "LINK_ATTRIBUTES", "PageParser", "page_charset", "parse_page"]
