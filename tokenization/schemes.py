"""Token schemes: one interface over every tokenization the LSTM can be trained on, for `toccata train --tokenizer`
and the tokenization study (docs/tokenizations.md).

A scheme turns the notes of a piece, on a grid of `STEPS_PER_QUARTER` steps per quarter note, into token ids and
back. All schemes see the same notes: a MIDI file is read once (pitched tracks merged, drums dropped), put on the
grid and folded into the piano's range by `grid_notes`, and only then encoded, so their numbers compare. The
schemes:

    notewise        Toccata's words (p60, endp60, wait12), `NotewiseTokenizer`: 228 ids, fixed
    notewise-bpe    notewise with learned BPE merges (`NotewiseMidiTok` + miditok's `train`), e.g. 1,024 ids
    chordwise       one word per step (which keys are struck or held), `ChordwiseTokenizer`, vocabulary from data
    remi            miditok REMI: Bar, Position, Pitch, Duration
    midilike        miditok MIDILike: NoteOn, NoteOff, TimeShift
    tsd             miditok TSD: TimeShift, Pitch, Duration

miditok's schemes are configured to carry what notewise carries and no more: no velocities, tempos, time
signatures or programs; 12 steps per quarter (its beat resolution) for positions, time shifts and durations up
to 12 beats (longer notes are cut by miditok there).
"""

from __future__ import annotations

import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .midi_io import MidiSource, NoteArrays, ScoreMeta, build_score, load_score, score_notes
from .tokenization_base import quantize_notes

STEPS_PER_QUARTER = 12
MIN_PITCH, MAX_PITCH = 21, 108
SCHEMES = ("notewise", "notewise-bpe", "chordwise", "remi", "midilike", "tsd")
SCHEME_FILE = "token_scheme.json"
BPE_CHUNK = 256  # base tokens per text when learning BPE merges


def read_notes(src: MidiSource) -> NoteArrays:
    """The notes of all pitched tracks of a MIDI source, merged, in its own ticks (drums dropped)."""
    tracks = score_notes(load_score(src), drop_drums=True, merge_tracks=True)
    return tracks[0] if tracks else NoteArrays.merge([], 480)


def grid_notes(src: MidiSource | NoteArrays, transpose: int = 0) -> NoteArrays:
    """The notes every scheme encodes: pitched tracks merged, on the 12-step grid, transposed, folded into range."""
    notes = src if isinstance(src, NoteArrays) else read_notes(src)
    if transpose:
        notes = NoteArrays(notes.start, notes.end, notes.pitch + int(transpose), notes.tpq)
    return quantize_notes(notes, STEPS_PER_QUARTER, MIN_PITCH, MAX_PITCH)


class TokenScheme(ABC):
    """Notes on the grid <-> token ids, with the special ids a language model needs and a way to save itself."""

    name: str

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def special_ids(self) -> dict[str, int]:
        """``{"pad": id, "bos": id, "eos": id}``."""

    @abstractmethod
    def encode(self, notes: NoteArrays) -> np.ndarray:
        """Token ids (no special tokens) of grid notes (`grid_notes`)."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> NoteArrays:
        """Grid notes of any id sequence (special ids skipped); lenient: never fails."""

    @abstractmethod
    def errors(self, ids: Sequence[int]) -> int:
        """How many tokens of `ids` `decode` has to repair or ignore (notewise: `notewise_repairs`; miditok's schemes:
        its `tokens_errors` count; chordwise: unknown words and held keys that were not sounding)."""

    @abstractmethod
    def words(self, ids: Sequence[int]) -> list[str]:
        """The token strings of `ids`, for reading."""

    @abstractmethod
    def _save_tokenizer(self, folder: Path) -> None: ...

    def ids(self, words: str | Sequence[str]) -> np.ndarray:
        """The ids of token strings as `words` writes them (space-separated text or a list); an unknown word is an
        error naming it. The inverse of `words`, for reading a dataset's `tokens` column or `toccata tokenize` text."""
        words = words.split() if isinstance(words, str) else list(words)
        if self._word_ids is None:
            self._word_ids = {word: index for index, word in enumerate(self.words(list(range(self.vocab_size))))}
        missing = sorted({word for word in words if word not in self._word_ids})
        if missing:
            raise ValueError(
                f"{len(missing)} word(s) are not in the {self.name} scheme's vocabulary, e.g. {missing[:5]}: "
                "were the tokens made with another scheme?"
            )
        return np.asarray([self._word_ids[word] for word in words], dtype=np.int64)

    _word_ids: dict[str, int] | None = None

    def train(self, pieces: Iterable[NoteArrays]) -> None:
        """Learn what the scheme learns from data (BPE merges, the chordwise vocabulary); others need nothing."""

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the tokenizer files and `token_scheme.json` (read back by `load_scheme`)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_tokenizer(folder)
        info = {"scheme": self.name, "vocab_size": self.vocab_size, **self.special_ids, **self._settings()}
        (folder / SCHEME_FILE).write_text(json.dumps(info, indent=2) + "\n")
        return folder

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """`save`, under the name transformers' `Trainer` and Toccata's `save_checkpoint` call."""
        return self.save(folder)

    def _settings(self) -> dict:
        return {}

    def pitch_ids(self) -> tuple[int, int, int] | None:
        """(first note-on id, first note-off id, number of pitches) when pitches are contiguous ids that a
        transposition can shift in place (the training data's on-the-fly transposition); None when they are not."""
        return None

    def encode_midi(self, src: MidiSource, transpose: int = 0) -> np.ndarray:
        """Token ids of a MIDI source (path, bytes, `symusic.Score`), transposed by `transpose` semitones."""
        return self.encode(grid_notes(src, transpose))


# ------------------------------------------------------------------------------------------------------ notewise


class _WordTokenizerScheme(TokenScheme):
    """A scheme over one of Toccata's transformers tokenizers (`self.tokenizer`): ids and specials are its own."""

    tokenizer: object

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def special_ids(self) -> dict[str, int]:
        tok = self.tokenizer
        return {"pad": tok.pad_token_id, "bos": tok.bos_token_id, "eos": tok.eos_token_id}

    def decode(self, ids: Sequence[int]) -> NoteArrays:
        return self.tokenizer.tokens_to_notes([int(i) for i in ids])

    def words(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens([int(i) for i in ids])

    def _save_tokenizer(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)


class NotewiseScheme(_WordTokenizerScheme):
    """Toccata's notewise words, ids as the default checkpoint's (`NotewiseTokenizer`)."""

    name = "notewise"

    def __init__(self, tokenizer=None) -> None:
        from .tokenization_notewise import NotewiseTokenizer

        self.tokenizer = tokenizer or NotewiseTokenizer()

    def encode(self, notes: NoteArrays) -> np.ndarray:
        return np.asarray(self.tokenizer.notes_to_ids(notes), dtype=np.int64)

    def errors(self, ids: Sequence[int]) -> int:
        from .tokenization_miditok import miditok_token

        special = set(self.special_ids.values()) | {self.tokenizer.unk_token_id}
        return notewise_repairs([miditok_token(w) for i, w in zip(ids, self.words(ids)) if int(i) not in special])

    def pitch_ids(self) -> tuple[int, int, int]:
        tok = self.tokenizer
        return tok.note_on_offset, tok.note_off_offset, tok.num_pitches


def notewise_repairs(tokens: Sequence[str]) -> int:
    """Tokens of a note-on/note-off stream (notewise in miditok spelling: NoteOn_60, NoteOff_60, Wait_12; or MIDILike
    with TimeShift) that decoding must repair or drop: a note-on of a sounding key, a note-off of a silent key, a
    note-off in its note's first step. Notes still sounding when a sample stops are not errors.

    The order of the note events within a step does not count: it changes nothing in the decoded music (the stricter
    `NotewiseMidiTok.tokens_errors` counts it too)."""
    errors, now, sounding = 0, 0, {}  # pitch -> time it began (counted in time tokens: only "same step?" matters)
    for token in tokens:
        kind, _, value = token.partition("_")
        if kind in ("Wait", "TimeShift"):
            now += 1
        elif kind == "NoteOn":
            errors += value in sounding
            sounding.setdefault(value, now)
        elif kind == "NoteOff":
            errors += sounding.get(value, now) == now
            sounding.pop(value, None)
    return errors


# ------------------------------------------------------------------------------------------------------ chordwise


class ChordwiseScheme(_WordTokenizerScheme):
    """One word per step (`ChordwiseTokenizer`) at 12 steps per quarter; its vocabulary is learnt by `train`."""

    name = "chordwise"

    def __init__(self, tokenizer=None, max_vocab: int = 4096, min_frequency: int = 2) -> None:
        from .tokenization_chordwise import ChordwiseTokenizer

        self.tokenizer = tokenizer or ChordwiseTokenizer(steps_per_quarter=STEPS_PER_QUARTER)
        self.max_vocab, self.min_frequency = max_vocab, min_frequency

    def train(self, pieces: Iterable[NoteArrays]) -> None:
        from .tokenization_chordwise import ChordwiseTokenizer

        words = [self.tokenizer.notes_to_tokens(notes) for notes in pieces]
        self._word_ids = None
        self.tokenizer = ChordwiseTokenizer.build_vocab(
            words, min_frequency=self.min_frequency, max_vocab=self.max_vocab, steps_per_quarter=STEPS_PER_QUARTER
        )

    def encode(self, notes: NoteArrays) -> np.ndarray:
        if not self.tokenizer.is_trained:
            raise ValueError("the chordwise scheme has no vocabulary yet: call train(pieces) or load a saved one")
        return np.asarray(self.tokenizer.notes_to_ids(notes), dtype=np.int64)

    def errors(self, ids: Sequence[int]) -> int:
        """Unknown words, and held keys that were not sounding in the step before (decoding starts them)."""
        skip = set(self.special_ids.values())
        errors, sounding = 0, set()
        for token_id, word in zip(ids, self.words(ids)):
            if int(token_id) in skip:
                continue
            if word == "rest":
                sounding = set()
                continue
            struck, held = _chord_sets(word)
            if struck is None:
                errors += 1  # <unk> or not a word: decoding holds the keys that sound
                continue
            errors += len(held - sounding)
            sounding = struck | held
        return errors

    def _settings(self) -> dict:
        return {"max_vocab": self.max_vocab, "min_frequency": self.min_frequency}


def _chord_sets(word: str) -> tuple[set[int] | None, set[int]]:
    """(struck, held) pitch sets of a chordwise word such as ``c48h60.64``; (None, set()) for a non-word."""
    from .tokenization_chordwise import _WORD_RE

    match = _WORD_RE.match(word) if word else None
    if match is None or not match.group(0):
        return None, set()
    struck = {int(p) for p in match.group(1).split(".")} if match.group(1) else set()
    held = {int(p) for p in match.group(2).split(".")} if match.group(2) else set()
    return struck, held


# ------------------------------------------------------------------------------------------------------ miditok


def _miditok_config(scheme: str):
    from miditok import TokenizerConfig

    return TokenizerConfig(
        pitch_range=(MIN_PITCH, MAX_PITCH + 1),  # miditok's range excludes the top
        beat_res={(0, 12): STEPS_PER_QUARTER},
        num_velocities=1,
        use_velocities=False,
        use_programs=False,
        use_time_signatures=False,
        use_tempos=False,
        use_rests=False,
        use_chords=False,
        special_tokens=["PAD", "BOS", "EOS"],
        encode_ids_split="no",
    )


class MiditokScheme(TokenScheme):
    """A miditok tokenizer (REMI, MIDILike, TSD, or the notewise adapter with BPE) over the one merged piano track."""

    def __init__(self, name: str, tokenizer=None, bpe_vocab_size: int | None = None) -> None:
        from miditok import REMI, TSD, MIDILike

        from .tokenization_miditok import NotewiseMidiTok

        self.name, self.bpe_vocab_size = name, bpe_vocab_size
        if tokenizer is None:
            if name == "notewise-bpe":
                tokenizer = NotewiseMidiTok()
            else:
                classes = {"remi": REMI, "midilike": MIDILike, "tsd": TSD}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # miditok warns about settings it ignores without velocities
                    tokenizer = classes[name](_miditok_config(name))
        self.tokenizer = tokenizer

    @property
    def is_notewise(self) -> bool:
        return self.name == "notewise-bpe"

    def train(self, pieces: Iterable[NoteArrays]) -> None:
        """BPE merges learnt from the pieces (notewise-bpe only; the miditok families are used without BPE)."""
        if not self.bpe_vocab_size:
            return
        # Pieces are cut into chunks of `BPE_CHUNK` base tokens for learning (the trainer is slow on very long
        # "words"); merges learnt there apply anywhere when a whole piece is encoded.
        texts = []
        for notes in pieces:
            ids = self._sequence(notes, encode_ids=False).ids
            texts += [
                self.tokenizer._ids_to_bytes(ids[i : i + BPE_CHUNK], as_one_str=True)
                for i in range(0, len(ids), BPE_CHUNK)
            ]

        class _Texts:  # what miditok's trainer reads: a sized iterable of lists of strings
            def __len__(self) -> int:
                return len(texts)

            def __iter__(self):
                return iter([text] for text in texts)

        self._word_ids = None
        self.tokenizer.train(vocab_size=self.bpe_vocab_size, model="BPE", iterator=_Texts())

    def _score(self, notes: NoteArrays):
        return build_score([(notes, "Piano", 0)], ScoreMeta())

    def _sequence(self, notes: NoteArrays, encode_ids: bool):
        seq = self.tokenizer.encode(self._score(notes), encode_ids=encode_ids)
        if isinstance(seq, list):  # per-track tokenizers: our score has exactly one track
            seq = seq[0]
        return seq

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def special_ids(self) -> dict[str, int]:
        vocab = self.tokenizer.vocab
        return {"pad": vocab["PAD_None"], "bos": vocab["BOS_None"], "eos": vocab["EOS_None"]}

    def encode(self, notes: NoteArrays) -> np.ndarray:
        return np.asarray(self._sequence(notes, encode_ids=True).ids, dtype=np.int64)

    def _tokseq(self, ids: Sequence[int]):
        from miditok import TokSequence

        skip = set(self.special_ids.values())
        seq = TokSequence(ids=[int(i) for i in ids if int(i) not in skip and 0 <= int(i) < self.vocab_size])
        seq.are_ids_encoded = self.tokenizer.is_trained
        if seq.are_ids_encoded:
            self.tokenizer.decode_token_ids(seq)
        seq.tokens = [self.tokenizer[i] for i in seq.ids]
        return seq

    def decode(self, ids: Sequence[int]) -> NoteArrays:
        seq = self._tokseq(ids)
        if not seq.tokens:
            return NoteArrays.merge([], STEPS_PER_QUARTER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = self.tokenizer._tokens_to_score(seq if self.tokenizer.one_token_stream else [seq])
        tracks = score_notes(score, drop_drums=False, merge_tracks=True)
        notes = tracks[0] if tracks else NoteArrays.merge([], score.ticks_per_quarter)
        return quantize_notes(notes, STEPS_PER_QUARTER, MIN_PITCH, MAX_PITCH)

    def errors(self, ids: Sequence[int]) -> int:
        tokens = self._tokseq(ids).tokens
        if not tokens:
            return 0
        if self.is_notewise or self.name == "midilike":  # miditok's MIDILike check also counts notes left sounding
            return notewise_repairs(tokens)
        result = self.tokenizer._tokens_errors(tokens)
        return int(result if not isinstance(result, list) else sum(result))

    def words(self, ids: Sequence[int]) -> list[str]:
        if self.tokenizer.is_trained:  # a BPE id stands for several base tokens: show them joined
            return ["+".join(self.tokenizer[b] for b in self._base_ids(int(i))) for i in ids]
        return [self.tokenizer[int(i)] for i in ids]

    def _base_ids(self, token_id: int) -> list[int]:
        from miditok import TokSequence

        seq = TokSequence(ids=[token_id], are_ids_encoded=True)
        self.tokenizer.decode_token_ids(seq)
        return list(seq.ids)

    def pitch_ids(self) -> tuple[int, int, int] | None:
        if self.tokenizer.is_trained:
            return None  # merged tokens hold pitches inside them
        vocab = self.tokenizer.vocab
        first_on = vocab.get(f"Pitch_{MIN_PITCH}", vocab.get(f"NoteOn_{MIN_PITCH}"))
        first_off = vocab.get(f"NoteOff_{MIN_PITCH}", first_on)
        return first_on, first_off, MAX_PITCH - MIN_PITCH + 1

    def _save_tokenizer(self, folder: Path) -> None:
        self.tokenizer.save(folder / "miditok.json")

    def _settings(self) -> dict:
        return {"bpe_vocab_size": self.bpe_vocab_size}


# ------------------------------------------------------------------------------------------------------ factory


def make_scheme(name: str, bpe_vocab_size: int | None = None) -> TokenScheme:
    """A fresh scheme by name (see `SCHEMES`); `notewise-bpe` needs `bpe_vocab_size` and then `train`."""
    if name == "notewise":
        return NotewiseScheme()
    if name == "chordwise":
        return ChordwiseScheme()
    if name == "notewise-bpe":
        if not bpe_vocab_size or bpe_vocab_size <= 228:
            raise ValueError(
                f"notewise-bpe needs a vocabulary size above notewise's 228 base tokens "
                f"(e.g. --bpe-vocab-size 1024), got {bpe_vocab_size!r}"
            )
        return MiditokScheme(name, bpe_vocab_size=bpe_vocab_size)
    if name in ("remi", "midilike", "tsd"):
        return MiditokScheme(name)
    raise ValueError(f"unknown tokenizer {name!r}: choose one of {', '.join(SCHEMES)}")


def load_scheme(folder: str | os.PathLike) -> TokenScheme:
    """The scheme saved in `folder` by `TokenScheme.save` (a training run or a study folder)."""
    folder = Path(folder)
    path = folder / SCHEME_FILE
    if not path.is_file():
        raise ValueError(f"{folder}: no {SCHEME_FILE}; save a scheme there with TokenScheme.save(folder)")
    info = json.loads(path.read_text())
    name = info["scheme"]
    if name == "notewise":
        from .tokenization_notewise import NotewiseTokenizer

        return NotewiseScheme(NotewiseTokenizer.from_pretrained(folder))
    if name == "chordwise":
        from .tokenization_chordwise import ChordwiseTokenizer

        return ChordwiseScheme(ChordwiseTokenizer.from_pretrained(folder), info["max_vocab"], info["min_frequency"])
    from miditok import REMI, TSD, MIDILike

    from .tokenization_miditok import NotewiseMidiTok

    classes = {"notewise-bpe": NotewiseMidiTok, "remi": REMI, "midilike": MIDILike, "tsd": TSD}
    if name not in classes:
        raise ValueError(f"{path}: unknown scheme {name!r}; this Toccata knows {', '.join(SCHEMES)}")
    tokenizer = classes[name](params=folder / "miditok.json")
    return MiditokScheme(name, tokenizer, bpe_vocab_size=info.get("bpe_vocab_size"))


__all__ = [
    "SCHEMES",
    "STEPS_PER_QUARTER",
    "ChordwiseScheme",
    "MiditokScheme",
    "NotewiseScheme",
    "TokenScheme",
    "grid_notes",
    "load_scheme",
    "make_scheme",
    "notewise_repairs",
    "read_notes",
]
