"""Licence names as short ids, so that a user's ``--licenses cc-by-4.0,cc0-1.0`` matches what sources write
("CC BY 4.0", "Creative Commons Attribution 4.0", "CC-BY-4.0 (https://...)", "cc0")."""

from __future__ import annotations

import re

from toccata.tokenization.score_io import license_from_text

# Short names `license_from_text` gives -> ids (SPDX's, lower case).
_IDS = {
    "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0",
    "CC BY-NC-ND 4.0": "cc-by-nc-nd-4.0",
    "CC BY-NC 4.0": "cc-by-nc-4.0",
    "CC BY-SA 4.0": "cc-by-sa-4.0",
    "CC BY 4.0": "cc-by-4.0",
    "CC0 1.0": "cc0-1.0",
    "MIT": "mit",
}
PERMISSIVE = ("cc0-1.0", "cc-by-4.0", "mit")  # free for any use, commercial included (CC BY: with attribution)


def license_id(name: str) -> str:
    """A licence as a lower-case id: "CC BY 4.0" -> "cc-by-4.0"; a text `license_from_text` does not know as its
    words joined by hyphens ("kernScores terms" -> "kernscores-terms"); "" for none."""
    text = str(name or "").strip()
    if not text:
        return ""
    spelled = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")
    if spelled in _IDS.values():
        return spelled
    short = license_from_text(text) or license_from_text(text.replace("-", " "))
    return _IDS.get(short, spelled)


def parse_licenses(text: str) -> tuple[str, ...]:
    """The ids of a comma-separated list (``cc-by-4.0,cc0-1.0``; ``permissive`` = those free for commercial use)."""
    ids: list[str] = []
    for part in str(text).split(","):
        part = part.strip()
        if part.lower() == "permissive":
            ids.extend(PERMISSIVE)
        elif part:
            ids.append(license_id(part))
    if not ids:
        raise ValueError(f"licenses {text!r}: give licence ids such as cc-by-4.0,cc0-1.0 (or permissive)")
    return tuple(dict.fromkeys(ids))


__all__ = ["PERMISSIVE", "license_id", "parse_licenses"]
