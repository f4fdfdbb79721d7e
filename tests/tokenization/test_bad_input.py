"""Malformed MIDI never crashes or hangs the tokenizer: each case is a `MidiError` naming the file and the problem.

The files are written byte by byte with the tiny SMF writer below, so every case is exactly the defect it names.
Each comment says what symusic 0.6 does natively with the same bytes (checked by hand), to show which defects
`midi_io` catches itself and which it leaves to the parser.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys

import numpy as np
import pytest

from support.midi_files import END_OF_TRACK, chunk, smf, vlq
from toccata.tokenization import MidiError, MidiLimits, NotewiseTokenizer, load_score
from toccata.tokenization.midi_io import music21_corpus_midi, score_notes

# ---------------------------------------------------------------------------------------------------- SMF files


def note(pitch: int = 60, duration: int = 480, delta: int = 0) -> bytes:
    """Note-on after `delta` ticks, note-off `duration` ticks later (channel 1)."""
    return vlq(delta) + bytes([0x90, pitch, 80]) + vlq(duration) + bytes([0x80, pitch, 0])


def tempo(mspq: int) -> bytes:
    """Set-tempo meta event at delta 0: FF 51 03 and 24 bits of microseconds per quarter note."""
    return b"\x00\xff\x51\x03" + mspq.to_bytes(3, "big")


GOOD = smf([tempo(500_000) + note() + END_OF_TRACK])  # one quarter-note middle C at 120 bpm
GOOD_TOKENS = ["p60", "wait12", "endp60"]


def many_notes(n: int) -> bytes:
    """A valid one-track file of `n` short notes (about 8 bytes each)."""
    return smf([b"".join(note(48 + i % 36, 10) for i in range(n)) + END_OF_TRACK])


# ---------------------------------------------------------------------------------------------------- cases

# (id, bytes, phrase expected in the error). Native symusic behaviour on the same bytes in the comment.
DELTA_SUM = "its delta times add up to more than 24000000 ticks"
BAD_BYTES = [
    # symusic: RuntimeError "File header is not MThd"
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(20), "not a Standard MIDI File"),
    ("text", b"this is a text file, not a MIDI file\n", "not a Standard MIDI File"),
    # symusic: RuntimeError "File size is less than 14"
    ("empty", b"", "file is empty"),
    ("only_mthd", b"MThd", "too short for a MIDI header"),
    ("header_cut", GOOD[:10], "too short for a MIDI header"),
    # symusic: RuntimeError "Invalid chunk length 1000 (remaining bytes ...)"
    (
        "truncated_track",
        chunk(b"MThd", struct.pack(">HHH", 0, 1, 480)) + chunk(b"MTrk", note() + END_OF_TRACK, length=1000),
        "truncated: it declares 1000 bytes",
    ),
    ("truncated_file", GOOD[:-3], "truncated"),
    # symusic: RuntimeError "Unexpected running status! ... previous event length is 0". A data byte (0x3C) where
    # the first status byte should be; no real file does this, so symusic's refusal (wrapped by midi_io) is right.
    (
        "running_status_without_status",
        smf([b"\x00\x3c\x50" + vlq(480) + b"\x80\x3c\x00" + END_OF_TRACK]),
        "cannot be parsed as MIDI",
    ),
    # symusic: RuntimeError "Division type is not ticks per quarter!" (midi_io explains what to do instead)
    ("smpte_division", smf([note() + END_OF_TRACK], division=0xE728), "SMPTE time division is not supported"),
    # symusic: parses "successfully" into a Score with tpq=0 (every tick -> quarter conversion divides by zero)
    ("division_zero", smf([note() + END_OF_TRACK], division=0), "time division is 0"),
    # symusic: parses into a tempo of 0 microseconds per quarter (infinite bpm)
    ("tempo_zero", smf([tempo(0) + note() + END_OF_TRACK]), "zero microseconds per quarter note"),
    # symusic: parses into a tempo of 60,000,000 bpm
    ("tempo_one_microsecond", smf([tempo(1) + note() + END_OF_TRACK]), "quarter notes per minute"),
    # symusic: parses the one track that is there and ignores the claim of 65,535 tracks
    ("65535_tracks", smf([note() + END_OF_TRACK], ntracks=65535), "declares 65535 tracks"),
    ("missing_track_chunks", smf([note() + END_OF_TRACK], ntracks=3), "room for at most"),
    ("no_tracks", smf([], ntracks=0), "declares no tracks"),
    ("format_3", smf([note() + END_OF_TRACK], fmt=3), "unknown MIDI format 3"),
    ("riff_data_cut", b"RIFF" + struct.pack("<I", 4) + b"RMIDdata" + struct.pack("<I", 999) + GOOD, "is truncated"),
    # symusic: parses a 38-byte file into a note at tick 268,435,455 (559,242 quarter notes, ~78 hours at 120 bpm);
    # tokenizing that would make ~140,000 wait tokens, so the length cap rejects it before any token is made.
    ("max_delta_time", smf([note(delta=0x0FFFFFFF) + END_OF_TRACK]), "quarter notes, over the limit"),
    # symusic sums delta times in int32: 8 maximal deltas put the note at tick 2,147,483,640 and the end of the
    # score wraps to a negative tick, which slipped past the length cap (and 9 deltas gave a numpy ValueError in
    # the tokenizer) before midi_io checked for it. midi_io now adds the delta times up itself where they could
    # wrap (their bytes bound the sum), and refuses the track that is too long.
    ("delta_overflow_8", smf([(vlq(0x0FFFFFFF) + b"\xff\x01\x00") * 8 + note() + END_OF_TRACK]), DELTA_SUM),
    ("delta_overflow_9", smf([(vlq(0x0FFFFFFF) + b"\xff\x01\x00") * 9 + note() + END_OF_TRACK]), DELTA_SUM),
    ("delta_overflow_16", smf([(vlq(0x0FFFFFFF) + b"\xff\x01\x00") * 16 + note() + END_OF_TRACK]), DELTA_SUM),
    # 16 maximal deltas and one of 16 add up to 2**32 ticks: symusic wraps the note back to tick 0, an ordinary
    # short file that passed every check on the parsed score. In a second track, as a sequencer might write it.
    (
        "delta_wrap_to_a_positive_tick",
        smf([note() + END_OF_TRACK, (vlq(0x0FFFFFFF) + b"\xff\x01\x00") * 16 + note(delta=16) + END_OF_TRACK]),
        "track 2 lasts over 50000 quarter notes",
    ),
]


@pytest.fixture(scope="module")
def tok() -> NotewiseTokenizer:
    return NotewiseTokenizer()


def test_the_writer_makes_files_that_tokenize(tok, tmp_path):
    """The control: a file made by the same writer tokenizes, from bytes, a path and in safe mode."""
    path = tmp_path / "good.mid"
    path.write_bytes(GOOD)
    assert tok.midi_to_tokens(GOOD) == GOOD_TOKENS
    assert tok.midi_to_tokens(path) == GOOD_TOKENS
    assert tok.midi_to_tokens(str(path), safe=True) == GOOD_TOKENS
    # Running status (a repeated status byte left out) is legal MIDI and must keep working.
    running = smf([b"\x00\x90\x3c\x50" + vlq(480) + b"\x3c\x00" + b"\x00\x3e\x50" + vlq(480) + b"\x3e\x00"])
    assert tok.midi_to_tokens(running) == ["p60", "wait12", "endp60", "p62", "wait12", "endp62"]


def wrapped_and_long_header() -> dict[str, bytes]:
    """GOOD as a RIFF RMID file (.rmi, an odd-length chunk before 'data'), and with an 8-byte header: both legal."""
    rmid = b"RMID" + b"LIST" + struct.pack("<I", 5) + b"INFOx\0" + b"data" + struct.pack("<I", len(GOOD)) + GOOD
    return {
        "wrapped.rmi": b"RIFF" + struct.pack("<I", len(rmid)) + rmid,
        "long_header.mid": b"MThd" + struct.pack(">I", 8) + GOOD[8:14] + b"\x00\x00" + GOOD[14:],
    }


@pytest.mark.parametrize("safe", [False, True], ids=["inprocess", "safe"])
@pytest.mark.parametrize("name", ["wrapped.rmi", "long_header.mid"])
def test_riff_wrapped_files_and_longer_headers_read_as_the_plain_file(tok, tmp_path, name, safe):
    """Both are in the standard (readers skip a header's extra bytes); the native parser refuses both."""
    path = tmp_path / name
    path.write_bytes(wrapped_and_long_header()[name])
    assert tok.midi_to_tokens(path, safe=safe) == GOOD_TOKENS
    assert tok.midi_to_tokens(path.read_bytes(), safe=safe) == GOOD_TOKENS


@pytest.mark.parametrize("safe", [False, True], ids=["inprocess", "safe"])
@pytest.mark.parametrize("case_id, data, phrase", BAD_BYTES, ids=[c[0] for c in BAD_BYTES])
def test_bad_bytes_raise_midi_error_naming_the_problem(tok, case_id, data, phrase, safe):
    with pytest.raises(MidiError) as info:
        tok.midi_to_tokens(data, safe=safe)
    assert isinstance(info.value, ValueError)
    assert phrase in str(info.value)
    assert str(info.value).startswith(f"<{len(data)} bytes of MIDI>: ")


@pytest.mark.parametrize("case_id, data, phrase", BAD_BYTES, ids=[c[0] for c in BAD_BYTES])
def test_bad_files_raise_midi_error_naming_the_file(tok, tmp_path, case_id, data, phrase):
    path = tmp_path / f"{case_id}.mid"
    path.write_bytes(data)
    for src in (path, str(path)):
        with pytest.raises(MidiError) as info:
            tok.midi_to_tokens(src)
        message = str(info.value)
        assert f"{case_id}.mid" in message and phrase in message, message
        assert info.value.name == str(path)
    with pytest.raises(MidiError, match=phrase.replace("(", r"\(")):
        tok.midi_to_tokens(path, safe=True)


def test_max_delta_time_is_refused_by_the_length_cap_not_tokenized(tok):
    """The cap sits in `load_score`, before tokenization: a tighter cap rejects a shorter file the same way."""
    with pytest.raises(MidiError, match="lasts 559242 quarter notes"):
        load_score(smf([note(delta=0x0FFFFFFF) + END_OF_TRACK]))
    ten_quarters = smf([note(delta=10 * 480) + END_OF_TRACK])
    assert len(tok.midi_to_tokens(ten_quarters)) == 6  # wait48 wait48 wait24 p60 wait12 endp60
    with pytest.raises(MidiError, match="lasts 11 quarter notes, over the limit of 5"):
        tok.midi_to_tokens(ten_quarters, limits=MidiLimits(max_quarters=5))


def test_missing_file_names_the_path(tok, tmp_path):
    path = tmp_path / "nowhere" / "missing.mid"
    with pytest.raises(MidiError, match=r"missing\.mid: cannot open the file \(No such file or directory\)"):
        tok.midi_to_tokens(path)
    with pytest.raises(MidiError, match="missing.mid"):
        tok.midi_to_tokens(str(path), safe=True)


def test_directory_is_refused(tok, tmp_path):
    # Before the fix, os.path.getsize accepted the directory and open() raised IsADirectoryError.
    folder = tmp_path / "songs.mid"
    folder.mkdir()
    with pytest.raises(MidiError, match=r"songs\.mid: is a directory, not a MIDI file"):
        tok.midi_to_tokens(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_refused_without_blocking(tok, tmp_path):
    # Before the fix, open() on a FIFO with no writer blocked forever (and /dev/zero would be read forever).
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    with pytest.raises(MidiError, match=r"pipe\.mid: is not a regular file"):
        tok.midi_to_tokens(fifo)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_device_is_refused(tok):
    with pytest.raises(MidiError, match="/dev/zero: is not a regular file"):
        tok.midi_to_tokens("/dev/zero")


def test_oversized_file_and_bytes_are_refused_before_parsing(tok, tmp_path):
    limits = MidiLimits(max_bytes=len(GOOD) - 1)
    path = tmp_path / "big.mid"
    path.write_bytes(GOOD)
    with pytest.raises(MidiError, match=rf"big\.mid: file is {len(GOOD)} bytes, over the limit of {len(GOOD) - 1}"):
        tok.midi_to_tokens(path, limits=limits)
    with pytest.raises(MidiError, match="over the limit"):
        tok.midi_to_tokens(GOOD, limits=limits, safe=True)
    assert tok.midi_to_tokens(path, limits=MidiLimits(max_bytes=len(GOOD))) == GOOD_TOKENS


def test_too_many_tracks_and_notes_against_tighter_limits(tok):
    two_tracks = smf([note() + END_OF_TRACK, note(64) + END_OF_TRACK])
    with pytest.raises(MidiError, match="declares 2 tracks, over the limit of 1"):
        tok.midi_to_tokens(two_tracks, limits=MidiLimits(max_tracks=1))
    with pytest.raises(MidiError, match="has 100 notes, over the limit of 99"):
        tok.midi_to_tokens(many_notes(100), limits=MidiLimits(max_notes=99))


# ---------------------------------------------------------------------------------------------------- safe mode


def _notes(score):
    (arrays,) = score_notes(score)
    return np.stack([arrays.start, arrays.end, arrays.pitch])


@pytest.mark.parametrize("source", ["writer", "bach/bwv66.6"])
def test_safe_mode_reads_the_same_notes(source):
    data = GOOD if source == "writer" else music21_corpus_midi(source)
    unsafe, safe = load_score(data), load_score(data, safe=True)
    assert safe.tpq == unsafe.tpq and len(safe.tempos) == len(unsafe.tempos)
    assert np.array_equal(_notes(safe), _notes(unsafe))
    assert len(_notes(safe)[0]) > 0


def test_safe_mode_timeout_becomes_midi_error():
    big = many_notes(200_000)  # 1.6 MB, parses in ~10 ms: far more than 0.1 ms including the fork
    with pytest.raises(MidiError, match=r"<\d+ bytes of MIDI>: parsing did not finish within 0.0001 s"):
        load_score(big, safe=True, limits=MidiLimits(timeout_s=0.0001))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_safe_mode_memory_limit_becomes_midi_error():
    # Four million notes (24 MB of MIDI): symusic needs one 48 MB array for them and pickling the score back to the
    # parent another ~80 MB, far more than the 1 MB allowed and more than the free heap the child inherits
    # (1,000,000 were not enough once the session had imported torch, transformers and datasets.) Running status, as
    # exporters write long files: with a status byte per event, the bytes could not rule out delta times adding up
    # past 32 bits, and the parent would count them exactly (a few seconds) before the child parses.
    on, off = vlq(0) + bytes([60, 80]), vlq(10) + bytes([60, 0])
    big = smf([vlq(0) + bytes([0x90, 60, 80]) + off + (on + off) * 3_999_999 + END_OF_TRACK])
    with pytest.raises(MidiError, match=rf"<{len(big)} bytes of MIDI>: parsing ran out of memory"):
        load_score(big, safe=True, limits=MidiLimits(memory_bytes=1 << 20))
    roomy = MidiLimits(memory_bytes=1 << 30, max_quarters=10**6, max_notes=10**7)
    assert load_score(big, safe=True, limits=roomy).note_num() == 4_000_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_safe_mode_limit_is_on_top_of_a_large_parent_address_space():
    """A process that initialised CUDA maps many GB; the child's limit must not count what it inherits.

    Before the fix, the child's address space was capped at `memory_bytes` in total, so with 3 GB mapped here
    every non-trivial file failed with 'parsing ran out of memory' under the default 2 GB limit.
    """
    try:  # 3 GB of untouched, read-only anonymous memory: address space, not RAM
        reserve = mmap.mmap(-1, 3 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=mmap.PROT_READ)
    except (OSError, OverflowError, ValueError) as err:
        pytest.skip(f"cannot map 3 GB of address space here: {err}")
    try:
        assert load_score(many_notes(20_000), safe=True).note_num() == 20_000
    finally:
        reserve.close()
