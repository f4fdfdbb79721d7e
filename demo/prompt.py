"""Prompts for the demo: uploads checked before parsing and parsed in a sandboxed child process, or corpus excerpts.

An upload is untrusted: its size is capped, its first bytes must be a Standard MIDI File (`MThd`) or a RIFF RMID
wrapper (unwrapped here), its chunk structure is checked, and only then is it parsed, in a fresh child process
with a time limit and an address-space limit (`sandbox.py`), so a hostile file cannot hang or crash the server.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toccata.tokenization.midi_io import (
    MidiError,
    MidiLimits,
    ScoreMeta,
    check_midi_bytes,
    load_score,
    music21_corpus_midi,
    score_meta,
    standard_midi_bytes,
)

from . import sandbox
from .form import PromptChoice
from .sandbox import SandboxError, run_isolated

MAX_UPLOAD_BYTES = 4 * 1024 * 1024  # also the server's `max_file_size`
UPLOAD_LIMITS = MidiLimits(
    max_bytes=MAX_UPLOAD_BYTES,
    max_tracks=256,
    max_quarters=20_000,  # ~2.8 hours at 120 qpm
    max_notes=200_000,
    timeout_s=10.0,
    memory_bytes=512 * 1024**2,
)


@dataclass(frozen=True)
class Prompt:
    """A read prompt: the parsed score (None: compose from silence), its tempo and time signature, and names."""

    score: Any = None  # symusic.Score
    meta: ScoreMeta | None = None
    label: str = "none"  # shown with the settings
    cli_argument: str | None = None  # what `toccata generate --prompt` takes to use the same prompt


def read_prompt(choice: PromptChoice) -> Prompt:
    """The prompt `choice` names, read safely; `MidiError` (a ValueError) with a message for the user otherwise."""
    if choice.source == "none":
        return Prompt()
    if choice.source == "corpus":
        score = load_score(corpus_midi(choice.work), name=f"corpus:{choice.work}")
        return Prompt(score, score_meta(score), f"corpus:{choice.work}", f"corpus:{choice.work}")
    name = Path(choice.upload).name
    score = parse_untrusted(midi_payload(read_upload(choice.upload), name), name)
    return Prompt(score, score_meta(score), f"upload:{name}", "YOUR_FILE.mid")


@functools.lru_cache(maxsize=16)
def corpus_midi(work: str) -> bytes:
    """MIDI bytes of a music21 corpus work (the export takes up to 2 s; the few excerpts offered are memoised)."""
    return music21_corpus_midi(work)


def read_upload(path: str | os.PathLike, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of an uploaded file, refused when it is over `max_bytes` (read no further than that)."""
    name = Path(path).name
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise MidiError(name, f"cannot read the upload ({err.strerror or err}); upload it again") from None
    if len(data) > max_bytes:
        raise MidiError(name, f"the file is over {max_bytes // 1024**2} MB; upload a MIDI file smaller than that")
    return data


def midi_payload(data: bytes, name: str, limits: MidiLimits = UPLOAD_LIMITS) -> bytes:
    """The Standard MIDI File in `data` (unwrapping RIFF RMID), after cheap structural checks; never parses."""
    if not data:
        raise MidiError(name, "the file is empty; upload a .mid file")
    data = standard_midi_bytes(data, name)
    if data[:4] != b"MThd":
        raise MidiError(name, "this is not a MIDI file (it does not start with 'MThd'); upload a .mid file")
    check_midi_bytes(data, name, limits)
    return data


def parse_untrusted(data: bytes, name: str, limits: MidiLimits = UPLOAD_LIMITS) -> Any:
    """A validated `symusic.Score` of `data`, parsed in a sandboxed child; `MidiError` on any failure."""
    try:
        canonical = run_isolated(f"{sandbox.__name__}:reparse_midi", data, limits.timeout_s, limits.memory_bytes)
    except SandboxError as err:
        problem = str(err) if err.user_error else f"{err}; the file is probably corrupt, try another one"
        raise MidiError(name, problem) from None
    return load_score(canonical, name=name, limits=limits)
