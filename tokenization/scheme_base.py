"""The shape every token scheme has (`Scheme`, `TokenScheme`), the grid all of them read notes on, and the
constants they share: apart from the registry (`schemes.load_scheme`) so that the schemes defined in other modules
(`schemes_miditok`, `clara`) import it without importing the registry that imports them."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .midi_io import MidiSource, NoteArrays, build_score, load_score, score_meta, score_notes
from .tokenization_base import TokenEncoding, parse_token_text, quantize_notes

if TYPE_CHECKING:
    import symusic

STEPS_PER_QUARTER = 12
MIN_PITCH, MAX_PITCH = 21, 108
SCHEMES = ("notewise", "notewise-bpe", "chordwise", "remi", "midilike", "tsd")  # the ones an LSTM trains on
MIDITOK_DEFAULTS = ("notewise-miditok", "remi", "midilike", "tsd")  # also with miditok's own settings, text only
SCHEME_FILE = "token_scheme.json"
BPE_CHUNK = 256  # base tokens per text when learning BPE merges


def read_notes(src: MidiSource) -> NoteArrays:
    """The notes of all pitched tracks of a MIDI source, merged, in its own ticks (drums dropped)."""
    tracks = score_notes(load_score(src), drop_drums=True, merge_tracks=True)
    return tracks[0] if tracks else NoteArrays.merge([], 480)


def grid_notes(src: MidiSource | NoteArrays, transpose: int = 0) -> NoteArrays:
    """The notes every scheme encodes: pitched tracks merged, on the 12-step grid, transposed, folded into range."""
    notes = src if isinstance(src, NoteArrays) else read_notes(src)
    if transpose:
        notes = NoteArrays(notes.start, notes.end, notes.pitch + int(transpose), notes.tpq)
    return quantize_notes(notes, STEPS_PER_QUARTER, MIN_PITCH, MAX_PITCH)


class Scheme(ABC):
    """A MIDI file or score <-> token text, and a folder to keep the scheme in (`load_scheme` makes one)."""

    name: str

    @abstractmethod
    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """The words of a MIDI source (path, bytes, `symusic.Score`, music21 stream) with its first tempo and time
        signature; `safe` parses in a child process (untrusted files), bad input raises `MidiError` naming it."""

    @abstractmethod
    def detokenize(self, text: str, qpm: float | None = None) -> "symusic.Score":
        """The `symusic.Score` of token text as `to_text` writes it, at `qpm` if given, else at the text's tempo."""

    def to_text(self, encoding: TokenEncoding) -> str:
        """The token text of `encoding`: a header line (scheme, tempo, time signature), then the words."""
        return encoding.to_text()

    def _settings(self) -> dict:
        return {}

    def _info(self) -> dict:
        """What `token_scheme.json` holds besides the scheme's name."""
        return self._settings()

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `token_scheme.json` (and a scheme's tokenizer files) in `folder`; `load_scheme(folder)` reads it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SCHEME_FILE).write_text(json.dumps({"scheme": self.name, **self._info()}, indent=2) + "\n")
        return folder


class TokenScheme(Scheme):
    """Notes on the grid <-> token ids, with the special ids a language model needs and a way to save itself."""

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def special_ids(self) -> dict[str, int]:
        """``{"pad": id, "bos": id, "eos": id}``."""

    @abstractmethod
    def encode(self, notes: NoteArrays) -> np.ndarray:
        """Token ids (no special tokens) of grid notes (`grid_notes`)."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> NoteArrays:
        """Grid notes of any id sequence (special ids skipped); lenient: never fails."""

    @abstractmethod
    def errors(self, ids: Sequence[int]) -> int:
        """How many tokens of `ids` `decode` has to repair or ignore (notewise: `notewise_repairs`; miditok's schemes:
        its `tokens_errors` count; chordwise: unknown words and held keys that were not sounding)."""

    @abstractmethod
    def words(self, ids: Sequence[int]) -> list[str]:
        """The token strings of `ids`, for reading."""

    @abstractmethod
    def _save_tokenizer(self, folder: Path) -> None: ...

    def ids(self, words: str | Sequence[str]) -> np.ndarray:
        """The ids of token strings as `words` writes them (space-separated text or a list); an unknown word is an
        error naming it. The inverse of `words`, for reading a dataset's `tokens` column or `toccata tokenize` text."""
        words = words.split() if isinstance(words, str) else list(words)
        if self._word_ids is None:
            self._word_ids = {word: index for index, word in enumerate(self.words(list(range(self.vocab_size))))}
        missing = sorted({word for word in words if word not in self._word_ids})
        if missing:
            raise ValueError(
                f"{len(missing)} word(s) are not in the {self.name} scheme's vocabulary, e.g. {missing[:5]}: "
                "were the tokens made with another scheme?"
            )
        return np.asarray([self._word_ids[word] for word in words], dtype=np.int64)

    _word_ids: dict[str, int] | None = None

    def train(self, pieces: Iterable[NoteArrays]) -> None:
        """Learn what the scheme learns from data (BPE merges, the chordwise vocabulary); others need nothing."""

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the tokenizer files and `token_scheme.json` (read back by `load_scheme`)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._save_tokenizer(Path(folder))
        return super().save(folder)

    def _info(self) -> dict:
        return {"vocab_size": self.vocab_size, **self.special_ids, **self._settings()}

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """`save`, under the name transformers' `Trainer` and Toccata's `save_checkpoint` call."""
        return self.save(folder)

    def pitch_ids(self) -> tuple[int, int, int] | None:
        """(first note-on id, first note-off id, number of pitches) when pitches are contiguous ids that a
        transposition can shift in place (the training data's on-the-fly transposition); None when they are not."""
        return None

    def encode_midi(self, src: MidiSource, transpose: int = 0) -> np.ndarray:
        """Token ids of a MIDI source (path, bytes, `symusic.Score`), transposed by `transpose` semitones."""
        return self.encode(grid_notes(src, transpose))

    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """The scheme's words of the grid notes of `src`, exactly as a dataset's `tokens` column holds them."""
        score = load_score(src, safe=safe)
        return TokenEncoding(self.words(self.encode(grid_notes(score))), score_meta(score), self.name)

    def detokenize(self, text: str, qpm: float | None = None) -> "symusic.Score":
        """One piano track of the text's words; a word the scheme lacks is an error naming it (`ids`)."""
        encoding = parse_token_text(text)
        return build_score([(self.decode(self.ids(encoding.tokens)), "Piano", 0)], encoding.meta.override(qpm))


# ------------------------------------------------------------------------------------------------------ notewise


def notewise_repairs(tokens: Sequence[str]) -> int:
    """Tokens of a note-on/note-off stream (notewise in miditok spelling: NoteOn_60, NoteOff_60, Wait_12; or MIDILike
    with TimeShift) that decoding must repair or drop: a note-on of a sounding key, a note-off of a silent key, a
    note-off in its note's first step. Notes still sounding when a sample stops are not errors.

    The order of the note events within a step does not count: it changes nothing in the decoded music (the stricter
    `NotewiseMidiTok.tokens_errors` counts it too)."""
    errors, now, sounding = 0, 0, {}  # pitch -> time it began (counted in time tokens: only "same step?" matters)
    for token in tokens:
        kind, _, value = token.partition("_")
        if kind in ("Wait", "TimeShift"):
            now += 1
        elif kind == "NoteOn":
            errors += value in sounding
            sounding.setdefault(value, now)
        elif kind == "NoteOff":
            errors += sounding.get(value, now) == now
            sounding.pop(value, None)
    return errors


# ------------------------------------------------------------------------------------------------------ chordwise
