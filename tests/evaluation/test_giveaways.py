"""The giveaways, sample by sample: each measure read from crafted token sequences as the decoder reads them, and
the table that compares the samples' spread with real music's."""

from __future__ import annotations

import numpy as np
import pytest
from toccata.evaluation.giveaways import GIVEAWAYS, giveaway_markdown, giveaway_table, giveaway_values, real_windows
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer

TOK = NotewiseTokenizer()
LAYOUT = VocabLayout.from_config(TOK)


def values(text: str) -> dict[str, float]:
    return giveaway_values(TOK.convert_tokens_to_ids(text.split()), LAYOUT)


def test_each_measure_reads_the_notes_as_the_decoder_does():
    # C and E struck together, then C again, then G an octave and a fifth up, then a chord held ten quarters
    got = values(
        "p60 p64 wait12 endp60 endp64 p64 wait12 endp64 p83 wait12 endp83 "
        "p48 p55 wait48 wait48 wait24 endp48 endp55"
    )
    # onsets' top notes 64, 64, 83, 55: steps 0, +19, -28 -> one repeat in three, two wide leaps
    assert got["repeated top notes"] == pytest.approx(1 / 3) and got["wide leaps"] == pytest.approx(2 / 3)
    assert got["notes per quarter"] == pytest.approx(6 / 13)  # 6 notes in 3 + 10 quarters
    assert got["long notes"] == pytest.approx(2 / 6)  # the held chord: 10 quarters >= 8
    assert got["polyphony"] == pytest.approx((2 + 1 + 1 + 2 * 10) / 13)


def test_a_note_never_switched_off_is_long_and_an_empty_sequence_is_undefined():
    assert values("p60 wait48 wait48")["long notes"] == 1.0
    empty = values("wait12")
    assert empty["notes per quarter"] == 0.0 and np.isnan(empty["repeated top notes"]) and np.isnan(empty["long notes"])


def test_the_table_flags_samples_outside_the_real_band():
    rng = np.random.default_rng(0)
    real = [dict.fromkeys(GIVEAWAYS, v) | {"notes per quarter": v} for v in rng.uniform(1.6, 5.5, 200)]
    like = [dict.fromkeys(GIVEAWAYS, v) | {"notes per quarter": v} for v in rng.uniform(1.6, 5.5, 100)]
    runaway = [dict(s) for s in like]
    for sample in runaway[::3]:  # one sample in three runs at 12.5 notes per quarter
        sample["notes per quarter"] = 12.5
    same = {row.measure: row for row in giveaway_table(real, like)}
    off = {row.measure: row for row in giveaway_table(real, runaway)}
    assert same["notes per quarter"].within and same["notes per quarter"].outside <= 0.2
    assert not off["notes per quarter"].within and off["notes per quarter"].outside >= 1 / 3
    assert "**gives it away**" in giveaway_markdown(list(off.values()))


def test_real_windows_match_the_samples_length():
    pieces = [np.arange(5000), np.arange(300)]
    windows = real_windows(pieces, 2000)
    assert [len(w) for w in windows] == [2000, 2000, 300]
    assert windows[1][-1] == 4999  # spread over the piece: the last window ends at its end
