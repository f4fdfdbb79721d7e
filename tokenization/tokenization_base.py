"""What the notewise and chordwise tokenizers share: the step grid, token text files and the transformers plumbing.

A subclass defines its vocabulary (`_id_to_token`, `_token_to_id`) and two conversions, `notes_to_tokens` /
`notes_to_ids` (notes in ticks -> words) and `tokens_to_notes` (any words -> notes on the step grid); this class
turns them into the MIDI API (`encode_midi`, `midi_to_tokens`, `midi_to_ids`, `tokens_to_midi`, `save_midi`) and a
transformers `PreTrainedTokenizer`. Imports only the standard library, numpy, transformers and `midi_io.py`, so it
travels to the Hub with the tokenizer files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from transformers import PreTrainedTokenizer

from .midi_io import (
    DEFAULT_LIMITS,
    MidiLimits,
    MidiSource,
    NoteArrays,
    ScoreMeta,
    build_score,
    load_score,
    save_score,
    score_meta,
    score_notes,
)

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
Tokens = Sequence[str] | Sequence[int] | str
"""Words, ids, or space-separated text."""


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise a ValueError naming `name`, the allowed range and the value received unless low <= value <= high."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def fold_pitches(pitch: np.ndarray, min_pitch: int, max_pitch: int) -> np.ndarray:
    """Move out-of-range pitches into [min_pitch, max_pitch] by whole octaves (never drop a note)."""
    pitch = pitch.copy()
    low, high = pitch < min_pitch, pitch > max_pitch
    pitch[low] += 12 * ((min_pitch - pitch[low] + 11) // 12)
    pitch[high] -= 12 * ((pitch[high] - max_pitch + 11) // 12)
    return pitch


def clip_notes(notes: NoteArrays, start: int, stop: int | None = None) -> NoteArrays:
    """The notes sounding between ticks `start` and `stop` (None: no end), cut to that span and moved to begin at 0."""
    keep = notes.end > start
    if stop is not None:
        keep &= notes.start < stop
    end = notes.end[keep] if stop is None else np.minimum(notes.end[keep], stop)
    return NoteArrays(np.maximum(notes.start[keep], start) - start, end - start, notes.pitch[keep], notes.tpq)


def quantize_notes(notes: NoteArrays, steps_per_quarter: int, min_pitch: int, max_pitch: int) -> NoteArrays:
    """Notes on the step grid, cleaned so every note is well-formed for a token stream.

    Onsets and offsets round to the nearest step (off-grid input moves by at most half a step); zero-length notes
    become one step long; pitches are folded into range; a re-struck pitch ends where it starts again; notes on the
    same pitch and step collapse to the longest.
    """
    tpq = notes.tpq
    start = (notes.start * steps_per_quarter * 2 + tpq) // (2 * tpq)
    end = (notes.end * steps_per_quarter * 2 + tpq) // (2 * tpq)
    end = np.maximum(end, start + 1)
    pitch = fold_pitches(notes.pitch, min_pitch, max_pitch)
    order = np.lexsort((end, start, pitch))
    start, end, pitch = start[order], end[order], pitch[order]
    if len(start) > 1:
        keep = np.ones(len(start), dtype=bool)
        keep[:-1] = ~((pitch[:-1] == pitch[1:]) & (start[:-1] == start[1:]))
        start, end, pitch = start[keep], end[keep], pitch[keep]
        same = pitch[:-1] == pitch[1:]
        end[:-1] = np.where(same, np.minimum(end[:-1], start[1:]), end[:-1])
    return NoteArrays(start, end, pitch, steps_per_quarter)


@dataclass
class TokenEncoding:
    """The tokens of one piece plus what tokens do not carry (first tempo and time signature)."""

    tokens: list[str]
    meta: ScoreMeta = field(default_factory=ScoreMeta)
    scheme: str = "notewise"

    def to_text(self) -> str:
        """A header line with the metadata, then the tokens separated by spaces (read back by `from_text`)."""
        num, den = self.meta.time_signature
        header = f"# toccata-{self.scheme} qpm={self.meta.qpm:g} time_signature={num}/{den}"
        return header + "\n" + " ".join(self.tokens) + "\n"

    @classmethod
    def from_text(cls, text: str) -> "TokenEncoding":
        """Read token text as written by `to_text`; the header line is optional (defaults: 120 bpm, 4/4)."""
        meta, scheme, body = ScoreMeta(), "notewise", []
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                words = stripped.lstrip("#").split()
                if words and words[0].startswith("toccata-"):
                    scheme = words[0].removeprefix("toccata-")
                fields = dict(item.split("=", 1) for item in words if "=" in item)
                try:
                    qpm = float(fields.get("qpm", meta.qpm))
                    num, den = (int(x) for x in fields.get("time_signature", "4/4").split("/"))
                    meta = ScoreMeta(qpm=qpm, time_signature=(num, den))
                except ValueError as err:
                    raise ValueError(f"malformed token text header {stripped!r}: {err}") from None
            elif stripped:
                body.extend(stripped.split())
        return cls(body, meta, scheme)


def parse_token_text(text: str) -> TokenEncoding:
    """Tokens and metadata of a token text file written by `toccata tokenize` (or any space-separated words)."""
    return TokenEncoding.from_text(text)


class MidiWordTokenizer(PreTrainedTokenizer):
    """Base of Toccata's tokenizers: a word-level transformers tokenizer with MIDI in and out.

    Subclasses set `scheme`, fill `_id_to_token` / `_token_to_id` and the settings below before calling
    `super().__init__`, and implement `notes_to_tokens`, `notes_to_ids` and `tokens_to_notes`.
    """

    scheme = "words"
    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids", "attention_mask"]

    steps_per_quarter: int
    min_pitch: int
    max_pitch: int
    merge_tracks: bool
    drop_drums: bool
    sustain_pedal: bool
    add_bos_token: bool
    add_eos_token: bool
    _id_to_token: list[str]
    _token_to_id: dict[str, int]

    # ------------------------------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self._token_to_id)
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return text.split()

    def _convert_token_to_id(self, token: str) -> int:
        return self._token_to_id.get(token, self._token_to_id[str(self.unk_token)])

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < len(self._id_to_token):
            return self._id_to_token[index]
        return str(self.unk_token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        bos = [self.bos_token_id] if self.add_bos_token else []
        eos = [self.eos_token_id] if self.add_eos_token else []
        ids = bos + token_ids_0 + eos
        return ids if token_ids_1 is None else ids + bos + token_ids_1 + eos

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if already_has_special_tokens:
            special = set(self.all_special_ids)
            return [int(i in special) for i in token_ids_0 + (token_ids_1 or [])]
        bos, eos = [1] * self.add_bos_token, [1] * self.add_eos_token
        mask = bos + [0] * len(token_ids_0) + eos
        return mask if token_ids_1 is None else mask + bos + [0] * len(token_ids_1) + eos

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write vocab.json (word -> id)."""
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "vocab.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self._token_to_id, handle, indent=0)
        return (path,)

    # ------------------------------------------------------------------------------------------ the two conversions

    def notes_to_tokens(self, notes: NoteArrays) -> list[str]:
        """Words of `notes` (ticks at `notes.tpq`)."""
        raise NotImplementedError

    def notes_to_ids(self, notes: NoteArrays) -> np.ndarray:
        """Token ids (no special tokens) of `notes` (ticks at `notes.tpq`)."""
        raise NotImplementedError

    def tokens_to_notes(self, tokens: Tokens) -> NoteArrays:
        """Notes on the step grid (`tpq` = steps per quarter) of any token sequence; must never fail."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ MIDI in

    def read_notes(
        self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS
    ) -> tuple[NoteArrays, ScoreMeta]:
        """The notes `src` contributes (pitched tracks merged, or the first pitched track) and its metadata."""
        score = load_score(src, safe=safe, limits=limits, sustain_pedal=self.sustain_pedal)
        tracks = score_notes(score, drop_drums=self.drop_drums, merge_tracks=self.merge_tracks)
        notes = tracks[0] if tracks else NoteArrays.merge([], score.tpq)
        return notes, score_meta(score)

    def encode_midi(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> TokenEncoding:
        """Tokens of `src` (path, bytes, `symusic.Score` or music21 stream) with its first tempo and time signature.

        All pitched tracks are merged into one piano stream (unless `merge_tracks=False`, which keeps the first
        pitched track only); drums are dropped; with `sustain_pedal=True` notes held by their channel's pedal
        last until it is released; notes never switched off last to the end of their track (`HeldNotesWarning`).
        Raises `MidiError` (a `ValueError`) naming the file on bad input; `safe=True` parses in a child process.
        """
        notes, meta = self.read_notes(src, safe=safe, limits=limits)
        return TokenEncoding(self.notes_to_tokens(notes), meta, self.scheme)

    def midi_to_tokens(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> list[str]:
        """Tokens of `src`, a path, raw bytes, a `symusic.Score` or a music21 stream."""
        return self.encode_midi(src, safe=safe, limits=limits).tokens

    def midi_to_ids(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> list[int]:
        """Token ids of `src` without special tokens (faster than `midi_to_tokens` followed by a lookup)."""
        notes, _ = self.read_notes(src, safe=safe, limits=limits)
        return self.notes_to_ids(notes).tolist()

    def midi_to_track_tokens(
        self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS
    ) -> list[list[str]]:
        """Tokens of each pitched track of `src` on its own, in file order (drums dropped unless `drop_drums=False`).

        For multi-instrument work; `midi_to_tokens` merges all tracks into one piano stream.
        """
        score = load_score(src, safe=safe, limits=limits, sustain_pedal=self.sustain_pedal)
        tracks = score_notes(score, drop_drums=self.drop_drums, merge_tracks=False)
        return [self.notes_to_tokens(notes) for notes in tracks]

    # ------------------------------------------------------------------------------------------ MIDI out

    @property
    def output_tpq(self) -> int:
        """Ticks per quarter of written MIDI: the multiple of `steps_per_quarter` nearest above 480."""
        return self.steps_per_quarter * -(-480 // self.steps_per_quarter)

    def tokens_to_midi(
        self,
        tokens: Tokens,
        *,
        meta: ScoreMeta | None = None,
        qpm: float | None = None,
        time_signature: tuple[int, int] | None = None,
        program: int = 0,
    ) -> "symusic.Score":  # noqa: F821 - symusic is imported by midi_io
        """A one-track piano `symusic.Score` from tokens (or ids, or space-separated text); never fails.

        Tempo and time signature come from `meta` (as returned by `encode_midi`) or the keywords; default 120 bpm 4/4.
        """
        meta = (meta or ScoreMeta()).override(qpm, time_signature)
        grid = self.tokens_to_notes(tokens)
        scale = self.output_tpq // self.steps_per_quarter
        ticks = NoteArrays(grid.start * scale, grid.end * scale, grid.pitch, self.output_tpq)
        return build_score([(ticks, "Piano", program)], meta)

    def tokens_to_text(
        self,
        tokens: Tokens,
        *,
        meta: ScoreMeta | None = None,
        qpm: float | None = None,
        time_signature: tuple[int, int] | None = None,
    ) -> str:
        """Token text with its header line (as `toccata tokenize` writes it), for tokens from anywhere."""
        meta = (meta or ScoreMeta()).override(qpm, time_signature)
        words = tokens.split() if isinstance(tokens, str) else [self._as_token(t) for t in tokens]
        return TokenEncoding(words, meta, self.scheme).to_text()

    def _as_token(self, token: str | int) -> str:
        return token if isinstance(token, str) else self._convert_id_to_token(int(token))

    def tail(self, tokens: Tokens, quarters: float) -> list[str]:
        """The last `quarters` quarter notes of a token sequence; notes sounding across the cut start at the cut."""
        notes = self.tokens_to_notes(tokens)
        total = int(notes.end.max()) if len(notes) else 0
        return self.notes_to_tokens(clip_notes(notes, max(0, total - round(quarters * self.steps_per_quarter))))

    def excerpt(self, tokens: Tokens, start: float, stop: float | None = None) -> list[str]:
        """The quarter notes from `start` to `stop` (None: the end) of a token sequence, moved to begin at 0; notes
        sounding across a cut are cut there. Ends with its last note (a rest before `stop` is not kept)."""
        spq = self.steps_per_quarter
        cut_stop = None if stop is None else round(stop * spq)
        return self.notes_to_tokens(clip_notes(self.tokens_to_notes(tokens), round(start * spq), cut_stop))

    def save_midi(self, tokens: Tokens, path: str | os.PathLike, **kwargs) -> Path:
        """Decode `tokens` and write a MIDI file (keywords as in `tokens_to_midi`); returns the path."""
        return save_score(self.tokens_to_midi(tokens, **kwargs), path)


__all__ = [
    "SPECIAL_TOKENS",
    "MidiWordTokenizer",
    "TokenEncoding",
    "check_range",
    "clip_notes",
    "fold_pitches",
    "parse_token_text",
    "quantize_notes",
]
