"""A folder source: every MIDI (.mid/.midi/.kar/.rmi) and score file (.krn, .musicxml/.mxl/.xml, .abc, .mei) under a
directory, with optional metadata from a sidecar file.

Scores are converted to MIDI later, in a worker (`toccata.tokenization.score_io`); what a score says about itself
(composer, title, movement, licence) fills what the sidecar does not. A collection's licence file (LICENSE*, COPYING*,
or a README that names a licence) in the file's folder or any folder above it, up to the root, gives the licence of
the files under it that the sidecar leaves without one.

The sidecar follows the `datasets` folder convention: ``metadata.jsonl``, ``metadata.csv`` or ``metadata.json`` at the
folder's root, one row per file, a ``file_name`` column relative to the folder. Known columns (composer, title,
license/licence, source_url/url) fill those features; any other column (the crawler's ``fetched_at`` ...) is kept as
JSON in the ``metadata`` feature. Files are listed in a fixed order (sorted, depth-first) as a stream, so a huge folder
is never held in memory and every build sees the same order.

Where neither the sidecar nor the file names them, the composer and title come from the folder layout
(``<root>/<Composer>/…/<file>``, `names.py`); a score's own records (kern ``!!!COM``) come before the folders.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import posixpath
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toccata.tokenization.score_io import SCORE_EXTENSIONS, is_score_path, license_from_text

from ..items import FILE, SCORE, SourceItem, metadata_json
from ..names import composer_from_folders, title_from_path

logger = logging.getLogger(__name__)

MIDI_EXTENSIONS = (".mid", ".midi", ".kar", ".rmi")  # .rmi: RIFF-wrapped MIDI, unwrapped by the analysis
MUSIC_EXTENSIONS = MIDI_EXTENSIONS + SCORE_EXTENSIONS
LICENSE_FILE_PREFIXES = ("license", "licence", "copying", "readme")  # LICENSE.txt, COPYING, README.md ...
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
    """Every MIDI and score file under `root` (extensions case-insensitive, hidden files and folders skipped), sorted.

    An item's licence: the sidecar's, else the nearest collection licence file's, else `default_license`; a score
    with no licence from either gets the one its own records state (kern ``!!!YEM``) before the default, in the build.
    """

    root: Path
    label: str | None = None  # the `source` feature; default "folder:<folder name>"
    default_license: str = "unknown"  # for files the sidecar gives no licence
    exclude: tuple[str, ...] = ()  # folders not to walk: the build's own output and work folders, if inside root
    names_from_folders: bool = True  # composer and title from the folder layout (not for crawls: files/<host>/...)
    _sidecar: Sidecar | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if not self.root.is_dir():
            raise ValueError(
                f"source folder {str(self.root)!r} does not exist or is not a directory; "
                "pass a folder of MIDI or score files (.mid, .krn, .musicxml ...), corpus:PATTERN or an http(s) URL"
            )
        if self.label is None:
            self.label = f"folder:{printable(self.root.resolve().name)}"
        self._sidecar = read_sidecar(self.root)  # read now: a broken sidecar stops the build before any work

    def __iter__(self) -> Iterator[SourceItem]:
        sidecar = self._sidecar
        seen = 0  # files the sidecar names; the rest of its rows name no file of the folder
        root = self.root.resolve()
        licenses = CollectionLicenses(root)
        for rel in iter_music_files(self.root, self.exclude):
            row = sidecar.get(rel, {})
            seen += bool(row)
            is_score = is_score_path(rel)
            default = licenses.for_file(rel) or ("" if is_score else self.default_license)
            item = _item(root, rel, row, str(self.label), default, SCORE if is_score else FILE, self.names_from_folders)
            if licenses.for_file(rel) and item.license == licenses.for_file(rel):
                item = dataclasses.replace(item, license_file=licenses.file_for(rel))
            yield item
        if len(sidecar) > seen:
            logger.warning(
                "%s: %d sidecar rows name no MIDI or score file of the folder", self.root, len(sidecar) - seen
            )


def iter_music_files(root: Path, exclude: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative POSIX paths of the MIDI and score files under `root`, sorted per directory, depth-first; a stream.

    Hidden folders and the folders in `exclude` (compared by real path) are not walked, nor are symlinked folders.
    """
    excluded = {os.path.realpath(path) for path in exclude}
    for directory, dirnames, filenames in os.walk(root, onerror=_unlistable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if excluded:
            dirnames[:] = [d for d in dirnames if os.path.realpath(os.path.join(directory, d)) not in excluded]
        rel_dir = Path(directory).relative_to(root).as_posix()
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(MUSIC_EXTENSIONS):
                continue
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


def _unlistable(err: OSError) -> None:
    logger.warning("cannot list %s (%s): the files in it are left out", err.filename, err.strerror or err)


class CollectionLicenses:
    """The licence of a collection folder: the first licence file in it, or in a folder above it up to the root,
    whose text names a licence `license_from_text` knows. Looked up once per folder."""

    def __init__(self, root: Path):
        self.root = root
        self._by_dir: dict[str, tuple[str, str]] = {}

    def for_file(self, rel: str) -> str:
        """The licence covering the file at relative POSIX path `rel`; "" when no licence file names one."""
        return self._for_dir(posixpath.dirname(rel))[0]

    def file_for(self, rel: str) -> str:
        """The path of the licence file covering `rel` ("" when none): its attribution lines go to the card."""
        return self._for_dir(posixpath.dirname(rel))[1]

    def _for_dir(self, rel_dir: str) -> tuple[str, str]:
        if rel_dir not in self._by_dir:
            found = _license_in(self.root / rel_dir)
            if not found[0] and rel_dir not in ("", "."):
                found = self._for_dir(posixpath.dirname(rel_dir))
            self._by_dir[rel_dir] = found
        return self._by_dir[rel_dir]


def _license_in(directory: Path) -> tuple[str, str]:
    """(licence, file) named by a LICENSE/COPYING/README file directly in `directory` (licence files first)."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory) if entry.is_file())
    except OSError:
        return "", ""
    candidates = [n for n in names if n.lower().startswith(LICENSE_FILE_PREFIXES)]
    candidates.sort(key=lambda n: n.lower().startswith("readme"))  # a LICENSE file outranks a README
    for name in candidates:
        try:
            with open(directory / name, encoding="utf-8", errors="replace") as handle:
                found = license_from_text(handle.read(100_000))
        except OSError:
            continue
        if found:
            return found, str(directory / name)
    return "", ""


def read_sidecar(root: Path) -> Sidecar:
    """The folder's metadata sidecar as a `Sidecar` (rows by normalized ``file_name``); empty when there is none.

    Rows are streamed into an on-disk SQLite table, so that a sidecar of a million files costs the build no memory
    per row (a ``.json`` sidecar is one JSON document and is parsed whole: use ``.jsonl`` or ``.csv`` for large ones).
    """
    found = [root / name for name in SIDECAR_NAMES if (root / name).is_file()]
    sidecar = Sidecar()
    if not found:
        return sidecar
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ValueError(f"{root}: several metadata sidecars ({names}); keep one, the datasets convention reads one")
    path = found[0]
    for number, row in enumerate(_iter_rows(path), start=1):
        if isinstance(row, dict) and not any(value not in (None, "") for value in row.values()):
            continue  # a row of empty cells, as spreadsheets export them
        if not isinstance(row, dict) or not row.get("file_name"):
            raise ValueError(
                f"{path}: row {number} has no file_name; every row needs a file_name column "
                "relative to the folder (the datasets folder convention)"
            )
        sidecar.put(_normalize(str(row["file_name"])), row)
    sidecar.commit()
    return sidecar


class Sidecar:
    """Sidecar rows keyed by relative POSIX path, in a temporary SQLite file (deleted with the object): lookups by
    key without holding the rows in memory. A later row for the same file replaces an earlier one."""

    def __init__(self) -> None:
        handle, self._path = tempfile.mkstemp(prefix="toccata-sidecar-", suffix=".sqlite")
        os.close(handle)
        self._db = sqlite3.connect(self._path)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE rows (file BLOB PRIMARY KEY, row TEXT NOT NULL)")
        self._finalizer = weakref.finalize(self, _remove_database, self._db, self._path)

    def put(self, file: str, row: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?)", (_key(file), json.dumps(row)))

    def commit(self) -> None:
        self._db.commit()

    def get(self, file: str, default: dict[str, Any] | None = None) -> dict[str, Any] | None:
        found = self._db.execute("SELECT row FROM rows WHERE file = ?", (_key(file),)).fetchone()
        return json.loads(found[0]) if found else default

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def __contains__(self, file: str) -> bool:
        return self._db.execute("SELECT 1 FROM rows WHERE file = ?", (_key(file),)).fetchone() is not None


def _key(file: str) -> bytes:
    """A path as bytes: file names that are not UTF-8 reach Python as surrogates, which SQLite's text refuses."""
    return file.encode("utf-8", "surrogateescape")


def _remove_database(db: sqlite3.Connection, path: str) -> None:
    db.close()
    with contextlib.suppress(OSError):
        os.unlink(path)


def _iter_rows(path: Path) -> Iterator[Any]:
    """The rows of a .jsonl, .csv or .json sidecar, one at a time, with errors that name the file and the line."""
    try:
        if path.suffix == ".json":
            yield from _json_rows(path)
            return
        with open(path, encoding="utf-8-sig", newline="") as handle:
            if path.suffix == ".csv":
                reader = csv.DictReader(handle, restkey=EXTRA_CELLS)  # cells past the header are kept, not lost
                if "file_name" not in (reader.fieldnames or []):
                    raise ValueError(
                        f"{path}: no file_name column (found {reader.fieldnames}); add one naming each file"
                    )
                yield from reader
                return
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}: line {number} is not JSON ({err.msg})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read the metadata sidecar ({err})") from None


def _json_rows(path: Path) -> list[Any]:
    """The rows of a .json sidecar: a list of rows, or an object keyed by file_name."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
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
    """A sidecar file_name as the POSIX path relative to the folder that `iter_music_files` yields."""
    return posixpath.normpath(file_name.replace("\\", "/")).lstrip("/")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _item(
    root: Path, rel: str, row: dict[str, Any], label: str, default_license: str, kind: str, names_from_folders: bool
) -> SourceItem:
    """The item of the file at `rel`: the sidecar's row first, then (a MIDI file has no composer or title the build
    reads; a score's own come first, in the build) the folder layout's."""
    known: dict[str, str] = {}
    used = set(SKIPPED_COLUMNS)
    for feature, columns in KNOWN_COLUMNS.items():
        for column in columns:
            if column in row:
                used.add(column)
                known.setdefault(feature, _text(row[column]))
    extra = {key: value for key, value in row.items() if key not in used and value not in (None, "")}
    path = printable(rel)  # the `path` feature must be text; `locator` keeps the name the file system knows
    folder_composer = composer_from_folders(path) if names_from_folders else ""
    folder_title = title_from_path(path) if names_from_folders else Path(path).stem
    return SourceItem(
        source=label,
        path=path,
        kind=kind,
        locator=os.path.join(root, rel),  # not resolve()d: a symlink loop is for the reader to reject
        composer=known.get("composer") or ("" if kind == SCORE else folder_composer),  # a score may name itself
        title=known.get("title") or ("" if kind == SCORE else folder_title),
        license=known.get("license") or default_license,
        source_url=known.get("source_url", ""),
        metadata=metadata_json(extra),
        folder_composer=folder_composer,
        folder_title=folder_title,
    )


__all__ = [
    "MIDI_EXTENSIONS",
    "MUSIC_EXTENSIONS",
    "SIDECAR_NAMES",
    "CollectionLicenses",
    "FolderSource",
    "iter_music_files",
    "printable",
    "read_sidecar",
]
