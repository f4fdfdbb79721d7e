"""Chordwise tokenizer: MIDI <-> one word per time step, such as ``c48h60.64.67`` or ``rest``.

This is the seed author's earlier encoding. Each quarter note is cut into `steps_per_quarter` (default 4) steps and
every step becomes exactly one word that says which keys are *struck* at that step and which are *held* from before:

* ``c60.64.67``     struck C4, E4, G4 (MIDI pitches, ascending, joined by ``.``)
* ``c48h60.64.67``  struck C3 while C4, E4, G4 keep sounding
* ``h60.64.67``     nothing new, C4, E4, G4 keep sounding
* ``rest``          silence

The canonical word is ``c`` + struck pitches, then ``h`` + held pitches, each part omitted when empty; the same piece
always gives the same words. A sequence starts at time 0 (leading silence is kept as ``rest`` words) and stops when
the last note ends.

Why this spelling and not the seed's own (``p`` + one character per key, ``0`` silent / ``1`` struck / ``2`` held,
62 keys from ``note_offset`` 33): both name exactly the same set of words, so the vocabulary size and the model are
the same; the pitch list costs about three characters per *sounding* key instead of one per *existing* key (88 with
the default range), reads at a glance, uses the same pitch numbers as the notewise ``p60``, and does not depend on the
pitch range, so vocabularies built with different ranges share their words. Converting to the seed's strings is a
one-liner if needed.

Trade-offs against the notewise tokenizer (the main vocabulary):

* The vocabulary is built from data (`ChordwiseTokenizer.train_from_midi` or `build_vocab`), it grows with the
  corpus (every distinct chord state is its own word), and a word never seen in training becomes ``<unk>``. Notewise
  has a small fixed vocabulary derived from the settings.
* Time costs one word per step, so a long rest or a long held chord is many repeated words; notewise says
  ``wait48`` once. For sparse music (one voice, long notes) notewise is denser; for dense homophonic music such as
  chorales chordwise is shorter, because a whole chord change is one word.
* A re-strike is exact and local: ``c60`` followed by ``c60`` is two notes, ``c60`` then ``h60`` is one. Each word
  describes the whole keyboard at its step, so a model never has to remember which notes are still sounding.
* The grid is coarser by default (sixteenths, no triplets); off-grid input moves by at most half a step.

Decoding never fails. Lenient rules so that any model output gives a file: ``<pad>``, ``<bos>`` and ``<eos>`` are
skipped and take no time; ``<unk>``, an id outside the vocabulary and any word that is not a chordwise word take one
step in which nothing changes (sounding notes go on sounding, nothing is struck), so timing survives an unknown chord;
pitches outside [min_pitch, max_pitch] in a word are ignored; a held pitch that was not sounding starts a note; a
pitch both struck and held counts as struck.

This file imports only the standard library, numpy, transformers and its siblings `tokenization_base.py` and
`midi_io.py` (symusic), so the three can travel to the Hub next to a checkpoint and load with
``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np

from .midi_io import DEFAULT_LIMITS, MidiLimits, MidiSource, NoteArrays
from .tokenization_base import SPECIAL_TOKENS, MidiWordTokenizer, Tokens, check_range, quantize_notes

REST_TOKEN = "rest"
_WORD_RE = re.compile(r"^(?:c(\d+(?:\.\d+)*))?(?:h(\d+(?:\.\d+)*))?$")
_CHUNK_CELLS = 1 << 24  # cells (steps x keys) of one dense block when encoding: 16 MiB of int8
_SKIP, _UNKNOWN = -1, -2  # decoding codes: takes no time / one step in which nothing changes


class ChordwiseTokenizer(MidiWordTokenizer):
    """A transformers tokenizer over chordwise words, with MIDI in (`midi_to_tokens`) and out (`tokens_to_midi`).

    The words of a piece need no vocabulary; ids do, and the vocabulary is built from data:

        >>> tok = ChordwiseTokenizer.train_from_midi(["a.mid", "b.mid"], min_frequency=2, max_vocab=5000)
        >>> tokens = tok.midi_to_tokens("piece.mid")        # ['c60.64.67', 'h60.64.67', 'c62h64.67', ...]
        >>> tok(" ".join(tokens))["input_ids"]               # unseen words -> <unk>
        >>> tok.save_midi(tokens, "again.mid")
        >>> tok.save_pretrained("folder")                    # vocab.json + tokenizer_config.json
    """

    scheme = "chordwise"

    def __init__(
        self,
        vocab_file: str | None = None,
        steps_per_quarter: int = 4,
        min_pitch: int = 21,
        max_pitch: int = 108,
        merge_tracks: bool = True,
        drop_drums: bool = True,
        sustain_pedal: bool = False,
        add_bos_token: bool = True,
        add_eos_token: bool = False,
        pad_token: str = "<pad>",
        bos_token: str = "<bos>",
        eos_token: str = "<eos>",
        unk_token: str = "<unk>",
        vocab: Mapping[str, int] | Sequence[str] | None = None,
        **kwargs,
    ):
        check_range("steps_per_quarter", steps_per_quarter, 1, 96)
        check_range("min_pitch", min_pitch, 0, 116)
        check_range("max_pitch", max_pitch, min_pitch + 11, 127)
        self.steps_per_quarter = steps_per_quarter
        self.min_pitch = min_pitch
        self.max_pitch = max_pitch
        self.merge_tracks = merge_tracks
        self.drop_drums = drop_drums
        self.sustain_pedal = sustain_pedal
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self._specials = (pad_token, bos_token, eos_token, unk_token)
        if vocab is not None and vocab_file is not None:
            raise ValueError("pass either vocab or vocab_file, not both")
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as handle:
                vocab = json.load(handle)
            source = vocab_file
        else:
            source = "vocab"
        if vocab is None:
            vocab = [*map(str, self._specials), REST_TOKEN]
        self._set_vocab(vocab, source)
        self._row_cache: dict[bytes, str] = {}  # dense step row -> word, filled while encoding
        super().__init__(
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            steps_per_quarter=steps_per_quarter,
            min_pitch=min_pitch,
            max_pitch=max_pitch,
            merge_tracks=merge_tracks,
            drop_drums=drop_drums,
            sustain_pedal=sustain_pedal,
            add_bos_token=add_bos_token,
            add_eos_token=add_eos_token,
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------ vocabulary

    def _set_vocab(self, vocab: Mapping[str, int] | Sequence[str], source: str) -> None:
        if isinstance(vocab, Mapping):
            words = [None] * len(vocab)
            for word, index in vocab.items():
                if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(vocab):
                    raise ValueError(f"{source}: id {index!r} of {word!r} is not in [0, {len(vocab)})")
                if words[index] is not None:
                    raise ValueError(f"{source}: id {index} is given to both {words[index]!r} and {word!r}")
                words[index] = str(word)
        else:
            words = [str(word) for word in vocab]
            if len(set(words)) != len(words):
                raise ValueError(f"{source}: the word list has duplicates")
        missing = [str(token) for token in self._specials if str(token) not in words]
        if missing:
            raise ValueError(
                f"{source}: the vocabulary lacks the special tokens {missing}; "
                "build it with ChordwiseTokenizer.train_from_midi or build_vocab"
            )
        self._id_to_token = words
        self._token_to_id = {word: i for i, word in enumerate(words)}

    @classmethod
    def build_vocab(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_frequency: int = 1,
        max_vocab: int | None = None,
        **settings,
    ) -> "ChordwiseTokenizer":
        """A tokenizer whose vocabulary holds the specials, ``rest`` and the chordwise words of `token_lists`.

        Words seen fewer than `min_frequency` times are left out; `max_vocab` caps the whole vocabulary (specials
        and ``rest`` included) and keeps the most frequent words. Ids: ``<pad> <bos> <eos> <unk>`` are 0-3, ``rest``
        is 4, then words by falling frequency, ties in alphabetical order. Strings that are not chordwise words, and
        the special tokens, are not counted. `settings` go to the constructor (steps_per_quarter, pitch range, ...).
        """
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls._from_counts(counts, min_frequency, max_vocab, settings)

    @classmethod
    def train_from_midi(
        cls,
        sources: Iterable[MidiSource],
        min_frequency: int = 1,
        max_vocab: int | None = None,
        *,
        safe: bool = False,
        limits: MidiLimits = DEFAULT_LIMITS,
        **settings,
    ) -> "ChordwiseTokenizer":
        """Encode every MIDI source with `settings` and build the vocabulary from the words seen (see `build_vocab`).

        Raises `MidiError` naming the file if one source cannot be read; filter bad files beforehand if needed.
        """
        reader = cls(**settings)
        counts: Counter[str] = Counter()
        for src in sources:
            counts.update(reader.midi_to_tokens(src, safe=safe, limits=limits))
        return cls._from_counts(counts, min_frequency, max_vocab, settings)

    @classmethod
    def _from_counts(
        cls, counts: Mapping[str, int], min_frequency: int, max_vocab: int | None, settings: dict
    ) -> "ChordwiseTokenizer":
        check_range("min_frequency", min_frequency, 1, 2**62)
        fixed = [
            str(settings.get(name, default))
            for name, default in zip(("pad_token", "bos_token", "eos_token", "unk_token"), SPECIAL_TOKENS)
        ] + [REST_TOKEN]
        if max_vocab is not None:
            check_range("max_vocab", max_vocab, len(fixed), 2**62)
        reserved = set(fixed)
        words = sorted(
            (word for word, n in counts.items() if n >= min_frequency and word not in reserved and _is_word(word)),
            key=lambda word: (-counts[word], word),
        )
        if max_vocab is not None:
            words = words[: max_vocab - len(fixed)]
        return cls(vocab=fixed + words, **settings)

    @property
    def is_trained(self) -> bool:
        """Whether the vocabulary holds any chord word (a bare tokenizer knows only the specials and ``rest``)."""
        return len(self._id_to_token) > len(SPECIAL_TOKENS) + 1

    # ------------------------------------------------------------------------------------------ words

    def _row_to_word(self, row: np.ndarray) -> str:
        """The word of one dense step row (0 silent, 1 struck, 2 held, index = pitch - min_pitch)."""
        struck = np.flatnonzero(row == 1) + self.min_pitch
        held = np.flatnonzero(row == 2) + self.min_pitch
        if not len(struck) and not len(held):
            return REST_TOKEN
        word = ("c" + ".".join(map(str, struck.tolist()))) if len(struck) else ""
        return word + ("h" + ".".join(map(str, held.tolist())) if len(held) else "")

    def _parse_word(self, token: str) -> np.ndarray | None:
        """Dense row of one word (0 silent, 1 struck, 2 held), or None for a word that is not a chordwise word."""
        if token == REST_TOKEN:
            return np.zeros(self.num_pitches, np.int8)
        match = _WORD_RE.match(token) if token else None
        if match is None or match.group(0) == "":
            return None
        row = np.zeros(self.num_pitches, np.int8)
        for value, group in ((2, match.group(2)), (1, match.group(1))):  # struck wins over held
            if group:
                pitches = (int(p) if len(p) <= 4 else -1 for p in group.split("."))
                row[[p - self.min_pitch for p in pitches if self.min_pitch <= p <= self.max_pitch]] = value
        return row

    # ------------------------------------------------------------------------------------------ MIDI -> tokens

    def _step_blocks(self, notes: NoteArrays):
        """Yield dense (steps, keys) int8 blocks of the quantized notes, 0 silent / 1 struck / 2 held, in time order."""
        grid = quantize_notes(notes, self.steps_per_quarter, self.min_pitch, self.max_pitch)
        if len(grid) == 0:
            return
        total, keys = int(grid.end.max()), self.num_pitches
        block = max(1, _CHUNK_CELLS // keys)
        column = grid.pitch - self.min_pitch
        for t0 in range(0, total, block):
            t1 = min(total, t0 + block)
            sel = (grid.start < t1) & (grid.end > t0)
            start, end, pitch = grid.start[sel], grid.end[sel], column[sel]
            change = np.zeros((t1 - t0 + 1, keys), np.int32)
            np.add.at(change, (np.maximum(start, t0) - t0, pitch), 1)
            np.add.at(change, (np.minimum(end, t1) - t0, pitch), -1)
            rows = (np.cumsum(change[:-1], axis=0) > 0).astype(np.int8) * 2
            struck = start >= t0
            rows[start[struck] - t0, pitch[struck]] = 1
            yield rows

    def _distinct_rows(self, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The words of the distinct rows of a block and, per step, the index of its distinct row."""
        keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
        distinct, inverse = np.unique(keys, return_inverse=True)
        words = []
        for key in distinct:
            raw = key.tobytes()
            word = self._row_cache.get(raw)
            if word is None:
                word = self._row_to_word(np.frombuffer(raw, dtype=np.int8))
                if len(self._row_cache) < 1_000_000:
                    self._row_cache[raw] = word
            words.append(word)
        return words, inverse.ravel()

    def notes_to_tokens(self, notes: NoteArrays) -> list[str]:
        """Chordwise words of `notes` (ticks at `notes.tpq`), one per step from time 0 to the last offset."""
        out: list[str] = []
        for rows in self._step_blocks(notes):
            words, inverse = self._distinct_rows(rows)
            out.extend(np.array(words, dtype=object)[inverse].tolist())
        return out

    def notes_to_ids(self, notes: NoteArrays) -> np.ndarray:
        """Token ids (no special tokens) of `notes`; words outside the vocabulary become the ``<unk>`` id."""
        parts = []
        for rows in self._step_blocks(notes):
            words, inverse = self._distinct_rows(rows)
            parts.append(np.array([self._convert_token_to_id(w) for w in words], dtype=np.int64)[inverse])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def midi_to_ids(self, src: MidiSource, *, safe: bool = False, limits: MidiLimits = DEFAULT_LIMITS) -> list[int]:
        """Token ids of `src` without special tokens; words outside the vocabulary become ``<unk>``."""
        if not self.is_trained:
            warnings.warn(
                "this ChordwiseTokenizer has no learned vocabulary, so every chord becomes <unk>: build one with "
                "ChordwiseTokenizer.train_from_midi or load a trained one with from_pretrained",
                stacklevel=2,
            )
        return super().midi_to_ids(src, safe=safe, limits=limits)

    # ------------------------------------------------------------------------------------------ tokens -> MIDI

    def tokens_to_notes(self, tokens: Tokens) -> NoteArrays:
        """Notes on the step grid (`tpq` = steps per quarter) of any token sequence; never fails (see module doc)."""
        if isinstance(tokens, str):
            tokens = tokens.split()
        skipped = {str(self.pad_token), str(self.bos_token), str(self.eos_token)}
        code_of: dict[str, int] = {}  # word -> index into `parsed`, _SKIP or _UNKNOWN
        parsed: list[np.ndarray] = []
        codes_list = []
        for token in tokens:
            if not isinstance(token, str):
                try:
                    token = self._convert_id_to_token(int(token))
                except (TypeError, ValueError, OverflowError):
                    token = str(self.unk_token)
            code = code_of.get(token)
            if code is None:
                row = None if token in skipped else self._parse_word(token)
                if row is not None:
                    parsed.append(row)
                code = _SKIP if token in skipped else _UNKNOWN if row is None else len(parsed) - 1
                code_of[token] = code
            codes_list.append(code)
        codes = np.array(codes_list, dtype=np.int64)
        codes = codes[codes != _SKIP]
        steps, keys = len(codes), self.num_pitches
        if steps == 0:
            empty = np.zeros(0, dtype=np.int64)
            return NoteArrays(empty, empty.copy(), empty.copy(), self.steps_per_quarter)
        table = np.stack(parsed + [np.zeros(keys, np.int8)])  # last row: stand-in for unknown steps
        unknown = codes == _UNKNOWN
        rows = table[np.where(unknown, len(table) - 1, codes)]
        if unknown.any():  # an unknown step holds whatever the last known step had sounding
            last_known = np.maximum.accumulate(np.where(unknown, -1, np.arange(steps)))
            fill = unknown & (last_known >= 0)
            rows[fill] = (rows[last_known[fill]] != 0).astype(np.int8) * 2
        sounding_now = np.zeros((steps + 1, keys), dtype=bool)
        sounding_now[:steps] = rows != 0
        sounding_before = np.zeros((steps + 1, keys), dtype=bool)
        sounding_before[1:] = sounding_now[:steps]
        struck = np.zeros((steps + 1, keys), dtype=bool)
        struck[:steps] = rows == 1
        on_key, on_time = np.nonzero((sounding_now & (~sounding_before | struck)).T)
        _, off_time = np.nonzero((sounding_before & (~sounding_now | struck)).T)
        return NoteArrays(
            on_time.astype(np.int64),
            off_time.astype(np.int64),
            on_key.astype(np.int64) + self.min_pitch,
            self.steps_per_quarter,
        )


def _is_word(token: str) -> bool:
    """Whether `token` is a chordwise step word (``rest`` or a ``c``/``h`` pitch-list word)."""
    if token == REST_TOKEN:
        return True
    match = _WORD_RE.match(token) if isinstance(token, str) and token else None
    return match is not None and match.group(0) != ""


__all__ = ["ChordwiseTokenizer"]
