"""Real-world MIDI is messy: several tracks and channels, tempo changes, pedals, drums, program changes, SysEx,
running status, note-on with velocity 0 as note-off, odd resolutions. Files written byte by byte, tokens by hand."""

from __future__ import annotations

import warnings

import pytest

from support.midi_files import END_OF_TRACK, smf, vlq
from toccata.tokenization import NotewiseTokenizer, ScoreMeta
from toccata.tokenization.midi_io import HeldNotesWarning

TOK = NotewiseTokenizer()
TPQ = 96  # 8 ticks per step


def ev(delta: int, *data: int) -> bytes:
    return vlq(delta) + bytes(data)


CONDUCTOR = (
    ev(0, 0xFF, 0x03, 5, *b"Messy")  # track name
    + ev(0, 0xFF, 0x58, 4, 3, 2, 24, 8)  # 3/4
    + ev(0, 0xFF, 0x51, 3, *(600_000).to_bytes(3, "big"))  # 100 bpm
    + ev(0, 0xFF, 0x06, 1, *b"A")  # marker
    + ev(192, 0xFF, 0x51, 3, *(428_571).to_bytes(3, "big"))  # 140 bpm from beat 3 on
    + END_OF_TRACK
)
PIANO = (  # channel 1
    ev(0, 0xC0, 0)  # program change: piano
    + ev(0, 0xF0, 3, 0x7E, 0x7F, 0xF7)  # a SysEx message
    + ev(0, 0xB0, 64, 127)  # sustain pedal down
    + ev(0, 0x90, 60, 80)  # C4 on
    + ev(0, 62, 70)  # D4 on, running status
    + ev(96, 60, 0)  # C4 off as note-on velocity 0, running status
    + ev(0, 62, 0)  # D4 off
    + ev(0, 0xB0, 64, 0)  # pedal up
    + ev(48, 0x90, 60, 90)  # C4 again at tick 144 (step 18)
    + ev(48, 0x80, 60, 64)  # off at tick 192 (step 24)
    + END_OF_TRACK
)
STRINGS = (  # channel 2, program 48; one note below the piano range, one off the grid
    ev(0, 0xC1, 48)
    + ev(0, 0x91, 12, 80)  # C0: folded up to C1 (24)
    + ev(48, 0x81, 12, 0)  # tick 48 (step 6)
    + ev(52, 0x91, 67, 80)  # tick 100 = step 12.5 -> 13
    + ev(40, 0x81, 67, 0)  # tick 140 = step 17.5 -> 18
    + ev(0, 0xE1, 0, 0x40)  # pitch bend
    + END_OF_TRACK
)
DRUMS = ev(0, 0x99, 36, 100) + ev(8, 0x89, 36, 0) + ev(40, 0x99, 42, 100) + ev(8, 0x89, 42, 0) + END_OF_TRACK
EXPECTED = (
    "p24 p60 p62 wait6 endp24 wait6 endp60 endp62 wait1 p67 wait5 endp67 p60 wait6 endp60"
).split()


def test_multitrack_file_with_pedal_tempo_changes_and_drums():
    data = smf([CONDUCTOR, PIANO, STRINGS, DRUMS], division=TPQ)
    encoding = TOK.encode_midi(data)
    assert encoding.tokens == EXPECTED
    assert encoding.meta == ScoreMeta(qpm=100.0, time_signature=(3, 4))


def test_format_0_file_with_all_channels_in_one_track():
    """The same music in one track: events of all channels interleaved in time order, as type-0 files have them."""
    events = [  # (absolute tick, status/data bytes)
        (0, (0xFF, 0x58, 4, 3, 2, 24, 8)),
        (0, (0xFF, 0x51, 3, *(600_000).to_bytes(3, "big"))),
        (0, (0x99, 36, 100)),
        (0, (0x91, 12, 80)),
        (0, (0x90, 60, 80)),
        (0, (0x90, 62, 70)),
        (8, (0x89, 36, 0)),
        (48, (0x81, 12, 0)),
        (96, (0x90, 60, 0)),
        (96, (0x90, 62, 0)),
        (100, (0x91, 67, 80)),
        (140, (0x81, 67, 0)),
        (144, (0x90, 60, 90)),
        (192, (0x80, 60, 64)),
    ]
    body, now = b"", 0
    for tick, data in events:
        body += ev(tick - now, *data)
        now = tick
    assert TOK.midi_to_tokens(smf([body + END_OF_TRACK], division=TPQ)) == EXPECTED


@pytest.mark.parametrize("tpq", [24, 100, 384, 480, 960, 1000, 15360])
def test_any_resolution_gives_the_same_tokens_for_the_same_music(tpq):
    """Quarter, eighth-note triplet and sixteenth at many resolutions, some not divisible by 12 (rounded)."""
    def at(quarters: float) -> int:
        return round(quarters * tpq)

    notes = [(0.0, 1.0, 60), (1.0, 1 + 1 / 3, 62), (1 + 1 / 3, 1 + 2 / 3, 64), (1 + 2 / 3, 2.0, 65), (2.0, 2.25, 67)]
    body, now = b"", 0
    for start, end, pitch in notes:
        body += ev(at(start) - now, 0x90, pitch, 80) + ev(at(end) - at(start), 0x80, pitch, 0)
        now = at(end)
    tokens = TOK.midi_to_tokens(smf([body + END_OF_TRACK], division=tpq))
    assert tokens == "p60 wait12 endp60 p62 wait4 endp62 p64 wait4 endp64 p65 wait4 endp65 p67 wait3 endp67".split()


def test_sustain_pedal_is_applied_only_when_asked():
    # Pedal down at 0, up at beat 2; C4 released at step 2 (under the pedal), re-struck at beat 1 (ends the first),
    # E4 released after the pedal is up (unchanged); the pedal on another channel leaves these notes alone.
    body = (
        ev(0, 0xB0, 64, 127)
        + ev(0, 0x90, 60, 80)
        + ev(16, 0x80, 60, 0)  # tick 16 = step 2, pedal down
        + ev(80, 0x90, 60, 80)  # tick 96 = beat 1: re-strike
        + ev(8, 0x80, 60, 0)  # released at step 13, under the pedal
        + ev(88, 0xB0, 64, 0)  # pedal up at tick 192 = beat 2
        + ev(0, 0x90, 64, 80)
        + ev(8, 0x80, 64, 0)
        + END_OF_TRACK
    )
    other_channel = ev(0, 0xB1, 64, 127) + ev(400, 0xB1, 64, 0) + END_OF_TRACK
    data = smf([body, other_channel], division=TPQ)
    assert TOK.midi_to_tokens(data) == "p60 wait2 endp60 wait10 p60 wait1 endp60 wait11 p64 wait1 endp64".split()
    with_pedal = NotewiseTokenizer(sustain_pedal=True)
    assert with_pedal.midi_to_tokens(data) == "p60 wait12 endp60 p60 wait12 endp60 p64 wait1 endp64".split()


def tempo_event(delta: int, qpm: int) -> bytes:
    return ev(delta, 0xFF, 0x51, 3, *round(60_000_000 / qpm).to_bytes(3, "big"))


def signature_event(delta: int, numerator: int, denominator_power: int) -> bytes:
    return ev(delta, 0xFF, 0x58, 4, numerator, denominator_power, 24, 8)


NOTE = ev(0, 0x90, 60, 80) + ev(TPQ, 0x80, 60, 0)


def test_of_several_tempos_and_signatures_at_the_start_the_last_counts():
    """Exporters often write a default (120, 4/4) and then the real values at tick 0; the later ones are in effect
    when the file plays, and they are what the tokens' header and the decoded MIDI get."""
    start = tempo_event(0, 120) + signature_event(0, 4, 2) + tempo_event(0, 72) + signature_event(0, 3, 2)
    later = tempo_event(TPQ * 4, 90) + signature_event(0, 6, 3)
    data = smf([start + later + NOTE + END_OF_TRACK], division=TPQ)
    encoding = TOK.encode_midi(data)
    assert encoding.meta == ScoreMeta(qpm=72.0, time_signature=(3, 4))
    decoded = TOK.tokens_to_midi(encoding.tokens, meta=encoding.meta)
    assert round(decoded.tempos[0].qpm) == 72
    assert (decoded.time_signatures[0].numerator, decoded.time_signatures[0].denominator) == (3, 4)


def test_a_time_signature_no_midi_file_can_carry_counts_as_absent():
    """0/4 and 4/256 (a denominator power of 8) come from broken exporters: the default 4/4 stands in."""
    for bad in (signature_event(0, 0, 2), signature_event(0, 4, 8)):
        meta = TOK.encode_midi(smf([bad + NOTE + END_OF_TRACK], division=TPQ)).meta
        assert meta.time_signature == (4, 4)


@pytest.mark.parametrize(
    "fields, phrase",
    [
        ({"qpm": 0.0}, "tempo must be from 1 to 1200"),
        ({"qpm": float("nan")}, "tempo must be from 1 to 1200"),
        ({"qpm": 1e9}, "tempo must be from 1 to 1200"),
        ({"time_signature": (300, 4)}, "time signature must be N/D"),
        ({"time_signature": (4, 3)}, "time signature must be N/D"),
        ({"time_signature": (0, 4)}, "time signature must be N/D"),
    ],
)
def test_metadata_no_midi_file_can_carry_is_refused_before_anything_is_written(fields, phrase):
    import numpy as np

    assert ScoreMeta(np.float32(90.0), (np.int64(3), np.int64(4))).qpm == 90.0  # numpy numbers are numbers
    with pytest.raises(ValueError, match=phrase):
        ScoreMeta(**fields)
    with pytest.raises(ValueError, match=phrase):  # also when passed to the decoder on its own
        TOK.tokens_to_midi(["p60", "wait12", "endp60"], **fields)


def test_a_note_never_switched_off_sounds_to_the_end_of_its_track_and_is_counted():
    """symusic dropped a note-on that no note-off follows; a player holds it until the track ends. E4 and G4 are
    never switched off (the track ends at beat 4); C4's second note-on is switched off by the last C4 note-off,
    which symusic gave to the first (first in, first out): it is no held note, and stays dropped."""
    body = (
        ev(0, 0x90, 60, 80)  # C4 on
        + ev(0, 0x90, 64, 80)  # E4 on, never off
        + ev(48, 0x90, 60, 80)  # C4 on again (a unison of two voices)
        + ev(48, 0x80, 60, 0)  # one C4 off at beat 1
        + ev(0, 0x90, 67, 80)  # G4 on at beat 1, never off
        + ev(288, 0xFF, 0x2F, 0)  # the end of the track at beat 4
    )
    data = smf([body], division=TPQ)
    with pytest.warns(HeldNotesWarning, match=r"<\d+ bytes of MIDI>: 2 note\(s\) never switched off"):
        tokens = TOK.midi_to_tokens(data)
    assert tokens == "p60 p64 wait12 endp60 p67 wait36 endp64 endp67".split()
    with pytest.warns(HeldNotesWarning):
        assert TOK.midi_to_tokens(data, safe=True) == tokens


def test_a_file_whose_notes_are_all_switched_off_warns_of_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TOK.midi_to_tokens(smf([CONDUCTOR, PIANO, STRINGS, DRUMS], division=TPQ)) == EXPECTED


def test_the_sustain_pedal_holds_the_notes_of_its_channel_in_every_track():
    """A piano's pedal acts on its channel. It was applied per symusic track: a pedal in a track of its own (a
    sequencer's controller track) was dropped with that track, and held nothing."""
    pedal_track = ev(0, 0xFF, 0x03, 5, *b"Pedal") + ev(0, 0xB0, 64, 127) + ev(192, 0xB0, 64, 0) + END_OF_TRACK
    notes_track = (
        ev(0, 0x90, 60, 80)  # channel 1: held by the pedal until beat 2
        + ev(0, 0x91, 67, 80)  # channel 2: no pedal there
        + ev(16, 0x80, 60, 0)
        + ev(0, 0x81, 67, 0)
        + END_OF_TRACK
    )
    data = smf([pedal_track, notes_track], division=TPQ)
    assert TOK.midi_to_tokens(data) == "p60 p67 wait2 endp60 endp67".split()
    with_pedal = NotewiseTokenizer(sustain_pedal=True)
    assert with_pedal.midi_to_tokens(data) == "p60 p67 wait2 endp67 wait22 endp60".split()
    assert with_pedal.midi_to_tokens(data, safe=True) == "p60 p67 wait2 endp67 wait22 endp60".split()


def test_the_sustain_pedal_holds_notes_across_a_program_change():
    """symusic splits a channel into one track per program and gave the pedal to the track of the program in effect
    when it was pressed: a note of the earlier program was not held."""
    body = (
        ev(0, 0xC0, 0)
        + ev(0, 0x90, 60, 80)  # piano C4
        + ev(0, 0xC0, 6)  # harpsichord from here on
        + ev(0, 0xB0, 64, 127)  # pedal down
        + ev(0, 0x90, 64, 80)
        + ev(16, 0x80, 60, 0)  # C4 released at step 2, under the pedal
        + ev(0, 0x80, 64, 0)
        + ev(80, 0xB0, 64, 0)  # pedal up at beat 1
        + END_OF_TRACK
    )
    tokens = NotewiseTokenizer(sustain_pedal=True).midi_to_tokens(smf([body], division=TPQ))
    assert tokens == "p60 p64 wait12 endp60 endp64".split()
