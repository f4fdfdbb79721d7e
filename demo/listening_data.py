"""The real excerpts of the "Human or AI?" tab: short openings of the test split's pieces, shipped as notewise token
text beside a JSON manifest with each piece's attribution, so the demo works from a fresh clone with no dataset.

    toccata listening-data --dataset data/piano --split test --out demo/listening   # rebuild them
    excerpts = load_excerpts()                                                                     # what the demo reads

Each excerpt is a piece's opening (from its first note) of 8 to 16 whole bars, as many as make at least
`MIN_SECONDS` at the piece's tempo; notes still sounding at the end of the last bar are cut there.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import NoteArrays, ScoreMeta
from toccata.tokenization.tokenization_base import TokenEncoding, parse_token_text
from toccata.training.data import read_rows

FOLDER = Path(__file__).resolve().parent / "listening"  # shipped as package data (pyproject.toml)
MANIFEST = "excerpts.json"
MIN_BARS, MAX_BARS, MIN_SECONDS = 8, 16, 12.0
COLUMNS = ("id", "piece_id", "transposition", "source", "path", "composer", "title", "license", "notewise", "qpm")
COLUMNS += ("time_signature",)


@dataclass(frozen=True)
class Excerpt:
    """One real excerpt: its token file and where the music comes from (attribution travels with it)."""

    id: str  # the dataset's piece id
    file: str  # token text file, relative to the manifest
    composer: str
    title: str
    license: str
    source: str  # where the score comes from (upstream repository and file)
    qpm: float
    time_signature: tuple[int, int]
    bars: int
    quarters: float  # the excerpt's length in quarter notes (whole bars)
    notes: int

    @property
    def seconds(self) -> float:
        return self.quarters * 60.0 / self.qpm

    def credit(self) -> str:
        """One line of attribution: composer, title, source, licence."""
        return f"{self.composer or 'unknown composer'}: {self.title} (its opening, {self.bars} bars). {self.source}. {self.license}."


def load_excerpts(folder: str | os.PathLike = FOLDER) -> list[Excerpt]:
    """The excerpts listed in `folder`'s manifest; a clear error when the folder has none."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest}: no excerpt manifest; make one with "
            "`toccata listening-data --dataset data/piano --split test --out FOLDER`"
        )
    entries = json.loads(manifest.read_text(encoding="utf-8"))["excerpts"]
    return [Excerpt(**{**entry, "time_signature": tuple(entry["time_signature"])}) for entry in entries]


def read_tokens(excerpt: Excerpt, folder: str | os.PathLike = FOLDER) -> list[str]:
    """The excerpt's notewise tokens (its header's tempo and time signature are in the manifest too)."""
    return parse_token_text((Path(folder) / excerpt.file).read_text(encoding="utf-8")).tokens


def _source(row: dict) -> str:
    """Where a row's score comes from: kernScores repositories are named upstream (see the dataset's README)."""
    path = row["path"] or ""
    if "/kern/" in path:
        repository = path.split("/", 1)[0]
        return f"kernScores (Craig Stuart Sapp), https://github.com/craigsapp/{repository}, {path.split('/')[-1]}"
    return f"{row['source']}: {path}"


def _bars(qpm: float, bar_quarters: float) -> int:
    """Whole bars for at least MIN_SECONDS at `qpm`, between MIN_BARS and MAX_BARS."""
    return int(min(MAX_BARS, max(MIN_BARS, math.ceil(MIN_SECONDS * qpm / 60.0 / bar_quarters))))


def opening(tokenizer, tokens: list[str], quarters: float) -> list[str]:
    """The first `quarters` quarter notes of `tokens` from the first note on; notes are cut at the end."""
    notes = tokenizer.tokens_to_notes(tokens)
    if not len(notes):
        return []
    first = int(notes.start.min())
    end = first + round(quarters * notes.tpq)
    keep = notes.start < end
    cut = NoteArrays(notes.start[keep] - first, np.minimum(notes.end[keep], end) - first, notes.pitch[keep], notes.tpq)
    return tokenizer.notes_to_tokens(cut)


def extract(dataset: str | os.PathLike, split: str, out: str | os.PathLike, limit: int = 40) -> list[Excerpt]:
    """Write one opening per piece of `split` (original key only, at most `limit`) and the manifest into `out`."""
    tokenizer = NotewiseTokenizer()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for row in read_rows(dataset, split, columns=COLUMNS) if not row["transposition"]]
    rows.sort(key=lambda row: (row["path"] or "", row["piece_id"]))
    excerpts = []
    for row in rows[:limit]:
        num, den = (int(x) for x in (row["time_signature"] or "4/4").split("/"))
        qpm = float(row["qpm"] or 120.0)
        bar_quarters = num * 4.0 / den
        bars = _bars(qpm, bar_quarters)
        tokens = opening(tokenizer, parse_token_text(row["notewise"]).tokens, bars * bar_quarters)
        if not tokens:
            continue
        name = f"{row['piece_id']}.txt"
        meta = ScoreMeta(qpm=qpm, time_signature=(num, den))
        (out / name).write_text(TokenEncoding(tokens, meta).to_text(), encoding="utf-8")
        excerpts.append(
            Excerpt(
                id=row["piece_id"],
                file=name,
                composer=row["composer"] or "",
                title=(row["title"] or Path(row["path"]).stem).replace("\\n", ", "),
                license=row["license"] or "unknown",
                source=_source(row),
                qpm=qpm,
                time_signature=(num, den),
                bars=bars,
                quarters=bars * bar_quarters,
                notes=sum(1 for token in tokens if token.startswith("p")),
            )
        )
    manifest = {
        "description": (
            f"Openings of the {split} split of a Toccata piano dataset for the demo's 'Human or AI?' tab; "
            "written by `toccata listening-data`."
        ),
        "dataset": Path(dataset).name,
        "split": split,
        "license": "CC BY-NC-SA 4.0 (each excerpt's own licence field applies; kernScores terms are treated as it)",
        "excerpts": [asdict(excerpt) for excerpt in excerpts],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return excerpts
