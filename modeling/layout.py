"""Where the notewise words sit among the token ids: the one vocabulary layout of decoding, guards, training data
(transposition) and evaluation (music statistics, copies, the feature critic).

Read from a `NotewiseLSTMConfig` or a `NotewiseTokenizer` (they record it under the same attribute names), so the
model and the tokenizer agree on ids without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PIANO = "piano"


@dataclass(frozen=True)
class VocabLayout:
    """Where note-on, note-off and wait ids start, and each instrument part's pitch ids (defaults: the piano's
    notewise vocabulary of 228 ids)."""

    note_on_offset: int = 4  # id of p{min_pitch}
    note_off_offset: int = 92  # id of endp{min_pitch}
    wait_offset: int = 180  # id of wait1
    num_pitches: int = 88
    max_wait: int = 48
    steps_per_quarter: int = 12
    vocab_size: int = 228
    min_pitch: int = 21  # MIDI pitch of the lowest key
    # (name, note-on id, note-off id, pitches) of every part in id order; () for the piano part alone (the fields above)
    parts: tuple[tuple[str, int, int, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.parts:
            piano = ((PIANO, self.note_on_offset, self.note_off_offset, self.num_pitches),)
            object.__setattr__(self, "parts", piano)

    @classmethod
    def from_config(cls, config) -> VocabLayout:
        """The layout recorded in a `NotewiseLSTMConfig`, or of a `NotewiseTokenizer` (same attribute names).

        `parts` come from `instrument_layout` (violin, cello beside the piano); without one, the piano part alone."""
        fields = {name: int(getattr(config, name)) for name in cls.__dataclass_fields__ if name != "parts"}
        parts = getattr(config, "instrument_layout", None) or {}
        spec = tuple(
            (str(name), int(p["note_on_offset"]), int(p["note_off_offset"]), int(p["num_pitches"]))
            for name, p in sorted(parts.items(), key=lambda item: int(item[1]["note_on_offset"]))
        )  # in id order: a config saved as JSON has its keys sorted
        return cls(**fields, parts=spec)

    @classmethod
    def from_pitch_ids(cls, pitch_ids: tuple[int, int, int] | None) -> VocabLayout:
        """The layout of another scheme's tokens as far as transposition goes: (first note-on id, first note-off id,
        pitches) from its `pitch_ids()`; None: no pitch ids to shift. The other fields keep the notewise defaults."""
        on, off, size = pitch_ids or (0, 0, 0)
        return cls(note_on_offset=on, note_off_offset=off, num_pitches=size)

    @property
    def num_keys(self) -> int:
        """Keys of all parts together (88 for the piano alone): the width of the guards' state."""
        return sum(part[3] for part in self.parts)

    def part_slices(self) -> list[tuple[str, int, int, int, int]]:
        """(name, note-on id, note-off id, first key, pitches) of each part, in part order."""
        out, start = [], 0
        for name, on, off, size in self.parts:
            out.append((name, on, off, start, size))
            start += size
        return out

    def wait_lengths(self, device: torch.device | None = None) -> torch.Tensor:
        """Steps of wait1..wait{max_wait}, in id order."""
        return torch.arange(1, self.max_wait + 1, device=device)

    def pitch_index(self, ids: np.ndarray) -> np.ndarray:
        """Key index within its part (0 = the part's lowest key) of every note-on/off id; -1 for other tokens."""
        out = np.full(ids.shape, -1, dtype=np.int64)
        for _, on, off, size in self.parts:
            for offset in (on, off):
                mask = (ids >= offset) & (ids < offset + size)
                out[mask] = ids[mask] - offset
        return out

    def shift_bounds(self, ids: np.ndarray, pitch: np.ndarray, limit: int) -> tuple[int, int]:
        """(lowest, highest) transposition in ±`limit` that keeps every part's notes in `ids` inside its range
        (`pitch`: `pitch_index(ids)`)."""
        low, high = -limit, limit
        for _, on, off, size in self.parts:
            mask = (pitch >= 0) & (((ids >= on) & (ids < on + size)) | ((ids >= off) & (ids < off + size)))
            if mask.any():
                low, high = max(low, -int(pitch[mask].min())), min(high, size - 1 - int(pitch[mask].max()))
        return low, high


__all__ = ["VocabLayout"]
