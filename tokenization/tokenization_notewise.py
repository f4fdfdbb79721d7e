"""Notewise tokenizer: MIDI <-> words such as ``p60`` (note-on), ``endp60`` (note-off) and ``wait12`` (advance time).

Time is measured in beats, not seconds: each quarter note is cut into `steps_per_quarter` (default 12) steps, so
triplets and sixteenths both land on the grid. Decoding is exact at grid resolution. Inside one time step the order is
fixed: all note-offs, then all note-ons, each ascending by pitch, then the wait. The vocabulary is derived from the
settings, so it never depends on data.

This file imports only the standard library, numpy, transformers and its sibling `midi_io.py` (symusic), so both
can travel to the Hub next to a checkpoint and load with ``trust_remote_code=True``.
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
TEXT_HEADER = "# toccata-notewise"


@dataclass
class NotewiseEncoding:
    """The tokens of one piece plus the metadata tokens do not carry (first tempo and time signature)."""

    tokens: list[str]
    meta: ScoreMeta = field(default_factory=ScoreMeta)

    def to_text(self) -> str:
        """One-line header with the metadata, then the tokens separated by spaces (see `parse_token_text`)."""
        num, den = self.meta.time_signature
        return f"{TEXT_HEADER} qpm={self.meta.qpm:g} time_signature={num}/{den}\n" + " ".join(self.tokens) + "\n"


def parse_token_text(text: str) -> NotewiseEncoding:
    """Read token text as written by `NotewiseEncoding.to_text` (the header line is optional)."""
    meta = ScoreMeta()
    body = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            fields = dict(item.split("=", 1) for item in stripped.split()[1:] if "=" in item)
            try:
                qpm = float(fields.get("qpm", meta.qpm))
                num, den = (int(x) for x in fields.get("time_signature", "4/4").split("/"))
            except ValueError as err:
                raise ValueError(f"malformed token text header {stripped!r}: {err}") from None
            meta = ScoreMeta(qpm=qpm, time_signature=(num, den))
        elif stripped:
            body.extend(stripped.split())
    return NotewiseEncoding(body, meta)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def fold_pitches(pitch: np.ndarray, min_pitch: int, max_pitch: int) -> np.ndarray:
    """Move out-of-range pitches into [min_pitch, max_pitch] by whole octaves (never drop a note)."""
    pitch = pitch.copy()
    low, high = pitch < min_pitch, pitch > max_pitch
    pitch[low] += 12 * ((min_pitch - pitch[low] + 11) // 12)
    pitch[high] -= 12 * ((pitch[high] - max_pitch + 11) // 12)
    return pitch


def quantize_notes(notes: NoteArrays, steps_per_quarter: int, min_pitch: int, max_pitch: int) -> NoteArrays:
    """Notes on the step grid, cleaned so every note is well-formed for the token stream.

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


class NotewiseTokenizer(PreTrainedTokenizer):
    """A transformers tokenizer over notewise words, with MIDI in (`midi_to_tokens`) and out (`tokens_to_midi`).

    Example:
        >>> tok = NotewiseTokenizer()
        >>> tokens = tok.midi_to_tokens("piece.mid")       # ['p60', 'p64', 'wait12', 'endp60', ...]
        >>> tok.save_midi(tokens, "again.mid")
        >>> tok("p60 wait12 endp60")["input_ids"]
    """

    vocab_files_names = {"vocab_file": "vocab.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        steps_per_quarter: int = 12,
        min_pitch: int = 21,
        max_pitch: int = 108,
        max_wait: int = 48,
        merge_tracks: bool = True,
        drop_drums: bool = True,
        add_bos_token: bool = True,
        add_eos_token: bool = False,
        pad_token: str = "<pad>",
        bos_token: str = "<bos>",
        eos_token: str = "<eos>",
        unk_token: str = "<unk>",
        **kwargs,
    ):
        _check_range("steps_per_quarter", steps_per_quarter, 1, 96)
        _check_range("min_pitch", min_pitch, 0, 116)
        _check_range("max_pitch", max_pitch, min_pitch + 11, 127)
        _check_range("max_wait", max_wait, 1, 4096)
        self.steps_per_quarter = steps_per_quarter
        self.min_pitch = min_pitch
        self.max_pitch = max_pitch
        self.max_wait = max_wait
        self.merge_tracks = merge_tracks
        self.drop_drums = drop_drums
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self._id_to_token = self._build_vocab()
        self._token_to_id = {token: i for i, token in enumerate(self._id_to_token)}
        self._id_array = np.array(self._id_to_token, dtype=object)
        if vocab_file is not None:
            self._check_vocab_file(vocab_file)
        super().__init__(
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            steps_per_quarter=steps_per_quarter,
            min_pitch=min_pitch,
            max_pitch=max_pitch,
            max_wait=max_wait,
            merge_tracks=merge_tracks,
            drop_drums=drop_drums,
            add_bos_token=add_bos_token,
            add_eos_token=add_eos_token,
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------ vocabulary

    def _build_vocab(self) -> list[str]:
        pitches = range(self.min_pitch, self.max_pitch + 1)
        return (
            list(SPECIAL_TOKENS)
            + [f"p{p}" for p in pitches]
            + [f"endp{p}" for p in pitches]
            + [f"wait{n}" for n in range(1, self.max_wait + 1)]
        )

    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def note_on_offset(self) -> int:
        """Id of ``p{min_pitch}``; note-on ids are contiguous."""
        return len(SPECIAL_TOKENS)

    @property
    def note_off_offset(self) -> int:
        """Id of ``endp{min_pitch}``; note-off ids are contiguous."""
        return self.note_on_offset + self.num_pitches

    @property
    def wait_offset(self) -> int:
        """Id of ``wait1``; ``wait{n}`` has id ``wait_offset + n - 1``."""
        return self.note_off_offset + self.num_pitches

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

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
        """Write vocab.json for people to read; the vocabulary itself is derived from the settings."""
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "vocab.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self._token_to_id, handle, indent=0)
        return (path,)

    def _check_vocab_file(self, vocab_file: str) -> None:
        with open(vocab_file, encoding="utf-8") as handle:
            saved = json.load(handle)
        if saved != self._token_to_id:
            raise ValueError(
                f"{vocab_file} does not match the vocabulary derived from the tokenizer settings "
                f"(steps_per_quarter={self.steps_per_quarter}, pitches {self.min_pitch}-{self.max_pitch}, "
                f"max_wait={self.max_wait}); the files were edited or saved by an incompatible version"
            )

    # ------------------------------------------------------------------------------------------ MIDI -> tokens

    def notes_to_ids(self, notes: NoteArrays) -> np.ndarray:
        """Token ids (no special tokens) of `notes` (ticks at `notes.tpq`), vectorized in numpy."""
        grid = quantize_notes(notes, self.steps_per_quarter, self.min_pitch, self.max_pitch)
        n = len(grid)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        times = np.concatenate([grid.end, grid.start])
        kinds = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])  # 0 = off before 1 = on
        pitches = np.concatenate([grid.pitch, grid.pitch])
        order = np.lexsort((pitches, kinds, times))
        times, kinds, pitches = times[order], kinds[order], pitches[order]
        event_ids = np.where(kinds == 1, self.note_on_offset, self.note_off_offset) + pitches - self.min_pitch
        gaps = np.diff(times, prepend=0)
        waits_before = (gaps + self.max_wait - 1) // self.max_wait  # wait tokens needed before each event
        total = 2 * n + int(waits_before.sum())
        out = np.empty(total, dtype=np.int64)
        event_pos = np.arange(2 * n) + np.cumsum(waits_before)
        out[event_pos] = event_ids
        wait_values = np.full(int(waits_before.sum()), self.max_wait, dtype=np.int64)
        has_wait = waits_before > 0
        last_of_group = np.cumsum(waits_before)[has_wait] - 1
        wait_values[last_of_group] = gaps[has_wait] - self.max_wait * (waits_before[has_wait] - 1)
        is_wait = np.ones(total, dtype=bool)
        is_wait[event_pos] = False
        out[is_wait] = self.wait_offset + wait_values - 1
        return out

    def encode_midi(
        self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS
    ) -> NotewiseEncoding:
        """Tokens of `src` (path, bytes, `symusic.Score` or music21 stream) with its first tempo and time signature.

        All pitched tracks are merged into one piano stream (unless `merge_tracks=False`, which keeps the first
        pitched track only); drums are dropped. Raises `MidiError` (a `ValueError`) naming the file on bad input.
        """
        score = load_score(src, safe=safe, limits=limits)
        tracks = score_notes(score, drop_drums=self.drop_drums, merge_tracks=self.merge_tracks)
        notes = tracks[0] if tracks else NoteArrays(*(np.zeros(0, np.int64),) * 3, tpq=score.tpq)
        ids = self.notes_to_ids(notes)
        return NotewiseEncoding(self._id_array[ids].tolist(), score_meta(score))

    def midi_to_tokens(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> list[str]:
        """Notewise tokens of `src`, a path, raw bytes, a `symusic.Score` or a music21 stream."""
        return self.encode_midi(src, safe=safe, limits=limits).tokens

    def midi_to_ids(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> list[int]:
        """Token ids of `src` without special tokens (faster than `midi_to_tokens` followed by a lookup)."""
        score = load_score(src, safe=safe, limits=limits)
        tracks = score_notes(score, drop_drums=self.drop_drums, merge_tracks=self.merge_tracks)
        return self.notes_to_ids(tracks[0]).tolist() if tracks else []

    # ------------------------------------------------------------------------------------------ tokens -> MIDI

    def tokens_to_notes(self, tokens: Sequence[str] | Sequence[int] | str) -> NoteArrays:
        """Notes on the step grid (`tpq` = steps per quarter) of any token sequence; never fails.

        Lenient by design, so that any model output decodes: special and unknown tokens are skipped, a note-off
        for a silent pitch is ignored, a note-on for a sounding pitch re-strikes it (the old note ends there; a
        second note-on in the same step is ignored), a note-off in the step of its note-on gives a one-step note,
        and notes still sounding at the end stop at the final time (at least one step long).
        """
        if isinstance(tokens, str):
            tokens = tokens.split()
        starts, ends, pitches = [], [], []
        sounding: dict[int, int] = {}
        now = 0
        for token in tokens:
            kind, value = self._parse_token(token)
            if kind == "wait":
                now += value
            elif kind == "on":
                began = sounding.get(value)
                if began is not None:
                    if began == now:
                        continue
                    starts.append(began), ends.append(now), pitches.append(value)
                sounding[value] = now
            elif kind == "off" and value in sounding:
                began = sounding.pop(value)
                starts.append(began), ends.append(max(now, began + 1)), pitches.append(value)
        for value, began in sounding.items():
            starts.append(began), ends.append(max(now, began + 1)), pitches.append(value)
        return NoteArrays(
            np.array(starts, dtype=np.int64),
            np.array(ends, dtype=np.int64),
            np.array(pitches, dtype=np.int64),
            self.steps_per_quarter,
        )

    def _parse_token(self, token: str | int) -> tuple[str | None, int]:
        """(kind, value) of a token or id: ("on"/"off", pitch), ("wait", steps), or (None, 0) to skip it."""
        index = self._token_to_id.get(token, -1) if isinstance(token, str) else int(token)
        if not self.note_on_offset <= index < self.vocab_size:
            return None, 0
        if index >= self.wait_offset:
            return "wait", index - self.wait_offset + 1
        if index >= self.note_off_offset:
            return "off", index - self.note_off_offset + self.min_pitch
        return "on", index - self.note_on_offset + self.min_pitch

    @property
    def output_tpq(self) -> int:
        """Ticks per quarter of written MIDI: the multiple of `steps_per_quarter` nearest above 480."""
        return self.steps_per_quarter * -(-480 // self.steps_per_quarter)

    def tokens_to_midi(
        self,
        tokens: Sequence[str] | Sequence[int] | str,
        *,
        meta: ScoreMeta | None = None,
        qpm: float | None = None,
        time_signature: tuple[int, int] | None = None,
        program: int = 0,
    ) -> "symusic.Score":  # noqa: F821 - symusic is imported by midi_io
        """A one-track piano `symusic.Score` from tokens (or ids, or space-separated text); never fails.

        Tempo and time signature come from `meta` (as returned by `encode_midi`) or the keywords; default 120 bpm 4/4.
        """
        meta = meta or ScoreMeta()
        meta = ScoreMeta(qpm=qpm or meta.qpm, time_signature=time_signature or meta.time_signature)
        grid = self.tokens_to_notes(tokens)
        scale = self.output_tpq // self.steps_per_quarter
        ticks = NoteArrays(grid.start * scale, grid.end * scale, grid.pitch, self.output_tpq)
        return build_score([(ticks, "Piano", program)], meta)

    def save_midi(self, tokens: Sequence[str] | Sequence[int] | str, path: str | os.PathLike, **kwargs) -> Path:
        """Decode `tokens` and write a MIDI file (keywords as in `tokens_to_midi`); returns the path."""
        return save_score(self.tokens_to_midi(tokens, **kwargs), path)


NotewiseTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = ["NotewiseEncoding", "NotewiseTokenizer", "fold_pitches", "parse_token_text", "quantize_notes"]
