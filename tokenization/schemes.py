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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .midi_io import MidiSource, NoteArrays
from .scheme_base import (  # noqa: F401  re-exported: `from toccata.tokenization.schemes import ...` keeps working
    BPE_CHUNK,
    MAX_PITCH,
    MIDITOK_DEFAULTS,
    MIN_PITCH,
    SCHEME_FILE,
    SCHEMES,
    STEPS_PER_QUARTER,
    Scheme,
    TokenScheme,
    grid_notes,
    notewise_repairs,
    read_notes,
)
from .clara import ClaraScheme
from .schemes_miditok import MiditokScheme, MiditokText
from .tokenization_base import TokenEncoding, parse_token_text
from .tokenization_chordwise import _WORD_RE, ChordwiseTokenizer
from .tokenization_miditok import miditok_token
from .tokenization_notewise import INSTRUMENTS, NotewiseTokenizer

if TYPE_CHECKING:
    import symusic


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
        self.tokenizer = tokenizer or NotewiseTokenizer()

    def encode(self, notes: NoteArrays) -> np.ndarray:
        return np.asarray(self.tokenizer.notes_to_ids(notes), dtype=np.int64)

    def errors(self, ids: Sequence[int]) -> int:
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


class ChordwiseScheme(_WordTokenizerScheme):
    """One word per step (`ChordwiseTokenizer`) at 12 steps per quarter; its vocabulary is learnt by `train`."""

    name = "chordwise"

    def __init__(self, tokenizer=None, max_vocab: int = 4096, min_frequency: int = 2) -> None:
        self.tokenizer = tokenizer or ChordwiseTokenizer(steps_per_quarter=STEPS_PER_QUARTER)
        self.max_vocab, self.min_frequency = max_vocab, min_frequency

    def train(self, pieces: Iterable[NoteArrays]) -> None:
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
        instruments = options.get("instruments")
        if isinstance(instruments, str):
            raise ValueError(f"instruments must be a sequence of names such as ('piano', 'violin'), got {instruments!r}")
        return NotewiseScheme(NotewiseTokenizer(instruments=tuple(instruments)) if instruments else None)
    if name == "chordwise":
        return ChordwiseScheme(**options)
    if name == "clara":
        return ClaraScheme(**options)
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
        return NotewiseScheme(NotewiseTokenizer.from_pretrained(folder))
    if name == "chordwise":
        return ChordwiseScheme(ChordwiseTokenizer.from_pretrained(folder), info["max_vocab"], info["min_frequency"])
    if name == "clara" or name == "notewise-miditok" or info.get("miditok_defaults"):
        return _new_scheme(name, {key: info[key] for key in _OPTIONS[name] if key in info})  # settings only
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
