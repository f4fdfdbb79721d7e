"""A second token column in built datasets (`--tokenizer remi|...|notewise-bpe`) and `toccata tokenize --scheme`.

The builds read a folder of a real Bach chorale (converted from music21's corpus) and pieces written here, each made of
a motif of its own repeated, so that BPE merges learnt from some pieces differ from merges learnt from others: that is
what lets the train-only tests fail when validation or test rows leak into what a scheme learns.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from support.midi_files import make_score
from toccata.dataset_builder import FEATURES, ToccataConfig, build_dataset
from toccata.dataset_builder.pipeline import SPLITS
from toccata.dataset_builder.tokens import TOKENIZER_FOLDER, scheme_of, token_ids
from toccata.tokenization import NotewiseTokenizer, parse_token_text
from toccata.tokenization.midi_io import NoteArrays, music21_corpus_midi
from toccata.tokenization.schemes import grid_notes, load_scheme
from toccata.tokenization.tokenization_base import quantize_notes

from toccata.cli import main

FRACTIONS = {"train_fraction": 0.5, "validation_fraction": 0.25, "test_fraction": 0.25}
OPTIONS = {**FRACTIONS, "safe": False, "transpositions": (0, 3)}
PIECES = 12


def _motif_piece(seed: int) -> bytes:
    """A piece of 24 quarters: a motif of six eighth-note chords of its own, played four times, then a random tail."""
    rng = np.random.default_rng(seed)
    motif = [rng.choice(np.arange(40, 90), size=int(rng.integers(1, 4)), replace=False) for _ in range(6)]
    notes = []
    for step in range(48):
        chord = motif[step % 6] if step < 24 else rng.choice(np.arange(40, 90), size=2, replace=False)
        start = step * 240
        notes += [(start, start + 240 * int(rng.integers(1, 3)), int(pitch)) for pitch in chord]
    return bytes(make_score([notes], qpm=96.0).dumps_midi())


def _rows(out: Path) -> dict[str, list[dict]]:
    return {
        split: [row for path in sorted(out.glob(f"*-{split}*.parquet")) for row in pq.read_table(path).to_pylist()]
        for split in SPLITS
    }


def _all(out: Path) -> list[dict]:
    return [row for rows in _rows(out).values() for row in rows]


def _key(notes: NoteArrays) -> list[tuple[int, int, int]]:
    return sorted(zip(notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist()))


def _notewise_notes(row: dict) -> list[tuple[int, int, int]]:
    """The grid notes of the row's `notewise` column (12 steps per quarter, 21-108), as the schemes see notes."""
    return _key(quantize_notes(NotewiseTokenizer().tokens_to_notes(row["notewise"]), 12, 21, 108))


def _vocabulary(scheme) -> list[str]:
    return scheme.words(list(range(scheme.vocab_size)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("token-schemes") / "midi"
    root.mkdir()
    (root / "chorale.mid").write_bytes(music21_corpus_midi("bach/bwv66.6"))
    for i in range(PIECES):
        (root / f"motif{i:02d}.mid").write_bytes(_motif_piece(i))
    return root


@pytest.fixture(scope="module")
def remi_build(folder: Path) -> Path:
    out = folder.parent / "remi"
    build_dataset(out, sources=[str(folder)], tokenizer="remi", **OPTIONS)
    return out


@pytest.fixture(scope="module")
def bpe_build(folder: Path) -> Path:
    """Built through the CLI: the --tokenizer and --bpe-vocab-size flags end to end."""
    out = folder.parent / "bpe"
    argv = ["build-dataset", "--source", str(folder), "--out", str(out), "--splits", "0.5,0.25,0.25", "--unsafe"]
    assert main([*argv, "--transpositions", "0,3", "--tokenizer", "notewise-bpe", "--bpe-vocab-size", "260"]) == 0
    return out


# ---------------------------------------------------------------------------------------------------- remi


def test_remi_tokens_column_decodes_to_the_notes_of_the_notewise_column(remi_build: Path) -> None:
    names = list(FEATURES)
    assert pq.read_table(next(remi_build.glob("*-train*.parquet"))).schema.names == [
        *names[: names.index("notewise") + 1],
        "tokens",
        *names[names.index("notewise") + 1 :],
    ]
    scheme = load_scheme(remi_build / TOKENIZER_FOLDER)
    assert scheme.name == "remi" and scheme_of(remi_build).name == "remi"
    rows = _all(remi_build)
    assert {row["transposition"] for row in rows} == {0, 3} and len(rows) == 2 * (PIECES + 1)
    for row in rows:
        words = row["tokens"].split()
        assert words[0] == "Bar_None" and any(w.startswith("Pitch_") for w in words)
        assert _key(scheme.decode(token_ids(scheme, words))) == _notewise_notes(row), row["id"]
        assert NotewiseTokenizer().midi_to_tokens(row["midi"]) == row["notewise"].split()  # notewise as ever
    by_id = {row["id"]: row for row in rows}
    chorale = next(row for row in rows if row["path"] == "chorale.mid" and row["transposition"] == 0)
    up = by_id[chorale["id"] + "_t+3"]
    shifted = [(s, e, p + 3) for s, e, p in _key(scheme.decode(token_ids(scheme, chorale["tokens"])))]
    assert _key(scheme.decode(token_ids(scheme, up["tokens"]))) == shifted  # transposed rows: transposed tokens


def test_card_says_which_tokenizer_made_the_column(remi_build: Path) -> None:
    card = (remi_build / "README.md").read_text(encoding="utf-8")
    tokens_section = card.split("## Tokens", 1)[1].split("\n## ", 1)[0]
    assert "`remi` tokenizer" in tokens_section and f"`{TOKENIZER_FOLDER}/`" in tokens_section
    assert "load_scheme" in tokens_section and "train split" not in tokens_section  # remi learns nothing
    assert '"tokenizer": "remi"' in card and "| `tokens` | string |" in card
    loaded = load_dataset(str(remi_build))  # the card's YAML (features, data files) agrees with the shards
    assert "tokens" in loaded["train"].column_names
    assert loaded["train"][0]["tokens"] == _rows(remi_build)["train"][0]["tokens"]


def test_default_build_is_unchanged(folder: Path, remi_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "notewise"
    build_dataset(out, sources=[str(folder)], **OPTIONS)
    assert pq.read_table(next(out.glob("*-train*.parquet"))).schema.names == list(FEATURES)
    assert not (out / TOKENIZER_FOLDER).exists()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Tokens" not in card and '"tokenizer"' not in card and "bpe_vocab_size" not in card
    plain, remi = _rows(out), _rows(remi_build)
    for split in SPLITS:
        assert [{k: v for k, v in row.items() if k != "tokens"} for row in remi[split]] == plain[split]
    with pytest.raises(ValueError, match="no tokenizer/ folder"):
        scheme_of(out)


# ---------------------------------------------------------------------------------------------------- learnt schemes


def test_bpe_tokens_decode_and_the_merges_come_from_the_train_split_only(
    folder: Path, bpe_build: Path, tmp_path: Path
) -> None:
    rows = _rows(bpe_build)
    assert all(rows[split] for split in SPLITS), "the test needs validation and test rows to leave out"
    scheme = load_scheme(bpe_build / TOKENIZER_FOLDER)
    assert (scheme.name, scheme.vocab_size) == ("notewise-bpe", 260)
    merged = [w for row in rows["train"] for w in row["tokens"].split() if "+" in w]
    assert merged, "BPE merges should show in the train rows"
    for row in _all(bpe_build):
        assert _key(scheme.decode(token_ids(scheme, row["tokens"]))) == _notewise_notes(row), row["id"]

    # What the build learnt is what the train rows alone teach (transposed copies included, in row order) ...
    train_only = load_scheme("notewise-bpe", bpe_vocab_size=260)
    train_only.train(grid_notes(row["midi"]) for row in rows["train"])
    assert _vocabulary(scheme) == _vocabulary(train_only)
    # ... and not what all rows teach: validation and test rows would change the merges.
    everything = load_scheme("notewise-bpe", bpe_vocab_size=260)
    everything.train(grid_notes(row["midi"]) for row in _all(bpe_build))
    assert _vocabulary(everything) != _vocabulary(scheme)

    # The same train files without the validation and test ones, all in train (by the hash, two would now move to
    # the empty validation and test splits): the same scheme, the same train tokens.
    fewer = tmp_path / "train-files"
    fewer.mkdir()
    for path in {row["path"] for row in rows["train"]}:
        shutil.copy(folder / path, fewer / path)
    again = tmp_path / "again"
    all_in_train = {**OPTIONS, "train_fraction": 1.0, "validation_fraction": 0.0, "test_fraction": 0.0}
    build_dataset(again, sources=[str(fewer)], tokenizer="notewise-bpe", bpe_vocab_size=260, **all_in_train)
    rows_again = _rows(again)
    assert not rows_again["validation"] and not rows_again["test"]
    assert _vocabulary(load_scheme(again / TOKENIZER_FOLDER)) == _vocabulary(scheme)
    assert [(r["id"], r["tokens"]) for r in rows_again["train"]] == [(r["id"], r["tokens"]) for r in rows["train"]]
    card = (bpe_build / "README.md").read_text(encoding="utf-8")
    train_rows = len(rows["train"])
    assert f"learnt from the {train_rows} rows of the train split only" in card and '"bpe_vocab_size": 260' in card


def test_chordwise_vocabulary_comes_from_the_train_split_only(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "chordwise"
    build_dataset(out, sources=[str(folder)], tokenizer="chordwise", **OPTIONS)
    rows = _rows(out)
    scheme = load_scheme(out / TOKENIZER_FOLDER)
    train_only = load_scheme("chordwise")
    train_only.train(grid_notes(row["midi"]) for row in rows["train"])
    everything = load_scheme("chordwise")
    everything.train(grid_notes(row["midi"]) for row in _all(out))
    assert _vocabulary(scheme) == _vocabulary(train_only) != _vocabulary(everything)
    for row in _all(out):
        ids = token_ids(scheme, row["tokens"])
        assert len(ids) == len(scheme.encode(grid_notes(row["midi"])))


# ---------------------------------------------------------------------------------------------------- CLI, errors


def test_cli_tokenize_with_a_saved_scheme_writes_the_tokens_column(
    folder: Path, bpe_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    saved = str(bpe_build / TOKENIZER_FOLDER)
    row = next(row for row in _rows(bpe_build)["validation"] if row["transposition"] == 0)
    out = tmp_path / "tokens.txt"
    assert (
        main(["tokenize", str(folder / row["path"]), "--tokenizer", "notewise-bpe", "--scheme", saved, "-o", str(out)])
        == 0
    )
    encoding = parse_token_text(out.read_text(encoding="utf-8"))
    assert encoding.scheme == "notewise-bpe" and encoding.tokens == row["tokens"].split()
    capsys.readouterr()
    assert main(["tokenize", str(folder / row["path"]), "--scheme", saved]) == 0  # the scheme names the tokenizer
    assert capsys.readouterr().out.splitlines()[1].split() == row["tokens"].split()

    midi = tmp_path / "back.mid"  # and back: the same grid notes as the row's notewise column
    assert main(["detokenize", str(out), "--scheme", saved, "-o", str(midi)]) == 0
    assert _key(grid_notes(midi.read_bytes())) == _notewise_notes(row)
    bad = tmp_path / "bad.txt"
    bad.write_text("NoteOn_60 Bogus_1\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["detokenize", str(bad), "--scheme", saved, "-o", str(midi)]) == 2
    assert "Bogus_1" in capsys.readouterr().err

    for argv, needle in [
        (["--tokenizer", "notewise-bpe"], "--scheme FOLDER"),
        (["--tokenizer", "chordwise"], "--scheme FOLDER"),
        (["--scheme", str(tmp_path / "nowhere")], "no such folder"),
        (["--scheme", str(tmp_path)], "token_scheme.json"),
        (["--tokenizer", "remi", "--scheme", saved], "holds a notewise-bpe scheme"),
        (["--scheme", saved, "--format", "clara"], "leave out --format clara"),
    ]:
        assert main(["tokenize", str(folder / row["path"]), *argv]) == 2, argv
        assert needle in capsys.readouterr().err, argv


def test_build_errors_name_the_fix(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["build-dataset", "--source", str(folder), "--out", str(tmp_path / "x"), "--unsafe"]
    for extra, needle in [
        (["--tokenizer", "notewise-bpe"], "--bpe-vocab-size"),
        (["--tokenizer", "notewise-bpe", "--bpe-vocab-size", "200"], "above notewise's 228"),
        (["--tokenizer", "remi", "--bpe-vocab-size", "300"], "notewise-bpe only"),
        (["--bpe-vocab-size", "300"], "notewise-bpe only"),
    ]:
        assert main([*argv, *extra]) == 2, extra
        assert needle in capsys.readouterr().err, extra
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        ToccataConfig(tokenizer="bpe")
    with pytest.raises(ValueError, match="one merged piano part"):
        ToccataConfig(tokenizer="remi", instruments=("piano", "violin"))
    with pytest.raises(ValueError, match="train split, which has no rows"):
        build_dataset(
            tmp_path / "y",
            sources=[str(folder)],
            tokenizer="chordwise",
            safe=False,
            train_fraction=0.0,
            validation_fraction=0.5,
            test_fraction=0.5,
        )


def test_training_on_a_built_tokens_dataset_reuses_its_scheme(bpe_build: Path, tmp_path: Path) -> None:
    """`toccata train --tokenizer notewise-bpe` on a dataset built with it trains on the dataset's own merges."""
    from toccata.training.trainer import TrainConfig, train

    out = tmp_path / "run"
    config = TrainConfig(
        dataset=str(bpe_build), output_dir=str(out), tokenizer="notewise-bpe", max_transpose=0, window=32,
        batch_size=2, max_steps=2, eval_steps=1, logging_steps=1, patience=None,
        model=dict(embedding_size=8, hidden_size=8, num_hidden_layers=1),
    )  # fmt: skip
    train(config)
    assert _vocabulary(load_scheme(out)) == _vocabulary(load_scheme(bpe_build / "tokenizer"))
