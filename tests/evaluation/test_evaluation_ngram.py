"""The likelihood baselines: Kneser-Ney and the unigram are proper distributions and learn real chorales."""

from __future__ import annotations

import numpy as np
import pytest
from toccata.tokenization import NotewiseTokenizer
from toccata.training.data import load_pieces
from toccata.evaluation.likelihood import likelihood_table, piece_sequences
from toccata.evaluation.ngram import KneserNeyModel, UnigramModel

VOCAB = 12


def _random_sequences(seed: int, count: int = 30) -> list[np.ndarray]:
    """Short <bos>=1 ... <eos>=2 sequences over ids 3..11 with some structure (a biased random walk)."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(count):
        body = 3 + np.cumsum(rng.integers(-1, 3, size=rng.integers(3, 40))) % 9
        seqs.append(np.concatenate([[1], body, [2]]))
    return seqs


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_kneser_ney_distributions_sum_to_one(order):
    model = KneserNeyModel(VOCAB, order=order, bos_id=1).fit(_random_sequences(0))
    test = _random_sequences(1, 5)
    histories = [[1], [1, 4], test[0][:6], test[1][:20], [1, 11, 11, 11, 11], [1, 0, 0]]
    for history in histories:
        dist = model.next_distribution(history)
        assert dist.shape == (VOCAB,)
        assert np.all(dist > 0), f"zero probability after {history}"
        assert dist.sum() == pytest.approx(1.0, abs=1e-9), f"order {order}, history {history}"


def test_log2prob_agrees_with_next_distribution():
    model = KneserNeyModel(VOCAB, order=4, bos_id=1).fit(_random_sequences(2))
    seq = _random_sequences(3, 1)[0]
    scores = model.log2prob(seq)
    assert scores.shape == (len(seq) - 1,)
    for i in range(1, len(seq)):
        expected = np.log2(model.next_distribution(seq[:i])[seq[i]])
        assert scores[i - 1] == pytest.approx(expected, abs=1e-9)


def test_kneser_ney_learns_a_repeated_pattern():
    seqs = [np.array([1] + [3, 4, 5, 6] * 10 + [2])] * 5
    model = KneserNeyModel(VOCAB, order=3, bos_id=1).fit(seqs)
    assert model.next_distribution([1, 3, 4])[5] > 0.9
    assert model.next_distribution([1, 4, 5])[6] > 0.9


def test_unigram_is_add_one():
    seqs = [np.array([1, 3, 3, 4, 2])]
    unigram = UnigramModel(6).fit(seqs)
    # counts of predicted tokens: 3 -> 2, 4 -> 1, eos 2 -> 1; total 4 + 6 (add one)
    assert 2**unigram.log2p == pytest.approx([1 / 10, 1 / 10, 2 / 10, 3 / 10, 2 / 10, 1 / 10])
    assert unigram.log2prob(np.array([1, 3, 5])) == pytest.approx(np.log2([3 / 10, 1 / 10]))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"ids must be in \[0, 12\)"):
        KneserNeyModel(VOCAB).fit([np.array([1, 99, 2])])
    with pytest.raises(ValueError, match="call fit"):
        KneserNeyModel(VOCAB).log2prob(np.array([1, 3, 2]))
    with pytest.raises(ValueError, match="order must be"):
        KneserNeyModel(VOCAB, order=0)


def test_baselines_beat_uniform_on_chorales(tiny_dataset):
    tok = NotewiseTokenizer()
    train = piece_sequences(load_pieces(tiny_dataset, "train", tok, original_key_only=True), 1, 2)
    held = piece_sequences(load_pieces(tiny_dataset, "validation", tok, original_key_only=True), 1, 2)
    notes = range(tok.note_on_offset, tok.note_on_offset + tok.num_pitches)
    unigram, five = likelihood_table(None, train, held, notes, len(tok), tok.bos_token_id)
    uniform = np.log2(len(tok))
    assert unigram.tokens == five.tokens == sum(len(s) - 1 for s in held)
    assert unigram.bits_per_token < uniform - 1.0
    assert five.bits_per_token < unigram.bits_per_token - 1.0
    assert five.perplexity == pytest.approx(2**five.bits_per_token)
    assert five.bits_per_note == pytest.approx(five.total_bits / five.notes)


def test_kneser_ney_samples_what_it_learnt_and_only_allowed_ids():
    seqs = [np.array([1] + [3, 4, 5, 6] * 10 + [2])] * 5
    model = KneserNeyModel(VOCAB, order=3, bos_id=1).fit(seqs)
    drawn = model.sample(np.random.default_rng(0), 200, eos_id=2)
    assert 0 < len(drawn) <= 200 and 2 not in drawn.tolist()
    pairs = list(zip(drawn[:-1].tolist(), drawn[1:].tolist()))
    assert sum(b == {3: 4, 4: 5, 5: 6, 6: 3}.get(a) for a, b in pairs) >= 0.8 * len(pairs)
    allowed = np.arange(VOCAB) >= 7  # ids the model never saw: only those, and no <eos>
    drawn = model.sample(np.random.default_rng(1), 50, eos_id=2, allowed=allowed)
    assert len(drawn) == 50 and drawn.min() >= 7
    np.testing.assert_array_equal(drawn, model.sample(np.random.default_rng(1), 50, eos_id=2, allowed=allowed))
