"""Musical statistics of token sequences (generated samples or held-out pieces) and how close two sets of them are.

Read from token ids as the decoder reads them: a note-on for a sounding key re-strikes it (a new note), a
note-off for a silent key and special tokens are ignored, notes still sounding at the end stop there. Time is in
steps of 1/`steps_per_quarter` quarter note; results are in quarter notes ("beats").

Overlaps are 1 for identical and 0 for disjoint: for histograms, the sum over bins of the smaller of the two
normalised histograms; for a scalar such as note density, `min(a, b) / max(a, b)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from toccata.modeling.layout import VocabLayout

DEFAULT_LAYOUT = VocabLayout()


@dataclass
class SampleStats:
    """What one sequence does musically; histograms are counts."""

    tokens: int
    notes: int  # note-ons (re-strikes included)
    quarters: float  # length: all waits
    note_quarters: float  # sum over time of the number of sounding notes (area under the polyphony curve)
    max_polyphony: int
    lowest: int | None  # MIDI pitch of the lowest note-on (None without notes)
    highest: int | None
    pitch_classes: np.ndarray  # (12,) note-ons per pitch class, C = 0
    onset_positions: np.ndarray  # (steps_per_quarter,) onset times per position in the quarter (step mod grid)
    iois: np.ndarray  # (max_wait + 1,) gaps in steps between successive onset times: 1..max_wait, last bin longer
    longest_silence: float  # quarters without a sounding note in a row (leading and trailing silence included)
    trailing_silence: float  # quarters of silence at the end

    @property
    def density(self) -> float:
        """Notes per quarter note."""
        return self.notes / self.quarters if self.quarters else 0.0

    @property
    def mean_polyphony(self) -> float:
        """Notes sounding at once, averaged over the whole length (silences count as 0)."""
        return self.note_quarters / self.quarters if self.quarters else 0.0

    @property
    def pitch_range(self) -> int:
        """Semitones from the lowest to the highest note (0 without notes)."""
        return 0 if self.lowest is None else self.highest - self.lowest

    def rest_collapsed(self, max_silence: float = 4.0, tail: float = 8.0) -> bool:
        """Fell silent for more than `max_silence` quarters, or the last `tail` quarters are silent."""
        return self.longest_silence > max_silence or self.trailing_silence >= tail


def sample_stats(ids: Sequence[int] | np.ndarray, layout: VocabLayout = DEFAULT_LAYOUT) -> SampleStats:
    """Statistics of one token id sequence (see the module docstring for how ids are read)."""
    on0, off0, wait0 = layout.note_on_offset, layout.note_off_offset, layout.wait_offset
    pitches, waits, grid = layout.num_pitches, layout.max_wait, layout.steps_per_quarter
    sounding = [False] * pitches
    count = now = silent_since = longest = area = notes = max_poly = 0
    onsets: list[int] = []
    struck: list[int] = []
    for token in np.asarray(ids, dtype=np.int64).tolist():
        if on0 <= token < on0 + pitches:
            key = token - on0
            if count == 0:
                longest = max(longest, now - silent_since)
            if not sounding[key]:
                sounding[key] = True
                count += 1
            notes += 1
            struck.append(key)
            if not onsets or onsets[-1] != now:
                onsets.append(now)
            max_poly = max(max_poly, count)
        elif off0 <= token < off0 + pitches:
            key = token - off0
            if sounding[key]:
                sounding[key] = False
                count -= 1
                if count == 0:
                    silent_since = now
        elif wait0 <= token < wait0 + waits:
            step = token - wait0 + 1
            area += count * step
            now += step
    trailing = now - silent_since if count == 0 else 0
    longest = max(longest, trailing)
    midi = np.asarray(struck, dtype=np.int64) + layout.min_pitch
    gaps = np.diff(np.asarray(onsets, dtype=np.int64))
    return SampleStats(
        tokens=len(ids),
        notes=notes,
        quarters=now / grid,
        note_quarters=area / grid,
        max_polyphony=max_poly,
        lowest=int(midi.min()) if midi.size else None,
        highest=int(midi.max()) if midi.size else None,
        pitch_classes=np.bincount(midi % 12, minlength=12),
        onset_positions=np.bincount(np.asarray(onsets, dtype=np.int64) % grid, minlength=grid),
        iois=np.bincount(np.minimum(gaps, waits + 1) - 1, minlength=waits + 1) if gaps.size else np.zeros(waits + 1),
        longest_silence=longest / grid,
        trailing_silence=trailing / grid,
    )


def histogram_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the bin-wise minimum of the two normalised histograms: 1 identical, 0 disjoint (0 if one is empty)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"histograms must have the same bins, got shapes {a.shape} and {b.shape}")
    if a.sum() <= 0 or b.sum() <= 0:
        return 0.0
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def ratio_overlap(a: float, b: float) -> float:
    """min(a, b) / max(a, b) of two non-negative numbers: 1 when equal, 0.5 when one is twice the other."""
    if a < 0 or b < 0:
        raise ValueError(f"ratio_overlap needs non-negative numbers, got {a} and {b}")
    return 1.0 if a == b else min(a, b) / max(a, b)


def _normalised(counts: np.ndarray) -> list[float]:
    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


@dataclass
class SetSummary:
    """A set of sequences (the samples of one sampler, or the held-out pieces) summarised; histograms normalised."""

    count: int
    tokens: int
    notes: int
    quarters: float
    density: float  # all notes / all quarters
    mean_polyphony: float  # time-weighted over all sequences
    max_polyphony: int
    mean_pitch_range: float  # semitones, averaged over sequences with notes
    pitch_classes: list[float]
    onset_positions: list[float]
    iois: list[float]
    rest_collapsed: int  # sequences that fell silent for more than 4 quarters, or whose last 8 are silent
    densities: list[float] = field(default_factory=list)  # per sequence
    longest_silences: list[float] = field(default_factory=list)  # per sequence, quarters

    @property
    def rest_collapse_rate(self) -> float:
        return self.rest_collapsed / self.count if self.count else 0.0

    def overlaps(self, reference: SetSummary) -> dict[str, float]:
        """How close this set is to `reference`: note density, polyphony, pitch classes, onset grid positions, IOIs."""
        return {
            "density": ratio_overlap(self.density, reference.density),
            "polyphony": ratio_overlap(self.mean_polyphony, reference.mean_polyphony),
            "pitch_classes": histogram_overlap(self.pitch_classes, reference.pitch_classes),
            "onset_positions": histogram_overlap(self.onset_positions, reference.onset_positions),
            "iois": histogram_overlap(self.iois, reference.iois),
        }


def summarise_set(stats: Sequence[SampleStats], max_silence: float = 4.0, tail: float = 8.0) -> SetSummary:
    """Pool the statistics of several sequences (sums for counts and histograms, means where said)."""
    if not stats:
        raise ValueError("summarise_set: no sequences to summarise")
    quarters = sum(s.quarters for s in stats)
    notes = sum(s.notes for s in stats)
    ranges = [s.pitch_range for s in stats if s.lowest is not None]
    return SetSummary(
        count=len(stats),
        tokens=sum(s.tokens for s in stats),
        notes=notes,
        quarters=quarters,
        density=notes / quarters if quarters else 0.0,
        mean_polyphony=sum(s.note_quarters for s in stats) / quarters if quarters else 0.0,
        max_polyphony=max(s.max_polyphony for s in stats),
        mean_pitch_range=float(np.mean(ranges)) if ranges else 0.0,
        pitch_classes=_normalised(sum(s.pitch_classes for s in stats)),
        onset_positions=_normalised(sum(s.onset_positions for s in stats)),
        iois=_normalised(sum(s.iois for s in stats)),
        rest_collapsed=sum(s.rest_collapsed(max_silence, tail) for s in stats),
        densities=[s.density for s in stats],
        longest_silences=[s.longest_silence for s in stats],
    )


__all__ = [
    "DEFAULT_LAYOUT",
    "SampleStats",
    "SetSummary",
    "histogram_overlap",
    "ratio_overlap",
    "sample_stats",
    "summarise_set",
]
