"""The one front door to every tokenization (`toccata.tokenization.load_scheme`): each registered scheme round-trips
a chorale from music21's corpus through its token text, saves to a folder and loads back from it, and names and
options it does not know are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from toccata.tokenization import available_schemes, load_scheme, scheme_of_text
from toccata.tokenization.midi_io import music21_corpus_midi
from toccata.tokenization.schemes import SCHEME_FILE, TokenScheme, grid_notes

OPTIONS = {  # what a scheme needs by name to encode a piece: learnt ones keep every word of these pieces
    "notewise-bpe": {"bpe_vocab_size": 260},
    "chordwise": {"min_frequency": 1},
}
VARIANTS = [(name, OPTIONS.get(name, {})) for name in available_schemes()] + [
    ("notewise", {"instruments": ("piano", "violin", "cello")}),
    *[(name, {"miditok_defaults": True}) for name in ("remi", "midilike", "tsd")],
    ("clara", {"chamber": True}),
]
IDS = [f"{name}-{'-'.join(map(str, options.values()))}" if options else name for name, options in VARIANTS]


@pytest.fixture(scope="module")
def pieces() -> list[bytes]:
    return [music21_corpus_midi(work) for work in ("bach/bwv66.6", "bach/bwv4.8")]


def _scheme(name: str, options: dict, pieces: list[bytes]):
    scheme = load_scheme(name, **options)
    if name in OPTIONS:
        scheme.train([grid_notes(midi) for midi in pieces])
    return scheme


def _key(notes) -> np.ndarray:
    order = np.lexsort((notes.end, notes.pitch, notes.start))
    return np.stack([notes.start[order], notes.pitch[order], notes.end[order]])


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_every_scheme_round_trips_a_chorale_through_its_text(pieces, name, options):
    scheme = _scheme(name, options, pieces)
    assert scheme.name == name
    for midi in pieces:
        encoding = scheme.tokenize(midi)
        assert encoding.tokens and encoding.scheme == name
        score = scheme.detokenize(scheme.to_text(encoding))
        again = scheme.tokenize(score)
        assert again.tokens == encoding.tokens, name  # decoding then encoding gives the same words
        assert (_key(grid_notes(score)) == _key(grid_notes(midi))).all(), name  # and the notes of the piece


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_a_saved_scheme_loads_back_from_its_folder(tmp_path, pieces, name, options):
    scheme = _scheme(name, options, pieces)
    folder = scheme.save(tmp_path / "scheme")
    assert (folder / SCHEME_FILE).is_file()
    loaded = load_scheme(folder)
    assert type(loaded) is type(scheme) and loaded.name == name
    again = loaded.save(tmp_path / "again")  # the same settings (instruments, chamber, merges, ...) come back
    assert (again / SCHEME_FILE).read_text() == (folder / SCHEME_FILE).read_text()
    assert sorted(path.name for path in again.iterdir()) == sorted(path.name for path in folder.iterdir())
    assert loaded.tokenize(pieces[0]).tokens == scheme.tokenize(pieces[0]).tokens
    if isinstance(scheme, TokenScheme):
        assert loaded.vocab_size == scheme.vocab_size and loaded.special_ids == scheme.special_ids


def test_the_header_of_token_text_names_its_scheme(pieces):
    duo = scheme_of_text("p60 v67 wait12 endp60 endv67 wait1\n")  # a duo model's words, no header: notewise
    assert duo.name == "notewise" and tuple(duo.tokenizer.instruments) == ("piano", "violin")
    assert [track.name for track in duo.detokenize("p60 v67 wait12 endp60 endv67\n").tracks] == ["Piano", "Violin"]
    remi = load_scheme("remi", miditok_defaults=True)
    assert scheme_of_text(remi.to_text(remi.tokenize(pieces[0]))).name == "remi"
    with pytest.raises(ValueError, match="'chordwise' tokenization: pass --scheme FOLDER"):
        scheme_of_text("# toccata-chordwise qpm=120 time_signature=4/4\nc60\n")


def test_unknown_names_and_options_are_errors_that_name_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown scheme 'rem': give one of notewise, notewise-bpe, .*clara"):
        load_scheme("rem")
    with pytest.raises(ValueError, match=r"remi takes the option\(s\) miditok_defaults, not bpe_vocab_size=1024"):
        load_scheme("remi", bpe_vocab_size=1024)
    with pytest.raises(ValueError, match="above notewise's 228 base tokens .* got 100"):
        load_scheme("notewise-bpe", bpe_vocab_size=100)
    with pytest.raises(ValueError, match="instruments must be a sequence of names .* got 'piano,violin'"):
        load_scheme("notewise", instruments="piano,violin")
    with pytest.raises(ValueError, match="notewise-miditok has miditok's own settings only"):
        load_scheme("notewise-miditok", miditok_defaults=False)
    with pytest.raises(ValueError, match=f"no {SCHEME_FILE}"):
        load_scheme(tmp_path)
    load_scheme("tsd").save(tmp_path / "tsd")
    with pytest.raises(ValueError, match="keeps its own settings; leave out miditok_defaults"):
        load_scheme(tmp_path / "tsd", miditok_defaults=True)
    (tmp_path / SCHEME_FILE).write_text('{"scheme": "octuple"}')
    with pytest.raises(ValueError, match="unknown scheme 'octuple'; this Toccata knows notewise"):
        load_scheme(tmp_path)
