"""The feature critic of `toccata evaluate`: features read as the decoder reads tokens, excerpts, and the
cross-validated AUC (about 0.5 for two draws of one source, near 1 for music that differs in rhythm)."""

from __future__ import annotations

import numpy as np
import pytest
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from toccata.evaluation.feature_critic import critic_score, excerpt_features, excerpts, feature_names

TOK = NotewiseTokenizer()
LAYOUT = VocabLayout.from_config(TOK)


def ids(text: str) -> np.ndarray:
    return np.asarray(TOK.convert_tokens_to_ids(text.split()), dtype=np.int64)


def features(text: str) -> dict[str, float]:
    return dict(zip(feature_names(), excerpt_features(ids(text), LAYOUT)))


def test_features_of_a_crafted_melody():
    # C4 E4 G4 as eighth notes (6 steps), then a C major chord held for a quarter (12 steps)
    f = features("p60 wait6 endp60 p64 wait6 endp64 p67 wait6 endp67 p60 p64 p67 wait12 endp60 endp64 endp67")
    assert len(feature_names()) == len(excerpt_features(ids("p60 wait1 endp60"), LAYOUT))
    assert f["pitch class 0"] == pytest.approx(2 / 6) and f["pitch class 4"] == pytest.approx(2 / 6)
    assert f["inter-onset <= 6 steps"] == pytest.approx(1.0)  # three gaps of 6 steps
    assert f["duration <= 6 steps"] == pytest.approx(3 / 6) and f["duration <= 12 steps"] == pytest.approx(3 / 6)
    # top notes per onset: 60, 64, 67, 67 -> intervals 4, 3, 0
    assert f["interval <= 4"] == pytest.approx(1 / 3) and f["interval <= 3"] == pytest.approx(1 / 3)
    assert f["interval <= 0"] == pytest.approx(1 / 3)
    assert f["onsets per quarter"] == pytest.approx(4 / 2.5) and f["notes per quarter"] == pytest.approx(6 / 2.5)
    assert f["mean polyphony"] == pytest.approx((6 * 3 + 12 * 3) / 30)
    assert f["pitch range"] == 7 and f["mean pitch"] == pytest.approx(np.mean([60, 64, 67, 60, 64, 67]))


def test_features_follow_restrikes_and_open_notes():
    f = features("p60 wait3 p60 wait3 endp60 p62 wait24")  # re-struck C after 3 steps; D never released
    assert f["duration <= 3 steps"] == pytest.approx(2 / 3) and f["duration <= 24 steps"] == pytest.approx(1 / 3)
    assert f["inter-onset <= 3 steps"] == pytest.approx(1.0)


def test_excerpts_do_not_overlap_and_respect_the_cap():
    seqs = [np.arange(2500), np.arange(100), np.arange(1300)]
    windows, groups = excerpts(seqs, 600, per_sequence=0, seed=3)
    assert groups == [0, 0, 0, 0, 2, 2]  # the 100-token sequence is too short
    assert all(len(w) == 600 for w in windows)
    firsts = [int(w[0]) for w in windows[:4]]
    assert all(b - a >= 600 for a, b in zip(firsts, firsts[1:]))
    capped, groups = excerpts(seqs, 600, per_sequence=1, seed=3)
    assert groups == [0, 2]


def _random_piece(rng: np.random.Generator, steps: tuple[int, ...], length: int = 3000) -> np.ndarray:
    """Random monophonic music whose note lengths are drawn from `steps`."""
    words = []
    while len(words) < length:
        pitch, step = int(rng.integers(48, 84)), int(rng.choice(steps))
        words += [f"p{pitch}", f"wait{step}", f"endp{pitch}"]
    return ids(" ".join(words[:length]))


def test_the_critic_tells_different_rhythms_apart_and_not_equal_ones():
    rng = np.random.default_rng(0)
    real = [_random_piece(rng, (3, 6, 12)) for _ in range(12)]
    same = [_random_piece(rng, (3, 6, 12), 1200) for _ in range(40)]
    slow = [_random_piece(rng, (12, 24), 1200) for _ in range(40)]
    real_ex = excerpts(real, 600, per_sequence=3)
    alike = critic_score(*real_ex, *excerpts(same, 600, per_sequence=1), LAYOUT)
    differ = critic_score(*real_ex, *excerpts(slow, 600, per_sequence=1), LAYOUT)
    assert differ.auc > 0.95 and alike.auc < 0.75
    assert differ.separating[0]["feature"].startswith(("inter-onset", "duration", "onsets", "notes per"))
    assert (differ.real, differ.generated, differ.folds) == (36, 40, 5)
    with pytest.raises(ValueError, match="at least 5 excerpts"):
        critic_score(*real_ex, [real_ex[0][0]], [0], LAYOUT)
