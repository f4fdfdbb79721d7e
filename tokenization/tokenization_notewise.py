"""Notewise tokenizer: MIDI <-> words such as ``p60`` (note-on), ``endp60`` (note-off) and ``wait12`` (advance time).

Time is measured in beats, not seconds: each quarter note is cut into `steps_per_quarter` (default 12) steps, so
triplets and sixteenths both land on the grid. Decoding is exact at grid resolution. Inside one time step the order is
fixed: all note-offs, then all note-ons, each ascending by pitch, then the wait. The vocabulary is derived from the
settings, so it never depends on data.

An *instrumented* vocabulary (``NotewiseTokenizer(instruments=("piano", "violin"))``) gives each part its own
note-on/note-off words (piano ``p60``/``endp60``, violin ``v67``/``endv67``, cello ``c48``/``endc48``) over the
instrument's real range (`INSTRUMENTS`); waits are shared. The piano words keep today's ids and the other parts'
words follow them, so a piano checkpoint's embedding can be grown. Inside one step: all note-offs, then all note-ons,
parts in the order of `instruments` (piano first), each ascending by pitch. MIDI tracks are assigned to parts by
name, then by General MIDI program, else to the piano (`instrument_of_track`); MIDI out has one track per instrument
with its program. A piano-only file tokenizes exactly as with the piano vocabulary.

This file imports only numpy, transformers and its siblings `tokenization_base.py` and `midi_io.py` (symusic), so the
three can travel to the Hub next to a checkpoint and load with ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

from .midi_io import DEFAULT_LIMITS, MidiLimits, MidiSource, NoteArrays, ScoreMeta, build_score, load_score, score_meta
from .midi_io import score_notes
from .tokenization_base import (
    SPECIAL_TOKENS,
    MidiWordTokenizer,
    TokenEncoding,
    Tokens,
    check_range,
    clip_notes,
    quantize_notes,
)

INSTRUMENTS: dict[str, dict] = {
    # name: word prefix, lowest and highest MIDI pitch with words (piano: the tokenizer's min_pitch/max_pitch),
    # General MIDI program and track name of written MIDI.
    "piano": {"prefix": "p", "low": None, "high": None, "program": 0, "track_name": "Piano"},
    # G3 (the open G string) to G7: the top of orchestral and chamber writing, with room for harmonics.
    "violin": {"prefix": "v", "low": 55, "high": 103, "program": 40, "track_name": "Violin"},
    # C2 (the open C string) to E6: covers the thumb-position writing of quartets (Beethoven's Grosse Fuge
    # reaches D#6, Schumann's op. 41 D6) and sonatas.
    "cello": {"prefix": "c", "low": 36, "high": 88, "program": 42, "track_name": "Cello"},
}
"""The instruments an instrumented vocabulary can hold, in the fixed order of their parts."""

_TRACK_NAMES = (  # (pattern on a lower-cased name, part), first match wins: "violoncello", "violone" are no violins
    (re.compile(r"cello|violoncel|\bvcl?(?:\b|\d)|\bvlc(?:\b|\d)"), "cello"),
    (re.compile(r"viola|violone|\bvla\b|bratsche|contrabass|kontrabass|double ?bass|\bbasso\b"), "other"),
    (re.compile(r"violin|violon|\bv(?:ln?|n|ni)(?:\b|\d)|geige|fiddle"), "violin"),
    (re.compile(r"piano|pno|klavier|keyboard|clavier|cembalo|harpsichord"), "piano"),
)
_PROGRAMS = {40: "violin", 42: "cello"}  # General MIDI: 41 viola, 43 contrabass go to the piano


def instrument_of_track(name: str, program: int, instruments: Sequence[str] = tuple(INSTRUMENTS)) -> str:
    """The part a MIDI track plays in: by track name, then by General MIDI program, else ``"piano"``.

    Names are matched case-insensitively ("Violin I", "Vln. 2", "Violoncello", "Vc."), because many files leave the
    program at 0 whatever the instrument; then programs 40 (violin) and 42 (cello). An instrument the tokenizer does
    not have, and every unnamed track with another program, goes to the piano.
    """
    lowered = (name or "").lower()
    for pattern, instrument in _TRACK_NAMES:
        if pattern.search(lowered):
            return instrument if instrument in instruments else "piano"  # "other": viola, double bass
    instrument = _PROGRAMS.get(int(program), "piano")
    return instrument if instrument in instruments else "piano"


class NotewiseTokenizer(MidiWordTokenizer):
    """A transformers tokenizer over notewise words, with MIDI in (`midi_to_tokens`) and out (`tokens_to_midi`).

    Example:
        >>> tok = NotewiseTokenizer()
        >>> tokens = tok.midi_to_tokens("piece.mid")       # ['p60', 'p64', 'wait12', 'endp60', ...]
        >>> tok.save_midi(tokens, "again.mid")
        >>> tok("p60 wait12 endp60")["input_ids"]
        >>> duo = NotewiseTokenizer(instruments=("piano", "violin"))   # adds v55 ... v103, endv55 ... endv103
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
        instruments: Sequence[str] = ("piano",),
        instrument_layout: Mapping | None = None,
        composers: Sequence[str] = (),
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
        self.instruments = _check_instruments(instruments)
        self.composers = _check_composers(composers)
        self._id_to_token = self._build_vocab()
        self._token_to_id = {token: i for i, token in enumerate(self._id_to_token)}
        self._id_array = np.array(self._id_to_token, dtype=object)
        self._build_id_tables()
        if vocab_file is not None:
            self._check_vocab_file(vocab_file)
        if self.is_instrumented:  # the piano vocabulary's saved config stays exactly as it was
            if instrument_layout is not None and json.loads(json.dumps(instrument_layout)) != self.instrument_layout:
                raise ValueError(
                    f"instrument_layout {dict(instrument_layout)} does not match the layout derived from the settings "
                    f"{self.instrument_layout}; the tokenizer config was edited or saved by an incompatible version"
                )
            kwargs.update(instruments=list(self.instruments), instrument_layout=self.instrument_layout)
        if self.composers:  # a vocabulary without composer words keeps its saved config exactly as it was
            kwargs.update(composers=list(self.composers))
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
        vocab = (
            list(SPECIAL_TOKENS)
            + [f"p{p}" for p in pitches]
            + [f"endp{p}" for p in pitches]
            + [f"wait{n}" for n in range(1, self.max_wait + 1)]
        )
        for name in self.instruments[1:]:  # after the piano vocabulary, so piano ids never move
            prefix, low, high = self.part_range(name)
            vocab += [f"{prefix}{p}" for p in range(low, high + 1)] + [f"end{prefix}{p}" for p in range(low, high + 1)]
        return vocab + [composer_word(name) for name in self.composers]  # last: no other id moves

    def composer_token_id(self, composer: str) -> int:
        """The id of the word that asks for `composer`'s style (put before `<bos>`). The full label, or any case of
        it, or a part of it that names one label only ("Chopin" for "Fryderyk Chopin"); a clear error for a name
        this vocabulary does not hold, or one that fits several, listing those it does."""
        index = self._token_to_id.get(composer_word(composer)) if str(composer).strip() else None
        if index is None and str(composer).strip():
            fits = _labels_named(self.composers, str(composer))
            if len(fits) > 1:
                raise ValueError(f"composer {composer!r} fits {', '.join(fits)}: give the full name")
            index = self._token_to_id.get(composer_word(fits[0])) if fits else None
        if index is None:
            known = ", ".join(self.composers) if self.composers else "none: it was trained without composer labels"
            raise ValueError(f"unknown composer {composer!r}; this model knows {known}")
        return index

    @property
    def is_instrumented(self) -> bool:
        """Whether the vocabulary holds parts beside the piano."""
        return len(self.instruments) > 1

    def part_range(self, instrument: str) -> tuple[str, int, int]:
        """(word prefix, lowest pitch, highest pitch) of one part of the vocabulary."""
        spec = INSTRUMENTS[instrument]
        if instrument == "piano":
            return spec["prefix"], self.min_pitch, self.max_pitch
        return spec["prefix"], spec["low"], spec["high"]

    @property
    def instrument_layout(self) -> dict[str, dict]:
        """Per part, in part order: word prefix, GM program, pitch range and the ids of its first note-on/note-off.

        ``{prefix}{low + i}`` has id ``note_on_offset + i`` and ``end{prefix}{low + i}`` has id
        ``note_off_offset + i`` (i < num_pitches); waits are shared (`wait_offset`, `max_wait`). Saved in
        tokenizer_config.json for an instrumented vocabulary.
        """
        layout, offset = {}, self.wait_offset + self.max_wait
        for name in self.instruments:
            prefix, low, high = self.part_range(name)
            count = high - low + 1
            if name == "piano":
                on, off = self.note_on_offset, self.note_off_offset
            else:
                on, off, offset = offset, offset + count, offset + 2 * count
            layout[name] = {
                "prefix": prefix,
                "program": INSTRUMENTS[name]["program"],
                "low_pitch": low,
                "high_pitch": high,
                "num_pitches": count,
                "note_on_offset": on,
                "note_off_offset": off,
            }
        return layout

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

    def _build_id_tables(self) -> None:
        """Per id: kind (0 skip, 1 note-on, 2 note-off, 3 wait), part index and value (pitch or steps)."""
        size = len(self._id_to_token)
        kind, part, value = (np.zeros(size, dtype=np.int64) for _ in range(3))
        kind[self.wait_offset : self.wait_offset + self.max_wait] = 3
        value[self.wait_offset : self.wait_offset + self.max_wait] = np.arange(1, self.max_wait + 1)
        self._part_on, self._part_off, self._part_low = [], [], []
        for index, spec in enumerate(self.instrument_layout.values()):
            count, low = spec["num_pitches"], spec["low_pitch"]
            for code, first in ((1, spec["note_on_offset"]), (2, spec["note_off_offset"])):
                kind[first : first + count], part[first : first + count] = code, index
                value[first : first + count] = np.arange(low, low + count)
            self._part_on.append(spec["note_on_offset"]), self._part_off.append(spec["note_off_offset"])
            self._part_low.append(low)
        self._id_kind, self._id_part, self._id_value = kind.tolist(), part.tolist(), value.tolist()

    def _check_vocab_file(self, vocab_file: str) -> None:
        with open(vocab_file, encoding="utf-8") as handle:
            saved = json.load(handle)
        if saved != self._token_to_id:
            raise ValueError(
                f"{vocab_file} does not match the vocabulary derived from the tokenizer settings "
                f"(steps_per_quarter={self.steps_per_quarter}, pitches {self.min_pitch}-{self.max_pitch}, "
                f"max_wait={self.max_wait}, instruments={list(self.instruments)}); the files were edited or saved "
                "by an incompatible version"
            )

    # ------------------------------------------------------------------------------------------ MIDI -> tokens

    def notes_to_ids(self, notes: NoteArrays | Mapping[str, NoteArrays]) -> np.ndarray:
        """Token ids (no special tokens) of `notes` (ticks at `notes.tpq`), vectorized in numpy.

        `notes` is one `NoteArrays` (all piano) or ``{instrument: NoteArrays}`` for an instrumented vocabulary.
        Each part is quantized on its own and folded into its range by octaves; inside a step, all note-offs, then
        all note-ons, parts in vocabulary order, pitches ascending.
        """
        parts = self._parts_of(notes)
        grids = []
        for index, (name, part) in enumerate(parts.items()):
            _, low, high = self.part_range(name)
            grid = quantize_notes(part, self.steps_per_quarter, low, high)
            grids.append((grid, np.full(len(grid), index, dtype=np.int64)))
        start = np.concatenate([g.start for g, _ in grids])
        end = np.concatenate([g.end for g, _ in grids])
        pitch = np.concatenate([g.pitch for g, _ in grids])
        part = np.concatenate([p for _, p in grids])
        n = len(start)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        times = np.concatenate([end, start])
        kinds = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])  # 0 = off before 1 = on
        pitches = np.concatenate([pitch, pitch])
        part_of = np.concatenate([part, part])
        order = np.lexsort((pitches, part_of, kinds, times))
        times, kinds, pitches, part_of = times[order], kinds[order], pitches[order], part_of[order]
        on, off, low = (np.array(table, dtype=np.int64) for table in (self._part_on, self._part_off, self._part_low))
        event_ids = np.where(kinds == 1, on[part_of], off[part_of]) + pitches - low[part_of]
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

    def notes_to_tokens(self, notes: NoteArrays | Mapping[str, NoteArrays]) -> list[str]:
        """Notewise words of `notes` (ticks at `notes.tpq`; a `NoteArrays` or ``{instrument: NoteArrays}``)."""
        return self._id_array[self.notes_to_ids(notes)].tolist()

    def _parts_of(self, notes: NoteArrays | Mapping[str, NoteArrays]) -> dict[str, NoteArrays]:
        """``{instrument: notes}`` in part order (empty parts included) from one `NoteArrays` or a mapping."""
        if isinstance(notes, NoteArrays):
            notes = {"piano": notes}
        unknown = set(notes) - set(self.instruments)
        if unknown:
            raise ValueError(f"parts {sorted(unknown)} are not in this tokenizer's instruments {list(self.instruments)}")
        tpq = next(iter(notes.values())).tpq if notes else self.steps_per_quarter
        return {name: notes.get(name, NoteArrays.merge([], tpq)) for name in self.instruments}

    def read_parts(
        self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS
    ) -> tuple[dict[str, NoteArrays], ScoreMeta]:
        """The notes of each part of `src` (tracks assigned by `instrument_of_track`) and its metadata.

        Drums are dropped; tracks of one part merge (with `merge_tracks=False`, each part keeps its first track).
        """
        score = load_score(src, safe=safe, limits=limits, sustain_pedal=self.sustain_pedal)
        return self._score_parts(score), score_meta(score)

    def _score_parts(self, score) -> dict[str, NoteArrays]:
        pitched = [track for track in score.tracks if not (self.drop_drums and track.is_drum)]
        arrays = score_notes(score, drop_drums=self.drop_drums, merge_tracks=False)
        groups: dict[str, list[NoteArrays]] = {name: [] for name in self.instruments}
        for track, notes in zip(pitched, arrays):
            groups[instrument_of_track(track.name, track.program, self.instruments)].append(notes)
        if not self.merge_tracks:
            groups = {name: found[:1] for name, found in groups.items()}
        return {name: NoteArrays.merge(found, score.tpq) for name, found in groups.items()}

    def encode_midi(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> TokenEncoding:
        if not self.is_instrumented:
            return super().encode_midi(src, safe=safe, limits=limits)
        parts, meta = self.read_parts(src, safe=safe, limits=limits)
        return TokenEncoding(self.notes_to_tokens(parts), meta, self.scheme)

    encode_midi.__doc__ = MidiWordTokenizer.encode_midi.__doc__ + (
        "\n        With an instrumented vocabulary each track goes to its part (`instrument_of_track`).\n"
    )

    def midi_to_ids(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> list[int]:
        """Token ids of `src` without special tokens (faster than `midi_to_tokens` followed by a lookup)."""
        if not self.is_instrumented:
            return super().midi_to_ids(src, safe=safe, limits=limits)
        parts, _ = self.read_parts(src, safe=safe, limits=limits)
        return self.notes_to_ids(parts).tolist()

    def midi_to_track_tokens(
        self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS
    ) -> list[list[str]]:
        """Tokens of each pitched track of `src` on its own, in file order, each in the words of its part."""
        if not self.is_instrumented:
            return super().midi_to_track_tokens(src, safe=safe, limits=limits)
        score = load_score(src, safe=safe, limits=limits, sustain_pedal=self.sustain_pedal)
        pitched = [track for track in score.tracks if not (self.drop_drums and track.is_drum)]
        arrays = score_notes(score, drop_drums=self.drop_drums, merge_tracks=False)
        return [
            self.notes_to_tokens({instrument_of_track(track.name, track.program, self.instruments): notes})
            for track, notes in zip(pitched, arrays)
        ]

    # ------------------------------------------------------------------------------------------ tokens -> MIDI

    def tokens_to_parts(self, tokens: Tokens) -> dict[str, NoteArrays]:
        """Notes of each part on the step grid (`tpq` = steps per quarter) of any token sequence; never fails.

        Lenient by design, so that any model output decodes: special and unknown tokens are skipped, a note-off
        for a silent pitch is ignored, a note-on for a sounding pitch re-strikes it (the old note ends there; a
        second note-on in the same step is ignored), a note-off in the step of its note-on gives a one-step note,
        and notes still sounding at the end stop at the final time (at least one step long). Parts are independent:
        the piano and the violin may sound the same pitch.
        """
        if isinstance(tokens, str):
            tokens = tokens.split()
        kinds, parts, values, lookup = self._id_kind, self._id_part, self._id_value, self._token_to_id
        size = len(kinds)
        starts, ends, pitches, owners = [], [], [], []
        sounding: dict[tuple[int, int], int] = {}
        now = 0
        for token in tokens:
            index = lookup.get(token, 0) if isinstance(token, str) else int(token)
            if not 0 <= index < size:
                continue
            kind = kinds[index]
            if kind == 3:
                now += values[index]
            elif kind == 1:
                key = (parts[index], values[index])
                began = sounding.get(key)
                if began is not None:
                    if began == now:
                        continue
                    starts.append(began), ends.append(now), pitches.append(key[1]), owners.append(key[0])
                sounding[key] = now
            elif kind == 2:
                key = (parts[index], values[index])
                began = sounding.pop(key, None)
                if began is not None:
                    starts.append(began), ends.append(max(now, began + 1)), pitches.append(key[1]), owners.append(key[0])
        for (owner, value), began in sounding.items():
            starts.append(began), ends.append(max(now, began + 1)), pitches.append(value), owners.append(owner)
        start, end, pitch, owner = (np.array(x, dtype=np.int64) for x in (starts, ends, pitches, owners))
        return {
            name: NoteArrays(start[owner == i], end[owner == i], pitch[owner == i], self.steps_per_quarter)
            for i, name in enumerate(self.instruments)
        }

    def tokens_to_notes(self, tokens: Tokens) -> NoteArrays:
        """Notes on the step grid (`tpq` = steps per quarter) of any token sequence, all parts merged; never fails.

        See `tokens_to_parts` (the notes of each part apart) for how any sequence decodes.
        """
        parts = self.tokens_to_parts(tokens)
        if not self.is_instrumented:
            return parts["piano"]
        return NoteArrays.merge(list(parts.values()), self.steps_per_quarter)

    def tokens_to_midi(
        self,
        tokens: Tokens,
        *,
        meta: ScoreMeta | None = None,
        qpm: float | None = None,
        time_signature: tuple[int, int] | None = None,
        program: int = 0,
    ) -> "symusic.Score":  # noqa: F821 - symusic is imported by midi_io
        """A `symusic.Score` from tokens (or ids, or space-separated text); never fails.

        One track per instrument of the vocabulary, in part order, named and programmed as in `INSTRUMENTS` (piano
        0, violin 40, cello 42; `program` sets the piano's), empty parts included. Tempo and time signature come
        from `meta` (as returned by `encode_midi`) or the keywords; default 120 bpm 4/4.
        """
        if not self.is_instrumented:
            return super().tokens_to_midi(tokens, meta=meta, qpm=qpm, time_signature=time_signature, program=program)
        meta = (meta or ScoreMeta()).override(qpm, time_signature)
        scale = self.output_tpq // self.steps_per_quarter
        tracks = []
        for name, grid in self.tokens_to_parts(tokens).items():
            ticks = NoteArrays(grid.start * scale, grid.end * scale, grid.pitch, self.output_tpq)
            spec = INSTRUMENTS[name]
            tracks.append((ticks, spec["track_name"], program if name == "piano" else spec["program"]))
        return build_score(tracks, meta)

    def tail(self, tokens: Tokens, quarters: float) -> list[str]:
        """The last `quarters` quarter notes of a token sequence; notes sounding across the cut start at the cut."""
        if not self.is_instrumented:
            return super().tail(tokens, quarters)
        parts = self.tokens_to_parts(tokens)
        total = max((int(notes.end.max()) for notes in parts.values() if len(notes)), default=0)
        cut = max(0, total - round(quarters * self.steps_per_quarter))
        return self.notes_to_tokens({name: clip_notes(notes, cut) for name, notes in parts.items()})

    def excerpt(self, tokens: Tokens, start: float, stop: float | None = None) -> list[str]:
        """The quarter notes from `start` to `stop` (None: the end) of a token sequence, every part, moved to begin at
        0; notes sounding across a cut are cut there. Ends with its last note (a rest before `stop` is not kept)."""
        if not self.is_instrumented:
            return super().excerpt(tokens, start, stop)
        spq = self.steps_per_quarter
        cut_start, cut_stop = round(start * spq), None if stop is None else round(stop * spq)
        parts = self.tokens_to_parts(tokens)
        return self.notes_to_tokens({name: clip_notes(notes, cut_start, cut_stop) for name, notes in parts.items()})

    def _parse_token(self, token: str | int) -> tuple[str | None, int]:
        """(kind, value) of a token or id: ("on"/"off", pitch), ("wait", steps), or (None, 0) to skip it."""
        index = self._token_to_id.get(token, -1) if isinstance(token, str) else int(token)
        if not 0 <= index < len(self._id_kind) or self._id_kind[index] == 0:
            return None, 0
        return ("on", "off", "wait")[self._id_kind[index] - 1], self._id_value[index]


def composer_word(name: str) -> str:
    """The vocabulary word of a composer label: ``<composer:Ignacy_Jan_Paderewski>`` (one word: no spaces)."""
    return "<composer:" + "_".join(str(name).split()) + ">"


def _check_composers(composers: Sequence[str] | str) -> tuple[str, ...]:
    """Composer labels of a vocabulary, each once and not empty (names are kept as given)."""
    names = (composers,) if isinstance(composers, str) else tuple(str(name).strip() for name in composers)
    words = [composer_word(name) for name in names]
    if any(not name for name in names) or len(set(words)) != len(words):
        raise ValueError(f"composers must be distinct, non-empty names; got {list(composers)}")
    return names


def _check_instruments(instruments: Sequence[str] | str) -> tuple[str, ...]:
    """The instruments of a vocabulary in part order, checked: known names, no repeats, the piano included."""
    names = (instruments,) if isinstance(instruments, str) else tuple(instruments)
    unknown = [name for name in names if name not in INSTRUMENTS]
    if unknown or len(set(names)) != len(names) or "piano" not in names:
        raise ValueError(
            f"instruments must name each part once, the piano among them, from {list(INSTRUMENTS)}; got {list(names)}"
        )
    return tuple(name for name in INSTRUMENTS if name in names)


def _labels_named(labels: tuple[str, ...], name: str) -> list[str]:
    """The labels that `name` names, ignoring case and accents: the whole label, else whole words of it in order
    ("chopin", "Jozef Stefani"); "other" only by its own name."""
    def plain(text: str) -> list[str]:
        folded = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L")).casefold()
        return "".join(ch for ch in folded if not unicodedata.combining(ch)).replace("_", " ").split()

    asked = plain(name)
    whole = [label for label in labels if plain(label) == asked]
    if whole or not asked:
        return whole
    fits = []
    for label in labels:
        words = plain(label)
        if label != "other" and any(words[i : i + len(asked)] == asked for i in range(len(words))):
            fits.append(label)
    return fits


__all__ = ["INSTRUMENTS", "NotewiseTokenizer", "instrument_of_track"]
