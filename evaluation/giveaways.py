"""What gives samples away, per sample: each measure's spread over samples against its spread over real music.

Means hide what a listener hears: one runaway sample in three (12 notes per quarter where real pieces play 1.6 to
5.5, or a chord held for sixteen beats) is what a user meets. So each measure is taken per sequence (a sample, or a
window of a held-out piece of the same length) and compared as distributions: the real windows' 5th to 95th
percentile is the range real music spans, and the report says how many samples fall outside it.

Measures (time in quarter notes; the melody is the highest note struck at each onset, as the feature critic reads it):

    notes per quarter     note-ons per quarter note
    polyphony             notes sounding at once, averaged over time
    repeated top notes    share of melodic steps that repeat the same pitch
    wide leaps            share of melodic steps wider than a perfect fifth (7 semitones)
    long notes            share of notes held 8 quarters or more (chords left hanging)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from toccata.modeling.layout import VocabLayout

LONG_NOTE_QUARTERS = 8.0
WIDE_LEAP = 7  # semitones: wider than a perfect fifth
MAX_OUTSIDE = 0.2  # a measure is within range when at most this share of samples falls outside the real 5-95% band
GIVEAWAYS = ("notes per quarter", "polyphony", "repeated top notes", "wide leaps", "long notes")


def giveaway_values(ids: Sequence[int] | np.ndarray, layout: VocabLayout) -> dict[str, float]:
    """Each measure of `GIVEAWAYS` for one token id sequence, read as the decoder reads it (NaN where undefined)."""
    on0, off0, wait0 = layout.note_on_offset, layout.note_off_offset, layout.wait_offset
    pitches, grid = layout.num_pitches, layout.steps_per_quarter
    started = np.full(pitches, -1, dtype=np.int64)
    now = area = sounding = notes = 0
    durations: list[int] = []
    top_at: dict[int, int] = {}  # onset step -> highest key struck there
    for token in np.asarray(ids, dtype=np.int64).tolist():
        if on0 <= token < on0 + pitches:
            key = token - on0
            if started[key] >= 0:
                durations.append(now - started[key])
            else:
                sounding += 1
            started[key] = now
            notes += 1
            top_at[now] = max(top_at.get(now, -1), key)
        elif off0 <= token < off0 + pitches:
            key = token - off0
            if started[key] >= 0:
                durations.append(now - started[key])
                started[key] = -1
                sounding -= 1
        elif wait0 <= token < wait0 + layout.max_wait:
            step = token - wait0 + 1
            area += sounding * step
            now += step
    durations += [now - start for start in started[started >= 0].tolist()]  # held to the end
    quarters = now / grid
    melody = np.diff(np.asarray([top_at[t] for t in sorted(top_at)], dtype=np.int64))
    long_share = float(np.mean(np.asarray(durations) >= LONG_NOTE_QUARTERS * grid)) if durations else np.nan
    return {
        "notes per quarter": notes / quarters if quarters else np.nan,
        "polyphony": area / now if now else np.nan,
        "repeated top notes": float(np.mean(melody == 0)) if melody.size else np.nan,
        "wide leaps": float(np.mean(np.abs(melody) > WIDE_LEAP)) if melody.size else np.nan,
        "long notes": long_share,
    }


@dataclass
class GiveawayRow:
    """One measure: the real windows' and the samples' 5th, 50th and 95th percentiles, and the samples outside."""

    measure: str
    real: tuple[float, float, float]
    samples: tuple[float, float, float]
    outside: float  # share of samples outside the real 5-95% band

    @property
    def within(self) -> bool:
        """The samples' median inside the real band and at most `MAX_OUTSIDE` of them outside it."""
        low, _, high = self.real
        return low <= self.samples[1] <= high and self.outside <= MAX_OUTSIDE


def _percentiles(values: np.ndarray) -> tuple[float, float, float]:
    low, mid, high = np.percentile(values, [5, 50, 95])
    return float(low), float(mid), float(high)


def giveaway_table(real: Sequence[dict[str, float]], samples: Sequence[dict[str, float]]) -> list[GiveawayRow]:
    """One row per measure defined on both sides (a measure undefined for a sequence leaves that sequence out)."""
    rows = []
    for measure in GIVEAWAYS:
        real_values = np.asarray([r[measure] for r in real], dtype=np.float64)
        sample_values = np.asarray([s[measure] for s in samples], dtype=np.float64)
        real_values, sample_values = real_values[~np.isnan(real_values)], sample_values[~np.isnan(sample_values)]
        if not real_values.size or not sample_values.size:
            continue
        band = _percentiles(real_values)
        outside = float(np.mean((sample_values < band[0]) | (sample_values > band[2])))
        rows.append(GiveawayRow(measure, band, _percentiles(sample_values), outside))
    return rows


def real_windows(sequences: Sequence[np.ndarray], length: int, per_sequence: int = 2) -> list[np.ndarray]:
    """Up to `per_sequence` non-overlapping windows of `length` tokens spread over each held-out sequence, so that
    real music is measured over the same length as the samples (a short piece counts whole)."""
    out = []
    for ids in sequences:
        ids = np.asarray(ids, dtype=np.int64)
        count = max(1, min(per_sequence, len(ids) // max(1, length)))
        starts = np.linspace(0, max(0, len(ids) - length), count).round().astype(int)
        out += [ids[s : s + length] for s in starts]
    return out


def giveaway_markdown(rows: Sequence[GiveawayRow]) -> str:
    """The table as Markdown: real band, samples' spread, share outside, verdict."""
    lines = [
        "| measure | real: 5% / median / 95% | samples: 5% / median / 95% | samples outside the real band | |",
        "|---|---|---|---:|---|",
    ]
    for row in rows:
        real = " / ".join(f"{v:.3g}" for v in row.real)
        samples = " / ".join(f"{v:.3g}" for v in row.samples)
        verdict = "within" if row.within else "**gives it away**"
        lines.append(f"| {row.measure} | {real} | {samples} | {row.outside:.0%} | {verdict} |")
    return "\n".join(lines)
