"""Mutation fuzz: real MIDI files with bytes flipped, inserted, deleted, truncated or overwritten.

Every mutant must either tokenize into in-vocabulary tokens, within the length cap, or raise `MidiError`; any other
exception fails, and a native crash would kill pytest. The fuzz runs in-process (not safe mode) on purpose: a
pre-release hunt of 200,000 such mutants straight through symusic 0.6 found no crash or hang (slowest parse
0.6 ms), so there is no known crashing input to guard against.

Two mutators: raw mutations of the whole file (mostly caught by the structural checks of `check_midi_bytes`), and
mutations inside one track's events with chunk lengths repaired afterwards, which reach symusic's event parser and
the semantic checks (tempos, delta-time overflow, length cap).
"""

from __future__ import annotations

import struct
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toccata.tokenization import MidiError, MidiLimits, NotewiseTokenizer
from toccata.tokenization.midi_io import DEFAULT_LIMITS, music21_corpus_midi

WORKS = ["bach/bwv66.6", "bach/bwv7.7", "schoenberg/opus19/movement2", "joplin/maple_leaf_rag"]
EXAMPLES_PER_WORK = 1000  # x 4 works x 2 mutators = 8,000 mutants, about 20 s on two cores

TOKENIZER = NotewiseTokenizer()
VOCAB = set(TOKENIZER.get_vocab())
# Each note gives one note-on and one note-off and can be preceded by one short wait; the rest of the waits are
# full-length (max_wait steps) and there are at most max_quarters * steps_per_quarter steps in a piece.
MAX_LONG_WAITS = DEFAULT_LIMITS.max_quarters * TOKENIZER.steps_per_quarter // TOKENIZER.max_wait + 1

INTERESTING = [b"\x00", b"\x7f", b"\x80", b"\xff", b"\xff\x2f\x00", b"\xff\x51\x03", b"\xf0", b"\xf7",
               b"\x8f\xff\xff\x7f", b"\x90\x3c\x00", b"\xff\x01\xff\xff\xff\x7f", b"\xf0\xff\xff\xff\x7f"]

position = st.integers(0, 2**31)
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(0, 7)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), position, st.integers(1, 64)),
    st.tuples(st.just("truncate"), position, st.none()),
    st.tuples(st.just("overwrite"), position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), position, st.sampled_from(INTERESTING)),
    st.tuples(st.just("overwrite"), position, st.sampled_from(INTERESTING)),
)
mutations = st.lists(mutation, min_size=1, max_size=6)


@lru_cache(maxsize=None)
def seed(work: str) -> bytes:
    return music21_corpus_midi(work)


def mutate(data: bytes, edits: list[tuple]) -> bytes:
    out = bytearray(data)
    for op, pos, arg in edits:
        i = pos % (len(out) + 1)
        if op == "flip" and i < len(out):
            out[i] ^= 1 << arg
        elif op == "insert":
            out[i:i] = arg
        elif op == "delete":
            del out[i : i + arg]
        elif op == "truncate":
            del out[i:]
        elif op == "overwrite":
            out[i : i + len(arg)] = arg
    return bytes(out)


def split_chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header chunk and the track bodies of a well-formed file."""
    (header_len,) = struct.unpack(">I", data[4:8])
    offset, bodies = 8 + header_len, []
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset + 4 : offset + 8])
        bodies.append(data[offset + 8 : offset + 8 + length])
        offset += 8 + length
    return data[: 8 + header_len], bodies


def mutate_one_track(data: bytes, track: int, edits: list[tuple]) -> bytes:
    """Mutate the events of one track and rewrite every chunk length to match, so the file stays structurally sound."""
    header, bodies = split_chunks(data)
    k = track % len(bodies)
    bodies[k] = mutate(bodies[k], edits)
    return header + b"".join(b"MTrk" + struct.pack(">I", len(b)) + b for b in bodies)


def tokenize_or_midi_error(data: bytes) -> None:
    try:
        tokens = TOKENIZER.midi_to_tokens(data)
    except MidiError as err:
        assert str(err).startswith(f"<{len(data)} bytes of MIDI>: ") and err.problem
        return
    assert set(tokens) <= VOCAB
    notes = sum(t.startswith("p") for t in tokens)
    assert len(tokens) <= 3 * notes + MAX_LONG_WAITS  # the length cap held


def test_seeds_tokenize_and_split_cleanly():
    for work in WORKS:
        data = seed(work)
        header, bodies = split_chunks(data)
        assert header + b"".join(b"MTrk" + struct.pack(">I", len(b)) + b for b in bodies) == data
        assert len(TOKENIZER.midi_to_tokens(data)) > 100


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_WORK, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@pytest.mark.parametrize("work", WORKS)
@FUZZ_SETTINGS
@given(edits=mutations)
def test_raw_mutants_tokenize_or_raise_midi_error(work, edits):
    tokenize_or_midi_error(mutate(seed(work), edits))


@pytest.mark.parametrize("work", WORKS)
@FUZZ_SETTINGS
@given(track=st.integers(0, 63), edits=mutations)
def test_track_event_mutants_tokenize_or_raise_midi_error(work, track, edits):
    tokenize_or_midi_error(mutate_one_track(seed(work), track, edits))


@settings(max_examples=300, deadline=None, database=None)
@given(
    deltas=st.lists(st.sampled_from([0, 1, 480, 0x0FFFFFF0, 0x0FFFFFFF]), min_size=1, max_size=24),
    pitch=st.integers(0, 127),
)
def test_huge_delta_times_never_slip_past_the_caps(deltas, pitch):
    """Runs of maximal delta times overflow symusic's int32 tick counter; the result is bounded or a MidiError."""
    body = b"".join(
        bytes([(d >> s) & 0x7F | (0x80 if s else 0) for s in (21, 14, 7, 0) if d >> s or s == 0]) + b"\xff\x01\x00"
        for d in deltas
    )
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    track = body + bytes([0x00, 0x90, pitch, 64, 0x83, 0x60, 0x80, pitch, 0, 0x00, 0xFF, 0x2F, 0x00])
    data += b"MTrk" + struct.pack(">I", len(track)) + track
    tokenize_or_midi_error(data)
    try:
        TOKENIZER.midi_to_tokens(data, limits=MidiLimits(max_quarters=100))
    except MidiError:
        pass
