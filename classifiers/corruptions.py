"""Real music spoilt in ways a listener hears: the critic's negatives beyond the generator's own samples.

A critic trained only on "real against our generator" learns what gives our generator away, not what music is: it
rated real pieces with scrambled pitches as more human than the originals. Each corruption here keeps most of a real
excerpt (its notes, its texture or its rhythm) and breaks one thing a listener notices, so a critic that tells them
from the real excerpt has to judge pitch, rhythm, form, harmony and time's direction.

All work on `NoteArrays` on the step grid (`tpq` steps per quarter, as `tokenizer.tokens_to_notes` returns), are
deterministic given the `numpy.random.Generator`, and return new arrays (the input is not changed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from toccata.tokenization.midi_io import NoteArrays

LOWEST, HIGHEST = 21, 108  # the piano keyboard: corrupted pitches fold back onto it by octaves
SCRAMBLE_STEPS = (1, 6, 11, 13)  # semitones a scrambled note moves, up or down: a key's worth of wrong notes
ADDED_SHARE = 0.25  # random notes added, as a share of the excerpt's notes
HURRY_FACTORS = (2 / 3, 1 / 2)  # a hurried excerpt's time scale: played 1.5 or 2 times as fast
CUT_SHARES = (0.3, 0.6)  # the share of notes cut short is drawn from this range
CUT_STEPS = 3  # a note cut short lasts 1 to this many steps (a sixteenth at 12 steps a quarter)


def _fold(pitch: np.ndarray) -> np.ndarray:
    """Pitches moved by octaves into the keyboard (never dropped)."""
    pitch = pitch.copy()
    while (low := pitch < LOWEST).any():
        pitch[low] += 12
    while (high := pitch > HIGHEST).any():
        pitch[high] -= 12
    return pitch


def _sorted(start: np.ndarray, end: np.ndarray, pitch: np.ndarray, tpq: int) -> NoteArrays:
    """Notes ordered by onset then pitch, every note at least one step long."""
    end = np.maximum(end, start + 1)
    order = np.lexsort((pitch, start))
    return NoteArrays(start[order].astype(np.int64), end[order].astype(np.int64), pitch[order].astype(np.int64), tpq)


def scramble_pitches(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """Every note moved by ±1, 6, 11 or 13 semitones at random: the rhythm and texture stay, the harmony goes."""
    shift = rng.choice(SCRAMBLE_STEPS, size=len(notes)) * rng.choice((-1, 1), size=len(notes))
    return _sorted(notes.start, notes.end, _fold(notes.pitch + shift), notes.tpq)


def shuffle_rhythm(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """The gaps between successive onsets put in a random order: chords and their order stay, the rhythm goes."""
    onsets, chord = np.unique(notes.start, return_inverse=True)
    if len(onsets) < 3:
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    gaps = rng.permutation(np.diff(onsets))
    moved = np.concatenate([[onsets[0]], onsets[0] + np.cumsum(gaps)])[chord]
    return _sorted(moved, moved + (notes.end - notes.start), notes.pitch, notes.tpq)


def reorder_bars(notes: NoteArrays, rng: np.random.Generator, beats_per_bar: int = 4) -> NoteArrays:
    """The excerpt's bars (of `beats_per_bar` quarters) in a random order: each bar is real, the form is not."""
    bar = beats_per_bar * notes.tpq
    first = int(notes.start.min()) // bar * bar if len(notes) else 0
    index = (notes.start - first) // bar
    count = int(index.max()) + 1 if len(notes) else 0
    if count < 2:
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    order = rng.permutation(count)
    while count > 1 and (order == np.arange(count)).all():
        order = rng.permutation(count)
    place = np.empty(count, dtype=np.int64)
    place[order] = np.arange(count)  # bar order[i] goes to position i
    shift = (place[index] - index) * bar
    return _sorted(notes.start + shift, notes.end + shift, notes.pitch, notes.tpq)


def transpose_hand(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """One hand (the notes below or above the excerpt's median pitch, chosen at random) moved by a tritone."""
    if not len(notes):
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    split = np.median(notes.pitch)
    hand = notes.pitch < split if rng.random() < 0.5 else notes.pitch >= split
    shift = 6 if rng.random() < 0.5 else -6
    return _sorted(notes.start, notes.end, _fold(np.where(hand, notes.pitch + shift, notes.pitch)), notes.tpq)


def reverse_time(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """The excerpt played backwards: each note ends where it began, cadences come first."""
    if not len(notes):
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    first, last = int(notes.start.min()), int(notes.end.max())
    return _sorted(first + last - notes.end, first + last - notes.start, notes.pitch, notes.tpq)


def add_random_notes(notes: NoteArrays, rng: np.random.Generator, share: float = ADDED_SHARE) -> NoteArrays:
    """A quarter more notes, at the excerpt's own onsets, durations and register but random pitches: wrong notes
    sprinkled over real music."""
    count = max(1, int(round(share * len(notes))))
    if not len(notes):
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    pick = rng.integers(0, len(notes), size=count)
    low, high = int(notes.pitch.min()), int(notes.pitch.max())
    pitch = rng.integers(low, high + 1, size=count)
    start = notes.start[pick]
    end = start + (notes.end - notes.start)[rng.integers(0, len(notes), size=count)]
    return _sorted(
        np.concatenate([notes.start, start]),
        np.concatenate([notes.end, end]),
        np.concatenate([notes.pitch, pitch]),
        notes.tpq,
    )


def shift_register(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """The whole excerpt one or two octaves higher or lower (folded onto the keyboard by octaves): pitch classes,
    rhythm and texture stay, the register goes (all tinkle or all rumble). Tuned against a critic that did
    not know registers, the generator drifted up (docs/critic.md, preference tuning)."""
    if not len(notes):
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    centre = float(np.median(notes.pitch))
    up = centre < 66 if rng.random() < 0.8 else centre >= 66  # mostly away from the middle of the keyboard
    shift = int(rng.choice((12, 24))) * (1 if up else -1)
    return _sorted(notes.start, notes.end, _fold(notes.pitch + shift), notes.tpq)


def narrow_range(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """Every note folded by octaves into the octave and a half around the excerpt's median: the harmony's pitch
    classes and the rhythm stay, the span between bass and melody goes (a texture squeezed into the middle)."""
    if not len(notes):
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    low = min(max(int(np.median(notes.pitch)) - 9 + int(rng.integers(-3, 4)), LOWEST), HIGHEST - 17)
    step, octave = (notes.pitch - low) % 12, (notes.pitch - low) // 12
    pitch = low + step + 12 * ((step < 6) & (octave % 2 == 1))  # within [low, low + 18): some contour is left
    return _sorted(notes.start, notes.end, pitch, notes.tpq)


def hurry(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """The excerpt played 1.5 or 2 times as fast on the same grid (onsets and ends scaled and rounded to steps):
    pitches, chords and their order stay, the rhythm becomes a flurry of short notes. Tuned against a critic that
    did not know this, the generator drifted to more short notes than real music plays (docs/critic.md)."""
    if not len(notes):
        return _sorted(notes.start, notes.end, notes.pitch, notes.tpq)
    factor = float(rng.choice(HURRY_FACTORS))
    first = int(notes.start.min())
    start = first + np.round((notes.start - first) * factor).astype(np.int64)
    end = first + np.round((notes.end - first) * factor).astype(np.int64)
    _, keep = np.unique(np.stack([start, notes.pitch]), axis=1, return_index=True)  # notes merged onto one onset
    keep = np.sort(keep)
    return _sorted(start[keep], end[keep], notes.pitch[keep], notes.tpq)


def cut_short(notes: NoteArrays, rng: np.random.Generator) -> NoteArrays:
    """30-60% of the notes (the share drawn at random, then the notes) cut to 1-3 steps: onsets and pitches stay,
    the legato and the held bass go (everything plucked). The same drift as `hurry`'s, in durations alone."""
    length = notes.end - notes.start
    cut = rng.random(len(notes)) < rng.uniform(*CUT_SHARES)
    short = np.minimum(length, rng.integers(1, CUT_STEPS + 1, size=len(notes)))
    return _sorted(notes.start, notes.start + np.where(cut, short, length), notes.pitch, notes.tpq)


CORRUPTIONS: dict[str, Callable[[NoteArrays, np.random.Generator], NoteArrays]] = {
    "pitches scrambled": scramble_pitches,
    "rhythm shuffled": shuffle_rhythm,
    "bars reordered": reorder_bars,
    "hand a tritone off": transpose_hand,
    "reversed": reverse_time,
    "random notes added": add_random_notes,
    "register shifted": shift_register,
    "range narrowed": narrow_range,
    "hurried": hurry,
    "notes cut short": cut_short,
}


def corrupt(notes: NoteArrays, kind: str, rng: np.random.Generator) -> NoteArrays:
    """`notes` spoilt by the corruption named `kind` (one of `CORRUPTIONS`)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[kind](notes, rng)
