"""Tests of the chordwise tokenizer: MIDI round trips, the data-built vocabulary, lenient decoding."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest
import symusic
from hypothesis import given, settings
from hypothesis import strategies as st

import toccata.tokenization  # noqa: F401 - registers the tokenizer names with AutoTokenizer
from toccata.tokenization import ChordwiseTokenizer, TokenEncoding, MidiError, NotewiseTokenizer, ScoreMeta
from toccata.tokenization.midi_io import music21_corpus_midi

TPQ = 480
STEP = TPQ // 4  # one sixteenth, the default chordwise step


def make_score(notes, *, tracks=1, drum_notes=(), qpm=None, time_signature=None, tpq=TPQ) -> symusic.Score:
    """A score with `notes` = [(time, duration, pitch), ...] spread round-robin over `tracks` piano tracks."""
    score = symusic.Score(tpq)
    if qpm is not None:
        score.tempos.append(symusic.Tempo(0, qpm))
    if time_signature is not None:
        score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    piano = [symusic.Track(name=f"Piano {i}", program=0, is_drum=False) for i in range(tracks)]
    for i, (time, duration, pitch) in enumerate(notes):
        piano[i % tracks].notes.append(symusic.Note(time, duration, pitch, 90))
    for track in piano:
        score.tracks.append(track)
    if drum_notes:
        drums = symusic.Track(name="Drums", program=0, is_drum=True)
        for time, duration, pitch in drum_notes:
            drums.notes.append(symusic.Note(time, duration, pitch, 100))
        score.tracks.append(drums)
    return score


def note_multiset(score: symusic.Score, *, to_steps: int | None = None) -> Counter:
    """Counter of (start, end, pitch) over all pitched tracks, in ticks or in steps of `to_steps` per quarter."""
    found = Counter()
    for track in score.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            start, end = note.time, note.time + note.duration
            if to_steps is not None:
                start = round(start * to_steps / score.tpq)
                end = round(end * to_steps / score.tpq)
            found[(start, end, note.pitch)] += 1
    return found


def expected_grid_notes(score: symusic.Score, steps: int) -> Counter:
    """Independent statement of the reading rules: round to the nearest step (half up), zero-length -> one step,
    same pitch and onset -> the longest, a re-struck pitch ends where it starts again."""
    by_pitch: dict[int, dict[int, int]] = {}
    for track in score.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            start = (2 * note.time * steps + score.tpq) // (2 * score.tpq)
            end = max((2 * (note.time + note.duration) * steps + score.tpq) // (2 * score.tpq), start + 1)
            onsets = by_pitch.setdefault(note.pitch, {})
            onsets[start] = max(onsets.get(start, 0), end)
    out = Counter()
    for pitch, onsets in by_pitch.items():
        starts = sorted(onsets)
        for i, start in enumerate(starts):
            end = onsets[start] if i + 1 == len(starts) else min(onsets[start], starts[i + 1])
            out[(start, end, pitch)] += 1
    return out


@pytest.fixture(scope="module")
def chorale() -> bytes:
    return music21_corpus_midi("bach/bwv66.6")


@pytest.fixture(scope="module")
def trained(chorale) -> ChordwiseTokenizer:
    return ChordwiseTokenizer.train_from_midi([chorale])


# ------------------------------------------------------------------------------------------ words


def test_words_spell_struck_and_held_keys():
    tok = ChordwiseTokenizer()
    score = make_score(
        [(2 * STEP, 4 * STEP, 60), (2 * STEP, 4 * STEP, 64), (2 * STEP, 4 * STEP, 67), (4 * STEP, STEP, 48)]
    )
    assert tok.midi_to_tokens(score) == [
        "rest",  # leading silence is kept
        "rest",
        "c60.64.67",
        "h60.64.67",
        "c48h60.64.67",
        "h60.64.67",
    ]


def test_empty_score_gives_no_words_and_decodes_to_nothing():
    tok = ChordwiseTokenizer()
    assert tok.midi_to_tokens(make_score([])) == []
    assert tok.tokens_to_midi([]).note_num() == 0


def test_steps_per_quarter_is_configurable():
    tok = ChordwiseTokenizer(steps_per_quarter=2)
    assert tok.midi_to_tokens(make_score([(0, TPQ, 60), (TPQ // 2, TPQ // 2, 72)])) == ["c60", "c72h60"]


# ------------------------------------------------------------------------------------------ MIDI round trips


def test_round_trip_keeps_grid_notes_exactly():
    notes = [
        (0, TPQ, 60),
        (0, TPQ, 64),
        (0, 2 * TPQ, 67),
        (STEP, STEP, 72),  # struck under a held chord
        (TPQ, TPQ, 60),  # re-strike right where the first 60 ends
        (3 * TPQ, STEP, 21),  # lowest key
        (3 * TPQ, STEP, 108),  # highest key
        (16 * TPQ, 3 * STEP, 50),  # after a long rest
    ]
    tok = ChordwiseTokenizer()
    decoded = tok.tokens_to_midi(tok.midi_to_tokens(make_score(notes, tracks=3)))
    assert decoded.tpq == TPQ
    assert note_multiset(decoded) == Counter((t, t + d, p) for t, d, p in notes)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 64), st.integers(1, 16), st.integers(21, 108)),
        max_size=40,
    ),
    st.sampled_from([1, 3, 4, 12]),
)
def test_round_trip_property_on_grid(grid_notes, steps):
    """Any notes on the grid come back exactly, up to the documented collapsing of same-pitch overlaps."""
    tok = ChordwiseTokenizer(steps_per_quarter=steps)
    tick = tok.output_tpq // steps
    score = make_score([(s * tick, d * tick, p) for s, d, p in grid_notes], tpq=tok.output_tpq)
    tokens = tok.midi_to_tokens(score)
    decoded = tok.tokens_to_midi(tokens)
    assert note_multiset(decoded, to_steps=steps) == expected_grid_notes(score, steps)
    assert tok.midi_to_tokens(decoded) == tokens  # tokens -> MIDI -> tokens is the identity


def test_off_grid_notes_round_to_the_nearest_step():
    tok = ChordwiseTokenizer()
    score = make_score([(STEP + 50, STEP - 40, 60), (3 * STEP - 70, 10, 62), (5 * STEP, 0, 64)])
    decoded = tok.tokens_to_midi(tok.midi_to_tokens(score))
    # 170 -> step 1, ends 290 -> step 2; 290 -> step 2, zero-length -> one step; length 0 -> one step
    assert note_multiset(decoded) == Counter(
        {(STEP, 2 * STEP, 60): 1, (2 * STEP, 3 * STEP, 62): 1, (5 * STEP, 6 * STEP, 64): 1}
    )


def test_pitches_fold_by_octaves_and_drums_are_dropped():
    tok = ChordwiseTokenizer()
    score = make_score([(0, TPQ, 12), (0, TPQ, 120)], drum_notes=[(0, TPQ, 36), (TPQ, TPQ, 38)])
    assert tok.midi_to_tokens(score) == ["c24.108"] + ["h24.108"] * 3


def test_restrikes_are_kept():
    tok = ChordwiseTokenizer()
    score = make_score([(0, TPQ, 60), (TPQ, STEP, 60), (TPQ + STEP, STEP, 60), (0, 3 * TPQ, 48)])
    tokens = tok.midi_to_tokens(score)
    assert tokens[:6] == ["c48.60", "h48.60", "h48.60", "h48.60", "c60h48", "c60h48"]
    assert note_multiset(tok.tokens_to_midi(tokens)) == note_multiset(score)
    # overlapping notes on one key: the first ends where the second is struck
    overlap = make_score([(0, 2 * TPQ, 60), (TPQ, 2 * TPQ, 60)])
    assert note_multiset(tok.tokens_to_midi(tok.midi_to_tokens(overlap))) == Counter(
        {(0, TPQ, 60): 1, (TPQ, 3 * TPQ, 60): 1}
    )


def test_bach_chorale_round_trip(chorale):
    tok = ChordwiseTokenizer()
    encoding = tok.encode_midi(chorale)
    original = symusic.Score.from_midi(chorale)
    assert len(encoding.tokens) == 144  # 36 quarters of four sixteenths
    decoded = tok.tokens_to_midi(encoding.tokens, meta=encoding.meta)
    assert note_multiset(decoded, to_steps=4) == expected_grid_notes(original, 4)
    assert sum(expected_grid_notes(original, 4).values()) > 100
    assert tok.midi_to_tokens(decoded) == encoding.tokens
    # the independent notewise code path reads the same notes at the same resolution
    notewise = NotewiseTokenizer(steps_per_quarter=4)
    assert note_multiset(notewise.tokens_to_midi(notewise.midi_to_tokens(chorale)), to_steps=4) == note_multiset(
        decoded, to_steps=4
    )


def test_meta_and_text_round_trip(tmp_path):
    tok = ChordwiseTokenizer()
    score = make_score([(0, TPQ, 60)], qpm=90.0, time_signature=(3, 4))
    encoding = tok.encode_midi(score)
    assert encoding.meta == ScoreMeta(qpm=90.0, time_signature=(3, 4))
    again = TokenEncoding.from_text(encoding.to_text())
    assert again == encoding
    path = tok.save_midi(again.tokens, tmp_path / "out" / "a.mid", meta=again.meta)
    reread = tok.encode_midi(path)
    assert reread.tokens == encoding.tokens and reread.meta == encoding.meta


def test_bad_midi_raises_midi_error():
    with pytest.raises(MidiError, match="MThd"):
        ChordwiseTokenizer().midi_to_tokens(b"not a midi file")


# ------------------------------------------------------------------------------------------ vocabulary


def test_vocab_is_built_from_data(trained, chorale):
    vocab = trained.get_vocab()
    assert [trained.convert_ids_to_tokens(i) for i in range(5)] == ["<pad>", "<bos>", "<eos>", "<unk>", "rest"]
    words = ChordwiseTokenizer().midi_to_tokens(chorale)
    assert set(vocab) == set(words) | {"<pad>", "<bos>", "<eos>", "<unk>", "rest"}
    counts = Counter(words)
    learned = [trained.convert_ids_to_tokens(i) for i in range(5, trained.vocab_size)]
    assert learned == sorted(learned, key=lambda w: (-counts[w], w))  # most frequent first
    ids = trained.midi_to_ids(chorale)
    assert ids == trained.convert_tokens_to_ids(words)
    assert trained.unk_token_id not in ids
    assert trained.decode(ids) == " ".join(words)


def test_build_vocab_min_frequency_and_max_vocab():
    lists = [["c60", "c60", "c62", "rest", "<bos>", "not-a-word"], ["c60", "c62", "h62", "c64"]]
    tok = ChordwiseTokenizer.build_vocab(lists)
    assert tok.convert_ids_to_tokens(list(range(tok.vocab_size))) == [
        "<pad>", "<bos>", "<eos>", "<unk>", "rest", "c60", "c62", "c64", "h62",
    ]  # fmt: skip
    assert list(ChordwiseTokenizer.build_vocab(lists, min_frequency=2).get_vocab())[5:] == ["c60", "c62"]
    assert ChordwiseTokenizer.build_vocab(lists, max_vocab=6).vocab_size == 6
    with pytest.raises(ValueError, match="max_vocab"):
        ChordwiseTokenizer.build_vocab(lists, max_vocab=3)
    with pytest.raises(ValueError, match="min_frequency"):
        ChordwiseTokenizer.build_vocab(lists, min_frequency=0)


def test_unknown_word_maps_to_unk(trained):
    ids = trained("c60.64.67.71.74.77.81 rest zzz")["input_ids"]
    rest = trained.convert_tokens_to_ids("rest")
    assert ids == [trained.bos_token_id, trained.unk_token_id, rest, trained.unk_token_id]
    assert trained.convert_tokens_to_ids("c21.108") == trained.unk_token_id


def test_untrained_tokenizer_still_gives_words_and_warns_on_ids(chorale):
    bare = ChordwiseTokenizer()
    assert not bare.is_trained and bare.vocab_size == 5
    assert len(bare.midi_to_tokens(chorale)) == 144
    with pytest.warns(UserWarning, match="no learned vocabulary"):
        ids = bare.midi_to_ids(chorale)
    assert set(ids) == {bare.unk_token_id}


def test_save_pretrained_and_auto_tokenizer_round_trip(chorale, tmp_path):
    from transformers import AutoTokenizer

    tok = ChordwiseTokenizer.train_from_midi([chorale], steps_per_quarter=8, min_pitch=24, max_pitch=100)
    tok.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "vocab.json").read_text())
    assert saved == tok.get_vocab()
    for loader in (ChordwiseTokenizer.from_pretrained, AutoTokenizer.from_pretrained):
        again = loader(tmp_path)
        assert type(again).__name__ == "ChordwiseTokenizer"
        assert again.get_vocab() == tok.get_vocab()
        assert (again.steps_per_quarter, again.min_pitch, again.max_pitch) == (8, 24, 100)
        assert again.midi_to_ids(chorale) == tok.midi_to_ids(chorale)
        text = " ".join(tok.midi_to_tokens(chorale))
        assert again(text)["input_ids"] == tok(text)["input_ids"]


def test_bad_vocab_is_refused(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"c60": 0, "rest": 1}))
    with pytest.raises(ValueError, match="special tokens"):
        ChordwiseTokenizer(vocab_file=str(path))
    path.write_text(json.dumps({"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 7}))
    with pytest.raises(ValueError, match="not in"):
        ChordwiseTokenizer(vocab_file=str(path))


# ------------------------------------------------------------------------------------------ lenient decoding


def test_lenient_decoding_rules():
    tok = ChordwiseTokenizer()
    notes = tok.tokens_to_notes(
        ["<bos>", "c60", "<unk>", "garbage", 10**30, -5, "h60", "c60", "c60.200h61", "<pad>", "rest", "h62", "<eos>"]
    )
    got = sorted(zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist()))
    # specials take no time; unknown words and ids hold what sounds for one step; h without c starts a note;
    # out-of-range pitches are ignored; the sequence end stops what still sounds
    assert got == [(0, 6, 60), (6, 7, 60), (7, 8, 60), (7, 8, 61), (9, 10, 62)]
    assert tok.tokens_to_notes("<unk> c60").start.tolist() == [1]  # a leading unknown step is silent


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.integers(-(10**20), 10**20),
            st.sampled_from(["rest", "<unk>", "<bos>", "c60", "h60", "c60h60", "c.", "h", "c1e3", "c60..61", "c99999"]),
            st.from_regex(r"\A[ch]?[0-9.]{0,12}(h[0-9.]{0,8})?\Z"),
        ),
        max_size=60,
    )
)
def test_decoding_garbage_never_raises(tokens):
    tok = ChordwiseTokenizer()
    score = tok.tokens_to_midi(tokens)
    for track in score.tracks:
        for note in track.notes:
            assert note.duration > 0 and 21 <= note.pitch <= 108


def test_decoding_random_ids_never_raises(trained):
    rng = random.Random(0)
    for _ in range(50):
        ids = [rng.randrange(-3, trained.vocab_size + 3) for _ in range(rng.randrange(0, 200))]
        trained.tokens_to_midi(ids)
        trained.tokens_to_midi(np.array(ids, dtype=np.int64))
        trained.decode([i for i in ids if i >= 0])


def test_trained_ids_decode_like_words(trained, chorale):
    words = trained.midi_to_tokens(chorale)
    ids = trained.midi_to_ids(chorale)
    assert note_multiset(trained.tokens_to_midi(ids)) == note_multiset(trained.tokens_to_midi(words))


def test_encoding_in_blocks_matches_one_block(monkeypatch, chorale):
    """Long pieces are encoded in dense blocks of steps; block boundaries must not change a word."""
    import toccata.tokenization.tokenization_chordwise as module

    tok = ChordwiseTokenizer.train_from_midi([chorale])
    whole_tokens, whole_ids = tok.midi_to_tokens(chorale), tok.midi_to_ids(chorale)
    monkeypatch.setattr(module, "_CHUNK_CELLS", 88 * 7)  # seven steps per block
    small = ChordwiseTokenizer.train_from_midi([chorale])
    assert small.midi_to_tokens(chorale) == whole_tokens
    assert small.midi_to_ids(chorale) == whole_ids
