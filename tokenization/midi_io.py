"""MIDI in and out: the only module of Toccata that touches symusic and music21.

Everything is read into a `symusic.Score` after cheap structural checks on the raw bytes, so that a malformed file
fails with a `MidiError` naming the file and the problem, in bounded time and memory. `safe=True` parses in a child
process with a time and memory limit, for files from untrusted sources (a native parser can crash).
"""

from __future__ import annotations

import copy
import multiprocessing
import numbers
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import symusic

from .midi_events import (
    HELD_OFFSET,
    EventError,
    byte_facts,
    check_track_lengths,
    close_held_notes,
    release_held_notes,
    sustain_per_channel,
)

MidiSource = Union[str, os.PathLike, bytes, bytearray, memoryview, symusic.Score, Any]
"""A path, raw bytes, a `symusic.Score` or a music21 stream (anything with `.write`/`.flatten`)."""


class MidiError(ValueError):
    """A MIDI input could not be read. The message names the file and what was wrong with it."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


class HeldNotesWarning(UserWarning):
    """A file had notes that nothing switched off: they were held to the end of their track, as players do."""


@dataclass(frozen=True)
class MidiLimits:
    """Caps checked before any note is tokenized, so a tiny hostile file cannot blow up time or memory."""

    max_bytes: int = 32 * 1024 * 1024  # larger files are not piano pieces
    max_tracks: int = 1024  # the MIDI header field is 16 bits; real files rarely exceed a few dozen
    max_quarters: int = 50_000  # ~7 hours at 120 bpm: longer means a corrupt delta time
    max_notes: int = 2_000_000
    min_qpm: float = 1.0  # tempo bounds (quarter notes per minute) for every tempo event
    max_qpm: float = 1200.0
    timeout_s: float = 30.0  # safe mode only: wall-clock limit of the child parser
    memory_bytes: int = 2 * 1024**3  # safe mode only: address space the child parser may add to what it inherits


DEFAULT_LIMITS = MidiLimits()


@dataclass(frozen=True)
class ScoreMeta:
    """What the tokens do not carry but a decoded file should get back: the first tempo and time signature.
    Checked on creation, so no path writes a MIDI file that readers (this one included) refuse."""

    qpm: float = 120.0
    time_signature: tuple[int, int] = (4, 4)

    def __post_init__(self) -> None:
        low, high = DEFAULT_LIMITS.min_qpm, DEFAULT_LIMITS.max_qpm
        is_number = isinstance(self.qpm, numbers.Real) and not isinstance(self.qpm, bool)  # numpy scalars too
        if not (is_number and low <= self.qpm <= high):  # also refuses nan
            raise ValueError(f"tempo must be from {low:g} to {high:g} quarter notes per minute, got {self.qpm!r}")
        if not valid_time_signature(*self.time_signature):
            raise ValueError(
                f"time signature must be N/D with N from 1 to 255 and D a power of two up to 128, "
                f"got {'/'.join(map(str, self.time_signature))}"
            )

    def override(self, qpm: float | None = None, time_signature: tuple[int, int] | None = None) -> ScoreMeta:
        """This meta with the tempo and time signature a caller gave (not None) in place of its own."""
        return ScoreMeta(
            qpm=self.qpm if qpm is None else qpm,
            time_signature=self.time_signature if time_signature is None else time_signature,
        )


def valid_time_signature(numerator: int, denominator: int) -> bool:
    """Whether a MIDI file can carry `numerator/denominator` (its denominator is stored as a power of two)."""
    return 1 <= numerator <= 255 and denominator in (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class NoteArrays:
    """Notes as parallel integer arrays, in ticks at `tpq` ticks per quarter note."""

    start: np.ndarray  # (n,) int64 onset ticks
    end: np.ndarray  # (n,) int64 offset ticks
    pitch: np.ndarray  # (n,) int64 MIDI pitch
    tpq: int

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def merge(cls, parts: list["NoteArrays"], tpq: int) -> "NoteArrays":
        """All notes of `parts` (each at `tpq`) in one `NoteArrays`; no parts gives an empty one."""
        if not parts:
            return cls(*(np.zeros(0, dtype=np.int64) for _ in range(3)), tpq)
        start, end, pitch = (np.concatenate([getattr(p, name) for p in parts]) for name in ("start", "end", "pitch"))
        return cls(start, end, pitch, tpq)


# ---------------------------------------------------------------------------------------------------- reading


def source_name(src: MidiSource) -> str:
    """A short human name for `src`, used in every error message."""
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes of MIDI>"
    if isinstance(src, symusic.Score):
        return "<symusic.Score>"
    return f"<{type(src).__name__}>"


def read_midi_bytes(path: str | os.PathLike, limits: MidiLimits = DEFAULT_LIMITS) -> bytes:
    """Read a file from disk, refusing missing, unreadable or oversized files with a `MidiError`."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except OSError as err:
        raise MidiError(name, f"cannot open the file ({err.strerror or err}); check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise MidiError(name, "is a directory, not a MIDI file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device (/dev/zero) would block or never end
        raise MidiError(name, "is not a regular file (a device, pipe or socket)")
    if info.st_size > limits.max_bytes:
        raise MidiError(name, f"file is {info.st_size} bytes, over the limit of {limits.max_bytes} bytes")
    try:
        with open(name, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)  # bounded even if the file grew after stat
    except OSError as err:
        raise MidiError(name, f"cannot read the file ({err.strerror or err})") from None
    if len(data) > limits.max_bytes:
        raise MidiError(name, f"file is over the limit of {limits.max_bytes} bytes")
    return data


def standard_midi_bytes(data: bytes, name: str) -> bytes:
    """`data` as a plain Standard MIDI File: the MIDI inside a RIFF RMID wrapper (.rmi), and a header longer than 6
    bytes cut to 6 (the standard tells readers to skip the extra bytes; the parser refuses them). Other bytes as
    they are, for `check_midi_bytes` to judge."""
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        data = _rmid_data(data, name)
    if data[:4] == b"MThd" and len(data) >= 8:
        (header_len,) = struct.unpack(">I", data[4:8])
        if 6 < header_len <= len(data) - 8:
            data = b"MThd" + struct.pack(">I", 6) + data[8:14] + data[8 + header_len :]
    return data


def _rmid_data(data: bytes, name: str) -> bytes:
    """The 'data' chunk of a RIFF RMID file, which holds a Standard MIDI File."""
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if kind == b"data":
            inner = data[offset + 8 : offset + 8 + size]
            if len(inner) < size:
                raise MidiError(
                    name, f"RIFF 'data' chunk is truncated: it declares {size} bytes but {len(inner)} remain"
                )
            return inner
        offset += 8 + size + (size & 1)  # RIFF chunks are padded to an even length
    raise MidiError(name, "RIFF RMID file has no 'data' chunk holding the MIDI")


def check_midi_bytes(data: bytes, name: str, limits: MidiLimits = DEFAULT_LIMITS) -> None:
    """Structural checks on raw Standard MIDI File bytes, cheap and before the native parser sees them.

    Catches: not MIDI, empty, bad header, SMPTE or zero division, more tracks claimed than the file could hold,
    chunks whose declared length runs past the end of the file (truncated tracks).
    """
    if len(data) == 0:
        raise MidiError(name, "file is empty")
    if len(data) > limits.max_bytes:
        raise MidiError(name, f"file is {len(data)} bytes, over the limit of {limits.max_bytes} bytes")
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        raise MidiError(name, "RIFF-wrapped MIDI (.rmi): unwrap it with `standard_midi_bytes` first")
    if data[:4] != b"MThd":
        raise MidiError(name, "not a Standard MIDI File (it does not start with 'MThd')")
    if len(data) < 14:
        raise MidiError(name, f"file is only {len(data)} bytes, too short for a MIDI header (14 bytes)")
    header_len, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if header_len < 6:
        raise MidiError(name, f"MIDI header length is {header_len}, expected 6")
    if fmt > 2:
        raise MidiError(name, f"unknown MIDI format {fmt} (expected 0, 1 or 2)")
    if division & 0x8000:
        raise MidiError(name, "SMPTE time division is not supported: re-export the file with ticks per quarter note")
    if division == 0:
        raise MidiError(name, "time division is 0 ticks per quarter note")
    if ntracks == 0:
        raise MidiError(name, "the header declares no tracks")
    if ntracks > limits.max_tracks:
        raise MidiError(name, f"the header declares {ntracks} tracks, over the limit of {limits.max_tracks}")
    body = len(data) - 8 - header_len
    if ntracks * 8 > body:
        raise MidiError(name, f"the header declares {ntracks} tracks but the file has room for at most {body // 8}")
    offset, found = 8 + header_len, 0
    while offset + 8 <= len(data) and found < ntracks:
        chunk_type = data[offset : offset + 4]
        (length,) = struct.unpack(">I", data[offset + 4 : offset + 8])
        if offset + 8 + length > len(data):
            what = f"track {found + 1}" if chunk_type == b"MTrk" else f"chunk {chunk_type!r}"
            raise MidiError(
                name,
                f"{what} is truncated: it declares {length} bytes but only {len(data) - offset - 8} remain",
            )
        found += chunk_type == b"MTrk"
        offset += 8 + length
    if found < ntracks:
        raise MidiError(name, f"the header declares {ntracks} tracks but only {found} track chunks were found")


def prepare_midi_bytes(
    data: bytes, name: str, limits: MidiLimits = DEFAULT_LIMITS, sustain_pedal: bool = False
) -> bytes:
    """MIDI bytes as symusic should parse them: a plain Standard MIDI File, structurally checked, its tracks'
    lengths counted exactly where 32-bit ticks could wrap, the sustain pedal applied per channel if asked, and notes
    never switched off kept (`release_held_notes` ends them with their track after parsing). `MidiError` if bad."""
    data = standard_midi_bytes(data, name)
    check_midi_bytes(data, name, limits)
    bound, channels = byte_facts(data)
    try:
        longest = check_track_lengths(data, limits.max_quarters) if bound >= HELD_OFFSET else None
        if sustain_pedal:
            data = sustain_per_channel(data)
    except EventError as err:
        raise MidiError(name, str(err)) from None
    if longest is None or longest < HELD_OFFSET:  # longer tracks (very high resolutions) would wrap past 2**31 ticks
        data = close_held_notes(data, channels)
    return data


def _address_space_in_use() -> int:
    """Bytes of address space this process maps now (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _parse_midi(data: bytes, name: str) -> symusic.Score:
    """Parse MIDI bytes; run in the child process of safe mode."""
    try:
        return symusic.Score.from_midi(data)
    except MemoryError:
        raise  # safe mode reports it as running out of memory
    except Exception as err:
        if "bad_alloc" in str(err):  # the C++ parser's own out-of-memory
            raise MemoryError(str(err)) from None
        raise MidiError(name, f"cannot be parsed as MIDI ({err})") from None


def _child_run(fn: Any, args: tuple, name: str, memory_bytes: int, conn: Any) -> None:
    """Child-process body of safe mode: run `fn(*args)` under an address-space limit, send back its result or error."""
    try:
        import resource  # optional: Unix only (ImportError below: no limit elsewhere)

        # The limit is on top of what the forked child already maps: a parent that loaded torch/CUDA can map
        # many GB of address space, and an absolute limit below that would fail every parse.
        limit = _address_space_in_use() + memory_bytes
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass
    try:
        conn.send(("ok", fn(*args)))
    except MemoryError:
        conn.send(("error", "parsing ran out of memory"))
    except MidiError as err:
        conn.send(("error", err.problem))
    except Exception as err:
        conn.send(("error", f"the parser failed ({type(err).__name__}: {err})"))
    finally:
        conn.close()


def run_limited(fn: Any, args: tuple, name: str, limits: MidiLimits = DEFAULT_LIMITS) -> Any:
    """`fn(*args)` in a forked child with the time and memory limits of `limits`; a crash or hang is a MidiError.

    `fn` must be a module-level function whose result pickles; a `MidiError` it raises keeps its problem text.
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_run, args=(fn, args, name, limits.memory_bytes, sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.timeout_s):
            raise MidiError(name, f"parsing did not finish within {limits.timeout_s:g} s")
        status, payload = receiver.recv()
    except EOFError:
        child.join(5)
        raise MidiError(name, f"the parser crashed (exit code {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receiver.close()
    if status != "ok":
        raise MidiError(name, payload)
    return payload


def _music21() -> Any:
    """The music21 module, or an ImportError that says how to get it (imported lazily: it is slow to import)."""
    try:
        import music21  # start-up: music21 takes ~1 s to import, and only scores and its corpus need it
    except ImportError as err:  # an import inside try/except also keeps transformers' remote-code check optional
        raise ImportError("music21 is needed to read music21 streams and its corpus: pip install music21") from err
    return music21


def _music21_to_bytes(stream: Any, name: str) -> bytes:
    stream_to_midi = _music21().midi.translate.streamToMidiFile
    try:
        return stream_to_midi(stream).writestr()
    except Exception as err:
        if "repeat" not in str(err).lower():
            raise MidiError(name, f"music21 could not export the stream to MIDI ({err})") from None
        first_error = err
    try:  # badly formed repeats (common in the corpus): play the score through once, as written
        return stream_to_midi(_without_repeats(stream)).writestr()
    except Exception:
        raise MidiError(name, f"music21 could not export the stream to MIDI ({first_error})") from None


def _without_repeats(stream: Any) -> Any:
    """A copy of a music21 stream with repeat barlines and repeat expressions removed."""
    music21 = _music21()
    plain = copy.deepcopy(stream)
    for mark in list(plain.recurse().getElementsByClass((music21.bar.Repeat, music21.repeat.RepeatMark))):
        mark.activeSite.remove(mark)
    return plain


def load_score(
    src: MidiSource,
    *,
    name: str | None = None,
    safe: bool = False,
    limits: MidiLimits = DEFAULT_LIMITS,
    sustain_pedal: bool = False,
) -> symusic.Score:
    """Read `src` (path, bytes, `symusic.Score` or music21 stream) into a validated `symusic.Score` in ticks.

    Raises `MidiError` (a `ValueError`) naming the file and the problem. `safe=True` parses in a child process.
    Notes never switched off last to the end of their track (a `HeldNotesWarning` counts them). With
    `sustain_pedal=True` a note released while the sustain pedal (CC 64) of its channel is down lasts until the pedal
    comes up, in whichever track the pedal is (a `symusic.Score` given as it is keeps no channels: per track).
    """
    name = name or source_name(src)
    held = 0
    if isinstance(src, symusic.Score):
        score = src if src.ttype == "Tick" or str(src.ttype) == "Tick" else src.to("tick")
        if sustain_pedal:
            score = _sustained_per_track(score)
    else:
        if isinstance(src, (str, os.PathLike)):
            data = read_midi_bytes(src, limits)
        elif isinstance(src, (bytes, bytearray, memoryview)):
            data = bytes(src)
        elif hasattr(src, "flatten") or hasattr(src, "recurse"):
            data = _music21_to_bytes(src, name)
        else:
            raise TypeError(
                f"cannot read MIDI from {type(src).__name__}: pass a path, bytes, a symusic.Score or a music21 stream"
            )
        data = prepare_midi_bytes(data, name, limits, sustain_pedal)
        score = run_limited(_parse_midi, (bytes(data), name), name, limits) if safe else _parse_midi(bytes(data), name)
        held = release_held_notes(score)
    check_score(score, name, limits)
    if held:
        warnings.warn(f"{name}: {held} note(s) never switched off, held to the end of their track", HeldNotesWarning)
    return score


def check_score(score: symusic.Score, name: str, limits: MidiLimits = DEFAULT_LIMITS) -> None:
    """Semantic checks on a parsed score: resolution, tempos, total length and note count."""
    if score.tpq <= 0:
        raise MidiError(name, f"resolution is {score.tpq} ticks per quarter note")
    for tempo in score.tempos:
        if tempo.mspq <= 0:
            raise MidiError(name, f"tempo at tick {tempo.time} is zero microseconds per quarter note")
        if not limits.min_qpm <= tempo.qpm <= limits.max_qpm:
            raise MidiError(
                name,
                f"tempo at tick {tempo.time} is {tempo.qpm:.6g} quarter notes per minute, "
                f"outside [{limits.min_qpm:g}, {limits.max_qpm:g}]",
            )
    # symusic sums delta times in int32: a few huge deltas wrap around to negative times (or an end before the
    # start), which would slip past the length cap below and then break tokenization.
    if score.start() < 0 or score.end() < score.start():
        raise MidiError(
            name, f"event times overflow (start tick {score.start()}, end tick {score.end()}; corrupt delta time?)"
        )
    quarters = score.end() / score.tpq
    if quarters > limits.max_quarters:
        raise MidiError(
            name, f"lasts {quarters:.0f} quarter notes, over the limit of {limits.max_quarters} (corrupt delta time?)"
        )
    notes = score.note_num()
    if notes > limits.max_notes:
        raise MidiError(name, f"has {notes} notes, over the limit of {limits.max_notes}")


def score_meta(score: symusic.Score) -> ScoreMeta:
    """The tempo and time signature in effect at the start of `score` (defaults: 120 bpm, 4/4). Of several events
    at the earliest tick the last one counts, as when the file plays: files often set a default and then the real one.
    A time signature no MIDI file can carry (0/4, 4/0, 4/3) counts as absent."""
    tempo = _first_in_effect(score.tempos)
    qpm = round(float(tempo.qpm), 3) if tempo is not None else 120.0
    signatures = [ts for ts in score.time_signatures if valid_time_signature(int(ts.numerator), int(ts.denominator))]
    signature = _first_in_effect(signatures)
    time_signature = (int(signature.numerator), int(signature.denominator)) if signature is not None else (4, 4)
    return ScoreMeta(qpm=qpm, time_signature=time_signature)


def _first_in_effect(events: Any) -> Any:
    """The last of the events at the earliest time (None if there are none)."""
    if not len(events):
        return None
    earliest = min(event.time for event in events)
    return [event for event in events if event.time == earliest][-1]


def sustain_ends(start: np.ndarray, end: np.ndarray, pedals: Any) -> np.ndarray:
    """Note ends with the sustain pedal applied: a note released while the pedal is down sounds until it comes up."""
    if not len(pedals) or not len(end):
        return end
    arrays = pedals.numpy()
    order = np.argsort(arrays["time"], kind="stable")
    down = arrays["time"][order].astype(np.int64)
    up = down + arrays["duration"][order].astype(np.int64)
    up = np.maximum.accumulate(up)  # overlapping pedal spans (rare, malformed) act as one
    last = np.maximum(np.searchsorted(down, end, side="right") - 1, 0)  # the last pedal pressed by each release
    held = (down[last] <= end) & (end < up[last])
    return np.where(held, up[last], end)


def _sustained_per_track(score: symusic.Score) -> symusic.Score:
    """A copy of `score` whose notes last while their track's sustain pedal holds them (`sustain_ends`)."""
    score = score.copy()
    for track in score.tracks:
        notes = track.notes.numpy()
        start = notes["time"].astype(np.int64)
        end = sustain_ends(start, start + notes["duration"], track.pedals)
        track.notes = symusic.Note.from_numpy(
            time=notes["time"], duration=(end - start).astype(np.int32), pitch=notes["pitch"], velocity=notes["velocity"]
        )
    return score


def score_notes(score: symusic.Score, *, drop_drums: bool = True, merge_tracks: bool = True) -> list[NoteArrays]:
    """Notes of `score` in ticks: one `NoteArrays` for all pitched tracks merged, or one per track.

    Drum tracks (channel 10) are dropped unless `drop_drums=False`. (The sustain pedal is `load_score`'s.)
    """
    per_track = []
    for track in score.tracks:
        if drop_drums and track.is_drum:
            continue
        arrays = track.notes.numpy()
        start = arrays["time"].astype(np.int64)
        end = start + arrays["duration"].astype(np.int64)
        per_track.append(NoteArrays(start, end, arrays["pitch"].astype(np.int64), score.tpq))
    return per_track if not merge_tracks else [NoteArrays.merge(per_track, score.tpq)]


# ---------------------------------------------------------------------------------------------------- writing


def build_score(
    tracks: list[tuple[NoteArrays, str, int]],
    meta: ScoreMeta = ScoreMeta(),
    velocity: int = 80,
) -> symusic.Score:
    """A `symusic.Score` from `(notes, track name, GM program)` triples, with the tempo and time signature of `meta`."""
    tpq = tracks[0][0].tpq if tracks else 480
    score = symusic.Score(tpq)
    score.tempos.append(symusic.Tempo(0, float(meta.qpm)))
    score.time_signatures.append(symusic.TimeSignature(0, int(meta.time_signature[0]), int(meta.time_signature[1])))
    for notes, track_name, program in tracks:
        if notes.tpq != tpq:
            raise ValueError(f"all tracks must share one resolution, got {notes.tpq} and {tpq} ticks per quarter")
        track = symusic.Track(name=track_name, program=program, is_drum=False)
        order = np.lexsort((notes.pitch, notes.start))
        track.notes = symusic.Note.from_numpy(
            time=notes.start[order].astype(np.int32),
            duration=(notes.end - notes.start)[order].astype(np.int32),
            pitch=notes.pitch[order].astype(np.int8),
            velocity=np.full(len(notes), velocity, dtype=np.int8),
        )
        score.tracks.append(track)
    return score


def save_score(score: symusic.Score, path: str | os.PathLike) -> Path:
    """Write `score` as a Standard MIDI File, creating parent folders; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


def music21_corpus_midi(work: str) -> bytes:
    """MIDI bytes of a work of music21's bundled corpus, e.g. ``"bach/bwv66.6"``; a clear error if it is unknown.

    A collection (an Opus, such as an Essen folk-song file) yields its first piece; ``"essenFolksong/altdeu10#3"``
    picks the third.
    """
    music21 = _music21()
    path, _, number = work.partition("#")
    name = f"corpus:{work}"
    try:
        parsed = music21.corpus.parse(path, number=int(number)) if number else music21.corpus.parse(path)
    except Exception as err:
        raise MidiError(name, f"not found in music21's bundled corpus ({err})") from None
    if isinstance(parsed, music21.stream.Opus):
        if not parsed.scores:
            raise MidiError(name, "this corpus collection holds no pieces")
        parsed = parsed.scores[0]
    return _music21_to_bytes(parsed, name)


__all__ = [
    "DEFAULT_LIMITS",
    "HeldNotesWarning",
    "MidiError",
    "MidiLimits",
    "MidiSource",
    "NoteArrays",
    "ScoreMeta",
    "build_score",
    "check_midi_bytes",
    "check_score",
    "load_score",
    "music21_corpus_midi",
    "prepare_midi_bytes",
    "read_midi_bytes",
    "run_limited",
    "save_score",
    "score_meta",
    "score_notes",
    "source_name",
    "sustain_ends",
]
