"""What the `toccata` subcommands share: reading a source (a MIDI file, a score or ``corpus:WORK``), checking a
file to write before any work, and an option with a fixed set of values. A module of its own so that every
`cli_*.py` imports it and none imports `cli.py`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

CORPUS_PREFIX = "corpus:"


def read_source(source: str) -> object:
    """The MIDI source the tokenizer takes for a MIDI file, a score (converted by music21 in a limited child, as the
    dataset builder reads scores) or ``corpus:WORK``."""
    # start-up: toccata.tokenization loads transformers and miditok (seconds); `toccata --help` must not wait
    from toccata.tokenization.midi_io import music21_corpus_midi
    from toccata.tokenization.score_io import read_music_file

    if source.startswith(CORPUS_PREFIX):
        return music21_corpus_midi(source[len(CORPUS_PREFIX) :])
    return read_music_file(source)


def add_choice(parser: argparse.ArgumentParser, flag: str, choices: Sequence[str], help: str | None = None) -> None:
    """An option that takes one of `choices`, the first by default."""
    parser.add_argument(flag, choices=list(choices), default=choices[0], help=help)


def output_file(name: str, kind: str = "file") -> Path:
    """`name` as a file to write, checked before any work: not a folder, and no file where a folder must be."""
    path = Path(name)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give the {kind} a file name (a path inside the folder)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot write {path}: {parent} is a file, not a folder")
            break
    return path
