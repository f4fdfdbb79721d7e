"""Small builders shared by the tests: scores made in code, and note multisets to compare."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import struct

import symusic


def make_score(
    tracks: Iterable[Iterable[tuple[int, int, int]]],
    tpq: int = 480,
    drum_track: Iterable[tuple[int, int, int]] | None = None,
    qpm: float | None = None,
    time_signature: tuple[int, int] | None = None,
) -> symusic.Score:
    """A score from tracks of (start tick, end tick, pitch) triples; an optional drum track on channel 10."""
    score = symusic.Score(tpq)
    if qpm is not None:
        score.tempos.append(symusic.Tempo(0, qpm))
    if time_signature is not None:
        score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    all_tracks = [(notes, False) for notes in tracks]
    if drum_track is not None:
        all_tracks.append((drum_track, True))
    for i, (notes, is_drum) in enumerate(all_tracks):
        track = symusic.Track(name=f"track{i}", program=0, is_drum=is_drum)
        for start, end, pitch in notes:
            track.notes.append(symusic.Note(start, end - start, pitch, 90))
        score.tracks.append(track)
    return score


def note_multiset(score: symusic.Score, tpq: int | None = None, include_drums: bool = False) -> Counter:
    """Counter of (start, end, pitch) over the pitched tracks of `score`, rescaled to `tpq` ticks per quarter."""
    scale_to = tpq or score.tpq
    notes: Counter = Counter()
    for track in score.tracks:
        if track.is_drum and not include_drums:
            continue
        for note in track.notes:
            start = note.time * scale_to / score.tpq
            end = (note.time + note.duration) * scale_to / score.tpq
            notes[(start, end, note.pitch)] += 1
    return notes


# ---------------------------------------------------------------------------------------------------- SMF writer
# Raw Standard MIDI File bytes, so tests can make exactly the file they describe (good or broken).


def vlq(n: int) -> bytes:
    """MIDI variable-length quantity (7 bits a byte, high bit = more follows); at most 0x0FFFFFFF."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    """A chunk: 4-byte type, 32-bit big-endian length (the true one unless `length` lies), body."""
    return kind + struct.pack(">I", len(body) if length is None else length) + body


def smf(tracks: list[bytes], *, fmt: int | None = None, division: int = 480, ntracks: int | None = None) -> bytes:
    """A Standard MIDI File from raw track event bytes; header fields can be overridden to lie."""
    fmt = (0 if len(tracks) == 1 else 1) if fmt is None else fmt
    header = chunk(b"MThd", struct.pack(">HHH", fmt, len(tracks) if ntracks is None else ntracks, division))
    return header + b"".join(chunk(b"MTrk", t) for t in tracks)


END_OF_TRACK = b"\x00\xff\x2f\x00"
