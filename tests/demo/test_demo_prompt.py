"""Demo uploads: checked before parsing, parsed in a sandboxed child, every failure a MidiError the user can act on."""

from __future__ import annotations

import struct
import time

import pytest
import symusic
from support.midi_files import END_OF_TRACK, smf
from toccata.demo.form import PromptChoice
from toccata.demo.prompt import MAX_UPLOAD_BYTES, corpus_midi, midi_payload, parse_untrusted, read_prompt, read_upload
from toccata.demo.sandbox import SandboxError, run_isolated
from toccata.tokenization.midi_io import MidiError

CHORALE = "bach/bwv66.6"


def rmid(data: bytes) -> bytes:
    """`data` wrapped as a RIFF RMID file (.rmi), with an info chunk before the data chunk."""
    info = b"LIST" + struct.pack("<I", 5) + b"INFO\x00\x00"  # odd size: padded to even
    body = b"RMID" + info + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_real_upload_is_parsed_in_the_sandbox(tmp_path):
    path = tmp_path / "chorale.mid"
    path.write_bytes(corpus_midi(CHORALE))
    prompt = read_prompt(PromptChoice(source="upload", upload=str(path), beats=8))
    assert prompt.score.note_num() == symusic.Score.from_midi(path.read_bytes()).note_num() > 100
    assert prompt.meta.qpm > 0 and prompt.label == "upload:chorale.mid"


def test_rmid_is_unwrapped_to_the_same_music():
    data = corpus_midi(CHORALE)
    assert midi_payload(rmid(data), "x.rmi") == data
    with pytest.raises(MidiError, match="no 'data' chunk"):
        midi_payload(b"RIFF" + struct.pack("<I", 4) + b"RMID", "empty.rmi")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"%PDF-1.4 not music at all" * 10, "not a MIDI file"),
        (b"", "the file is empty"),
        (smf([b"\x00\x90\x3c\x40\x60\x80\x3c\x40" + END_OF_TRACK])[:-6], "truncated"),
        (smf([END_OF_TRACK], ntracks=40), "declares 40 tracks"),
        (smf([END_OF_TRACK], division=0x8000 | 25 << 8 | 40), "SMPTE"),
    ],
)
def test_bad_bytes_are_refused_before_parsing(data, message):
    with pytest.raises(MidiError, match=message):
        midi_payload(data, "upload.mid")


def test_a_file_the_parser_rejects_is_a_midi_error_from_the_child():
    data = smf([b"\x00\x3c\x40" + END_OF_TRACK])  # running status with no status before it: passes the checks
    midi_payload(data, "x.mid")
    with pytest.raises(MidiError, match="x.mid: cannot be parsed as MIDI"):
        parse_untrusted(data, "x.mid")


def test_oversized_uploads_are_refused_without_reading_them_whole(tmp_path):
    path = tmp_path / "huge.mid"
    path.write_bytes(b"MThd" + b"\x00" * MAX_UPLOAD_BYTES)
    with pytest.raises(MidiError, match="over 4 MB"):
        read_upload(path)


def test_a_corpus_prompt_is_read_with_its_tempo():
    prompt = read_prompt(PromptChoice(source="corpus", work=CHORALE))
    assert prompt.score.note_num() > 100 and prompt.cli_argument == f"corpus:{CHORALE}"


def test_only_listed_corpus_works_are_accepted():
    with pytest.raises(ValueError, match="pick an excerpt"):
        PromptChoice(source="corpus", work="../../etc/passwd")


# The sandbox itself, with children that misbehave (tests/support/sandbox_targets.py).
HERE = "support.sandbox_targets:"
MB = 1024**2


def test_sandbox_returns_the_result():
    assert run_isolated(HERE + "allocate", b"16", timeout_s=30, memory_bytes=256 * MB) == str(16 * MB).encode()


def test_sandbox_stops_a_hang_in_time():
    start = time.monotonic()
    with pytest.raises(SandboxError, match="within 1 s"):
        run_isolated(HERE + "sleep_forever", b"", timeout_s=1, memory_bytes=256 * MB)
    assert time.monotonic() - start < 10


def test_sandbox_caps_memory():
    with pytest.raises(SandboxError, match="more than 256 MB"):
        run_isolated(HERE + "allocate", b"1024", timeout_s=30, memory_bytes=256 * MB)


def test_sandbox_survives_a_crashing_child():
    with pytest.raises(SandboxError, match="crashed"):
        run_isolated(HERE + "abort", b"", timeout_s=30, memory_bytes=256 * MB)
    assert run_isolated(HERE + "allocate", b"1", timeout_s=30, memory_bytes=256 * MB) == str(MB).encode()
