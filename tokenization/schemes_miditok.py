"""The miditok schemes: REMI, MIDILike, TSD and notewise-bpe as Toccata trains on them (`MiditokScheme`), and miditok's
tokenizers with their own settings as `toccata tokenize --tokenizer remi` writes them (`MiditokText`).

`MiditokScheme` carries what notewise carries and no more (one merged piano track, no velocities, tempos, time
signatures or programs, 12 steps per quarter over 12 beats, pitches 21-108): its ids train the LSTM. `MiditokText`
keeps miditok's defaults (velocities, durations, all tracks in one stream with Program tokens, drums kept) except a
grid of 12 steps per quarter over 12 beats; it reads and writes token text only. Both come from `load_scheme`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import symusic
from miditok import REMI, TSD, MIDILike, MusicTokenizer, TokenizerConfig, TokSequence

from .midi_io import MidiSource, NoteArrays, ScoreMeta, build_score, load_score, score_meta, score_notes
from .scheme_base import (
    BPE_CHUNK,
    MAX_PITCH,
    MIDITOK_DEFAULTS,
    MIN_PITCH,
    STEPS_PER_QUARTER,
    Scheme,
    TokenScheme,
    notewise_repairs,
)
from .tokenization_base import TokenEncoding, parse_token_text, quantize_notes
from .tokenization_miditok import NotewiseMidiTok

MIDITOK_CLASSES = {"remi": REMI, "midilike": MIDILike, "tsd": TSD}
"""miditok's own tokenizer classes by scheme name."""


def _miditok_config() -> TokenizerConfig:
    """REMI, MIDILike and TSD set to carry what notewise carries: no velocities, tempos, time signatures, programs."""
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
        self.name, self.bpe_vocab_size = name, bpe_vocab_size
        if tokenizer is None:
            if name == "notewise-bpe":
                tokenizer = NotewiseMidiTok()
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # miditok warns about settings it ignores without velocities
                    tokenizer = MIDITOK_CLASSES[name](_miditok_config())
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

    @classmethod
    def from_folder(cls, name: str, folder: Path, bpe_vocab_size: int | None) -> "MiditokScheme":
        """The scheme `save` wrote in `folder` (its merges and vocabulary from ``miditok.json``)."""
        tokenizer_class = NotewiseMidiTok if name == "notewise-bpe" else MIDITOK_CLASSES[name]
        return cls(name, tokenizer_class(params=folder / "miditok.json"), bpe_vocab_size=bpe_vocab_size)

    def _settings(self) -> dict:
        return {"bpe_vocab_size": self.bpe_vocab_size}


# ---------------------------------------------------------------------------------------------------- own settings


def miditok_tokenizer(scheme: str) -> MusicTokenizer:
    """A miditok tokenizer by name: the notewise adapter, or miditok's REMI / MIDILike / TSD at 12 steps per quarter.

    miditok's own keep their defaults (velocities, durations, time signatures) except the grid of 12 steps per
    quarter over 12 beats and one token stream for all tracks (``use_programs``, so Program tokens appear).
    """
    if scheme == "notewise-miditok":
        return NotewiseMidiTok()
    if scheme not in MIDITOK_CLASSES:
        raise ValueError(f"unknown tokenizer {scheme!r}: choose one of {', '.join(MIDITOK_DEFAULTS)}")
    config = TokenizerConfig(beat_res={(0, 4): 12, (4, 12): 12}, use_programs=True, one_token_stream_for_programs=True)
    return MIDITOK_CLASSES[scheme](config)


class MiditokText(Scheme):
    """A miditok tokenizer with its own settings (`miditok_tokenizer`), over token text: what `toccata tokenize
    --tokenizer remi` (midilike, tsd, notewise-miditok) writes and `toccata detokenize` reads back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tokenizer = miditok_tokenizer(name)

    def tokenize(self, src: MidiSource, *, safe: bool = False) -> TokenEncoding:
        """The miditok token strings of `src` in one stream, with the first tempo and time signature."""
        score = load_score(src, safe=safe)
        sequence = self.tokenizer.encode(score, encode_ids=False)
        sequences = sequence if isinstance(sequence, list) else [sequence]  # every tokenizer here makes one stream
        return TokenEncoding([token for seq in sequences for token in seq.tokens], score_meta(score), self.name)

    def detokenize(self, text: str, qpm: float | None = None) -> symusic.Score:
        """The score of the text's token strings, at the header's tempo and time signature (miditok's own tokens
        carry neither) or at `qpm`; a token miditok does not know is an error naming it."""
        encoding = parse_token_text(text)
        meta = encoding.meta.override(qpm)
        sequence = TokSequence(tokens=list(encoding.tokens))
        try:
            self.tokenizer.complete_sequence(sequence)
            score = self.tokenizer.decode(sequence)
        except KeyError as err:
            raise ValueError(f"{err} is not a {self.name} token") from None
        score.tempos = [symusic.Tempo(0, float(meta.qpm))]
        score.time_signatures = [symusic.TimeSignature(0, *meta.time_signature)]
        return score

    def _settings(self) -> dict:
        return {"miditok_defaults": True}


__all__ = ["MIDITOK_CLASSES", "MiditokScheme", "MiditokText", "miditok_tokenizer"]
