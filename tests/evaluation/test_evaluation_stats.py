"""Music statistics on hand-made token sequences, overlaps, and the verbatim-copy index."""

from __future__ import annotations

import numpy as np
import pytest
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from toccata.evaluation.copy_index import CopyIndex, quotes_scored_zero
from toccata.training.data import load_pieces
from toccata.evaluation.music_stats import (
    histogram_overlap,
    ratio_overlap,
    sample_stats,
    summarise_set,
)

TOK = NotewiseTokenizer()
LAYOUT = VocabLayout.from_config(TOK)


def ids(text: str) -> np.ndarray:
    return np.asarray(TOK.convert_tokens_to_ids(text.split()), dtype=np.int64)


PHRASE = "p60 p64 wait12 endp60 endp64 wait24 p67 wait6 endp67 wait6 p60 wait12 endp60"


def test_stats_of_a_hand_made_phrase():
    s = sample_stats(ids(PHRASE), LAYOUT)
    assert (s.notes, s.quarters, s.tokens) == (4, 5.0, 13)
    assert s.density == pytest.approx(0.8)
    assert s.note_quarters == pytest.approx((2 * 12 + 6 + 12) / 12)  # two notes for a quarter, then 1/2 and 1
    assert s.mean_polyphony == pytest.approx(3.5 / 5)
    assert s.max_polyphony == 2
    assert (s.lowest, s.highest, s.pitch_range) == (60, 67, 7)
    assert s.pitch_classes.tolist() == [2, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]
    assert s.onset_positions.tolist() == [3] + [0] * 11  # onset times 0, 36, 48: all on the beat
    assert np.flatnonzero(s.iois).tolist() == [11, 35]  # gaps of 12 and 36 steps (bin = steps - 1)
    assert s.longest_silence == pytest.approx(2.0)  # steps 12..36
    assert s.trailing_silence == 0.0
    assert not s.rest_collapsed()


def test_rest_collapse_mid_piece_and_at_the_end():
    exactly_four = sample_stats(ids("p60 wait12 endp60 wait48 p62 wait12 endp62"), LAYOUT)
    assert exactly_four.longest_silence == pytest.approx(4.0) and not exactly_four.rest_collapsed()
    longer = sample_stats(ids("p60 wait12 endp60 wait48 wait1 p62 wait12 endp62"), LAYOUT)
    assert longer.longest_silence == pytest.approx(49 / 12) and longer.rest_collapsed()
    tail = sample_stats(ids(PHRASE + " wait48 wait48"), LAYOUT)
    assert tail.trailing_silence == pytest.approx(8.0) and tail.rest_collapsed(max_silence=100.0)
    assert not sample_stats(ids(PHRASE + " wait48 wait36"), LAYOUT).rest_collapsed(max_silence=100.0)
    leading = sample_stats(ids("wait48 wait12 p60 wait12 endp60"), LAYOUT)
    assert leading.longest_silence == pytest.approx(5.0) and leading.rest_collapsed()


def test_restrike_stray_note_off_and_special_tokens():
    s = sample_stats(ids("<bos> endp70 p60 wait3 p60 wait3 endp60 <eos>"), LAYOUT)
    assert (s.notes, s.max_polyphony, s.quarters) == (2, 1, 0.5)
    assert np.flatnonzero(s.iois).tolist() == [2]
    held = sample_stats(ids("p60 p64 p67 wait24"), LAYOUT)  # notes left sounding end with the sequence
    assert (held.trailing_silence, held.longest_silence, held.mean_polyphony) == (0.0, 0.0, 3.0)
    empty = sample_stats(ids("wait12"), LAYOUT)
    assert (empty.notes, empty.pitch_range, empty.density, empty.longest_silence) == (0, 0, 0.0, 1.0)


def test_overlaps():
    assert histogram_overlap([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert histogram_overlap([1, 0], [0, 5]) == 0.0
    assert histogram_overlap([1, 1], [1, 0]) == pytest.approx(0.5)
    assert histogram_overlap([0, 0], [1, 0]) == 0.0
    with pytest.raises(ValueError, match="same bins"):
        histogram_overlap([1, 2], [1, 2, 3])
    assert ratio_overlap(2.0, 4.0) == pytest.approx(0.5)
    assert ratio_overlap(0.0, 0.0) == 1.0


def test_summarise_set_pools_counts():
    a, b = (
        sample_stats(ids(PHRASE), LAYOUT),
        sample_stats(ids("p72 wait12 endp72 wait48 wait12 p72 wait12 endp72"), LAYOUT),
    )
    summary = summarise_set([a, b])
    assert (summary.count, summary.notes, summary.quarters) == (2, 6, 12.0)
    assert summary.density == pytest.approx(6 / 12)
    assert summary.rest_collapsed == 1 and summary.rest_collapse_rate == 0.5
    assert summary.pitch_classes[0] == pytest.approx(4 / 6)
    assert summary.densities == pytest.approx([0.8, 2 / 7])
    assert summary.overlaps(summary)["pitch_classes"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def train_pieces(tiny_dataset):
    return load_pieces(tiny_dataset, "train", TOK, original_key_only=True)


@pytest.fixture(scope="module")
def index(train_pieces):
    return CopyIndex.of_pieces(train_pieces, LAYOUT)


def _transpose(tokens: np.ndarray, shift: int) -> np.ndarray:
    out = tokens.copy()
    pitched = (out >= LAYOUT.note_on_offset) & (out < LAYOUT.wait_offset)
    out[pitched] += shift
    return out


def _quarters(tokens: np.ndarray) -> float:
    waits = tokens[tokens >= LAYOUT.wait_offset] - LAYOUT.wait_offset + 1
    return float(waits.sum()) / LAYOUT.steps_per_quarter


@pytest.mark.parametrize("shift", [0, 2, -5])
def test_copy_index_finds_a_planted_copy(index, train_pieces, shift):
    piece = train_pieces[3]
    excerpt = piece.ids[40:240]
    rng = np.random.default_rng(shift + 10)
    noise = rng.permutation(train_pieces[0].ids)[:300]
    unk = [TOK.unk_token_id]
    sample = np.concatenate([noise, unk, _transpose(excerpt, shift), unk, noise[::-1]])
    match = index.longest_copy(sample)
    assert match.tokens == len(excerpt)
    assert match.quarters == pytest.approx(_quarters(excerpt)) and match.quarters > 8
    assert match.start == len(noise) + 1
    assert (match.source, match.source_offset, match.transposition) == (piece.piece_id, 40, shift)


def test_a_quote_of_the_training_music_scores_zero_and_new_music_keeps_its_score(index, train_pieces):
    quote = _transpose(train_pieces[3].ids[40:240], 2)  # over 8 quarters of a chorale, a tone higher
    fresh = np.random.default_rng(4).permutation(train_pieces[0].ids)[:300]
    lists = [TOK.convert_ids_to_tokens(ids.tolist()) for ids in (quote, fresh, quote[:20])]
    critic = lambda token_lists: [0.9 for _ in token_lists]  # noqa: E731  a critic that likes everything
    assert quotes_scored_zero(critic, index, TOK, 8.0)(lists) == [0.0, 0.9, 0.9]  # a 20-token quote is short
    assert quotes_scored_zero(critic, index, TOK, 1000.0)(lists) == [0.9, 0.9, 0.9]
    with pytest.raises(ValueError, match="max_quarters must be > 0"):
        quotes_scored_zero(critic, index, TOK, 0.0)


def test_copy_index_ignores_shuffles_and_short_spans(index, train_pieces):
    shuffled = np.random.default_rng(1).permutation(np.concatenate([p.ids for p in train_pieces[:3]]))
    assert index.longest_copy(shuffled).tokens == 0
    unk = [TOK.unk_token_id]
    piece = train_pieces[5].ids
    assert index.longest_copy(np.concatenate([unk, piece[100:115], unk])).tokens == 0  # 15 < k = 16 tokens
    assert index.longest_copy(np.concatenate([unk, piece[100:116], unk])).tokens == 16


def test_copy_index_reports_the_longest_copy_in_quarters(index, train_pieces):
    unk = [TOK.unk_token_id]
    short, long = train_pieces[1].ids[0:60], train_pieces[2].ids[20:180]
    sample = np.concatenate([unk, short, unk, long, unk, short, unk])
    match = index.longest_copy(sample)
    assert match.start == len(short) + 2 and match.tokens == len(long)
    assert match.quarters == pytest.approx(_quarters(long))
