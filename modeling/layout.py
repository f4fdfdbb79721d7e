"""Where the notewise words sit among the token ids: the one vocabulary layout of decoding, guards and evaluation.

Read from a `NotewiseLSTMConfig` or a `NotewiseTokenizer` (they record it under the same attribute names), so the
model and the tokenizer agree on ids without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class VocabLayout:
    """Where the notewise words sit among the token ids (copied from the model config)."""

    note_on_offset: int = 4
    note_off_offset: int = 92
    wait_offset: int = 180
    num_pitches: int = 88
    max_wait: int = 48
    steps_per_quarter: int = 12
    vocab_size: int = 228

    parts: tuple[tuple[str, int, int, int], ...] = (("piano", 4, 92, 88),)  # (name, note-on, note-off, pitches)

    @classmethod
    def from_config(cls, config) -> VocabLayout:
        """The layout recorded in a `NotewiseLSTMConfig`, or of a `NotewiseTokenizer` (same attribute names).

        `parts` come from `instrument_layout` (violin, cello beside the piano); without one, the piano part alone."""
        fields = {name: getattr(config, name) for name in cls.__dataclass_fields__ if name != "parts"}
        parts = getattr(config, "instrument_layout", None) or {
            "piano": {k: fields[k] for k in ("note_on_offset", "note_off_offset", "num_pitches")}
        }
        spec = tuple(
            (str(name), int(p["note_on_offset"]), int(p["note_off_offset"]), int(p["num_pitches"]))
            for name, p in sorted(parts.items(), key=lambda item: int(item[1]["note_on_offset"]))
        )  # in id order: a config saved as JSON has its keys sorted
        return cls(**fields, parts=spec)

    @property
    def num_keys(self) -> int:
        """Keys of all parts together (88 for the piano alone): the width of the guards' state."""
        return sum(part[3] for part in self.parts)

    def key_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(on_key, off_key, key_part): for each id, the key (across all parts) it starts or ends, else -1; and for
        each key, the index of its part. Piano alone: key = pitch index, as before."""
        on_key = np.full(self.vocab_size, -1, dtype=np.int64)
        off_key = np.full(self.vocab_size, -1, dtype=np.int64)
        key_part = np.zeros(self.num_keys, dtype=np.int64)
        start = 0
        for index, (_, on, off, size) in enumerate(self.parts):
            on_key[on : on + size] = np.arange(start, start + size)
            off_key[off : off + size] = np.arange(start, start + size)
            key_part[start : start + size] = index
            start += size
        return on_key, off_key, key_part

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


__all__ = ["VocabLayout"]
