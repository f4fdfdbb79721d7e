"""The `tokens` column: each row's notes in a second token scheme, beside the `notewise` column.

A build with ``tokenizer`` other than ``notewise`` (``remi``, ``midilike``, ``tsd``, ``notewise-bpe``, ``chordwise``;
see `toccata.tokenization.schemes`) adds a `tokens` column holding ``scheme.words(scheme.encode(grid_notes(midi)))``
of the row's `midi`, space-separated. Schemes that learn from data (BPE merges, the chordwise vocabulary) learn from
the rows of the train split only, after the splits are assigned and before any row is written; the scheme is saved in
the dataset folder (``tokenizer/``, read back by `load_scheme`), and `token_ids` turns a `tokens` value back into the
ids that `scheme.decode` takes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from toccata.tokenization.midi_io import NoteArrays
from toccata.tokenization.schemes import SCHEMES, TokenScheme, grid_notes, load_scheme

DEFAULT_TOKENIZER = "notewise"  # the `notewise` column only: no `tokens` column, no tokenizer folder
TOKENIZER_FOLDER = "tokenizer"  # where a build saves the scheme of its `tokens` column
LEARNED = frozenset({"notewise-bpe", "chordwise"})  # schemes that learn from the train split
BPE_BASE_TOKENS = 228  # notewise's vocabulary: a BPE vocabulary must be larger


def check_tokenizer(tokenizer: str, bpe_vocab_size: int | None, instruments: tuple[str, ...]) -> None:
    """Raise a ValueError naming the fix for a tokenizer choice a build cannot make."""
    if tokenizer not in SCHEMES:
        raise ValueError(f"tokenizer must be one of {', '.join(SCHEMES)}, got {tokenizer!r}")
    if tokenizer == "notewise-bpe":
        if bpe_vocab_size is None or isinstance(bpe_vocab_size, bool) or int(bpe_vocab_size) <= BPE_BASE_TOKENS:
            raise ValueError(
                f"tokenizer notewise-bpe learns BPE merges from the train split and needs a vocabulary size above "
                f"notewise's {BPE_BASE_TOKENS} base tokens: give bpe_vocab_size (--bpe-vocab-size), e.g. 1024; "
                f"got {bpe_vocab_size!r}"
            )
    elif bpe_vocab_size is not None:
        raise ValueError(
            f"bpe_vocab_size (--bpe-vocab-size) is for tokenizer notewise-bpe only, not {tokenizer}: "
            "leave it out or choose --tokenizer notewise-bpe"
        )
    if tokenizer != DEFAULT_TOKENIZER and tuple(instruments) != ("piano",):
        raise ValueError(
            f"tokenizer {tokenizer} encodes one merged piano part; an instrumented build "
            f"(instruments {','.join(instruments)}) has the instrumented notewise column only: "
            "leave out tokenizer or build a piano dataset"
        )


def learn_scheme(name: str, bpe_vocab_size: int | None, pieces: Iterable[NoteArrays]) -> TokenScheme:
    """A fresh scheme; those in `LEARNED` learn from `pieces` (grid notes of the train rows), the others need none."""
    scheme = load_scheme(name, bpe_vocab_size=bpe_vocab_size)
    if name in LEARNED:
        scheme.train(pieces)
    return scheme


def save_scheme(scheme: TokenScheme, dataset_dir: str | os.PathLike) -> Path:
    """Save `scheme` into ``<dataset_dir>/tokenizer/`` (`load_scheme` reads it back); returns that folder."""
    return scheme.save(Path(dataset_dir) / TOKENIZER_FOLDER)


def scheme_of(dataset_dir: str | os.PathLike) -> TokenScheme:
    """The scheme that made a built dataset's `tokens` column (a clear error for a build without one)."""
    folder = Path(dataset_dir) / TOKENIZER_FOLDER
    if not folder.is_dir():
        raise ValueError(
            f"{dataset_dir}: no {TOKENIZER_FOLDER}/ folder, so no tokens column; build with --tokenizer remi, ... "
            "to make one"
        )
    return load_scheme(folder)


def row_tokens(scheme: TokenScheme, midi: bytes | NoteArrays) -> str:
    """The `tokens` value of a row: the scheme's words of the row's notes (its MIDI bytes), space-separated."""
    return " ".join(scheme.words(scheme.encode(grid_notes(midi))))


def token_ids(scheme: TokenScheme, tokens: str | Sequence[str]) -> np.ndarray:
    """The ids of a `tokens` value (or of its words), for ``scheme.decode``; a word the scheme lacks is an error."""
    return scheme.ids(tokens)


def scheme_summary(scheme: TokenScheme, train_rows: int) -> dict[str, Any]:
    """What the dataset card says about the `tokens` column."""
    return {
        "name": scheme.name,
        "vocab_size": scheme.vocab_size,
        "learned": scheme.name in LEARNED,
        "train_rows": train_rows,
    }


__all__ = [
    "DEFAULT_TOKENIZER",
    "LEARNED",
    "TOKENIZER_FOLDER",
    "check_tokenizer",
    "learn_scheme",
    "row_tokens",
    "save_scheme",
    "scheme_of",
    "scheme_summary",
    "token_ids",
]
