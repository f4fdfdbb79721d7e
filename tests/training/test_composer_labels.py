"""Composer labels: a word per composer in the vocabulary, put before training windows (with dropout), asked for by
`compose(..., GenerationRequest(composer=...))`, `toccata generate --composer`, and kept by the saved checkpoint."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.midi_files import make_score
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PIECES = {"Maria Szymanowska": 6, "Karol Kurpiński": 5, "Józef Elsner": 1, "Anonim": 2}


def _notes(seed: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [(240 * b, 240 * b + 240 * int(rng.integers(1, 3)), 48 + int(rng.integers(0, 30))) for b in range(40)]


@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pieces by three composers and two anonymous ones, split 70/30 between train and validation."""
    from toccata.dataset_builder import build_dataset

    root = tmp_path_factory.mktemp("labelled")
    rows, seed = [], 0
    for composer, count in PIECES.items():
        for i in range(count):
            seed += 1
            name = f"{seed:02d}.mid"
            make_score([_notes(seed)]).dump_midi(str(root / name))
            rows.append({"file_name": name, "composer": composer})
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["file_name", "composer"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path_factory.mktemp("labelled-ds") / "ds"
    build_dataset(out, sources=(str(root),), safe=False, train_fraction=0.7, validation_fraction=0.3,
                  test_fraction=0.0, seed=1)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def labelled_run(labelled_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from toccata.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("labelled-run") / "run"
    config = TrainConfig(dataset=str(labelled_dataset), output_dir=str(out), window=32, batch_size=4, max_steps=4,
                         patience=None, composer_min_pieces=3, model={"embedding_size": 16, "hidden_size": 16,
                         "num_hidden_layers": 1})  # fmt: skip
    train(config)
    return out


def test_vocabulary_appends_composer_words_and_decoding_skips_them():
    plain = NotewiseTokenizer()
    labelled = NotewiseTokenizer(composers=["Maria Szymanowska", "other"])
    assert labelled.vocab_size == plain.vocab_size + 2  # after every other word: no id moves
    assert labelled.convert_ids_to_tokens(list(range(plain.vocab_size))) == plain.convert_ids_to_tokens(
        list(range(plain.vocab_size))
    )
    word_id = labelled.composer_token_id("Maria Szymanowska")
    assert labelled.convert_ids_to_tokens(word_id) == "<composer:Maria_Szymanowska>"
    notes = labelled.tokens_to_notes(["<composer:Maria_Szymanowska>", "<bos>", "p60", "wait12", "endp60"])
    assert notes.pitch.tolist() == [60]
    with pytest.raises(ValueError, match="unknown composer 'Bach'; this model knows Maria Szymanowska, other"):
        labelled.composer_token_id("Bach")
    with pytest.raises(ValueError, match="trained without composer labels"):
        plain.composer_token_id("Bach")
    with pytest.raises(ValueError, match="distinct"):
        NotewiseTokenizer(composers=["A B", "A  B"])


def test_a_composer_is_found_by_part_of_the_name_ignoring_case_and_accents():
    names = ["Fryderyk Chopin", "Józef Stefani", "Józef Nowakowski", "Edward Stefan Łodwigowski", "other"]
    tokenizer = NotewiseTokenizer(composers=names)
    word = tokenizer.composer_token_id
    assert word("chopin") == word("Fryderyk Chopin") == word("FRYDERYK_CHOPIN")
    assert word("Jozef Stefani") == word("stefani") == word("Józef Stefani")
    assert word("Lodwigowski") == word("Edward Stefan Łodwigowski")
    with pytest.raises(ValueError, match="'Józef' fits Józef Stefani, Józef Nowakowski: give the full name"):
        word("Józef")
    with pytest.raises(ValueError, match="unknown composer 'Stef'"):
        word("Stef")  # whole words only: a fragment could mean anyone


def test_windows_start_with_their_label_except_the_dropped_share():
    from toccata.training.data import Piece, WindowDataset

    tokenizer = NotewiseTokenizer(composers=["A", "other"])
    layout = VocabLayout.from_config(tokenizer)
    pieces = [Piece(f"r{i}", f"p{i}", np.arange(4, 4 + 60) % 180 + 4, composer="A") for i in range(20)]
    special = {"bos_id": 1, "eos_id": 2, "pad_id": 0}
    plain = WindowDataset(pieces, 16, layout, **special)
    label = tokenizer.composer_token_id("A")
    always = WindowDataset(pieces, 16, layout, **special, conditions=[label] * 20)
    for i in range(len(plain)):
        a, b = plain[i], always[i]
        assert b["input_ids"].shape[0] == 17 and b["input_ids"][0] == label and b["labels"][0] == -100
        assert b["input_ids"][1:].tolist() == a["input_ids"].tolist()  # every target learnt as without labels
        assert b["labels"][1:].tolist() == a["labels"].tolist()
    half = WindowDataset(pieces, 16, layout, **special, conditions=[label] * 20, condition_dropout=0.5)
    starts = [int(half[i]["input_ids"][0]) == label for i in range(len(half))]
    assert 0.25 < np.mean(starts) < 0.75
    unlabelled = WindowDataset(pieces, 16, layout, **special, conditions=[-1] * 20)
    assert all(unlabelled[i]["input_ids"][0] != label for i in range(len(unlabelled)))


def test_training_labels_composers_with_enough_pieces(labelled_dataset: Path, labelled_run: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import toccata.modeling  # noqa: F401 - registers the model with the Auto classes
    from toccata.training.data import read_rows

    train_counts: dict[str, int] = {}
    for row in read_rows(labelled_dataset, "train", ("composer",)):
        train_counts[row["composer"]] = train_counts.get(row["composer"], 0) + 1
    labelled = [name for name, count in train_counts.items() if count >= 3 and name != "Anonymous"]
    expected = sorted(labelled, key=lambda name: -train_counts[name])
    assert "Maria Szymanowska" in expected  # 6 pieces, 70% to train: the test needs her labelled
    tokenizer = AutoTokenizer.from_pretrained(labelled_run)
    # composers with 3+ training pieces, most first, then "other" (Elsner's one piece); Anonymous gets no label
    assert tokenizer.composers == (*expected, "other")
    model = AutoModelForCausalLM.from_pretrained(labelled_run)
    assert model.config.vocab_size == tokenizer.vocab_size


def test_compose_and_the_cli_ask_for_a_composer(labelled_run: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import toccata.modeling  # noqa: F401
    from toccata.modeling import GenerationRequest, SamplerSettings, compose

    model = AutoModelForCausalLM.from_pretrained(labelled_run)
    tokenizer = AutoTokenizer.from_pretrained(labelled_run)
    request = GenerationRequest(sampler=SamplerSettings("top_k", k=5, seed=3), beats=8, composer="Maria Szymanowska")
    piece = compose(model, tokenizer, request)[0]
    assert piece.score.note_num() > 0 and not any(t.startswith("<") for t in piece.tokens)
    plain = compose(model, tokenizer, GenerationRequest(sampler=SamplerSettings("top_k", k=5, seed=3), beats=8))[0]
    assert plain.tokens != piece.tokens  # the label changes what the model plays
    with pytest.raises(ValueError, match="unknown composer 'Nobody'; this model knows Maria Szymanowska"):
        compose(model, tokenizer, GenerationRequest(beats=8, composer="Nobody"))

    out = tmp_path / "piece.mid"
    cli = [sys.executable, "-m", "toccata", "generate", "--model", str(labelled_run), "--beats", "8", "--no-audio"]
    done = subprocess.run([*cli, "--composer", "Maria Szymanowska", "--seed", "3", "-o", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    refused = subprocess.run([*cli, "--composer", "Nobody", "-o", str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown composer 'Nobody'" in refused.stderr
