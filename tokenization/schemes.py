"""Token schemes: the one front door to every tokenization Toccata reads or writes, by name or saved folder
(`load_scheme`), for the command line (`toccata tokenize` / `detokenize`), datasets, training and the tokenization
study (docs/tokenizations.md).

Every scheme (`Scheme`) turns a MIDI file or score into words with the piece's first tempo and time signature
(`tokenize`), writes them as token text (`to_text`), reads such text back into a score (`detokenize`) and saves
itself to a folder (`save`, read back by `load_scheme(folder)`). The schemes an LSTM trains on (`TokenScheme`) also
turn the notes of a piece, on a grid of `STEPS_PER_QUARTER` steps per quarter note, into token ids and back. All of
those see the same notes: a MIDI file is read once (pitched tracks merged, drums dropped), put on the grid and folded
into the piano's range by `grid_notes`, and only then encoded, so their numbers compare. The schemes
(`available_schemes()`):

    notewise          Toccata's words (p60, endp60, wait12), `NotewiseTokenizer`: 228 ids, fixed; option instruments
    notewise-bpe      notewise with learned BPE merges (`NotewiseMidiTok` + miditok's `train`), e.g. 1,024 ids
    chordwise         one word per step (which keys are struck or held), `ChordwiseTokenizer`, vocabulary from data
    remi              miditok REMI: Bar, Position, Pitch, Duration
    midilike          miditok MIDILike: NoteOn, NoteOff, TimeShift
    tsd               miditok TSD: TimeShift, Pitch, Duration
    notewise-miditok  notewise words as miditok token strings (NoteOn_60, Wait_12), text only
    clara             Christine McLeavey Payne's notewise text (`clara.py`), text only; option chamber

Here miditok's schemes are configured to carry what notewise carries and no more: no velocities, tempos, time
signatures or programs; 12 steps per quarter (its beat resolution) for positions, time shifts and durations up
to 12 beats (longer notes are cut by miditok there). With ``miditok_defaults=True`` REMI, MIDILike and TSD keep
miditok's own settings instead (velocities, all tracks in one stream with Program tokens), text only: what
`toccata tokenize --tokenizer remi` writes.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .midi_io import MidiSource, NoteArrays, ScoreMeta, build_score, load_score, score_meta, score_notes
from .tokenization_base import TokenEncoding, parse_token_text, quantize_notes

if TYPE_CHECKING:
    import symusic

STEPS_PER_QUARTER = 12
MIN_PITCH, MAX_PITCH = 21, 108
SCHEMES = ("notewise", "notewise-bpe", "chordwise", "remi", "midilike", "tsd")  # the ones an LSTM trains on
MIDITOK_DEFAULTS = ("notewise-miditok", "remi", "midilike", "tsd")  # also with miditok's own settings, text only
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


class Scheme(ABC):
    """A MIDI file or score <-> token text, and a folder to keep the scheme in (`load_scheme` makes one)."""

    name: str

    @abstractmethod
    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """The words of a MIDI source (path, bytes, `symusic.Score`, music21 stream) with its first tempo and time
        signature; `safe` parses in a child process (untrusted files), bad input raises `MidiError` naming it."""

    @abstractmethod
    def detokenize(self, text: str, qpm: float | None = None) -> "symusic.Score":
        """The `symusic.Score` of token text as `to_text` writes it, at `qpm` if given, else at the text's tempo."""

    def to_text(self, encoding: TokenEncoding) -> str:
        """The token text of `encoding`: a header line (scheme, tempo, time signature), then the words."""
        return encoding.to_text()

    def _settings(self) -> dict:
        return {}

    def _info(self) -> dict:
        """What `token_scheme.json` holds besides the scheme's name."""
        return self._settings()

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `token_scheme.json` (and a scheme's tokenizer files) in `folder`; `load_scheme(folder)` reads it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SCHEME_FILE).write_text(json.dumps({"scheme": self.name, **self._info()}, indent=2) + "\n")
        return folder


class TokenScheme(Scheme):
    """Notes on the grid <-> token ids, with the special ids a language model needs and a way to save itself."""

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
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._save_tokenizer(Path(folder))
        return super().save(folder)

    def _info(self) -> dict:
        return {"vocab_size": self.vocab_size, **self.special_ids, **self._settings()}

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """`save`, under the name transformers' `Trainer` and Toccata's `save_checkpoint` call."""
        return self.save(folder)

    def pitch_ids(self) -> tuple[int, int, int] | None:
        """(first note-on id, first note-off id, number of pitches) when pitches are contiguous ids that a
        transposition can shift in place (the training data's on-the-fly transposition); None when they are not."""
        return None

    def encode_midi(self, src: MidiSource, transpose: int = 0) -> np.ndarray:
        """Token ids of a MIDI source (path, bytes, `symusic.Score`), transposed by `transpose` semitones."""
        return self.encode(grid_notes(src, transpose))

    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """The scheme's words of the grid notes of `src`, exactly as a dataset's `tokens` column holds them."""
        score = load_score(src, safe=safe)
        return TokenEncoding(self.words(self.encode(grid_notes(score))), score_meta(score), self.name)

    def detokenize(self, text: str, qpm: float | None = None) -> "symusic.Score":
        """One piano track of the text's words; a word the scheme lacks is an error naming it (`ids`)."""
        encoding = parse_token_text(text)
        meta = encoding.meta if qpm is None else ScoreMeta(qpm=qpm, time_signature=encoding.meta.time_signature)
        return build_score([(self.decode(self.ids(encoding.tokens)), "Piano", 0)], meta)


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

    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """The tokenizer's words of `src`, a part per instrument of an instrumented tokenizer (`encode_midi`)."""
        return self.tokenizer.encode_midi(src, safe=safe)

    def detokenize(self, text: str, qpm: float | None = None) -> "symusic.Score":
        """The tokenizer's lenient decoding (`tokens_to_midi`): a track per part, unknown words skipped."""
        encoding = parse_token_text(text)
        return self.tokenizer.tokens_to_midi(encoding.tokens, meta=encoding.meta, qpm=qpm)


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



# ------------------------------------------------------------------------------------------------------ registry

_OPTIONS = {
    "notewise": ("instruments",),
    "notewise-bpe": ("bpe_vocab_size",),
    "chordwise": ("max_vocab", "min_frequency"),
    "remi": ("miditok_defaults",),
    "midilike": ("miditok_defaults",),
    "tsd": ("miditok_defaults",),
    "notewise-miditok": ("miditok_defaults",),
    "clara": ("chamber",),
}
"""Every scheme `load_scheme` makes by name, with the options it takes."""


def available_schemes() -> tuple[str, ...]:
    """The names `load_scheme` knows (the module docstring says what each is)."""
    return tuple(_OPTIONS)


def load_scheme(name_or_folder: str | os.PathLike, **options: Any) -> Scheme:
    """A scheme by name, or the one `save` wrote in a folder (a dataset's ``tokenizer/``, a training run, a study).

    A `str` that is one of `available_schemes()` is a name; anything else is a folder. Options by name (None means
    not given): notewise `instruments` (e.g. ``("piano", "violin")``); notewise-bpe `bpe_vocab_size` (required, above
    228); chordwise `max_vocab`, `min_frequency`; remi, midilike, tsd `miditok_defaults` (miditok's own settings, text
    only); clara `chamber`. Schemes that learn from data come back empty by name: call `train(pieces)` first.
    """
    given = {key: value for key, value in options.items() if value is not None}
    if isinstance(name_or_folder, str) and name_or_folder in _OPTIONS:
        return _new_scheme(name_or_folder, given)
    folder = Path(name_or_folder)
    if isinstance(name_or_folder, str) and not folder.is_dir():
        raise ValueError(
            f"unknown scheme {name_or_folder!r}: give one of {', '.join(_OPTIONS)}, or a folder saved by "
            "Scheme.save"
        )
    if given:
        raise ValueError(f"{folder}: a saved scheme keeps its own settings; leave out {', '.join(sorted(given))}")
    path = folder / SCHEME_FILE
    if not path.is_file():
        raise ValueError(f"{folder}: no {SCHEME_FILE}; save a scheme there with TokenScheme.save(folder)")
    info = json.loads(path.read_text())
    name = info.get("scheme")
    if name not in _OPTIONS:
        raise ValueError(f"{path}: unknown scheme {name!r}; this Toccata knows {', '.join(_OPTIONS)}")
    return _saved_scheme(name, folder, info)


def _new_scheme(name: str, options: dict[str, Any]) -> Scheme:
    """A fresh scheme by name, its options checked first (errors name the option, the allowed ones and the value)."""
    allowed = _OPTIONS[name]
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(f"scheme {name} takes the option(s) {', '.join(allowed)}, not {key}={value!r}")
    if name == "notewise":
        from .tokenization_notewise import NotewiseTokenizer

        instruments = options.get("instruments")
        if isinstance(instruments, str):
            raise ValueError(f"instruments must be a sequence of names such as ('piano', 'violin'), got {instruments!r}")
        return NotewiseScheme(NotewiseTokenizer(instruments=tuple(instruments)) if instruments else None)
    if name == "chordwise":
        return ChordwiseScheme(**options)
    if name == "clara":
        from .clara import ClaraScheme

        return ClaraScheme(**options)
    from .schemes_miditok import MiditokScheme, MiditokText

    if name == "notewise-miditok" and not options.get("miditok_defaults", True):
        raise ValueError("scheme notewise-miditok has miditok's own settings only: leave out miditok_defaults")
    if name == "notewise-miditok" or options.get("miditok_defaults"):
        return MiditokText(name)
    if name == "notewise-bpe":
        bpe_vocab_size = options.get("bpe_vocab_size")
        if not bpe_vocab_size or bpe_vocab_size <= 228:
            raise ValueError(
                f"notewise-bpe needs a vocabulary size above notewise's 228 base tokens "
                f"(e.g. --bpe-vocab-size 1024), got {bpe_vocab_size!r}"
            )
        return MiditokScheme(name, bpe_vocab_size=bpe_vocab_size)
    return MiditokScheme(name)


def _saved_scheme(name: str, folder: Path, info: dict[str, Any]) -> Scheme:
    """The scheme `save` wrote in `folder`, whose `token_scheme.json` holds `info`."""
    if name == "notewise":
        from .tokenization_notewise import NotewiseTokenizer

        return NotewiseScheme(NotewiseTokenizer.from_pretrained(folder))
    if name == "chordwise":
        from .tokenization_chordwise import ChordwiseTokenizer

        return ChordwiseScheme(ChordwiseTokenizer.from_pretrained(folder), info["max_vocab"], info["min_frequency"])
    if name == "clara" or name == "notewise-miditok" or info.get("miditok_defaults"):
        return _new_scheme(name, {key: info[key] for key in _OPTIONS[name] if key in info})  # settings only
    from .schemes_miditok import MiditokScheme

    return MiditokScheme.from_folder(name, folder, info.get("bpe_vocab_size"))


def scheme_of_text(text: str) -> Scheme:
    """The scheme of token text, from the header `Scheme.to_text` writes (``# toccata-remi ...``; notewise without
    one): notewise with a part per instrument its words hold, or a miditok tokenizer with its own settings (what
    `toccata tokenize --tokenizer` writes). A scheme learnt from data needs its folder (`load_scheme(folder)`)."""
    encoding = parse_token_text(text)
    if encoding.scheme == "notewise":
        return load_scheme("notewise", instruments=instruments_in(encoding.tokens))
    if encoding.scheme in MIDITOK_DEFAULTS:
        return load_scheme(encoding.scheme, miditok_defaults=True)
    raise ValueError(
        f"the text's header says it is in the {encoding.scheme!r} tokenization: pass --scheme FOLDER "
        "(load_scheme(FOLDER) in Python), the folder of the token scheme that wrote it"
    )


def instruments_in(words: Sequence[str]) -> tuple[str, ...]:
    """The piano, and each other part whose notewise words (`v67`, `endc48`) `words` hold: a duo model's text
    decodes to a track per instrument instead of losing the string part."""
    from .tokenization_notewise import INSTRUMENTS

    found = set(words)
    others = [
        name
        for name, spec in INSTRUMENTS.items()
        if name != "piano" and any(re.fullmatch(rf"(?:end)?{spec['prefix']}\d+", word) for word in found)
    ]
    return ("piano", *others)


__all__ = [
    "MIDITOK_DEFAULTS",
    "SCHEMES",
    "STEPS_PER_QUARTER",
    "ChordwiseScheme",
    "NotewiseScheme",
    "Scheme",
    "TokenScheme",
    "available_schemes",
    "grid_notes",
    "instruments_in",
    "load_scheme",
    "notewise_repairs",
    "read_notes",
    "scheme_of_text",
]
