"""The notewise tokenizer: vocabulary, ordering rules, exact round trips (hypothesis) and the transformers API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
import symusic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.midi_files import make_score, note_multiset
from toccata.tokenization import MidiError, NotewiseTokenizer, ScoreMeta, parse_token_text

TOK = NotewiseTokenizer()
STEP = 40  # ticks per step at 480 ticks per quarter and 12 steps per quarter


# ------------------------------------------------------------------------------------------------ vocabulary


def test_vocabulary_has_piano_keys_waits_and_specials():
    vocab = TOK.get_vocab()
    assert TOK.vocab_size == 4 + 88 + 88 + 48 == len(vocab)
    for word in ["<pad>", "<bos>", "<eos>", "<unk>", "p21", "p60", "p108", "endp21", "endp108", "wait1", "wait48"]:
        assert word in vocab
    for word in ["p20", "p109", "endp109", "wait0", "wait49"]:
        assert word not in vocab
    assert TOK.convert_tokens_to_ids(["p60", "endp60", "wait12"]) == [
        TOK.note_on_offset + 39,
        TOK.note_off_offset + 39,
        TOK.wait_offset + 11,
    ]


def test_call_encodes_text_with_bos_and_decode_inverts_it():
    encoded = TOK("p60 wait12 endp60")
    ids = encoded["input_ids"]
    assert ids[0] == TOK.bos_token_id
    assert TOK.convert_ids_to_tokens(ids[1:]) == ["p60", "wait12", "endp60"]
    assert TOK.decode(ids, skip_special_tokens=True) == "p60 wait12 endp60"
    assert TOK.convert_tokens_to_ids(["nonsense"]) == [TOK.unk_token_id]


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"steps_per_quarter": 0}, "steps_per_quarter"),
        ({"max_wait": 0}, "max_wait"),
        ({"min_pitch": 60, "max_pitch": 65}, "max_pitch"),
    ],
)
def test_bad_settings_name_the_argument_and_value(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        NotewiseTokenizer(**kwargs)


# ------------------------------------------------------------------------------------------------ ordering rules


def test_one_step_note_and_ordering_inside_a_step():
    # C4 and E4 start together; C4 lasts one step, E4 two; G4 starts when C4 ends.
    score = make_score([[(0, STEP, 60), (0, 2 * STEP, 64), (STEP, 3 * STEP, 67)]])
    assert TOK.midi_to_tokens(score) == [
        "p60", "p64", "wait1",
        "endp60", "p67", "wait1",
        "endp64", "wait1",
        "endp67",
    ]  # fmt: skip


def test_note_offs_come_before_note_ons_each_ascending():
    beat = 12 * STEP
    score = make_score([[(0, beat, 72), (0, beat, 48), (beat, 2 * beat, 50), (beat, 2 * beat, 40)]])
    tokens = TOK.midi_to_tokens(score)
    assert tokens == ["p48", "p72", "wait12", "endp48", "endp72", "p40", "p50", "wait12", "endp40", "endp50"]


def test_restruck_note_ends_before_it_starts_again():
    # Two overlapping notes on the same key: the first ends where the second starts.
    score = make_score([[(0, 10 * STEP, 60), (4 * STEP, 8 * STEP, 60)]])
    assert TOK.midi_to_tokens(score) == ["p60", "wait4", "endp60", "p60", "wait4", "endp60"]
    # The same key struck twice in a step collapses to the longer note.
    score = make_score([[(0, 2 * STEP, 62), (0, 5 * STEP, 62)]])
    assert TOK.midi_to_tokens(score) == ["p62", "wait5", "endp62"]


def test_long_silences_chain_waits_and_leading_silence_is_kept():
    score = make_score([[(100 * STEP, 101 * STEP, 60), (250 * STEP, 251 * STEP, 60)]])
    tokens = TOK.midi_to_tokens(score)
    assert tokens == [
        "wait48", "wait48", "wait4", "p60", "wait1", "endp60",
        "wait48", "wait48", "wait48", "wait5", "p60", "wait1", "endp60",
    ]  # fmt: skip


def test_out_of_range_notes_are_folded_by_octaves_not_dropped():
    score = make_score([[(0, STEP, 10), (0, STEP, 0), (0, STEP, 120), (0, STEP, 127)]])
    tokens = TOK.midi_to_tokens(score)
    assert sorted(t for t in tokens if t.startswith("p")) == ["p103", "p108", "p22", "p24"]


def test_zero_length_notes_become_one_step():
    score = make_score([[(0, 0, 60), (5, 5, 64)]])
    assert TOK.midi_to_tokens(score) == ["p60", "p64", "wait1", "endp60", "endp64"]


def test_tracks_are_merged_and_drums_dropped():
    score = make_score(
        [[(0, 12 * STEP, 60)], [(0, 12 * STEP, 48)]],
        drum_track=[(0, STEP, 36), (6 * STEP, 7 * STEP, 38)],
    )
    assert TOK.midi_to_tokens(score) == ["p48", "p60", "wait12", "endp48", "endp60"]
    with_drums = NotewiseTokenizer(drop_drums=False).midi_to_tokens(score)
    assert "p36" in with_drums and "p38" in with_drums


def test_tempo_and_time_signature_travel_as_metadata():
    score = make_score([[(0, 480, 60)]], qpm=72.0, time_signature=(3, 4))
    encoding = TOK.encode_midi(score)
    assert encoding.meta == ScoreMeta(qpm=72.0, time_signature=(3, 4))
    again = parse_token_text(encoding.to_text())
    assert again.tokens == encoding.tokens and again.meta == encoding.meta
    decoded = TOK.tokens_to_midi(again.tokens, meta=again.meta)
    assert decoded.tempos[0].qpm == pytest.approx(72.0)
    assert (decoded.time_signatures[0].numerator, decoded.time_signatures[0].denominator) == (3, 4)
    default = TOK.tokens_to_midi(["p60", "wait12", "endp60"])
    assert default.tempos[0].qpm == pytest.approx(120.0)
    # a keyword replaces what it names and nothing else, in MIDI and in token text alike (one instrumented tokenizer)
    duo = NotewiseTokenizer(instruments=("piano", "violin"))
    for tokenizer in (TOK, duo):
        faster = tokenizer.tokens_to_midi(again.tokens, meta=again.meta, qpm=90.0)
        assert faster.tempos[0].qpm == pytest.approx(90.0) and faster.time_signatures[0].numerator == 3
    text = TOK.tokens_to_text(again.tokens, meta=again.meta, time_signature=(6, 8))
    assert parse_token_text(text).meta == ScoreMeta(qpm=72.0, time_signature=(6, 8))


def test_time_is_measured_in_beats_not_seconds():
    slow = make_score([[(0, 480, 60), (480, 960, 62)]], qpm=40.0)
    fast = make_score([[(0, 480, 60), (480, 960, 62)]], qpm=200.0)
    expected = ["p60", "wait12", "endp60", "p62", "wait12", "endp62"]
    assert TOK.midi_to_tokens(slow) == TOK.midi_to_tokens(fast) == expected


def test_save_midi_writes_a_file_that_reads_back(tmp_path):
    path = TOK.save_midi(["p60", "p64", "wait6", "endp60", "endp64"], tmp_path / "sub" / "x.mid")
    score = symusic.Score(str(path))
    assert note_multiset(score, tpq=12) == Counter({(0.0, 6.0, 60): 1, (0.0, 6.0, 64): 1})


# ------------------------------------------------------------------------------------------------ decoding


def test_decoding_is_lenient_and_documented():
    notes = TOK.tokens_to_notes(
        ["endp50", "<bos>", "junk", "p60", "p60", "wait2", "p60", "wait3", "p64", "endp64", "wait1", "p67"]
    )
    got = sorted(zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist()))
    # unmatched endp50 ignored; repeated p60 in a step ignored; p60 re-struck at step 2 ends the first;
    # p64 ended in its own step lasts one step; p67 and p60 still sounding at the end stop at the final time.
    assert got == [(0, 2, 60), (2, 6, 60), (5, 6, 64), (6, 7, 67)]


# ------------------------------------------------------------------------------------------------ properties

pitches = st.integers(21, 108)


@st.composite
def grid_notes(draw, max_notes=60):
    """Notes on the 12-step grid with no two overlapping notes on one key (which MIDI cannot keep apart)."""
    raw = draw(
        st.lists(st.tuples(st.integers(0, 400), st.integers(1, 60), pitches), min_size=0, max_size=max_notes)
    )
    kept, busy = [], {}
    for start, length, pitch in sorted(raw):
        if start >= busy.get(pitch, 0):
            kept.append((start, start + length, pitch))
            busy[pitch] = start + length
    return kept


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notes=grid_notes(), tpq=st.sampled_from([12, 24, 96, 120, 240, 384, 480, 960, 1920]), ntracks=st.integers(1, 3))
def test_grid_notes_survive_midi_tokens_midi_exactly(notes, tpq, ntracks):
    scale = tpq // 12
    tracks = [[] for _ in range(ntracks)]
    for i, (start, end, pitch) in enumerate(notes):
        tracks[i % ntracks].append((start * scale, end * scale, pitch))
    score = symusic.Score.from_midi(make_score(tracks, tpq=tpq).dumps_midi())
    decoded = TOK.tokens_to_midi(TOK.midi_to_tokens(score))
    assert note_multiset(decoded, tpq=12) == Counter((float(s), float(e), p) for s, e, p in notes)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.lists(
        st.tuples(st.integers(0, 20_000), st.integers(STEP, 2_000), st.integers(0, 3 * STEP), pitches),
        max_size=40,
    )
)
def test_off_grid_notes_move_by_at_most_half_a_step(raw):
    # (start, duration >= 1 step, gap before the next note on the key >= 1 step, pitch) at 480 ticks per quarter
    notes, busy = [], {}
    for start, duration, gap, pitch in sorted(raw):
        if start >= busy.get(pitch, -STEP) + STEP:
            notes.append((start, start + duration, pitch))
            busy[pitch] = start + duration
    decoded = TOK.tokens_to_midi(TOK.midi_to_tokens(make_score([notes])))
    got = sorted((n.pitch, n.time, n.time + n.duration) for n in decoded.tracks[0].notes)
    want = sorted((p, s, e) for s, e, p in notes)
    assert len(got) == len(want)
    scale = decoded.tpq / 480
    for (gp, gs, ge), (wp, ws, we) in zip(got, want):
        assert gp == wp
        assert abs(gs / scale - ws) <= STEP / 2 and abs(ge / scale - we) <= STEP / 2


@settings(max_examples=200, deadline=None)
@given(notes=grid_notes())
def test_tokens_midi_tokens_is_the_identity(notes):
    tokens = TOK.midi_to_tokens(make_score([[(s * STEP, e * STEP, p) for s, e, p in notes]]))
    midi_bytes = TOK.tokens_to_midi(tokens).dumps_midi()
    assert TOK.midi_to_tokens(midi_bytes) == tokens


any_token = st.one_of(
    st.sampled_from(list(TOK.get_vocab())),
    st.builds(lambda w, n: f"{w}{n}", st.sampled_from(["p", "endp", "wait"]), st.integers(-5, 200)),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(any_token, max_size=200))
def test_decoding_never_fails_and_yields_well_formed_notes(tokens):
    notes = TOK.tokens_to_notes(tokens)
    assert (notes.end > notes.start).all()
    assert ((notes.pitch >= 21) & (notes.pitch <= 108)).all()
    canonical = TOK.midi_to_tokens(TOK.tokens_to_midi(tokens))
    assert TOK.midi_to_tokens(TOK.tokens_to_midi(canonical)) == canonical
    from_ids = TOK.tokens_to_notes(TOK.convert_tokens_to_ids(tokens))
    assert (from_ids.start.tolist(), from_ids.end.tolist()) == (notes.start.tolist(), notes.end.tolist())


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.integers(-3, 300), max_size=100))
def test_decoding_any_ids_never_fails(ids):
    score = TOK.tokens_to_midi(ids)
    assert score.note_num() <= len(ids)


# ------------------------------------------------------------------------------------------------ inputs


def test_accepts_path_bytes_score_and_music21_stream(tmp_path):
    import music21

    stream = music21.stream.Stream([music21.note.Note("C4", quarterLength=1), music21.note.Note("E4", quarterLength=2)])
    path = tmp_path / "two.mid"
    stream.write("midi", fp=str(path))
    from_stream = TOK.midi_to_tokens(stream)
    assert from_stream == ["p60", "wait12", "endp60", "p64", "wait24", "endp64"]
    assert TOK.midi_to_tokens(str(path)) == from_stream
    assert TOK.midi_to_tokens(path) == from_stream
    assert TOK.midi_to_tokens(path.read_bytes()) == from_stream
    assert TOK.midi_to_tokens(symusic.Score(str(path))) == from_stream
    assert TOK.midi_to_ids(path) == TOK.convert_tokens_to_ids(from_stream)


def test_bad_input_names_the_file(tmp_path):
    bad = tmp_path / "notes.mid"
    bad.write_bytes(b"this is not a MIDI file at all")
    with pytest.raises(MidiError, match="notes.mid.*MThd"):
        TOK.midi_to_tokens(bad)
    with pytest.raises(TypeError, match="cannot read MIDI from int"):
        TOK.midi_to_tokens(42)


# ------------------------------------------------------------------------------------------------ saving / Hub


def test_save_pretrained_and_auto_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    custom = NotewiseTokenizer(steps_per_quarter=24, max_wait=96)
    custom.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "vocab.json").read_text()) == custom.get_vocab()
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is NotewiseTokenizer
    assert loaded.steps_per_quarter == 24 and loaded.get_vocab() == custom.get_vocab()
    assert loaded("p60 wait96")["input_ids"] == custom("p60 wait96")["input_ids"]


def test_edited_vocab_file_is_refused(tmp_path):
    TOK.save_pretrained(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    vocab["p60"], vocab["p61"] = vocab["p61"], vocab["p60"]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ValueError, match="does not match"):
        NotewiseTokenizer.from_pretrained(tmp_path)


def test_saved_tokenizer_loads_with_trust_remote_code_without_the_package(tmp_path):
    """Saved for the Hub, the tokenizer files carry its code: they load where `toccata` cannot be imported."""
    from toccata.modeling.hub import saving_code

    TOK.save_pretrained(tmp_path / "plain")  # a plain save holds no code: the package loads it
    assert not list((tmp_path / "plain").glob("*.py"))
    with saving_code(TOK):
        TOK.save_pretrained(tmp_path / "tok")
    for module in ["tokenization_notewise.py", "tokenization_base.py", "midi_io.py", "midi_events.py"]:
        assert (tmp_path / "tok" / module).exists(), module
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["toccata"] = None  # make `import toccata` fail: only the saved files may be used
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(tmp_path / "tok")!r}, trust_remote_code=True)
        assert not type(tok).__module__.startswith("toccata"), type(tok).__module__
        print(" ".join(tok.midi_to_tokens(tok.tokens_to_midi("p60 wait12 endp60").dumps_midi())))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["p60", "wait12", "endp60"]


def test_files_that_travel_to_the_hub_need_only_numpy_symusic_and_transformers():
    """transformers checks the imports of remote code before running it; music21 must stay optional there."""
    from pathlib import Path

    from transformers.dynamic_module_utils import get_imports

    import toccata.tokenization as package

    folder = Path(package.__file__).parent
    allowed = set(sys.stdlib_module_names) | {"__future__", "numpy", "symusic", "transformers"}
    modules = ["tokenization_notewise.py", "tokenization_chordwise.py", "tokenization_base.py", "midi_io.py"]
    for module in [*modules, "midi_events.py"]:
        assert set(get_imports(str(folder / module))) <= allowed, module


def test_tracks_can_be_tokenized_one_by_one():
    score = make_score([[(0, 12 * STEP, 60)], [(6 * STEP, 12 * STEP, 48)]], drum_track=[(0, STEP, 36)])
    assert TOK.midi_to_track_tokens(score) == [["p60", "wait12", "endp60"], ["wait6", "p48", "wait6", "endp48"]]
