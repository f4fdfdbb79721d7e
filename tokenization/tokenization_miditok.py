"""Toccata's notewise vocabulary as a miditok tokenizer, so miditok's BPE training, datasets and Hub saving work on it.

`NotewiseMidiTok` is a `miditok.MusicTokenizer` whose tokens are the notewise words one for one. miditok needs
token strings of the form ``Type_Value`` (it splits them on the underscore), so the words cannot be used as they
are; the mapping is fixed and lossless (`notewise_word` / `miditok_token`):

    p60 <-> NoteOn_60      endp60 <-> NoteOff_60      wait12 <-> Wait_12
    <pad> <bos> <eos> <unk> <-> PAD_None BOS_None EOS_None UNK_None

The base vocabulary is built in the order of `NotewiseTokenizer`'s, so before BPE the ids are the same in both.
Encoding is Toccata's, not miditok's: `preprocess_score` merges the notes of all non-drum tracks into one piano track
on the step grid exactly as `NotewiseTokenizer` does (onsets and offsets rounded to the nearest step, zero-length
notes one step long, pitches folded into range by octaves, re-strikes cut), so `encode` gives the same words as
`NotewiseTokenizer().midi_to_tokens`. Where miditok's model differs, the adapter does this instead:

- Tracks: miditok makes one sequence per track unless ``use_programs`` adds Program tokens; notewise is one stream
  without programs, so `one_token_stream` is set True while ``config.use_programs`` stays False (no Program tokens).
- Time: miditok quantizes with ``Score.resample`` and its beat resolutions; here the grid is Toccata's (12 steps per
  quarter by default). Time signatures and markers are resampled onto the grid only to place bars, which miditok's
  BPE with ``encode_ids_split="bar"`` and `split_files_for_training` use; they are not tokens.
- Decoding returns `NotewiseTokenizer.tokens_to_midi` of the words: a 480-tick-per-quarter score (not
  ``tokenizer.time_division``), 120 bpm 4/4, one piano track, velocity 80; lenient as Toccata's decoder is.
- Tempo, velocity, pedal and time signature are not tokens, as in notewise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import symusic
from miditok import MusicTokenizer, TokenizerConfig, TokSequence
from miditok.classes import Event
from symusic.core import ScoreTick

from .midi_io import (
    DEFAULT_LIMITS,
    MidiLimits,
    MidiSource,
    NoteArrays,
    build_score,
    check_score,
    load_score,
    save_score,
    score_meta,
    score_notes,
    source_name,
)
from .tokenization_base import check_range, quantize_notes
from .tokenization_notewise import NotewiseTokenizer

SETTINGS = {"steps_per_quarter": 12, "min_pitch": 21, "max_pitch": 108, "max_wait": 48, "sustain_pedal": False}
"""The notewise settings a `NotewiseMidiTok` keeps in ``config.additional_params``, with their defaults."""

SPECIAL_TOKENS = {"PAD_None": "<pad>", "BOS_None": "<bos>", "EOS_None": "<eos>", "UNK_None": "<unk>"}
_SPECIAL_WORDS = {word: token for token, word in SPECIAL_TOKENS.items()}
_TYPE_TO_PREFIX = {"NoteOn": "p", "NoteOff": "endp", "Wait": "wait"}
_UNSUPPORTED = (
    "use_chords", "use_rests", "use_tempos", "use_key_signatures", "use_sustain_pedals", "use_pitch_bends",
    "use_control_changes", "use_programs", "use_pitch_intervals",
)  # fmt: skip


def notewise_word(token: str) -> str:
    """The notewise word of a `NotewiseMidiTok` token string: ``NoteOn_60`` -> ``p60``, ``PAD_None`` -> ``<pad>``."""
    if token in SPECIAL_TOKENS:
        return SPECIAL_TOKENS[token]
    kind, _, value = token.partition("_")
    if kind not in _TYPE_TO_PREFIX or not value.isdigit():
        raise ValueError(
            f"{token!r} is not a NotewiseMidiTok token: expected NoteOn_<pitch>, NoteOff_<pitch>, Wait_<steps> "
            f"or one of {', '.join(SPECIAL_TOKENS)}"
        )
    return _TYPE_TO_PREFIX[kind] + value


def miditok_token(word: str) -> str:
    """The `NotewiseMidiTok` token string of a notewise word: ``p60`` -> ``NoteOn_60``, ``<bos>`` -> ``BOS_None``."""
    if word in _SPECIAL_WORDS:
        return _SPECIAL_WORDS[word]
    for kind, prefix in (("NoteOff", "endp"), ("Wait", "wait"), ("NoteOn", "p")):  # "endp" before "p"
        value = word.removeprefix(prefix)
        if value != word and value.isdigit():
            return f"{kind}_{value}"
    raise ValueError(f"{word!r} is not a notewise word: expected p<pitch>, endp<pitch>, wait<steps> or a special token")


def notewise_config(
    steps_per_quarter: int = 12,
    min_pitch: int = 21,
    max_pitch: int = 108,
    max_wait: int = 48,
    sustain_pedal: bool = False,
    encode_ids_split: str = "no",
) -> TokenizerConfig:
    """The `TokenizerConfig` of a `NotewiseMidiTok` with these notewise settings (as `NotewiseTokenizer`'s).

    `encode_ids_split` is miditok's: BPE merges may cross bar lines (``"no"``, the default here: notewise has no bar
    tokens, and miditok's per-bar split costs a marker token per bar that short bars rarely merge away) or stay
    within a bar (``"bar"``, miditok's default) or a beat (``"beat"``).
    """
    check_range("steps_per_quarter", steps_per_quarter, 1, 96)
    check_range("min_pitch", min_pitch, 0, 116)
    check_range("max_pitch", max_pitch, min_pitch + 11, 127)
    check_range("max_wait", max_wait, 1, 4096)
    if encode_ids_split not in ("bar", "beat", "no"):
        raise ValueError(f"encode_ids_split must be 'bar', 'beat' or 'no', got {encode_ids_split!r}")
    return TokenizerConfig(
        pitch_range=(min_pitch, max_pitch),  # both included, as miditok builds its pitch tokens
        beat_res={(0, -(-max_wait // steps_per_quarter)): steps_per_quarter},  # time_division = steps_per_quarter
        special_tokens=["PAD", "BOS", "EOS", "UNK"],
        encode_ids_split=encode_ids_split,
        use_velocities=False,
        use_note_duration_programs=[],  # NoteOff tokens, no Duration tokens
        use_time_signatures=False,
        use_programs=False,
        steps_per_quarter=steps_per_quarter,
        min_pitch=min_pitch,
        max_pitch=max_pitch,
        max_wait=max_wait,
        sustain_pedal=bool(sustain_pedal),
    )


class NotewiseMidiTok(MusicTokenizer):
    """A miditok tokenizer over Toccata's notewise words (mapped 1:1, see the module docstring), one piano stream.

    Example:
        >>> tok = NotewiseMidiTok()                        # or NotewiseMidiTok(notewise_config(steps_per_quarter=24))
        >>> seq = tok.encode("piece.mid")                  # a miditok TokSequence: NoteOn_60 Wait_12 NoteOff_60 ...
        >>> tok.words(seq)                                 # ['p60', 'wait12', 'endp60', ...], NotewiseTokenizer's
        >>> tok.train(vocab_size=1000, model="BPE", files_paths=paths)
        >>> tok.save_pretrained("folder"); NotewiseMidiTok.from_pretrained("folder")
    """

    def __init__(self, tokenizer_config: TokenizerConfig | None = None, params: str | Path | None = None) -> None:
        if tokenizer_config is None and params is None:
            tokenizer_config = notewise_config()
        super().__init__(tokenizer_config, params)
        self.one_token_stream = True  # one merged piano stream, without miditok's Program tokens

    # ------------------------------------------------------------------------------------------ configuration

    def _tweak_config_before_creating_voc(self) -> None:
        """Check the config holds nothing notewise cannot tokenize, then derive miditok's fields from the settings."""
        given = self.config
        enabled = [name for name in _UNSUPPORTED if getattr(given, name, False)]
        enabled += [name for name, value in vars(given).items() if name.startswith("ac_") and value is True]
        if enabled:
            raise ValueError(
                f"NotewiseMidiTok has no tokens for {', '.join(enabled)}: leave them off (use notewise_config()), "
                "or use miditok's REMI, TSD or MIDILike for them"
            )
        unknown = set(given.additional_params) - set(SETTINGS)
        if unknown:
            raise ValueError(
                f"unknown NotewiseMidiTok setting(s) {', '.join(sorted(unknown))} in the config; "
                f"the settings are {', '.join(SETTINGS)}"
            )
        settings = {name: given.additional_params.get(name, default) for name, default in SETTINGS.items()}
        self.config = notewise_config(**settings, encode_ids_split=given.encode_ids_split)
        self.steps_per_quarter: int = settings["steps_per_quarter"]
        self.min_pitch: int = settings["min_pitch"]
        self.max_pitch: int = settings["max_pitch"]
        self.max_wait: int = settings["max_wait"]
        self.sustain_pedal: bool = settings["sustain_pedal"]
        self._notewise = NotewiseTokenizer(**settings)
        self._note_on_off = True

    def _create_base_vocabulary(self) -> list[str]:
        """NoteOn, NoteOff and Wait tokens in `NotewiseTokenizer`'s order (miditok puts the 4 specials first)."""
        pitches = range(self.min_pitch, self.max_pitch + 1)
        return (
            [f"NoteOn_{p}" for p in pitches]
            + [f"NoteOff_{p}" for p in pitches]
            + [f"Wait_{n}" for n in range(1, self.max_wait + 1)]
        )

    def _create_token_types_graph(self) -> dict[str, set[str]]:
        """Within a step: note-offs, then note-ons, then a wait; waits chain; a sequence may end on note-offs."""
        return {
            "NoteOff": {"NoteOff", "NoteOn", "Wait"},
            "NoteOn": {"NoteOn", "Wait"},
            "Wait": {"Wait", "NoteOn", "NoteOff"},
        }

    # ------------------------------------------------------------------------------------------ MIDI -> tokens

    def encode(
        self,
        score: MidiSource,
        encode_ids: bool = True,
        no_preprocess_score: bool = False,
        attribute_controls_indexes: Any = None,
        *,
        safe: bool = False,
        limits: MidiLimits = DEFAULT_LIMITS,
    ) -> TokSequence:
        """Tokens of a path, MIDI bytes, `symusic.Score` or music21 stream, read and checked by Toccata's `load_score`.

        Bad files raise `MidiError` naming the file; `safe=True` parses in a child process. A score not on the step
        grid is preprocessed even when `no_preprocess_score` is True (it cannot have been preprocessed).
        """
        if not isinstance(score, ScoreTick) or self.sustain_pedal:  # the pedal as NotewiseTokenizer applies it
            score = load_score(score, safe=safe, limits=limits, sustain_pedal=self.sustain_pedal)
        if no_preprocess_score and score.ticks_per_quarter != self.steps_per_quarter:
            no_preprocess_score = False
        return super().encode(score, encode_ids, no_preprocess_score, attribute_controls_indexes)

    def preprocess_score(self, score: symusic.Score) -> symusic.Score:
        """A copy of `score` with one piano track on the step grid, as `NotewiseTokenizer` quantizes it.

        Drum tracks go, pitched tracks merge, pitches fold into range; time signatures, tempos and markers (which
        miditok's chunking reads) move to the grid. Raises `MidiError` for scores Toccata refuses (absurd length).
        """
        if not isinstance(score, ScoreTick):
            score = score.to("tick")
        check_score(score, source_name(score))
        grid = self._grid_notes(score)
        shell = score.copy()
        shell.tracks = []
        shell = shell.resample(self.steps_per_quarter, min_dur=1)
        shell.tracks.append(build_score([(grid, "Piano", 0)], score_meta(score)).tracks[0])
        return shell

    def _grid_notes(self, score: symusic.Score) -> NoteArrays:
        """Notes of all non-drum tracks of `score`, merged, on the step grid (idempotent on a preprocessed score)."""
        (notes,) = score_notes(score, drop_drums=True, merge_tracks=True)
        return quantize_notes(notes, self.steps_per_quarter, self.min_pitch, self.max_pitch)

    def _score_to_tokens(self, score: symusic.Score, attribute_controls_indexes: Any = None) -> TokSequence:
        """One TokSequence for the whole score: note-off and note-on events on the grid, then the waits."""
        grid = self._grid_notes(score)
        events = [Event("NoteOff", int(p), int(t)) for t, p in zip(grid.end, grid.pitch)]
        events += [Event("NoteOn", int(p), int(t)) for t, p in zip(grid.start, grid.pitch)]
        events.sort(key=lambda e: (e.time, e.type_ == "NoteOn", e.value))  # offs before ons, each by pitch
        sequence = TokSequence(events=self._add_time_events(events, self.steps_per_quarter))
        self.complete_sequence(sequence)
        return sequence

    def _add_time_events(self, events: list[Event], time_division: int) -> list[Event]:
        """`events` (times in steps) with Wait events between steps: waits of `max_wait` steps, then the rest.

        `time_division` is unused: events reach here already in steps of the grid.
        """
        out: list[Event] = []
        now = 0
        for event in events:
            while event.time > now:
                step = min(event.time - now, self.max_wait)
                out.append(Event("Wait", step, now))
                now += step
            out.append(event)
        return out

    # ------------------------------------------------------------------------------------------ tokens -> MIDI

    def _tokens_to_score(
        self, tokens: TokSequence | list[TokSequence], programs: list[tuple[int, bool]] | None = None
    ) -> symusic.Score:
        """`NotewiseTokenizer.tokens_to_midi` of the words: lenient as it is (specials skipped, slips repaired)."""
        sequences = tokens if isinstance(tokens, list) else [tokens]
        words = [self._word_or_none(t) for seq in sequences for t in seq.tokens]
        program = programs[0][0] if programs else 0
        return self._notewise.tokens_to_midi([w for w in words if w is not None], program=max(program, 0))

    def decode(
        self,
        tokens: TokSequence | list[TokSequence] | Sequence[int] | Any,
        programs: list[tuple[int, bool]] | None = None,
        output_path: str | Path | None = None,
    ) -> symusic.Score:
        """miditok's `decode`; `output_path` writes a MIDI file there (miditok 3.1.0 makes a folder of that name)."""
        score = super().decode(tokens, programs)
        if output_path is not None:
            save_score(score, output_path)
        return score

    @staticmethod
    def _word_or_none(token: str) -> str | None:
        try:
            return notewise_word(token)
        except ValueError:
            return None

    def words(self, tokens: TokSequence | Sequence[str] | Sequence[int]) -> list[str]:
        """Notewise words of a TokSequence, miditok token strings or ids (BPE ids are decoded first)."""
        if not isinstance(tokens, TokSequence):
            tokens = list(tokens)
            if not tokens:
                return []
            tokens = self._convert_sequence_to_tokseq(tokens)
        if not tokens.tokens:
            tokens = dataclasses.replace(tokens)
            self._preprocess_tokseq_before_decoding(tokens)
        return [notewise_word(token) for token in tokens.tokens]

    def _tokens_errors(self, tokens: list[str]) -> int:
        """Errors in a token sequence (for miditok's `tokens_errors`): one per token that breaks the grammar.

        Wrong: a type succession the graph forbids, a note-on of a sounding key, a note-off of a silent key or in
        its note's first step, and a step's note-offs or note-ons out of ascending pitch order.
        """
        errors, previous = 0, None
        sounding: dict[int, int] = {}  # pitch -> step it started
        now, last = 0, (-1, -1)  # last = (0 off / 1 on, pitch) of the previous note event in this step
        for token in tokens:
            kind, _, value = token.partition("_")
            if previous is not None and kind not in self.tokens_types_graph.get(previous, ()):
                errors += 1
            elif kind == "Wait":
                now, last = now + int(value), (-1, -1)
            elif kind in ("NoteOn", "NoteOff"):
                key = (int(kind == "NoteOn"), int(value))
                pitch = key[1]
                if kind == "NoteOn":
                    bad = pitch in sounding
                    sounding.setdefault(pitch, now)
                else:
                    bad = sounding.get(pitch, now) == now
                    sounding.pop(pitch, None)
                errors += bad or key <= last
                last = key
            previous = kind
        return errors


__all__ = [
    "NotewiseMidiTok",
    "miditok_token",
    "notewise_config",
    "notewise_word",
]
