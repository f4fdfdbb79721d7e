"""The critic's corrupted negatives: each corruption breaks the one thing it names and keeps the rest of a real
excerpt (a Mozart movement from music21's corpus, read as the tokenizer reads it)."""

from __future__ import annotations

from collections import Counter

import music21
import numpy as np
import pytest
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import NoteArrays
from toccata.classifiers.corruptions import CORRUPTIONS, corrupt


@pytest.fixture(scope="module")
def real() -> NoteArrays:
    tokenizer = NotewiseTokenizer()
    tokens = tokenizer.midi_to_tokens(music21.corpus.parse("mozart/k155/movement2"))
    notes = tokenizer.tokens_to_notes(tokens[:1200])
    assert len(notes) > 200
    return notes


def rows(notes: NoteArrays) -> Counter:
    return Counter(zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist()))


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_each_corruption_changes_the_music_deterministically_and_stays_on_the_keyboard(real, kind):
    spoilt = corrupt(real, kind, np.random.default_rng(1))
    assert rows(spoilt) != rows(real)
    assert rows(spoilt) == rows(corrupt(real, kind, np.random.default_rng(1)))
    if kind != "reversed":  # the one corruption that draws nothing
        assert rows(spoilt) != rows(corrupt(real, kind, np.random.default_rng(2)))
    assert spoilt.pitch.min() >= 21 and spoilt.pitch.max() <= 108 and (spoilt.end > spoilt.start).all()
    assert (np.diff(spoilt.start) >= 0).all(), "sorted by onset, as the tokenizer writes them"


def test_scrambled_pitches_keep_the_rhythm_and_move_every_note_by_a_wrong_interval(real):
    spoilt = corrupt(real, "pitches scrambled", np.random.default_rng(0))
    timing = Counter(zip(real.start.tolist(), real.end.tolist()))
    assert Counter(zip(spoilt.start.tolist(), spoilt.end.tolist())) == timing and len(spoilt) == len(real)
    assert not (rows(spoilt) & rows(real)), "every note moved"


def test_shuffled_rhythm_keeps_the_chords_in_order_and_the_gaps_but_not_their_order(real):
    spoilt = corrupt(real, "rhythm shuffled", np.random.default_rng(0))

    def chords(notes):
        return [tuple(sorted(notes.pitch[notes.start == t].tolist())) for t in np.unique(notes.start)]

    assert chords(spoilt) == chords(real)
    gaps, new_gaps = np.diff(np.unique(real.start)), np.diff(np.unique(spoilt.start))
    assert sorted(gaps.tolist()) == sorted(new_gaps.tolist()) and gaps.tolist() != new_gaps.tolist()


def test_reordered_bars_are_the_same_bars_elsewhere(real):
    spoilt = corrupt(real, "bars reordered", np.random.default_rng(0))
    bar = 4 * real.tpq

    def within_bars(notes):
        return Counter(zip((notes.start % bar).tolist(), (notes.end - notes.start).tolist(), notes.pitch.tolist()))

    assert within_bars(spoilt) == within_bars(real) and rows(spoilt) != rows(real)


def test_one_hand_moves_by_a_tritone_and_the_other_stays(real):
    spoilt = corrupt(real, "hand a tritone off", np.random.default_rng(0))
    kept = rows(real) & rows(spoilt)
    assert 0.2 * len(real) < sum(kept.values()) < 0.8 * len(real)
    moved = Counter((start, end, (pitch + 6) % 12) for start, end, pitch in (rows(spoilt) - kept).elements())
    expected = Counter((start, end, pitch % 12) for start, end, pitch in (rows(real) - kept).elements())
    assert sum((moved - expected).values()) <= 0.02 * len(real), "the moved notes are the others a tritone away"


def test_reversing_twice_gives_the_excerpt_back_and_once_puts_the_end_first(real):
    once = corrupt(real, "reversed", np.random.default_rng(0))
    assert rows(corrupt(once, "reversed", np.random.default_rng(0))) == rows(real)
    assert once.pitch[once.start == once.start.min()].tolist() != real.pitch[real.start == real.start.min()].tolist()


def test_random_notes_are_added_to_the_real_ones(real):
    spoilt = corrupt(real, "random notes added", np.random.default_rng(0))
    assert rows(real) <= rows(spoilt) and len(spoilt) == len(real) + round(0.25 * len(real))


def test_an_unknown_corruption_names_the_known_ones(real):
    with pytest.raises(ValueError, match="pitches scrambled"):
        corrupt(real, "inverted", np.random.default_rng(0))


def timing(notes: NoteArrays) -> Counter:
    return Counter(zip(notes.start.tolist(), notes.end.tolist()))


def test_a_shifted_register_keeps_everything_but_the_register(real):
    spoilt = corrupt(real, "register shifted", np.random.default_rng(0))
    assert timing(spoilt) == timing(real)
    assert Counter((spoilt.pitch % 12).tolist()) == Counter((real.pitch % 12).tolist())  # moved by octaves
    assert abs(float(np.median(spoilt.pitch)) - float(np.median(real.pitch))) >= 12


def test_a_narrowed_range_keeps_the_pitch_classes_and_the_rhythm_within_an_octave_and_a_half(real):
    spoilt = corrupt(real, "range narrowed", np.random.default_rng(0))
    assert timing(spoilt) == timing(real)
    assert Counter((spoilt.pitch % 12).tolist()) == Counter((real.pitch % 12).tolist())
    assert spoilt.pitch.max() - spoilt.pitch.min() < 18 <= real.pitch.max() - real.pitch.min()


def test_a_hurried_excerpt_plays_the_same_notes_in_the_same_order_in_less_time(real):
    spoilt = corrupt(real, "hurried", np.random.default_rng(0))
    span, new_span = real.end.max() - real.start.min(), spoilt.end.max() - spoilt.start.min()
    assert new_span <= round(span * 2 / 3) + 1 and new_span >= span / 2 - 1
    assert spoilt.start.min() == real.start.min()
    onsets, new_onsets = np.unique(real.start), np.unique(spoilt.start)
    assert len(new_onsets) >= 0.8 * len(onsets), "few onsets merge"
    assert np.median(np.diff(new_onsets)) < np.median(np.diff(onsets)), "the gaps between onsets shrink"
    assert set(spoilt.pitch.tolist()) == set(real.pitch.tolist())
    assert len(set(zip(spoilt.start.tolist(), spoilt.pitch.tolist()))) == len(spoilt), "no note doubled"


def test_notes_cut_short_keep_their_onsets_and_pitches_and_only_lose_length(real):
    spoilt = corrupt(real, "notes cut short", np.random.default_rng(0))
    assert Counter(zip(spoilt.start.tolist(), spoilt.pitch.tolist())) == Counter(
        zip(real.start.tolist(), real.pitch.tolist())
    )
    order, new_order = np.lexsort((real.pitch, real.start)), np.lexsort((spoilt.pitch, spoilt.start))
    length = (real.end - real.start)[order]
    new_length = (spoilt.end - spoilt.start)[new_order]
    assert (new_length <= length).all()
    shortened = new_length < length
    assert 0.15 < shortened.mean() < 0.7 and (new_length[shortened] <= 3).all()
