"""The critic check on real chorales, with a judge that hears only the key: it must tell scrambled pitches and
random notes apart, and be at chance (exactly 0.5) on spoilings that keep every pitch class (reversed, shuffled
rhythm, register shifted by octaves), and near it where octaves are folded together (range narrowed)."""

from __future__ import annotations

import numpy as np
import pytest
from toccata.tokenization import NotewiseTokenizer
from toccata.classifiers.corruptions import CORRUPTIONS
from toccata.classifiers.critic_check import check_critic, real_excerpts, real_pieces
from toccata.classifiers.data import dataset_rows

MAJOR = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)


def key_judge(tokenizer):
    """P(human) = share of notes in the excerpt's best-fitting major scale (chorales are diatonic)."""

    def score(token_lists):
        out = []
        for tokens in token_lists:
            classes = tokenizer.tokens_to_notes(tokens).pitch % 12
            out.append(max(float(np.roll(MAJOR, key)[classes].mean()) for key in range(12)) if len(classes) else 0.0)
        return out

    return score


def test_the_check_tells_which_spoilings_a_judge_hears(tiny_dataset):
    tokenizer = NotewiseTokenizer()
    real = real_excerpts(tiny_dataset, "train", tokenizer, length=256, per_piece=1)
    assert len(real) >= 10
    check = check_critic(key_judge(tokenizer), tokenizer, real, negatives={"silence": [["wait12"]] * 3})
    assert check.auc["pitches scrambled"] > 0.8 and check.auc["random notes added"] > 0.6
    assert check.auc["reversed"] == pytest.approx(0.5) and check.auc["rhythm shuffled"] == pytest.approx(0.5)
    assert check.auc["register shifted"] == pytest.approx(0.5)
    assert abs(check.auc["range narrowed"] - 0.5) < 0.1  # octave folding merges a few notes that were octaves apart
    assert check.counts["silence"] == 3 and check.real == len(real)
    assert sum(count for _, _, count in check.reliability) == len(real) * (1 + len(CORRUPTIONS)) + 3
    assert "| pitches scrambled |" in check.markdown()
    with pytest.raises(ValueError, match="no real excerpts"):
        check_critic(key_judge(tokenizer), tokenizer, [])


def test_whole_pieces_are_checked_whole(tiny_dataset):
    """`critic check --tokens 0`: every piece of the split once, whole (as `critic score` reads a file), spoilt
    whole."""
    tokenizer = NotewiseTokenizer()
    pieces = real_pieces(tiny_dataset, "train", tokenizer)
    lengths = [len(ids) for _, ids in dataset_rows(tiny_dataset, "train", tokenizer)]
    assert [len(words) for words in pieces] == lengths and max(lengths) > 256
    check = check_critic(key_judge(tokenizer), tokenizer, pieces, corruptions=("pitches scrambled", "reversed"))
    assert check.real == len(lengths) and check.auc["pitches scrambled"] > 0.8
    assert check.auc["reversed"] == pytest.approx(0.5)
