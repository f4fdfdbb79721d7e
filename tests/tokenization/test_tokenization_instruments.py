"""Instrumented notewise vocabularies (piano + violin/cello), track assignment, Clara chamber text, ensemble mapping."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import symusic

from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.clara import (
    clara_text_to_tokens,
    midi_to_clara_text,
    notes_to_clara_text,
    tokens_to_clara_text,
)
from toccata.tokenization.ensemble import map_ensemble, string_role
from toccata.tokenization.midi_io import NoteArrays
from toccata.tokenization.tokenization_notewise import instrument_of_track

PIANO = NotewiseTokenizer()
DUO = NotewiseTokenizer(instruments=("piano", "violin"))
TRIO = NotewiseTokenizer(instruments=("piano", "violin", "cello"))
STEP = 40  # ticks per step at 480 ticks per quarter


def score_of(*tracks: tuple[str, int, list[tuple[int, int, int]]], drums: list | None = None) -> symusic.Score:
    """A score from (name, program, [(start step, end step, pitch), ...]) tracks; optional drum track."""
    score = symusic.Score(480)
    for name, program, notes in tracks:
        track = symusic.Track(name=name, program=program, is_drum=False)
        track.notes.extend(symusic.Note(s * STEP, (e - s) * STEP, p, 90) for s, e, p in notes)
        score.tracks.append(track)
    if drums is not None:
        track = symusic.Track(name="Drums", program=0, is_drum=True)
        track.notes.extend(symusic.Note(s * STEP, (e - s) * STEP, p, 90) for s, e, p in drums)
        score.tracks.append(track)
    return score


def notes_by_program(score: symusic.Score) -> dict[int, Counter]:
    """{program: Counter of (start step, end step, pitch)} of a score's pitched tracks."""
    out: dict[int, Counter] = {}
    scale = score.tpq // 12
    for track in score.tracks:
        if not track.is_drum:
            bag = out.setdefault(int(track.program), Counter())
            bag.update((n.time // scale, (n.time + n.duration) // scale, n.pitch) for n in track.notes)
    return out


# ------------------------------------------------------------------------------------------------ vocabulary


def test_piano_ids_stay_and_instrument_words_follow_them():
    assert TRIO.get_vocab() | PIANO.get_vocab() == TRIO.get_vocab()  # every piano word, same id
    assert all(TRIO.get_vocab()[word] == i for word, i in PIANO.get_vocab().items())
    layout = TRIO.instrument_layout
    assert list(layout) == ["piano", "violin", "cello"]
    assert layout["piano"] == {
        "prefix": "p", "program": 0, "low_pitch": 21, "high_pitch": 108, "num_pitches": 88,
        "note_on_offset": 4, "note_off_offset": 92,
    }  # fmt: skip
    assert (layout["violin"]["low_pitch"], layout["violin"]["high_pitch"]) == (55, 103)  # G3-G7
    assert (layout["cello"]["low_pitch"], layout["cello"]["high_pitch"]) == (36, 88)  # C2-E6
    assert layout["violin"]["note_on_offset"] == PIANO.vocab_size == 228
    for spec in layout.values():
        prefix, low, n = spec["prefix"], spec["low_pitch"], spec["num_pitches"]
        assert TRIO.convert_tokens_to_ids([f"{prefix}{low}", f"{prefix}{low + n - 1}"]) == [
            spec["note_on_offset"],
            spec["note_on_offset"] + n - 1,
        ]
        assert TRIO.convert_tokens_to_ids([f"end{prefix}{low}"]) == [spec["note_off_offset"]]
    assert TRIO.vocab_size == 228 + 2 * 49 + 2 * 53 == len(TRIO.get_vocab())
    for word in ["v54", "v104", "c35", "c89", "endv54"]:
        assert word not in TRIO.get_vocab()
    cello_only = NotewiseTokenizer(instruments=("cello", "piano"))  # part order is fixed: piano first
    assert cello_only.instruments == ("piano", "cello") and cello_only.instrument_layout["cello"]["note_on_offset"] == 228


@pytest.mark.parametrize("instruments", [("violin",), ("piano", "viola"), ("piano", "piano"), ()])
def test_bad_instruments_name_the_argument(instruments):
    with pytest.raises(ValueError, match="instruments"):
        NotewiseTokenizer(instruments=instruments)


def test_piano_only_files_give_todays_tokens():
    score = score_of(
        ("Right hand", 0, [(0, 12, 60), (0, 6, 64), (6, 18, 67), (30, 31, 72)]),
        ("", 0, [(0, 24, 36), (12, 13, 108), (20, 70, 15)]),  # 15: folded into the piano range
        drums=[(0, 3, 36)],
    )
    today = PIANO.midi_to_tokens(score)
    assert DUO.midi_to_tokens(score) == today == TRIO.midi_to_tokens(score)
    assert DUO.midi_to_ids(score) == PIANO.midi_to_ids(score)
    assert DUO(" ".join(today))["input_ids"] == PIANO(" ".join(today))["input_ids"]


# ------------------------------------------------------------------------------------------------ MIDI in and out


def test_round_trip_is_exact_with_double_stops_and_one_track_per_instrument():
    piano = [(0, 12, 48), (0, 12, 60), (12, 24, 62), (12, 13, 67), (30, 54, 55)]
    violin = [(0, 6, 67), (0, 12, 76), (6, 12, 69), (12, 24, 67), (12, 24, 74), (40, 41, 103)]  # double stops
    cello = [(0, 24, 36), (24, 36, 43), (24, 36, 50), (60, 61, 88)]
    score = score_of(("", 0, piano), ("", 40, violin), ("", 42, cello))
    tokens = TRIO.midi_to_tokens(score)
    back = TRIO.tokens_to_midi(tokens)
    assert [(t.name, int(t.program)) for t in back.tracks] == [("Piano", 0), ("Violin", 40), ("Cello", 42)]
    assert notes_by_program(back) == notes_by_program(score)
    assert TRIO.midi_to_tokens(back.dumps_midi()) == tokens
    duo_back = DUO.tokens_to_midi(DUO.midi_to_tokens(score_of(("", 0, piano), ("", 40, violin))))
    assert [int(t.program) for t in duo_back.tracks] == [0, 40]


def test_within_a_step_offs_then_ons_parts_in_order_pitches_ascending():
    score = score_of(
        ("Piano", 0, [(0, 12, 64), (0, 12, 60), (12, 24, 62)]),
        ("Violin", 40, [(0, 12, 76), (0, 12, 67), (12, 24, 72), (12, 24, 69)]),
        ("Cello", 42, [(0, 12, 48), (12, 24, 36)]),
    )
    assert TRIO.midi_to_tokens(score) == (
        "p60 p64 v67 v76 c48 wait12 endp60 endp64 endv67 endv76 endc48 p62 v69 v72 c36 wait12 endp62 endv69 endv72 endc36"
    ).split()


def test_decoding_never_fails_and_parts_are_independent():
    parts = TRIO.tokens_to_parts("p67 v67 wait3 v67 endp67 wait2 endv67 endc40 c40 <bos> nonsense wait4 p200")
    assert parts["piano"].pitch.tolist() == [67] and parts["piano"].end.tolist() == [3]
    assert sorted(zip(parts["violin"].start.tolist(), parts["violin"].end.tolist())) == [(0, 3), (3, 5)]  # re-strike
    assert (parts["cello"].start.tolist(), parts["cello"].end.tolist()) == ([5], [9])  # left open: ends at the end
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(-5, TRIO.vocab_size + 5, size=300).tolist()
        once = TRIO.midi_to_tokens(TRIO.tokens_to_midi(ids))  # any ids decode, and what they decode to is stable
        assert TRIO.midi_to_tokens(TRIO.tokens_to_midi(once)) == once


def test_random_parts_round_trip_exactly():
    rng = np.random.default_rng(1)
    for _ in range(10):
        parts = {}
        for name, spec in TRIO.instrument_layout.items():
            n = int(rng.integers(0, 40))
            start = rng.integers(0, 200, n)
            parts[name] = NoteArrays(
                start, start + rng.integers(1, 60, n), rng.integers(spec["low_pitch"], spec["high_pitch"] + 1, n), 12
            )
        tokens = TRIO.notes_to_tokens(parts)
        decoded = TRIO.tokens_to_parts(tokens)
        assert TRIO.notes_to_tokens(decoded) == tokens
        for name, notes in parts.items():  # exact up to the cleaning of the grid (same-pitch overlaps)
            assert set(zip(decoded[name].start.tolist(), decoded[name].pitch.tolist())) == set(
                zip(notes.start.tolist(), notes.pitch.tolist())
            )


def test_messy_tracks_are_assigned_by_name_then_program_else_piano():
    assert [instrument_of_track(name, program) for name, program in [
        ("Violin I", 0), ("Vln. 2", 48), ("vn1", 0), ("Violino II.", 0), ("1st Violin", 40), ("Violoncello", 0),
        ("Vc.", 0), ("Cello", 48), ("Viola", 40), ("Violone e Organo", 0), ("Piano", 40), ("", 40), ("", 42),
        ("", 41), ("Strings", 48), ("", 0), ("Flute", 73),
    ]] == [
        "violin", "violin", "violin", "violin", "violin", "cello",
        "cello", "cello", "piano", "piano", "piano", "violin", "cello",
        "piano", "piano", "piano", "piano",
    ]  # fmt: skip
    assert instrument_of_track("Violoncello", 0, ("piano", "violin")) == "piano"  # no cello part: the piano
    score = score_of(
        ("Violin I", 0, [(0, 12, 76)]),
        ("Violin II", 48, [(0, 12, 50)]),  # below G3: folded up an octave (v62)
        ("Viola", 40, [(0, 12, 57)]),
        ("", 42, [(0, 12, 30)]),  # a cello by program; below C2: folded to c42
        drums=[(0, 12, 38)],
    )
    assert TRIO.midi_to_tokens(score) == "p57 v62 v76 c42 wait12 endp57 endv62 endv76 endc42".split()
    assert DUO.midi_to_tokens(score) == "p30 p57 v62 v76 wait12 endp30 endp57 endv62 endv76".split()
    assert TRIO.midi_to_track_tokens(score) == [
        ["v76", "wait12", "endv76"], ["v62", "wait12", "endv62"], ["p57", "wait12", "endp57"], ["c42", "wait12", "endc42"]
    ]  # fmt: skip


def test_tail_keeps_every_part():
    tokens = "p60 v72 c48 wait24 endp60 endc48 p62 wait12 endv72 endp62".split()
    assert TRIO.tail(tokens, 2) == "p60 v72 c48 wait12 endp60 endc48 p62 wait12 endp62 endv72".split()


def test_an_excerpt_keeps_every_part_and_cuts_notes_at_both_ends():
    tokens = "p60 v72 c48 wait24 endp60 endc48 p62 wait12 endv72 endp62".split()
    assert TRIO.excerpt(tokens, 0, 1) == "p60 v72 c48 wait12 endp60 endv72 endc48".split()
    assert TRIO.excerpt(tokens, 1.5, 2.5) == "p60 v72 c48 wait6 endp60 endc48 p62 wait6 endp62 endv72".split()


# ------------------------------------------------------------------------------------------------ saving


def test_save_pretrained_and_auto_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    TRIO.save_pretrained(tmp_path / "trio")
    config = json.loads((tmp_path / "trio" / "tokenizer_config.json").read_text())
    assert config["instruments"] == ["piano", "violin", "cello"]
    assert config["instrument_layout"] == TRIO.instrument_layout
    loaded = AutoTokenizer.from_pretrained(tmp_path / "trio")
    assert type(loaded) is NotewiseTokenizer and loaded.instruments == TRIO.instruments
    assert loaded.get_vocab() == TRIO.get_vocab()
    assert loaded("v67 endc40 wait1")["input_ids"] == TRIO("v67 endc40 wait1")["input_ids"]
    PIANO.save_pretrained(tmp_path / "piano")
    piano_config = json.loads((tmp_path / "piano" / "tokenizer_config.json").read_text())
    assert "instruments" not in piano_config and "instrument_layout" not in piano_config
    config["instrument_layout"]["violin"]["note_on_offset"] += 1
    (tmp_path / "trio" / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="instrument_layout"):
        NotewiseTokenizer.from_pretrained(tmp_path / "trio")


# ------------------------------------------------------------------------------------------------ Clara


def test_clara_chamber_text_round_trips_through_the_tokenizer():
    text = "v34 p10 wait5 endv34 wait1 v36 p12 p20 wait3 endv36 endp10 endp12 wait25 wait2 endp20 wait2"
    tokens = clara_text_to_tokens(text)
    assert tokens[:4] == ["p43", "v67", "wait6", "endv67"]
    assert tokens_to_clara_text(tokens) == text
    assert tokens_to_clara_text(tokens, DUO) == text
    score = score_of(("Piano", 0, [(0, 12, 48), (12, 24, 60)]), ("Violin", 40, [(0, 6, 67), (6, 24, 79)]))
    assert tokens_to_clara_text(DUO.midi_to_tokens(score)) == midi_to_clara_text(score, chamber=True)
    assert clara_text_to_tokens(midi_to_clara_text(score, chamber=True)) == DUO.midi_to_tokens(score)
    # a piano-only tokenizer merges her violin part into the piano; cello is written as her "violin-like" part
    assert clara_text_to_tokens("p10 v34 wait2", PIANO) == ["p43", "p67", "wait2", "endp43", "endp67"]
    cello = TRIO.notes_to_tokens({"cello": NoteArrays(np.array([0]), np.array([3]), np.array([55]), 12)})
    assert tokens_to_clara_text(cello, TRIO) == notes_to_clara_text(
        NoteArrays.merge([], 12), NoteArrays(np.array([0]), np.array([3]), np.array([55]), 12)
    )


# ------------------------------------------------------------------------------------------------ ensembles


def quartet() -> symusic.Score:
    return score_of(
        ("Violin", 0, [(0, 12, 76), (0, 12, 79), (0, 12, 84), (12, 24, 88), (24, 36, 108)]),  # triple stop; C8 too high
        ("Violin", 0, [(0, 12, 67), (12, 24, 69)]),
        ("Viola", 0, [(0, 12, 60), (12, 24, 62)]),
        ("Violoncello", 0, [(0, 12, 36), (0, 12, 43), (0, 12, 48), (12, 24, 31)]),  # B1 below C2
        drums=[(0, 1, 36)],
    )


def test_violin_is_the_top_string_part_and_extra_notes_go_to_the_piano():
    source = quartet()
    mapped = map_ensemble(source, "violin")
    assert mapped.found and mapped.sources == {"violin": "Violin"}
    assert [(t.name, int(t.program)) for t in mapped.score.tracks] == [("Piano", 0), ("Violin", 40)]
    violin = notes_by_program(mapped.score)[40]
    assert violin == Counter({(0, 12, 79): 1, (0, 12, 84): 1, (12, 24, 88): 1})  # the two highest of the chord
    assert mapped.over_polyphony == {"violin": 1} and mapped.out_of_range == {"violin": 1}
    everything = sum(notes_by_program(mapped.score).values(), Counter())
    assert everything == notes_by_program(source)[0]  # no note lost or added (drums dropped)
    assert DUO.midi_to_tokens(mapped.score)[:6] == ["p36", "p43", "p48", "p60", "p67", "p76"]


def test_cello_is_the_bottom_string_part():
    mapped = map_ensemble(quartet(), "cello")
    assert mapped.sources == {"cello": "Violoncello"}
    assert notes_by_program(mapped.score)[42] == Counter({(0, 12, 36): 1, (0, 12, 43): 1})  # lowest two; B1 to piano
    assert mapped.over_polyphony == {"cello": 1} and mapped.out_of_range == {"cello": 1}
    both = map_ensemble(quartet(), ("violin", "cello"))
    assert [int(t.program) for t in both.score.tracks] == [0, 40, 42]


def test_rules_and_scores_without_strings():
    score = score_of(
        ("Piano", 0, [(0, 12, 60)]), ("Violin II", 40, [(0, 12, 64)]), ("Violin I", 40, [(0, 12, 81)]),
        ("Violone e Organo", 0, [(0, 12, 40)]),
    )  # fmt: skip
    assert map_ensemble(score, "violin", "outer").sources == {"violin": "Violin I"}
    assert map_ensemble(score, "violin", "named").sources == {"violin": "Violin II"}  # the first named
    assert map_ensemble(score, "cello", "outer").sources == {"cello": "Violone e Organo"}  # the bass line
    assert not map_ensemble(score, "cello", "named").found  # no track is named cello
    assert not map_ensemble(score_of(("Piano", 0, [(0, 12, 60)])), "violin").found
    assert [string_role(*track) for track in [("Strings", 0), ("Flute", 73), ("", 41), ("Organ", 48)]] == [
        "strings", None, "viola", None,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="rule"):
        map_ensemble(score, "violin", "loudest")
    with pytest.raises(ValueError, match="target"):
        map_ensemble(score, "piano")


def test_the_exact_rule_keeps_only_music_written_for_exactly_those_players():
    sonata = score_of(("Violin", 0, [(0, 12, 76)]), ("Piano", 0, [(0, 12, 48)]), ("Piano", 0, [(0, 12, 36)]))
    exact = map_ensemble(sonata, "violin", "exact")
    assert exact.found and exact.other_strings == [] and exact.sources == {"violin": "Violin"}
    assert notes_by_program(exact.score) == notes_by_program(map_ensemble(sonata, "violin", "named").score)
    trio = score_of(("Violin", 0, [(0, 12, 76)]), ("Violoncello", 0, [(0, 12, 43)]), ("Piano", 0, [(0, 12, 48)]))
    assert map_ensemble(trio, ("violin", "cello"), "exact").found  # a piano trio is exactly violin, cello, piano
    not_a_duo = map_ensemble(trio, "violin", "exact")
    assert not not_a_duo.found and not_a_duo.other_strings == ["Violoncello"]
    assert map_ensemble(trio, "violin", "named").found  # the other rules fold the cello into the piano
    assert not map_ensemble(quartet(), "cello", "exact").found  # two violins and a viola besides
    spellings = ["VIOLONCELLE", "Violoncell", "Vcello", "VIOLON", "Violine", "Violino", "PIANOFORTE", "Viola"]
    assert [string_role(name, 0) for name in spellings] == [
        "cello", "cello", "cello", "violin", "violin", "violin", None, "viola",
    ]  # fmt: skip
