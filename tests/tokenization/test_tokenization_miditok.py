"""NotewiseMidiTok: Toccata's notewise words as a miditok tokenizer (same words, same notes, BPE, datasets, saving)."""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic
from miditok import TokenizerConfig

from support.midi_files import make_score
from toccata.cli import main as toccata_main
from toccata.tokenization import MidiError, NotewiseTokenizer, parse_token_text
from toccata.tokenization.midi_io import music21_corpus_midi
from toccata.tokenization.tokenization_miditok import NotewiseMidiTok, miditok_token, notewise_config, notewise_word

WORKS = (
    "bach/bwv66.6",
    "mozart/k545",
    "joplin/maple_leaf_rag",
    "schoenberg/opus19",
    "corelli/opus3no1/1grave",
    "luca/gloria",
)


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """MIDI files of six music21 corpus works (chorale, sonata, rag, atonal piano, trio sonata, choral mass)."""
    folder = tmp_path_factory.mktemp("corpus-midi")
    paths = []
    for work in WORKS:
        path = folder / (work.replace("/", "_") + ".mid")
        path.write_bytes(music21_corpus_midi(work))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def trained(corpus_files: list[Path]) -> NotewiseMidiTok:
    """A NotewiseMidiTok with BPE trained to 400 tokens on three corpus files."""
    tokenizer = NotewiseMidiTok()
    tokenizer.train(vocab_size=400, model="BPE", files_paths=corpus_files[:3])
    return tokenizer


def notes_of(score: symusic.Score) -> list[tuple[int, int, int, int]]:
    """(track, start, duration, pitch) of every note, sorted: what "the same notes" means here."""
    return sorted((i, n.time, n.duration, n.pitch) for i, track in enumerate(score.tracks) for n in track.notes)


# ---------------------------------------------------------------------------------------------------- vocabulary


def test_tokens_map_one_to_one_onto_notewise_words_with_the_same_ids():
    tokenizer, notewise = NotewiseMidiTok(), NotewiseTokenizer()
    words = [notewise.convert_ids_to_tokens(i) for i in range(notewise.vocab_size)]
    assert len(tokenizer.vocab) == notewise.vocab_size == 228
    for i, word in enumerate(words):
        token = miditok_token(word)
        assert tokenizer.vocab[token] == i and notewise_word(token) == word
    assert [miditok_token(w) for w in ("p60", "endp60", "wait12", "<bos>")] == [
        "NoteOn_60", "NoteOff_60", "Wait_12", "BOS_None",
    ]  # fmt: skip


def test_mapping_errors_name_the_token():
    with pytest.raises(ValueError, match="'Pitch_60' is not a NotewiseMidiTok token"):
        notewise_word("Pitch_60")
    with pytest.raises(ValueError, match="'q60' is not a notewise word"):
        miditok_token("q60")


def test_settings_travel_through_the_config_and_bad_ones_are_named():
    tokenizer = NotewiseMidiTok(notewise_config(steps_per_quarter=24, max_wait=96))
    assert tokenizer.time_division == 24 and "Wait_96" in tokenizer.vocab
    assert tokenizer.words(tokenizer.encode(make_score([[(0, 480, 60)]]))) == ["p60", "wait24", "endp60"]
    with pytest.raises(ValueError, match=r"steps_per_quarter must be an integer in \[1, 96\], got 0"):
        notewise_config(steps_per_quarter=0)
    with pytest.raises(ValueError, match="no tokens for use_tempos"):
        NotewiseMidiTok(TokenizerConfig(use_tempos=True))
    with pytest.raises(ValueError, match="unknown NotewiseMidiTok setting.*step_per_quarter"):
        NotewiseMidiTok(TokenizerConfig(step_per_quarter=24))


# ---------------------------------------------------------------------------------------------------- same as notewise


def test_same_words_ids_and_notes_as_notewise_tokenizer_on_corpus_works(corpus_files):
    tokenizer, notewise = NotewiseMidiTok(), NotewiseTokenizer()
    for path in corpus_files:
        expected = notewise.midi_to_tokens(path)
        sequence = tokenizer.encode(path)
        assert tokenizer.words(sequence) == expected, path.name
        assert sequence.ids == notewise.midi_to_ids(path), path.name
        # miditok's own route (DatasetMIDI, training): symusic parses, preprocess_score, then encode
        preprocessed = tokenizer.preprocess_score(symusic.Score(path))
        assert tokenizer.words(tokenizer.encode(preprocessed, no_preprocess_score=True)) == expected
        decoded, reference = tokenizer.decode(sequence.ids), notewise.tokens_to_midi(expected)
        assert decoded.tpq == reference.tpq and notes_of(decoded) == notes_of(reference), path.name
        assert tokenizer.tokens_errors(sequence) == 0


CRAFTED = {  # name: (make_score arguments, the words when worth spelling out)
    "off-grid onsets, two tracks and a drum track": (
        {"tracks": [[(0, 470, 60), (7, 250, 64)], [(500, 960, 43)]], "drum_track": [(0, 120, 36)]},
        None,
    ),
    "pitches outside the keyboard fold by octaves": ({"tracks": [[(0, 480, 12), (0, 480, 120)]]}, None),
    "a long rest chains waits": ({"tracks": [[(0, 120, 60), (4920, 5040, 62)]]}, None),
    "a re-struck key ends first; a zero-length note lasts a step": (
        {"tracks": [[(0, 960, 60), (480, 960, 60), (1000, 1000, 72)]]},
        None,
    ),
    "96 ticks per quarter and 3/4": (
        {"tracks": [[(0, 96, 60), (96, 288, 67)]], "tpq": 96, "time_signature": (3, 4)},
        None,
    ),
    "one quarter note": ({"tracks": [[(0, 480, 60)]]}, ["p60", "wait12", "endp60"]),
    "an empty score": ({"tracks": []}, []),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_same_words_and_notes_on_crafted_scores(name):
    arguments, literal = CRAFTED[name]
    score = make_score(**arguments)
    tokenizer, notewise = NotewiseMidiTok(), NotewiseTokenizer()
    expected = notewise.midi_to_tokens(score)
    if literal is not None:
        assert expected == literal
    sequence = tokenizer.encode(score)
    assert tokenizer.words(sequence) == expected
    if expected:
        assert notes_of(tokenizer.decode(sequence)) == notes_of(notewise.tokens_to_midi(expected))


def test_sustain_pedal_setting_lengthens_notes_as_notewise_does():
    score = make_score([[(0, 240, 60), (480, 600, 64)]])
    score.tracks[0].pedals.append(symusic.Pedal(120, 960))  # down from tick 120 to 1080
    tokenizer = NotewiseMidiTok(notewise_config(sustain_pedal=True))
    expected = NotewiseTokenizer(sustain_pedal=True).midi_to_tokens(score)
    assert tokenizer.words(tokenizer.encode(score)) == expected == [
        "p60", "wait12", "p64", "wait15", "endp60", "endp64",
    ]  # fmt: skip


def test_bars_for_miditok_come_from_the_time_signature_on_the_grid():
    score = make_score([[(0, 480, 60), (1440, 1920, 62), (2880, 3360, 64)]], time_signature=(3, 4))
    assert NotewiseMidiTok().encode(score)._ticks_bars == [0, 36, 72]  # 3/4 bars of 36 steps


def test_decode_writes_a_midi_file_to_output_path(tmp_path):
    path = tmp_path / "out" / "piece.mid"
    score = NotewiseMidiTok().decode(["NoteOn_60", "Wait_12", "NoteOff_60"], output_path=path)
    assert path.is_file() and notes_of(symusic.Score(path)) == notes_of(score) == [(0, 0, 480, 60)]


def test_bad_files_raise_midi_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"not midi at all")
    with pytest.raises(MidiError, match="broken.mid"):
        NotewiseMidiTok().encode(bad)


def test_tokens_errors_counts_grammar_breaks():
    tokenizer = NotewiseMidiTok()
    good = ["NoteOn_60", "NoteOn_64", "Wait_12", "NoteOff_60", "NoteOff_64"]
    assert tokenizer.tokens_errors(tokenizer._tokens_to_ids(good)) == 0
    # a silent key's off, ons out of order, a sounding key struck again, an off after an on in one step
    bad = ["NoteOff_60", "NoteOn_64", "NoteOn_62", "Wait_12", "NoteOn_64", "NoteOff_64"]
    assert tokenizer.tokens_errors(tokenizer._tokens_to_ids(bad)) == pytest.approx(4 / 6)


# ---------------------------------------------------------------------------------------------------- miditok features


def test_bpe_training_compresses_and_round_trips_the_notes(trained, corpus_files):
    notewise = NotewiseTokenizer()
    assert trained.is_trained and len(trained) == 400
    for path in corpus_files[:4]:  # the fourth was not among the training files
        sequence = trained.encode(path)
        words = notewise.midi_to_tokens(path)
        assert len(sequence.ids) < len(words) and max(sequence.ids) >= 228  # merges are used
        assert trained.words(sequence.ids) == words
        assert notes_of(trained.decode(sequence.ids)) == notes_of(notewise.tokens_to_midi(words))


def test_bpe_split_per_bar_round_trips_too(corpus_files):
    tokenizer = NotewiseMidiTok(notewise_config(encode_ids_split="bar"))  # miditok's default split
    tokenizer.train(vocab_size=300, model="BPE", files_paths=corpus_files[:2])
    words = NotewiseTokenizer().midi_to_tokens(corpus_files[0])
    assert tokenizer.words(tokenizer.encode(corpus_files[0]).ids) == words


def test_dataset_and_collator_yield_batches_of_ids(trained, corpus_files):
    from miditok.pytorch_data import DataCollator, DatasetMIDI
    from torch.utils.data import DataLoader

    bos, eos = trained["BOS_None"], trained["EOS_None"]
    dataset = DatasetMIDI(corpus_files, trained, max_seq_len=64, bos_token_id=bos, eos_token_id=eos)
    collator = DataCollator(trained.pad_token_id, copy_inputs_as_labels=True)
    loader = DataLoader(dataset, batch_size=3, collate_fn=collator)
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape == mask.shape == batch["labels"].shape and ids.shape[0] == 3 and ids.shape[1] <= 64
        assert (ids[:, 0] == bos).all() and int(ids.max()) < len(trained)
    first = trained.encode(corpus_files[0]).ids[:62]  # 64 less room for BOS and EOS (dropped when cut)
    assert batches[0]["input_ids"][0, 1:63].tolist() == first


def test_save_and_load_back_gives_identical_encodings(trained, corpus_files, tmp_path):
    trained.save_pretrained(tmp_path / "bpe")
    loaded = NotewiseMidiTok.from_pretrained(tmp_path / "bpe")
    assert loaded == trained and loaded.is_trained
    for path in corpus_files:
        assert loaded.encode(path).ids == trained.encode(path).ids
    custom = NotewiseMidiTok(notewise_config(steps_per_quarter=24, min_pitch=36, sustain_pedal=True))
    custom.save_pretrained(tmp_path / "custom")
    again = NotewiseMidiTok.from_pretrained(tmp_path / "custom")
    assert again == custom and (again.steps_per_quarter, again.min_pitch, again.sustain_pedal) == (24, 36, True)
    assert again.encode(corpus_files[0]).ids == custom.encode(corpus_files[0]).ids


# ---------------------------------------------------------------------------------------------------- command line


def test_cli_tokenize_with_miditok_tokenizers(corpus_files, tmp_path, capsys):
    source = str(corpus_files[0])
    out = tmp_path / "adapter.txt"
    assert toccata_main(["tokenize", source, "--tokenizer", "notewise-miditok", "-o", str(out)]) == 0
    encoding = parse_token_text(out.read_text())
    assert encoding.scheme == "notewise-miditok" and encoding.tokens[0].startswith("NoteOn_")
    assert [notewise_word(t) for t in encoding.tokens] == NotewiseTokenizer().midi_to_tokens(source)
    assert toccata_main(["tokenize", source, "--tokenizer", "remi", "--safe"]) == 0
    remi = parse_token_text(capsys.readouterr().out).tokens
    assert remi[0] == "Bar_None" and any(t.startswith("Pitch_") for t in remi)
    assert toccata_main(["tokenize", source]) == 0  # the default is unchanged: notewise words
    assert capsys.readouterr().out == NotewiseTokenizer().encode_midi(source).to_text()
    assert toccata_main(["tokenize", source, "--tokenizer", "tsd", "--format", "clara"]) == 2
    assert "leave out --format clara" in capsys.readouterr().err
