"""The music21 corpus source: works of music21's bundled corpus chosen by composer or path pattern.

Works are listed from the corpus's metadata bundle (no score is parsed to list them), one item per piece: a
collection file (an Essen or O'Neill ABC book) gives one item per tune, ``essenFolksong/altdeu10.abc#3``. Composer and
title come from the metadata, with the composer's full name taken from the corpus folder where the metadata has none
or spells it several ways. Each item's licence names the corpus licence file that covers it (music21's
``corpus/license.txt``, or a folder's own, such as the Essen collection's non-commercial terms); `license_texts` gives
their text for the dataset card. Conversion to MIDI happens later, in a worker, through
`toccata.tokenization.midi_io.music21_corpus_midi`.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..items import MUSIC21, SourceItem

CORPUS_PREFIX = "corpus"
CORPUS_URL = "https://github.com/cuthbertLab/music21/blob/master/music21/corpus/"
LICENSE_FILE = "license.txt"

# The default selection: works written for, or playable at, a keyboard; converts in about a minute on two cores.
DEFAULT_PATTERNS = (
    "bach",  # ~410 four-part chorales
    "chopin",
    "joplin",
    "mozart/k545",
    "schoenberg/opus19",
    "schumann_clara/polonaise*",
    "beach",
    "johnson_j_r",
    "liliuokalani",
)
EXCLUDED_DIRS = ("demos", "theoryExercises")  # test files of music21, not music
EXCLUDED_EXTENSIONS = (".rntxt",)  # Roman-numeral analyses, not scores

COMPOSERS = {  # corpus folder -> composer, one spelling per folder
    "bach": "Johann Sebastian Bach",
    "beach": "Amy Beach",
    "beethoven": "Ludwig van Beethoven",
    "chopin": "Frédéric Chopin",
    "ciconia": "Johannes Ciconia",
    "corelli": "Arcangelo Corelli",
    "cpebach": "Carl Philipp Emanuel Bach",
    "handel": "George Frideric Handel",
    "haydn": "Joseph Haydn",
    "johnson_j_r": "J. Rosamond Johnson",
    "joplin": "Scott Joplin",
    "josquin": "Josquin des Prez",
    "liliuokalani": "Liliʻuokalani",
    "luca": "Gavin Luca",
    "lusitano": "Vicente Lusitano",
    "monteverdi": "Claudio Monteverdi",
    "mozart": "Wolfgang Amadeus Mozart",
    "palestrina": "Giovanni Pierluigi da Palestrina",
    "schoenberg": "Arnold Schoenberg",
    "schubert": "Franz Schubert",
    "schumann_clara": "Clara Schumann",
    "schumann_robert": "Robert Schumann",
    "verdi": "Giuseppe Verdi",
    "weber": "Carl Maria von Weber",
    "webern": "Anton Webern",
    "essenFolksong": "Traditional",
    "airdsAirs": "Traditional",
    "oneills1850": "Traditional",
    "ryansMammoth": "Traditional",
    "miscFolk": "Traditional",
    "nottingham-dataset": "Traditional",
}


@dataclass
class Music21CorpusSource:
    """Works of music21's bundled corpus matching any of `patterns`, in sorted order (path, then tune number).

    A pattern is a corpus folder (a composer: ``bach``), a path prefix (``mozart/k545``), a glob on the path with or
    without extension (``bach/bwv6*``, ``essenFolksong/altdeu10.abc#1``), or ``*`` for the whole corpus.
    """

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    label: str = "music21"
    _entries: list[tuple[str, str | None, Any]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.patterns = tuple(p.strip() for p in self.patterns if p.strip()) or DEFAULT_PATTERNS
        entries = _corpus_entries()
        chosen: set[int] = set()
        unmatched = []
        for pattern in self.patterns:
            found = _select(pattern, entries)
            chosen |= found
            if not found:
                unmatched.append(pattern)
        if unmatched:
            folders = sorted({path.split("/")[0] for path, _, _ in entries})
            raise ValueError(
                f"corpus pattern(s) {unmatched} match no work of music21's corpus; use a folder "
                f"({', '.join(folders)}), a path prefix such as mozart/k545, a glob such as bach/bwv6*, or *"
            )
        self._entries = [entries[i] for i in sorted(chosen)]

    @classmethod
    def from_spec(cls, spec: str) -> Music21CorpusSource:
        """The source named by a ``corpus`` / ``corpus:PATTERN[,PATTERN...]`` string (bare ``corpus`` = the default)."""
        _, _, rest = spec.partition(":")
        return cls(patterns=tuple(rest.split(",")) if rest.strip() else DEFAULT_PATTERNS)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[SourceItem]:
        for path, number, entry in self._entries:
            work = path if number is None else f"{path}#{number}"
            yield SourceItem(
                source=self.label,
                path=work,
                kind=MUSIC21,
                locator=work,
                composer=_composer(path, entry.metadata),
                title=_title(path, number, entry.metadata),
                license=license_for(path),
                source_url=CORPUS_URL + path,
            )


def is_corpus_spec(spec: str) -> bool:
    """Whether a source string names music21's corpus (``corpus`` or ``corpus:...``)."""
    return spec == CORPUS_PREFIX or spec.startswith(CORPUS_PREFIX + ":")


def corpus_root() -> Path:
    """The folder of music21's bundled corpus."""
    from music21 import corpus  # start-up: music21 takes ~1 s to import; only corpus sources need it

    return Path(corpus.__file__).parent


def license_for(path: str) -> str:
    """The licence note of a corpus work: the nearest ``license.txt`` above it, as ``music21 corpus: <file>``."""
    root = corpus_root()
    folder = posixpath.dirname(path)
    while folder:
        if (root / folder / LICENSE_FILE).is_file():
            return f"music21 corpus: {folder}/{LICENSE_FILE}"
        folder = posixpath.dirname(folder)
    return f"music21 corpus: {LICENSE_FILE}"


def license_texts(licenses: set[str] | list[str]) -> dict[str, str]:
    """The text of each ``music21 corpus: <file>`` licence note in `licenses`, comment header stripped."""
    texts = {}
    for note in sorted(licenses):
        if not note.startswith("music21 corpus: "):
            continue
        path = corpus_root() / note.removeprefix("music21 corpus: ")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        texts[note] = "\n".join(line for line in lines if not line.startswith("#")).strip()
    return texts


@functools.lru_cache(maxsize=1)
def _corpus_entries() -> list[tuple[str, str | None, Any]]:
    """(relative path, tune number or None, metadata entry) of every work of the core corpus, sorted."""
    from music21 import corpus  # start-up: as in corpus_root

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    # Iterating the bundle itself copies its entries into a list for every item (quadratic, ~9 s for the core
    # corpus); its own mapping lists the same entries in linear time.
    mapping = getattr(bundle, "_metadataEntries", None)
    entries = []
    for entry in mapping.values() if hasattr(mapping, "values") else bundle:
        path = Path(str(entry.sourcePath)).as_posix()
        if path.split("/")[0] in EXCLUDED_DIRS or path.lower().endswith(EXCLUDED_EXTENSIONS):
            continue
        number = None if entry.number in (None, "") else str(entry.number)
        entries.append((path, number, entry))
    entries.sort(key=lambda e: (e[0], _number_key(e[1])))
    return entries


def _number_key(number: str | None) -> tuple[int, str]:
    if number is None:
        return (-1, "")
    return (int(number), "") if number.isdigit() else (1 << 30, number)


def _select(pattern: str, entries: list[tuple[str, str | None, Any]]) -> set[int]:
    """Indices in `entries` (= `_corpus_entries()`) of the works a pattern matches: a folder or path prefix, a name, or a glob (case-insensitive).

    Names and prefixes are looked up in an index, so a spec listing hundreds of works stays fast; globs are matched
    against every work with and without its extension.
    """
    pattern = pattern.strip().strip("/").lower()
    if pattern == "*":
        return set(range(len(entries)))
    if not any(char in pattern for char in "*?["):
        return set(_name_index().get(pattern, ()))
    return {
        i
        for i, (path, number, _) in enumerate(entries)
        if any(fnmatch.fnmatchcase(name, pattern) for name in _names(path, number))
    }


def _names(path: str, number: str | None) -> tuple[str, ...]:
    """The lowercase names a work answers to: with its tune number, its path, and its path without extension."""
    path = path.lower()
    work = path if number is None else f"{path}#{number}"
    return work, path, posixpath.splitext(path)[0]


@functools.lru_cache(maxsize=1)
def _name_index() -> dict[str, list[int]]:
    """Name or folder prefix -> indices in `_corpus_entries()` of the works it selects (built once)."""
    index: dict[str, list[int]] = {}
    for i, (path, number, _) in enumerate(_corpus_entries()):
        names = set(_names(path, number))
        parts = path.lower().split("/")
        names.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        for name in names:
            index.setdefault(name, []).append(i)
    return index


def _composer(path: str, metadata: Any) -> str:
    folder = path.split("/")[0]
    if folder in COMPOSERS:
        return COMPOSERS[folder]
    composer = getattr(metadata, "composer", None) if metadata is not None else None
    return composer.splitlines()[0].strip() if composer else ""


def _title(path: str, number: str | None, metadata: Any) -> str:
    """Title (and movement) from the metadata; file names the metadata repeats become the stem; stem as fallback."""
    file_name = posixpath.basename(path)
    parts: list[str] = []
    for value in (getattr(metadata, "title", None), getattr(metadata, "movementName", None)):
        text = str(value).strip() if value else ""
        if text == file_name:
            text = posixpath.splitext(file_name)[0]
        if text and text not in parts:
            parts.append(text)
    if not parts:
        parts = [posixpath.splitext(file_name)[0] + (f" #{number}" if number else "")]
    return ": ".join(parts)


__all__ = [
    "COMPOSERS",
    "CORPUS_URL",
    "DEFAULT_PATTERNS",
    "Music21CorpusSource",
    "corpus_root",
    "is_corpus_spec",
    "license_for",
    "license_texts",
]
