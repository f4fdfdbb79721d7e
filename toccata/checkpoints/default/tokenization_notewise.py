"""Notewise tokenizer: MIDI <-> words such as ``p60`` (note-on), ``endp60`` (note-off) and ``wait12`` (advance time).

Time is measured in beats, not seconds: each quarter note is cut into `steps_per_quarter` (default 12) steps, so
triplets and sixteenths both land on the grid. Decoding is exact at grid resolution. Inside one time step the order is
fixed: all note-offs, then all note-ons, each ascending by pitch, then the wait. The vocabulary is derived from the
settings, so it never depends on data.

This file imports only numpy, transformers and its siblings `tokenization_base.py` and `midi_io.py` (symusic), so the
three can travel to the Hub next to a checkpoint and load with ``trust_remote_code=True``.
"""

from __future__ import annotations

import json

import numpy as np

from .midi_io import NoteArrays
from .tokenization_base import SPECIAL_TOKENS, MidiWordTokenizer, Tokens, check_range, quantize_notes


class NotewiseTokenizer(MidiWordTokenizer):
    """A transformers tokenizer over notewise words, with MIDI in (`midi_to_tokens`) and out (`tokens_to_midi`).

    Example:
        >>> tok = NotewiseTokenizer()
        >>> tokens = tok.midi_to_tokens("piece.mid")       # ['p60', 'p64', 'wait12', 'endp60', ...]
        >>> tok.save_midi(tokens, "again.mid")
        >>> tok("p60 wait12 endp60")["input_ids"]
    """

    scheme = "notewise"

    def __init__(
        self,
        vocab_file: str | None = None,
        steps_per_quarter: int = 12,
        min_pitch: int = 21,
        max_pitch: int = 108,
        max_wait: int = 48,
        merge_tracks: bool = True,
        drop_drums: bool = True,
        sustain_pedal: bool = False,
        add_bos_token: bool = True,
        add_eos_token: bool = False,
        pad_token: str = "<pad>",
        bos_token: str = "<bos>",
        eos_token: str = "<eos>",
        unk_token: str = "<unk>",
        **kwargs,
    ):
        check_range("steps_per_quarter", steps_per_quarter, 1, 96)
        check_range("min_pitch", min_pitch, 0, 116)
        check_range("max_pitch", max_pitch, min_pitch + 11, 127)
        check_range("max_wait", max_wait, 1, 4096)
        self.steps_per_quarter = steps_per_quarter
        self.min_pitch = min_pitch
        self.max_pitch = max_pitch
        self.max_wait = max_wait
        self.merge_tracks = merge_tracks
        self.drop_drums = drop_drums
        self.sustain_pedal = sustain_pedal
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
            sustain_pedal=sustain_pedal,
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
        waits_so_far = np.cumsum(waits_before)
        total = 2 * n + int(waits_so_far[-1])
        out = np.empty(total, dtype=np.int64)
        event_pos = np.arange(2 * n) + waits_so_far
        out[event_pos] = event_ids
        wait_values = np.full(int(waits_so_far[-1]), self.max_wait, dtype=np.int64)
        has_wait = waits_before > 0
        last_of_group = waits_so_far[has_wait] - 1
        wait_values[last_of_group] = gaps[has_wait] - self.max_wait * (waits_before[has_wait] - 1)
        is_wait = np.ones(total, dtype=bool)
        is_wait[event_pos] = False
        out[is_wait] = self.wait_offset + wait_values - 1
        return out

    def notes_to_tokens(self, notes: NoteArrays) -> list[str]:
        """Notewise words of `notes` (ticks at `notes.tpq`)."""
        return self._id_array[self.notes_to_ids(notes)].tolist()

    # ------------------------------------------------------------------------------------------ tokens -> MIDI

    def tokens_to_notes(self, tokens: Tokens) -> NoteArrays:
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


NotewiseTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = ["NotewiseTokenizer"]
