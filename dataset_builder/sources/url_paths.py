"""URLs as the crawler sees them: normalised, matched against allowed hosts, classified, and mapped to safe paths.

`local_path` is the only way a URL becomes a file name, so a hostile URL can never write outside ``files/``.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from .folder import MIDI_EXTENSIONS  # what the crawler fetches as files is what a folder source reads

# Links with these extensions are neither pages nor MIDI: not requested at all, to spare the sites and our time.
# fmt: off
IGNORED_EXTENSIONS = frozenset([
    ".jpg", ".jpeg", ".png", ".gif", ".svg", ".webp", ".ico", ".bmp", ".tif", ".tiff", ".css", ".js", ".json", ".xml",
    ".rss", ".mp3", ".wav", ".ogg", ".flac", ".m4a", ".aac", ".wma", ".aif", ".aiff", ".mp4", ".avi", ".mov", ".mkv",
    ".webm", ".wmv", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".pdf", ".ps", ".doc", ".docx", ".xls",
    ".xlsx", ".ppt", ".exe", ".msi", ".dmg", ".iso", ".apk", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".sf2", ".sfz",
    ".sib", ".mus", ".mscz", ".mxl", ".musicxml",
])
# fmt: on
WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)


def normalize_url(url: str, base: str | None = None) -> str | None:
    """An absolute http(s) URL without fragment, scheme and host lower-cased; None for anything else."""
    try:
        absolute = urldefrag(urljoin(base, url.strip()) if base else url.strip())[0]
        split = urlsplit(absolute)
        if split.scheme.lower() not in ("http", "https") or not split.hostname:
            return None
        return split._replace(scheme=split.scheme.lower(), netloc=split.netloc.lower(), path=split.path or "/").geturl()
    except ValueError:  # a malformed port or IPv6 literal
        return None


def host_allowed(url: str, allowed: list[str]) -> bool:
    """Whether the URL's ``host:port`` or bare host is in `allowed` (lower-case entries)."""
    split = urlsplit(url)
    return split.netloc in allowed or split.hostname in allowed


def has_midi_extension(url: str) -> bool:
    """Whether the URL's path ends in .mid, .midi, .kar or .rmi (any case)."""
    return urlsplit(url).path.lower().endswith(MIDI_EXTENSIONS)


def is_ignored_link(url: str) -> bool:
    """Whether the URL names a file that is neither a page nor MIDI (an image, an archive...): never requested."""
    return os.path.splitext(urlsplit(url).path)[1].lower() in IGNORED_EXTENSIONS


def local_path(url: str, taken: set[str]) -> str:
    """A safe path for `url`'s file, relative to out_dir: files/<host>/<path>, never escaping, never in `taken`.

    Segments keep only [A-Za-z0-9._-] (so no '..', no separators after percent-decoding); directory names never end
    in a MIDI extension, so they cannot clash with a file; a query adds a short hash; a clash adds -2, -3, ...
    `taken` holds lower-cased names, so case-insensitive file systems are safe too.
    """
    split = urlsplit(url)
    host = safe_segment(split.netloc.replace(":", "_")) or "host"
    parts = [safe_segment(unquote(part)) for part in split.path.split("/")]
    parts = [part for part in parts if part][-9:]
    name = parts.pop() if parts else "index"
    dirs = [part + "_" if has_midi_extension(part) else part for part in parts]
    stem, ext = os.path.splitext(name)
    if ext.lower() not in MIDI_EXTENSIONS:
        stem, ext = name, ".mid"
    if split.query:
        stem = f"{stem[:80]}_{hashlib.sha256(split.query.encode()).hexdigest()[:8]}"
    base = "/".join(["files", host, *dirs, stem or "file"])
    candidate, number = base + ext, 2
    while candidate.lower() in taken:
        candidate, number = f"{base}-{number}{ext}", number + 1
    return candidate


def safe_segment(text: str) -> str:
    """One path segment reduced to [A-Za-z0-9._-], without leading or trailing dots, at most 100 characters."""
    segment = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:100].rstrip(".")
    if segment.split(".")[0].upper() in WINDOWS_DEVICE_NAMES:
        segment = "_" + segment
    return segment


__all__ = [
    "IGNORED_EXTENSIONS",
    "MIDI_EXTENSIONS",
    "has_midi_extension",
    "host_allowed",
    "is_ignored_link",
    "local_path",
    "normalize_url",
    "safe_segment",
]
