"""What a source hands the builder: one `SourceItem` per MIDI or score file, before it is read.

An item is small and picklable (it travels to worker processes): where the bytes are, and what the source knows about
the piece (composer, title, licence, URL). Reading, hashing and tokenizing happen later, in `analysis.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FILE, SCORE, MUSIC21 = "file", "score", "music21"  # MIDI on disk, a score file on disk, a corpus work


@dataclass(frozen=True)
class SourceItem:
    """One MIDI file offered by a source: where to get its bytes and its provenance."""

    source: str  # the source's label: "music21", "folder:NAME" or "crawl:URL"
    path: str  # where the item lives inside its source: a relative POSIX path, or a corpus work ("bach/bwv66.6.mxl")
    kind: str  # FILE (MIDI bytes at `locator`), SCORE (a kern/MusicXML/ABC/MEI file, converted) or MUSIC21 (corpus)
    locator: str  # absolute file path, or the corpus work as `music21_corpus_midi` takes it ("a.abc#3" = 3rd tune)
    composer: str = ""
    title: str = ""
    license: str = ""
    source_url: str = ""
    metadata: str = "{}"  # any further sidecar columns (fetched_at, ...) as JSON with sorted keys
    license_file: str = ""  # the collection's licence file the licence came from (its attribution goes to the card)
    # What the folder layout says (`names.py`), for a score whose own records name no composer or title.
    folder_composer: str = ""
    folder_title: str = ""

    def provenance(self) -> dict[str, str]:
        """Where this item came from, as written in the rejects manifest and in `duplicate_of`."""
        return {"source": self.source, "path": self.path, "source_url": self.source_url}


def metadata_json(extra: Mapping[str, Any]) -> str:
    """Sidecar columns beyond the known ones as compact JSON with sorted keys (stable bytes for stable builds)."""
    return json.dumps(dict(extra), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


__all__ = ["FILE", "MUSIC21", "SCORE", "SourceItem", "metadata_json"]
