"""A folder source: every .mid/.midi/.kar/.rmi file under a directory, with optional metadata from a sidecar file.

The sidecar follows the `datasets` folder convention: ``metadata.jsonl``, ``metadata.csv`` or ``metadata.json`` at the
folder's root, one row per file, a ``file_name`` column relative to the folder. Known columns (composer, title,
license/licence, source_url/url) fill those features; any other column (the crawler's ``fetched_at`` ...) is kept as
JSON in the ``metadata`` feature. Files are listed in a fixed order (sorted, depth-first) as a stream, so a huge folder
is never held in memory and every build sees the same order.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..items import FILE, SourceItem, metadata_json

logger = logging.getLogger(__name__)

MIDI_EXTENSIONS = (".mid", ".midi", ".kar", ".rmi")  # .rmi: RIFF-wrapped MIDI, unwrapped by the analysis
SIDECAR_NAMES = ("metadata.jsonl", "metadata.csv", "metadata.json")
KNOWN_COLUMNS = {  # feature -> accepted column names, first found wins
    "composer": ("composer", "artist"),
    "title": ("title",),
    "license": ("license", "licence"),
    "source_url": ("source_url", "url"),
}
SKIPPED_COLUMNS = ("file_name",)
EXTRA_CELLS = "unnamed_columns"  # a CSV row's cells beyond the header's columns, kept as a list in `metadata`


@dataclass
class FolderSource:
    """Every MIDI file under `root` (extensions case-insensitive, hidden files and folders skipped), in sorted order."""

    root: Path
    label: str | None = None  # the `source` feature; default "folder:<folder name>"
    default_license: str = "unknown"  # for files the sidecar gives no licence
    exclude: tuple[str, ...] = ()  # folders not to walk: the build's own output and work folders, if inside root
    _sidecar: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if not self.root.is_dir():
            raise ValueError(
                f"source folder {str(self.root)!r} does not exist or is not a directory; "
                "pass a folder of .mid/.midi/.kar/.rmi files, corpus:PATTERN or an http(s) URL"
            )
        if self.label is None:
            self.label = f"folder:{printable(self.root.resolve().name)}"
        self._sidecar = read_sidecar(self.root)  # read now: a broken sidecar stops the build before any work

    def __iter__(self) -> Iterator[SourceItem]:
        sidecar = self._sidecar
        seen = 0
        root = self.root.resolve()
        for rel in iter_midi_files(self.root, self.exclude):
            row = sidecar.get(rel, {})
            seen += bool(row)
            yield _item(root, rel, row, str(self.label), self.default_license)
        if len(sidecar) > seen:
            logger.warning("%s: %d sidecar rows name no MIDI file of the folder", self.root, len(sidecar) - seen)


def iter_midi_files(root: Path, exclude: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative POSIX paths of the MIDI files under `root`, sorted per directory, depth-first; a stream, not a list.

    Hidden folders and the folders in `exclude` (compared by real path) are not walked, nor are symlinked folders.
    """
    excluded = {os.path.realpath(path) for path in exclude}
    for directory, dirnames, filenames in os.walk(root, onerror=_unlistable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if excluded:
            dirnames[:] = [d for d in dirnames if os.path.realpath(os.path.join(directory, d)) not in excluded]
        rel_dir = Path(directory).relative_to(root).as_posix()
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(MIDI_EXTENSIONS):
                continue
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


def _unlistable(err: OSError) -> None:
    logger.warning("cannot list %s (%s): the MIDI files in it are left out", err.filename, err.strerror or err)


def read_sidecar(root: Path) -> dict[str, dict[str, Any]]:
    """Rows of the folder's metadata sidecar keyed by normalized ``file_name``; an empty dict when there is none."""
    found = [root / name for name in SIDECAR_NAMES if (root / name).is_file()]
    if not found:
        return {}
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ValueError(f"{root}: several metadata sidecars ({names}); keep one, the datasets convention reads one")
    path = found[0]
    rows = _read_rows(path)
    table: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        if isinstance(row, dict) and not any(value not in (None, "") for value in row.values()):
            continue  # a row of empty cells, as spreadsheets export them
        if not isinstance(row, dict) or not row.get("file_name"):
            raise ValueError(
                f"{path}: row {number} has no file_name; every row needs a file_name column "
                "relative to the folder (the datasets folder convention)"
            )
        table[_normalize(str(row["file_name"]))] = row
    return table


def _read_rows(path: Path) -> list[Any]:
    """The rows of a .jsonl, .csv or .json sidecar, with errors that name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the metadata sidecar ({err})") from None
    if path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines(), restkey=EXTRA_CELLS)  # cells past the header are kept, not lost
        if "file_name" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no file_name column (found {reader.fieldnames}); add one naming each file")
        return list(reader)
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {number} is not JSON ({err.msg})") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, dict):  # {file_name: {...}}
        return [{"file_name": name, **(value if isinstance(value, dict) else {})} for name, value in data.items()]
    if isinstance(data, list):
        return data
    raise ValueError(f"{path}: expected a list of rows or an object keyed by file_name, got {type(data).__name__}")


def printable(name: str) -> str:
    """A file name as valid UTF-8 text: bytes that are not UTF-8 (kept by Python as surrogates) become ``\\xe9``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _normalize(file_name: str) -> str:
    """A sidecar file_name as the POSIX path relative to the folder that `iter_midi_files` yields."""
    return posixpath.normpath(file_name.replace("\\", "/")).lstrip("/")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _item(root: Path, rel: str, row: dict[str, Any], label: str, default_license: str) -> SourceItem:
    known: dict[str, str] = {}
    used = set(SKIPPED_COLUMNS)
    for feature, columns in KNOWN_COLUMNS.items():
        for column in columns:
            if column in row:
                used.add(column)
                known.setdefault(feature, _text(row[column]))
    extra = {key: value for key, value in row.items() if key not in used and value not in (None, "")}
    path = printable(rel)  # the `path` feature must be text; `locator` keeps the name the file system knows
    return SourceItem(
        source=label,
        path=path,
        kind=FILE,
        locator=os.path.join(root, rel),  # not resolve()d: a symlink loop is for the reader to reject
        composer=known.get("composer", ""),
        title=known.get("title") or Path(path).stem,
        license=known.get("license") or default_license,
        source_url=known.get("source_url", ""),
        metadata=metadata_json(extra),
    )


__all__ = ["MIDI_EXTENSIONS", "SIDECAR_NAMES", "FolderSource", "iter_midi_files", "printable", "read_sidecar"]
