"""Every relative link and image in the README, the docs and the checkpoint cards points at a file that exists.

A new user follows them first: the README once linked `evaluation/preset_search.md`, which no checkpoint held.
Web links (http, https, mailto) are not fetched. A #anchor into a markdown page must name one of its headings, as
GitHub makes them (lower case, punctuation dropped, spaces as hyphens, -1, -2 ... for repeats).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]  # tests/cli/test_docs_links.py
PAGES = sorted(
    [
        ROOT / "README.md",
        *ROOT.glob("docs/*.md"),
        ROOT / "benchmarks" / "README.md",
        ROOT / "demo" / "README.md",
        *ROOT.glob("toccata/checkpoints/*/README.md"),
        *ROOT.glob("toccata/checkpoints/*/evaluation/*.md"),
    ]
)
# [text](target "title") and ![alt](target): the target, without its <> brackets or its title
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)  # [name]: target
HTML = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)  # links inside code are examples, not links
EXTERNAL = ("http://", "https://", "mailto:", "ftp://", "data:")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def links(text: str) -> list[str]:
    """The link and image targets of a markdown page, outside code blocks and code spans."""
    text = CODE.sub("", text)
    return [m.group(1) for pattern in (INLINE, REFERENCE, HTML) for m in pattern.finditer(text)]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a markdown page."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(re.sub(r"```.*?```", "", text, flags=re.DOTALL)):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")  # a link's text, code's text
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    """The relative targets of `page` whose file does not exist (relative to the page), or whose #anchor names no
    heading of the markdown page it points at."""
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if target.lower().startswith(EXTERNAL):
            continue
        path, _, anchor = unquote(target.split("?", 1)[0]).partition("#")
        resolved = page if not path else ROOT / path.lstrip("/") if path.startswith("/") else page.parent / path
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            broken.append(target)
    return broken


def test_the_link_finder_sees_every_kind_of_link() -> None:
    text = (
        "See [the docs](docs/a.md#part), ![a picture](images/b.png \"title\"), [c][ref] and <img src=\"c.png\">.\n"
        "[ref]: other/c.md\n`[not](a-link.md)` and\n```\n[nor](this.md)\n```\n[web](https://example.org/x.md)\n"
    )
    assert links(text) == ["docs/a.md#part", "images/b.png", "https://example.org/x.md", "other/c.md", "c.png"]


def test_anchors_are_made_as_github_makes_them() -> None:
    text = "# Building a dataset\n## What a row holds\n### `tokens` and [BPE](x.md): 2 ways\n## Measured\n## Measured\n"
    expected = {"building-a-dataset", "what-a-row-holds", "tokens-and-bpe-2-ways", "measured", "measured-1"}
    assert anchors(text) == expected


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert not broken_links(page), f"{page.relative_to(ROOT)} links files that do not exist"
