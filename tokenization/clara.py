"""Read and write the notewise text of Christine McLeavey Payne's "Clara" (github.com/mcleavey/musical-neural-net).

Her files (``data/composers/notewise/...``, written by ``data/midi-to-encoding.py``) look like::

    wait3 p33 wait5 endp33 wait1 p35 wait5 endp35 ... p9 p37 p40 p45 wait25 wait25 wait25 wait14 endp9 ...

The format, as her encoder writes it (defaults of `ClaraFormat`):

* Pitches are indices ``i = midi - 33`` in ``0..61`` (MIDI 33..94); out-of-range pitches are folded in by octaves.
  ``p{i}`` strikes a piano note, ``endp{i}`` ends it; in chamber mode ``v{i}``/``endv{i}`` are the same for the
  "violin-like" second part, whose indices are folded up to at least 22.
* Time runs in steps of 1/12 quarter note. For each step: the violin part, then the piano part; inside a part,
  indices ascending; for each index ``p{i}`` if the note is struck at this step, then ``endp{i}`` if it sounds at
  this step but not at the next one (so ``endp`` sits on the note's *last* step: a one-step note is
  ``p10 endp10 wait1``). A re-strike of a sounding pitch is a new ``p{i}`` with no end before it.
* Every step ends with a wait; consecutive waits merge into ``wait{n}`` with ``n <= 25`` (longer silences chain).
  Her text covers ``floor(duration) + 1`` steps, so it ends one silent step after the last note (``... endpX wait2``).

Decoding is lenient so that any model output (or any of her files, some of which start mid-stream) decodes:
unknown tokens are skipped (``wait{n}`` with n outside 1..25 included), an end of a silent pitch is ignored, a
strike of a sounding pitch re-strikes it, and notes still sounding at the end of the text stop there.

Note that her published ``.txt`` files hold each piece twelve times, transposed from +6 down to -5 semitones and
concatenated (her ``add_modulations``); decoding one gives those twelve copies one after another.

Her chamber text reads into and writes from an instrumented `NotewiseTokenizer` (`clara_text_to_tokens`,
`tokens_to_clara_text`): her ``p``/``endp`` is the piano part, her ``v``/``endv`` the violin part (her ``v34``, index
34, is MIDI 67: the tokenizer's ``v67``). Her format has one "violin-like" part, so a cello part is
written as ``v`` too, as her own chamber encoder does with every pitched track that is not a piano.

`ClaraScheme` is her text behind Toccata's one front door (``load_scheme("clara")``, see `schemes`).

This module imports only the standard library, numpy and its siblings `midi_io`, `schemes`, `tokenization_base` and
`tokenization_notewise`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .midi_io import (
    DEFAULT_LIMITS,
    MidiLimits,
    MidiSource,
    NoteArrays,
    ScoreMeta,
    build_score,
    load_score,
    score_notes,
)
from .scheme_base import Scheme
from .tokenization_base import TokenEncoding, Tokens, fold_pitches
from .tokenization_notewise import NotewiseTokenizer

_TOKEN_RE = re.compile(r"^(endp|endv|p|v|wait)(\d+)$")
PIANO_LIKE_PROGRAMS = frozenset(range(8)) | {46}
"""General MIDI programs that go to the piano part in chamber mode: pianos, harpsichord, clavinet (0-7) and harp."""

_MAX_INT32 = 2**31 - 1


@dataclass(frozen=True)
class ClaraFormat:
    """The settings of her notewise encoding; the defaults are those of her published ``note_range62`` files."""

    note_offset: int = 33  # MIDI pitch of index 0
    note_range: int = 62  # number of pitch indices
    steps_per_quarter: int = 12  # her sample_freq
    max_wait: int = 25  # 2 * sample_freq + 1: the longest merged wait
    violin_min_index: int = 22  # violin-part pitches are folded up to at least this index

    def __post_init__(self) -> None:
        for name in ("note_offset", "note_range", "steps_per_quarter", "max_wait", "violin_min_index"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"ClaraFormat.{name} must be an integer, got {value!r}")
        if not 12 <= self.note_range <= 128:
            raise ValueError(f"ClaraFormat.note_range must be in [12, 128], got {self.note_range}")
        if not 0 <= self.note_offset <= 128 - self.note_range:
            raise ValueError(
                f"ClaraFormat.note_offset must be in [0, {128 - self.note_range}] so that every index is a MIDI "
                f"pitch (note_range={self.note_range}), got {self.note_offset}"
            )
        if not 1 <= self.steps_per_quarter <= 960:
            raise ValueError(f"ClaraFormat.steps_per_quarter must be in [1, 960], got {self.steps_per_quarter}")
        if self.max_wait < 1:
            raise ValueError(f"ClaraFormat.max_wait must be at least 1, got {self.max_wait}")
        if not 0 <= self.violin_min_index <= self.note_range - 12:
            raise ValueError(
                f"ClaraFormat.violin_min_index must be in [0, {self.note_range - 12}] (an octave below the top "
                f"index), got {self.violin_min_index}"
            )

    @property
    def min_pitch(self) -> int:
        """MIDI pitch of index 0."""
        return self.note_offset

    @property
    def max_pitch(self) -> int:
        """MIDI pitch of the top index."""
        return self.note_offset + self.note_range - 1

    @property
    def output_tpq(self) -> int:
        """Ticks per quarter of written MIDI: the multiple of `steps_per_quarter` nearest at or above 480."""
        return self.steps_per_quarter * -(-480 // self.steps_per_quarter)


DEFAULT_FORMAT = ClaraFormat()


# ---------------------------------------------------------------------------------------------------- decoding


def clara_text_to_notes(text: str | Iterable[str], fmt: ClaraFormat = DEFAULT_FORMAT) -> dict[str, NoteArrays]:
    """Notes of her notewise text, as ``{"piano": ..., "violin": ...}``; never fails on any token sequence.

    `text` is her space-separated text (or a list of tokens). Times are in steps (`tpq` = `fmt.steps_per_quarter`),
    pitches are MIDI numbers (index + `fmt.note_offset`). ``p{i}`` starts a note at the current step (re-striking a
    sounding one, which ends there; a second strike in the same step is ignored), ``endp{i}`` ends it after the
    current step, ``wait{n}`` advances n steps. Unknown tokens and ends of silent pitches are skipped; notes still
    sounding at the end stop at the final time (at least one step long).
    """
    if isinstance(text, str):
        tokens: Iterable = text.split()
    else:
        try:
            tokens = iter(text)
        except TypeError:
            raise TypeError(f"expected Clara text (a str) or a list of tokens, got {type(text).__name__}") from None
    parts = {"p": ([], [], []), "v": ([], [], [])}
    sounding: dict[str, dict[int, int]] = {"p": {}, "v": {}}
    now = 0
    for token in tokens:
        match = _TOKEN_RE.match(token) if isinstance(token, str) else None
        if match is None:
            continue
        word, number = match.group(1), int(match.group(2))
        if word == "wait":
            if 1 <= number <= fmt.max_wait:
                now += number
            continue
        if number >= fmt.note_range:
            continue
        part = word[-1]
        starts, ends, pitches = parts[part]
        began = sounding[part].get(number)
        if word in ("p", "v"):
            if began is not None:
                if began == now:
                    continue
                starts.append(began), ends.append(now), pitches.append(number)
            sounding[part][number] = now
        elif began is not None:
            del sounding[part][number]
            starts.append(began), ends.append(now + 1), pitches.append(number)
    for part, open_notes in sounding.items():
        starts, ends, pitches = parts[part]
        for number, began in open_notes.items():
            starts.append(began), ends.append(max(now, began + 1)), pitches.append(number)
    out = {}
    for key, part in (("piano", "p"), ("violin", "v")):
        starts, ends, pitches = (np.array(values, dtype=np.int64) for values in parts[part])
        order = np.lexsort((pitches, starts))
        out[key] = NoteArrays(starts[order], ends[order], pitches[order] + fmt.note_offset, fmt.steps_per_quarter)
    return out


def clara_text_to_midi(
    text: str | Iterable[str], fmt: ClaraFormat = DEFAULT_FORMAT, qpm: float = 120.0
) -> "symusic.Score":  # noqa: F821 - symusic is imported by midi_io
    """A `symusic.Score` of her text: a "Piano" track (program 0) and, if it has notes, a "Violin" track (40).

    Never fails on the tokens (see `clara_text_to_notes`); her format has no tempo, so `qpm` sets it (default 120).
    Written at `fmt.output_tpq` ticks per quarter (480 for 12 steps per quarter).
    """
    if not isinstance(qpm, (int, float, np.number)) or not np.isfinite(qpm) or not 1.0 <= qpm <= 1200.0:
        raise ValueError(f"qpm must be a number of quarter notes per minute in [1, 1200], got {qpm!r}")
    parts = clara_text_to_notes(text, fmt)
    scale = fmt.output_tpq // fmt.steps_per_quarter
    ticks = {
        key: NoteArrays(notes.start * scale, notes.end * scale, notes.pitch, fmt.output_tpq)
        for key, notes in parts.items()
    }
    last = max((int(notes.end.max()) for notes in ticks.values() if len(notes)), default=0)
    if last > _MAX_INT32:
        raise ValueError(f"the text lasts {last} ticks, more than a MIDI file can hold ({_MAX_INT32})")
    tracks = [(ticks["piano"], "Piano", 0)]
    if len(ticks["violin"]):
        tracks.append((ticks["violin"], "Violin", 40))
    return build_score(tracks, ScoreMeta(qpm=float(qpm)))


# ---------------------------------------------------------------------------------------------------- encoding


def _grid(notes: NoteArrays, fmt: ClaraFormat, violin: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start step, end step, pitch index) of `notes`: times rounded to the nearest step, at least one step long."""
    if not isinstance(notes, NoteArrays):
        part = "violin" if violin else "piano"
        raise TypeError(f"expected NoteArrays for the {part} part, got {type(notes).__name__}")
    tpq = int(notes.tpq)
    if tpq <= 0:
        raise ValueError(f"NoteArrays.tpq must be positive, got {notes.tpq}")
    spq = fmt.steps_per_quarter
    start = np.asarray(notes.start, dtype=np.int64)
    end = np.asarray(notes.end, dtype=np.int64)
    pitch = np.asarray(notes.pitch, dtype=np.int64)
    if not len(start) == len(end) == len(pitch):
        raise ValueError(
            f"NoteArrays fields differ in length: {len(start)} starts, {len(end)} ends, {len(pitch)} pitches"
        )
    start = np.maximum((start * spq * 2 + tpq) // (2 * tpq), 0)
    end = np.maximum((end * spq * 2 + tpq) // (2 * tpq), start + 1)
    index = fold_pitches(pitch - fmt.note_offset, 0, fmt.note_range - 1)
    if violin:
        index = fold_pitches(index, fmt.violin_min_index, fmt.note_range - 1)
    return start, end, index


def _roll(start: np.ndarray, end: np.ndarray, index: np.ndarray, steps: int, fmt: ClaraFormat):
    """Her score array for one part: which cells sound (struck or held) and which are struck, (steps + 1, range)."""
    sounding = np.zeros((steps + 1, fmt.note_range), dtype=bool)
    struck = np.zeros_like(sounding)
    if len(start):
        # Mark every sounding cell with a difference array along time, then the strikes on top.
        delta = np.zeros((steps + 2, fmt.note_range), dtype=np.int32)
        np.add.at(delta, (start, index), 1)
        np.add.at(delta, (end, index), -1)
        sounding = np.cumsum(delta, axis=0)[: steps + 1] > 0
        struck[start, index] = True
    return sounding, struck


def _wait_tokens(count: int, max_wait: int) -> list[str]:
    full, rest = divmod(count, max_wait)
    return [f"wait{max_wait}"] * full + ([f"wait{rest}"] if rest else [])


def notes_to_clara_text(
    piano: NoteArrays, violin: NoteArrays | None = None, fmt: ClaraFormat = DEFAULT_FORMAT
) -> str:
    """Her notewise text of a piano part and an optional violin-like part (ticks at any `tpq`).

    Onsets and offsets are rounded to the nearest step (her encoder floors them; rounding moves off-grid input by
    at most half a step and keeps grid input exact, as `quantize_notes` of the notewise tokenizer does); a note
    shorter than half a step lasts one step. Pitches are folded into range by octaves, violin pitches up to at least
    `fmt.violin_min_index`. Notes on one pitch merge as her score array does: a cell sounds if any note covers it, a
    strike at a sounding cell is a re-strike. The text covers one step past the last note end (her
    ``floor(duration) + 1`` steps), so it ends with ``wait2``; an empty input gives an empty text.
    """
    grids = {"p": _grid(piano, fmt, violin=False)}
    if violin is not None:
        grids["v"] = _grid(violin, fmt, violin=True)
    ends = [int(grid[1].max()) for grid in grids.values() if len(grid[1])]
    if not ends:
        return ""
    steps = max(ends) + 1
    # Events as (step, part order, index, kind) with violin (0) before piano (1) and strike (0) before end (1).
    keys = []
    for order, (part, grid) in enumerate(sorted(grids.items(), key=lambda item: item[0] != "v")):
        sounding, struck = _roll(*grid, steps, fmt)
        ending = sounding[:-1] & ~sounding[1:]  # sounds at t, silent at t + 1 (the extra row is silent)
        for kind, cells in ((0, struck[:-1]), (1, ending)):
            t, i = np.nonzero(cells)
            keys.append(np.stack([t, np.full_like(t, order), i, np.full_like(t, kind)], axis=1))
    events = np.concatenate(keys)
    events = events[np.lexsort(events.T[::-1])]
    names = {(0, 0): "v", (0, 1): "endv", (1, 0): "p", (1, 1): "endp"}
    if violin is None:
        names = {(0, 0): "p", (0, 1): "endp"}
    out: list[str] = []
    now = 0
    for t, order, i, kind in events.tolist():
        if t > now:
            out.extend(_wait_tokens(t - now, fmt.max_wait))
            now = t
        out.append(f"{names[order, kind]}{i}")
    out.extend(_wait_tokens(steps - now, fmt.max_wait))
    return " ".join(out)


def midi_to_clara_text(
    src: MidiSource,
    fmt: ClaraFormat = DEFAULT_FORMAT,
    chamber: bool = False,
    safe: bool = False,
    limits: MidiLimits = DEFAULT_LIMITS,
) -> str:
    """Her notewise text of a MIDI source (path, bytes, `symusic.Score` or music21 stream); drums are dropped.

    With ``chamber=False`` every pitched track merges into the piano part. With ``chamber=True`` tracks whose GM
    program is piano-like (0-7: pianos, harpsichord, clavinet; 46: harp) go to the piano part and every other
    pitched track to the violin part (``v`` tokens). `safe` parses in a child process (see `midi_io.load_score`);
    bad input raises `MidiError` naming the file.
    """
    score = load_score(src, safe=safe, limits=limits)
    pitched = [track for track in score.tracks if not track.is_drum]
    arrays = score_notes(score, drop_drums=True, merge_tracks=False)
    groups: dict[str, list[NoteArrays]] = {"piano": [], "violin": []}
    for track, notes in zip(pitched, arrays):
        piano_like = not chamber or int(track.program) in PIANO_LIKE_PROGRAMS
        groups["piano" if piano_like else "violin"].append(notes)
    piano, violin = (NoteArrays.merge(groups[part], score.tpq) for part in ("piano", "violin"))
    return notes_to_clara_text(piano, violin if chamber else None, fmt)


# ---------------------------------------------------------------------------------------------------- notewise


def _chamber_tokenizer(tokenizer: NotewiseTokenizer | None) -> NotewiseTokenizer:
    return tokenizer if tokenizer is not None else NotewiseTokenizer(instruments=("piano", "violin"))


def clara_text_to_tokens(
    text: str | Iterable[str], tokenizer: NotewiseTokenizer | None = None, fmt: ClaraFormat = DEFAULT_FORMAT
) -> list[str]:
    """Notewise words of her text: ``p`` notes in the piano part, ``v`` notes in the violin part; never fails.

    `tokenizer` defaults to ``NotewiseTokenizer(instruments=("piano", "violin"))``; one without a violin part gets
    the ``v`` notes in its piano part. Violin pitches below G3 (lenient input only: her encoder folds them up)
    fold up by octaves, as the tokenizer does with any out-of-range note.
    """
    tokenizer = _chamber_tokenizer(tokenizer)
    parts = clara_text_to_notes(text, fmt)
    if "violin" not in tokenizer.instruments:
        parts = {"piano": NoteArrays.merge([parts["piano"], parts["violin"]], fmt.steps_per_quarter)}
    return tokenizer.notes_to_tokens(parts)


def tokens_to_clara_text(
    tokens: Tokens, tokenizer: NotewiseTokenizer | None = None, fmt: ClaraFormat = DEFAULT_FORMAT
) -> str:
    """Her text of notewise tokens: the piano part as ``p``; the violin part (and a cello part, her format has
    one "violin-like" part) as ``v``. A piano-only tokenizer gives her non-chamber text."""
    tokenizer = _chamber_tokenizer(tokenizer)
    parts = tokenizer.tokens_to_parts(tokens)
    if not tokenizer.is_instrumented:
        return notes_to_clara_text(parts["piano"], None, fmt)
    others = [notes for name, notes in parts.items() if name != "piano"]
    return notes_to_clara_text(parts["piano"], NoteArrays.merge(others, tokenizer.steps_per_quarter), fmt)


# ---------------------------------------------------------------------------------------------------- scheme


class ClaraScheme(Scheme):
    """Her text as a scheme: `midi_to_clara_text` and `clara_text_to_midi`; plain words, no header line (her format
    has no tempo: decoding is at 120 quarter notes per minute unless `qpm` is given)."""

    name = "clara"

    def __init__(self, chamber: bool = False, fmt: ClaraFormat = DEFAULT_FORMAT) -> None:
        self.chamber, self.fmt = bool(chamber), fmt

    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """Her words of `src`; with `chamber`, pitched tracks that are not piano-like become ``v``/``endv``."""
        text = midi_to_clara_text(src, self.fmt, chamber=self.chamber, safe=safe)
        return TokenEncoding(text.split(), scheme=self.name)

    def to_text(self, encoding: TokenEncoding) -> str:
        """Her words separated by spaces, as her files hold them (no header line)."""
        return " ".join(encoding.tokens) + "\n"

    def detokenize(self, text: str, qpm: float | None = None) -> "symusic.Score":  # noqa: F821
        """`clara_text_to_midi` of the text, lenient as it is, at `qpm` (120 if not given)."""
        return clara_text_to_midi(text, self.fmt, qpm=ScoreMeta(qpm=120.0 if qpm is None else qpm).qpm)

    def _settings(self) -> dict:
        return {"chamber": self.chamber}


__all__ = [
    "DEFAULT_FORMAT",
    "ClaraScheme",
    "PIANO_LIKE_PROGRAMS",
    "ClaraFormat",
    "clara_text_to_midi",
    "clara_text_to_notes",
    "clara_text_to_tokens",
    "midi_to_clara_text",
    "notes_to_clara_text",
    "tokens_to_clara_text",
]
