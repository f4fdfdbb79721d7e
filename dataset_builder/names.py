"""What a folder's layout says about its files when nothing else does: the composer, the title, and which files are
variants of one work.

The rule (docs/dataset.md, "Names from folders"): files sit in ``<source root>/<Composer>/…/<file>``. A file's
composer is the first folder below the source root that is not named after a format (``midi``, ``kern``, ``scores``
…); its title is the file name, unless that name says nothing (``midi_score.mid``, ``score.xml``, ``piano.mid`` …),
when it is the folders between the composer's and the file. Folder names are shown with ``_`` as spaces. A sidecar row
(folder.py) or the score's own records (kern ``!!!COM``/``!!!OTL``) come first; these are only the fallbacks.
Spellings of one composer ("Chopin, Frédéric" / "Frédéric Chopin") are not unified here.
"""

from __future__ import annotations

import posixpath
import re

# Folders named after a format or a kind of file, which say nothing about the work: skipped when a composer or a
# title is read from the folders, and when two formats of one work are matched (`pipeline.work_key`).
FORMAT_FOLDERS = frozenset(
    {"kern", "krn", "midi", "midis", "mid", "musicxml", "mxl", "xml", "abc", "mei", "scores", "score"}
)
# File names (lower case, separators as "_") that name no work: such a file is titled by its folders.
GENERIC_STEMS = frozenset(
    {"midi_score", "xml_score", "score", "full_score", "midi", "music", "piano", "song", "track", "untitled"}
)
# A suffix marking a variant of a work, after a separator: "_no_repeat", "-norepeats", " without repeats",
# "_with_repeats", "_expanded", "_unfolded", "_v2", "-version 3", "_copy", and a copy's " (1)".
VARIANT_SUFFIX = re.compile(
    r"(?:[\s._-]+(?:no[\s._-]*repeats?|without[\s._-]*repeats?|with[\s._-]*repeats?|repeats?[\s._-]*(?:expanded|"
    r"unfolded)|expanded|unfolded|v\d+|ver(?:sion)?[\s._-]*\d+|copy)|\s*\(\d+\))$",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"[\s.-]+")


def folder_display(name: str) -> str:
    """A folder name as text: `_` as a space, runs of spaces as one (``Gounod,_Charles``: ``Gounod, Charles``)."""
    return " ".join(name.replace("_", " ").split())


def _named_folders(path: str) -> list[str]:
    """The folders of a relative POSIX path, outermost first, without those named after a format."""
    return [part for part in path.split("/")[:-1] if part.lower() not in FORMAT_FOLDERS]


def composer_from_folders(path: str) -> str:
    """The composer a folder layout gives a file at relative POSIX `path`: the first folder below the source root
    that is not a format folder, as text; "" for a file with no such folder (one in the root itself)."""
    folders = _named_folders(path)
    return folder_display(folders[0]) if folders else ""


def is_generic_stem(stem: str) -> bool:
    """Whether a file name (without extension) names no work, such as ``midi_score`` or ``Score``."""
    return _SEPARATORS.sub("_", stem.strip().lower()) in GENERIC_STEMS


def title_from_path(path: str) -> str:
    """The title a folder layout gives a file at relative POSIX `path`: its name without extension, unless that is
    generic (`is_generic_stem`), when it is the folders below the composer's joined by " / " (``Piano Sonatas /
    32-1`` for ``Beethoven/Piano_Sonatas/32-1/midi_score.mid``); the name itself when there are none."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    works = _named_folders(path)[1:]
    if not is_generic_stem(stem) or not works:
        return stem
    return " / ".join(folder_display(folder) for folder in works)


def work_name(name: str) -> str:
    """A file or folder name (lower case) without the suffixes that mark a variant of one work, so ``32-1`` and
    ``32-1_no_repeat``, ``etude.mid`` and ``etude_v2.mid`` name one work; a name that is all suffix stays as it is."""
    name = name.lower()
    while True:
        shorter = VARIANT_SUFFIX.sub("", name)
        if shorter == name or not shorter.strip(" ._-"):
            return name
        name = shorter


__all__ = [
    "FORMAT_FOLDERS",
    "GENERIC_STEMS",
    "VARIANT_SUFFIX",
    "composer_from_folders",
    "folder_display",
    "is_generic_stem",
    "title_from_path",
    "work_name",
]
