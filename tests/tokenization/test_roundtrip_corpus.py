"""Real music: works of music21's bundled corpus exported to MIDI, tokenized and decoded, note multisets compared."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import symusic

from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import music21_corpus_midi

WORKS = [
    "bach/bwv66.6",
    "bach/bwv1.6",
    "bach/bwv10.7",
    "mozart/k155/movement2",
    "haydn/opus1no1/movement2",
    "beethoven/opus18no1/movement2",
    "joplin/maple_leaf_rag",
    "chopin/mazurka06-2",
    "cpebach/h186",
    "corelli/opus3no1/1grave",
    "schubert/Lindenbaum",
    "essenFolksong/altdeu10#3",
]
SPQ = 12


def expected_grid_notes(score: symusic.Score) -> Counter:
    """An independent, plain-Python statement of the documented rules: round to the 12-step grid, one step at least,
    fold into the piano range, collapse same-key notes that start together (longest wins), cut a held note where
    its key is struck again."""
    by_key: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for track in score.tracks:
        if track.is_drum:
            continue
        for note in track.notes:
            start = round(note.time * SPQ / score.tpq + 1e-9)
            end = max(round((note.time + note.duration) * SPQ / score.tpq + 1e-9), start + 1)
            pitch = note.pitch
            while pitch < 21:
                pitch += 12
            while pitch > 108:
                pitch -= 12
            by_key[pitch].append((start, end))
    result: Counter = Counter()
    for pitch, notes in by_key.items():
        longest: dict[int, int] = {}
        for start, end in notes:
            longest[start] = max(end, longest.get(start, 0))
        starts = sorted(longest)
        for i, start in enumerate(starts):
            end = longest[start] if i + 1 == len(starts) else min(longest[start], starts[i + 1])
            result[(start, end, pitch)] += 1
    return result


def grid_notes_of(score: symusic.Score) -> Counter:
    scale = score.tpq // SPQ
    return Counter(
        (n.time // scale, (n.time + n.duration) // scale, n.pitch) for track in score.tracks for n in track.notes
    )


@pytest.fixture(scope="module")
def tokenizer() -> NotewiseTokenizer:
    return NotewiseTokenizer()


@pytest.mark.slow
@pytest.mark.parametrize("work", WORKS)
def test_corpus_work_round_trips_through_notewise_tokens(work, tokenizer):
    midi = music21_corpus_midi(work)
    original = symusic.Score.from_midi(midi)
    assert original.note_num() > 20, f"{work} exported too few notes to be a meaningful test"
    encoding = tokenizer.encode_midi(midi)
    decoded = tokenizer.tokens_to_midi(encoding.tokens, meta=encoding.meta)
    assert grid_notes_of(decoded) == expected_grid_notes(original)
    # and the decoded file tokenizes to the same words (the second round trip is exact)
    assert tokenizer.midi_to_tokens(decoded.dumps_midi()) == encoding.tokens
    assert decoded.tempos[0].qpm == pytest.approx(encoding.meta.qpm, rel=1e-4)  # MIDI stores whole microseconds
