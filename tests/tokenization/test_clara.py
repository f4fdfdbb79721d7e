"""Clara compatibility: Christine McLeavey Payne's notewise text <-> notes <-> MIDI."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pytest
import symusic

from toccata.tokenization.clara import (
    ClaraFormat,
    clara_text_to_midi,
    clara_text_to_notes,
    midi_to_clara_text,
    notes_to_clara_text,
)
from toccata.tokenization.midi_io import NoteArrays, load_score, music21_corpus_midi, score_notes

FMT = ClaraFormat()
STEP = 40  # ticks per step at 480 ticks per quarter


def triples(notes: NoteArrays) -> list[tuple[int, int, int]]:
    return sorted(zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist()))


def arrays(notes: list[tuple[int, int, int]], tpq: int = 480) -> NoteArrays:
    start, end, pitch = (np.array(col, dtype=np.int64) for col in zip(*notes)) if notes else ([], [], [])
    return NoteArrays(np.asarray(start, np.int64), np.asarray(end, np.int64), np.asarray(pitch, np.int64), tpq)


@pytest.fixture(scope="module")
def chorale_midi() -> bytes:
    return music21_corpus_midi("bach/bwv66.6")


# ------------------------------------------------------------------------------------------ (1) exact decoding

# Written by hand in her encoder's style: one silent step, then index 10 held six steps while 30 sounds two,
# 32 is struck, held and re-struck without an end in between, and 5 is a one-step note ("p5 endp5").
HAND_TEXT = "wait1 p10 p30 wait1 endp30 wait1 p32 wait2 p32 endp32 wait1 p5 endp5 endp10 wait2"


def test_hand_written_text_decodes_to_exact_notes():
    parts = clara_text_to_notes(HAND_TEXT)
    assert parts["piano"].tpq == 12 and len(parts["violin"]) == 0
    assert triples(parts["piano"]) == sorted(
        [
            (1, 7, 10 + 33),
            (1, 3, 30 + 33),
            (3, 5, 32 + 33),  # ended by the re-strike at step 5
            (5, 6, 32 + 33),
            (6, 7, 5 + 33),  # one-step note
        ]
    )


def test_decoding_examples_of_her_style():
    notes = clara_text_to_notes("p10 p30 wait2 endp30 p32 wait2 endp32 wait2 p10 p34 p39 wait4")["piano"]
    # endp30 sits on step 2 (its last step): the note covers steps 0-2; p10 at step 6 re-strikes the held 10;
    # the text stops while 10, 34 and 39 still sound, so they close at the final time (step 10).
    assert triples(notes) == sorted(
        [(0, 6, 43), (0, 3, 63), (2, 5, 65), (6, 10, 43), (6, 10, 67), (6, 10, 72)]
    )
    assert triples(clara_text_to_notes("p10 endp10 wait1")["piano"]) == [(0, 1, 43)]


def test_violin_tokens_decode_to_the_violin_part():
    parts = clara_text_to_notes("v30 p10 wait3 endv30 endp10 wait2")
    assert triples(parts["violin"]) == [(0, 4, 63)]
    assert triples(parts["piano"]) == [(0, 4, 43)]


# ------------------------------------------------------------------------------------------ (2) text round trips

CHAMBER_TEXT = (
    "v22 v40 p0 p10 p30 wait1 endv40 endp0 endp30 wait1 v41 p32 wait2 v22 p32 endp32 wait1 endv41 p5 endp5 "
    "wait25 wait25 wait3 endv22 endp10 p61 endp61 wait2"
)


@pytest.mark.parametrize("text", [HAND_TEXT, CHAMBER_TEXT])
def test_text_to_midi_to_text_is_identity(text):
    chamber = " v" in " " + text
    score = clara_text_to_midi(text)
    assert midi_to_clara_text(score, chamber=chamber) == text
    # and through MIDI bytes, as a file on disk would go
    assert midi_to_clara_text(score.dumps_midi(), chamber=chamber) == text
    parts = clara_text_to_notes(text)
    assert notes_to_clara_text(parts["piano"], parts["violin"] if chamber else None) == text


def test_corpus_text_round_trips(chorale_midi):
    text = midi_to_clara_text(chorale_midi)
    assert text.startswith("p") and text.endswith("wait2")
    again = midi_to_clara_text(clara_text_to_midi(text).dumps_midi())
    assert again == text


# ------------------------------------------------------------------------------------------ (3) MIDI round trip


def _cells(notes: list[tuple[int, int, int]]) -> tuple[set, set]:
    """(pitch, step) cells that sound and cells that are struck."""
    sounding = {(p, t) for s, e, p in notes for t in range(s, e)}
    struck = {(p, s) for s, e, p in notes}
    return sounding, struck


def test_corpus_midi_keeps_notes_at_step_resolution(chorale_midi):
    score = load_score(chorale_midi)
    source = score_notes(score)[0]
    tpq = source.tpq
    expected = []
    for s, e, p in triples(source):
        if FMT.min_pitch <= p <= FMT.max_pitch:
            qs = (s * 12 * 2 + tpq) // (2 * tpq)
            qe = max((e * 12 * 2 + tpq) // (2 * tpq), qs + 1)
            expected.append((qs, qe, p))
    assert len(expected) > 100
    # the chorale stays inside MIDI 33-94, so nothing is folded
    assert len(expected) == len(source)

    decoded = triples(clara_text_to_notes(midi_to_clara_text(chorale_midi))["piano"])
    # Sounding and struck cells are kept exactly, same-pitch overlaps included (voices in unison).
    assert _cells(decoded) == _cells(expected)
    # Every note with no overlapping note on its pitch comes back unchanged.
    by_pitch: dict[int, list] = {}
    for note in expected:
        by_pitch.setdefault(note[2], []).append(note)
    lonely = [
        (s, e, p)
        for s, e, p in expected
        if not any(o != (s, e, p) and o[0] < e and s < o[1] for o in by_pitch[p])
        and Counter(expected)[(s, e, p)] == 1
    ]
    assert len(lonely) > 0.8 * len(expected)
    assert not Counter(lonely) - Counter(decoded)


def test_midi_file_written_at_480_tpq_with_tempo():
    score = clara_text_to_midi(HAND_TEXT, qpm=90)
    assert score.tpq == 480 and score.tempos[0].qpm == pytest.approx(90, abs=0.01)
    assert [t.program for t in score.tracks] == [0]
    assert sorted((n.time, n.end, n.pitch) for n in score.tracks[0].notes) == sorted(
        (s * STEP, e * STEP, p) for s, e, p in triples(clara_text_to_notes(HAND_TEXT)["piano"])
    )


def test_off_grid_input_rounds_to_nearest_step_and_folds_pitches():
    # 19 ticks (< half a step) rounds down, 21 rounds up; a 5-tick note lasts one step;
    # pitch 96 folds down an octave to 84, pitch 20 up two octaves to 44.
    notes = arrays([(19, 21 + 3 * STEP, 60), (2 * STEP + 21, 2 * STEP + 26, 96), (0, STEP, 20)])
    parts = clara_text_to_notes(notes_to_clara_text(notes))
    assert triples(parts["piano"]) == sorted([(0, 4, 60), (3, 4, 84), (0, 1, 44)])


# ------------------------------------------------------------------------------------------ (4) never raises


def test_garbage_and_unmatched_tokens_never_raise():
    garbage = (
        "endp5 endv30 wait3 p999 foo wait0 wait-1 wait26 p 12 P10 p62 endp62 v62 p-1 pp3 endp endv wait "
        "p7 p7 endp7 endp7 endp8 <eos> \u00e9 p61 wait25 v0"
    )
    parts = clara_text_to_notes(garbage)
    # endp5 (mid-stream start) is ignored; p7 twice in one step is one note; p61 and v0 are closed at the end.
    assert triples(parts["piano"]) == [(3, 4, 40), (3, 28, 94)]
    assert triples(parts["violin"]) == [(28, 29, 33)]
    assert len(clara_text_to_notes("")["piano"]) == 0
    clara_text_to_midi(garbage).dumps_midi()
    clara_text_to_midi("").dumps_midi()


def test_random_token_soup_never_raises():
    rng = random.Random(0)
    words = ["p", "endp", "v", "endv", "wait", "x", "end", ""]
    for _ in range(200):
        tokens = [f"{rng.choice(words)}{rng.randint(-3, 70)}" for _ in range(rng.randint(0, 60))]
        parts = clara_text_to_notes(tokens)
        for notes in parts.values():
            assert np.all(notes.end > notes.start)
            assert np.all((notes.pitch >= 33) & (notes.pitch <= 94))
        score = clara_text_to_midi(" ".join(tokens))
        score.dumps_midi()


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="note_range.*500"):
        ClaraFormat(note_range=500)
    with pytest.raises(ValueError, match="note_offset.*100"):
        ClaraFormat(note_offset=100)
    with pytest.raises(ValueError, match="qpm.*-5"):
        clara_text_to_midi(HAND_TEXT, qpm=-5)
    with pytest.raises(TypeError, match="piano part.*list"):
        notes_to_clara_text([1, 2, 3])
    with pytest.raises(TypeError, match="int"):
        clara_text_to_notes(42)


# ------------------------------------------------------------------------------------------ (5) chamber mode


def _two_track_score() -> symusic.Score:
    score = symusic.Score(480)
    piano = symusic.Track(name="Piano", program=0, is_drum=False)
    violin = symusic.Track(name="Violin", program=40, is_drum=False)
    drums = symusic.Track(name="Drums", program=0, is_drum=True)
    for start, end, pitch in [(0, 480, 48), (480, 960, 52)]:
        piano.notes.append(symusic.Note(start, end - start, pitch, 90))
    for start, end, pitch in [(0, 240, 76), (240, 960, 40)]:  # 40 is index 7: folded up to 31 (MIDI 64)
        violin.notes.append(symusic.Note(start, end - start, pitch, 90))
    drums.notes.append(symusic.Note(0, 100, 36, 90))
    score.tracks.extend([piano, violin, drums])
    return score


def test_chamber_mode_puts_violin_tracks_in_v_tokens():
    score = _two_track_score()
    text = midi_to_clara_text(score, chamber=True)
    assert text.split()[:2] == ["v43", "p15"]  # violin part first in each step
    assert text == "v43 p15 wait5 endv43 wait1 v31 wait5 endp15 wait1 p19 wait11 endv31 endp19 wait2"
    parts = clara_text_to_notes(text)
    assert triples(parts["violin"]) == [(0, 6, 76), (6, 24, 64)]
    assert triples(parts["piano"]) == [(0, 12, 48), (12, 24, 52)]
    midi = clara_text_to_midi(text)
    assert [(t.name, t.program) for t in midi.tracks] == [("Piano", 0), ("Violin", 40)]
    # without chamber everything pitched is piano; the drum track is dropped either way
    merged = midi_to_clara_text(score)
    assert not re.search(r"\bv\d", merged) and "endv" not in merged
    assert triples(clara_text_to_notes(merged)["piano"]) == [(0, 6, 76), (0, 12, 48), (6, 24, 40), (12, 24, 52)]


def test_harp_and_harpsichord_are_piano_like():
    score = _two_track_score()
    score.tracks[1].program = 46  # harp
    assert "v" not in midi_to_clara_text(score, chamber=True)
    score.tracks[1].program = 6  # harpsichord
    assert "v" not in midi_to_clara_text(score, chamber=True)
    score.tracks[1].program = 73  # flute: violin-like
    assert "endv" in midi_to_clara_text(score, chamber=True)


# ------------------------------------------------------------------------------------------ (6) waits


def test_waits_never_exceed_25_and_long_silences_chain():
    notes = arrays([(0, STEP, 60), (100 * STEP, 101 * STEP, 60), (190 * STEP, 191 * STEP, 62)])
    text = notes_to_clara_text(notes)
    assert text == "p27 endp27 wait25 wait25 wait25 wait25 p27 endp27 wait25 wait25 wait25 wait15 p29 endp29 wait2"
    waits = [int(w) for w in re.findall(r"wait(\d+)", text)]
    assert max(waits) == 25 and sum(waits) == 192
    assert triples(clara_text_to_notes(text)["piano"]) == [(0, 1, 60), (100, 101, 60), (190, 191, 62)]


def test_corpus_waits_are_bounded(chorale_midi):
    text = midi_to_clara_text(chorale_midi)
    assert all(1 <= int(w) <= 25 for w in re.findall(r"wait(\d+)", text))
    assert "wait26" not in text


def test_wait_over_25_is_an_unknown_token():
    assert triples(clara_text_to_notes("wait30 p0 endp0 wait1")["piano"]) == [(0, 1, 33)]


def test_empty_input_gives_empty_text():
    assert notes_to_clara_text(arrays([])) == ""
    assert notes_to_clara_text(arrays([]), arrays([])) == ""
