"""Token schemes (`toccata.tokenization.schemes`), `toccata train --tokenizer` and the tokenization study, on real
chorales from music21's corpus (the `tiny_dataset` fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.schemes import SCHEMES, ChordwiseScheme, grid_notes, load_scheme

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(dataset, split: str) -> list[dict]:
    return pq.read_table(next(dataset.glob(f"*-{split}.parquet"))).to_pylist()


def _key(notes) -> np.ndarray:
    order = np.lexsort((notes.end, notes.pitch, notes.start))
    return np.stack([notes.start[order], notes.pitch[order], notes.end[order]])


@pytest.fixture(scope="module")
def train_notes(tiny_dataset):
    return [grid_notes(row["midi"]) for row in _rows(tiny_dataset, "train") if not row["transposition"]]


@pytest.fixture(scope="module")
def trained_schemes(train_notes):
    schemes = {}
    for name in SCHEMES:
        scheme = load_scheme(name, bpe_vocab_size=400 if name == "notewise-bpe" else None)
        if name == "chordwise":  # every word of these pieces, so they round-trip (the study keeps the top 4,096)
            scheme = ChordwiseScheme(max_vocab=None, min_frequency=1)
        scheme.train(train_notes)
        schemes[name] = scheme
    return schemes


@pytest.mark.parametrize("name", SCHEMES)
def test_every_scheme_gives_the_notes_back(trained_schemes, train_notes, name):
    scheme = trained_schemes[name]
    for notes in train_notes[:6]:
        ids = scheme.encode(notes)
        assert ids.dtype == np.int64 and len(ids) > 0 and ids.max() < scheme.vocab_size
        assert not set(ids.tolist()) & set(scheme.special_ids.values())
        back = scheme.decode(ids)
        assert _key(back).shape == _key(notes).shape and (_key(back) == _key(notes)).all(), name
        assert scheme.errors(ids) == 0, name  # real music needs no repair
        assert len(scheme.words(ids)) == len(ids)


def test_notewise_scheme_is_the_notewise_tokenizer(tiny_dataset, trained_schemes):
    scheme, tokenizer = trained_schemes["notewise"], NotewiseTokenizer()
    for row in _rows(tiny_dataset, "test"):
        assert scheme.words(scheme.encode_midi(row["midi"])) == row["notewise"].split()
    assert scheme.vocab_size == len(tokenizer) == 228


def test_bpe_merges_shorten_and_reload_identically(tmp_path, trained_schemes, train_notes):
    bpe, plain = trained_schemes["notewise-bpe"], trained_schemes["notewise"]
    lengths = [(len(bpe.encode(n)), len(plain.encode(n))) for n in train_notes]
    assert sum(a for a, _ in lengths) < 0.8 * sum(b for _, b in lengths)
    assert bpe.vocab_size == 400 and bpe.pitch_ids() is None  # merged tokens cannot be transposed in place
    merged = [w for w in bpe.words(bpe.encode(train_notes[0])) if "+" in w]
    assert merged and all(part.split("_")[0] in ("NoteOn", "NoteOff", "Wait") for w in merged for part in w.split("+"))
    again = load_scheme(bpe.save(tmp_path / "bpe"))
    for notes in train_notes[:4]:
        assert (again.encode(notes) == bpe.encode(notes)).all()


@pytest.mark.parametrize("name", ["notewise", "notewise-bpe", "remi", "tsd", "chordwise"])
def test_errors_count_broken_sequences(trained_schemes, train_notes, name):
    scheme = trained_schemes[name]
    ids = scheme.encode(train_notes[0])
    rng = np.random.default_rng(0)
    noise = rng.integers(3, scheme.vocab_size, size=300)  # no specials
    assert scheme.errors(noise) > 0
    assert scheme.errors(ids) == 0
    assert len(scheme.decode(noise).start) >= 0  # lenient: never raises


def test_chordwise_vocabulary_comes_from_training_pieces(train_notes):
    scheme = load_scheme("chordwise")
    with pytest.raises(ValueError, match="no vocabulary"):
        scheme.encode(train_notes[0])
    scheme.train(train_notes[:1])
    unknown = scheme.encode(train_notes[-1])
    assert (unknown == scheme.tokenizer.unk_token_id).any()  # a chord the single training piece lacks
    assert scheme.errors(unknown) > 0


def test_transposing_remi_windows_shifts_only_pitches(trained_schemes, tiny_dataset):
    from toccata.training.data import WindowDataset, load_scheme_pieces

    scheme = trained_schemes["remi"]
    pieces = load_scheme_pieces(tiny_dataset, "train", scheme)
    special = scheme.special_ids
    data = WindowDataset(
        pieces,
        200,
        VocabLayout.from_pitch_ids(scheme.pitch_ids()),
        special["bos"],
        special["eos"],
        special["pad"],
        max_transpose=5,
    )
    shifted = 0
    for item in range(len(data)):
        piece, start = int(data.window_sequence[item]), int(data.window_start[item])  # the window, untransposed
        begin, end = int(data.offsets[piece]) + start, int(data.offsets[piece + 1])
        plain = data.tokens[begin : min(begin + 200, end)].astype(np.int64)
        moved = data[len(data) + item]["input_ids"].numpy()[: len(plain)]  # epoch 1: a drawn transposition
        a, b = scheme.decode(plain[plain > 2]), scheme.decode(moved[moved > 2])
        assert len(a.pitch) == len(b.pitch) and (a.start == b.start).all() and (a.end == b.end).all()
        difference = set((b.pitch - a.pitch).tolist())
        assert len(difference) <= 1
        shifted += difference != {0}
    assert shifted > 0


def test_toccata_train_on_another_tokenization(tiny_dataset, tmp_path):
    from toccata.modeling.hub import load_checkpoint
    from toccata.training.trainer import TrainConfig, train

    with pytest.raises(ValueError, match="--bpe-vocab-size"):
        TrainConfig(dataset=str(tiny_dataset), output_dir=str(tmp_path), tokenizer="notewise-bpe")
    with pytest.raises(ValueError, match="--max-transpose 0"):
        TrainConfig(dataset=str(tiny_dataset), output_dir=str(tmp_path), tokenizer="chordwise", max_transpose=3)
    with pytest.raises(ValueError, match="choose one of"):
        TrainConfig(dataset=str(tiny_dataset), output_dir=str(tmp_path), tokenizer="abc")

    out = tmp_path / "bpe"
    config = TrainConfig(
        dataset=str(tiny_dataset), output_dir=str(out), tokenizer="notewise-bpe", bpe_vocab_size=300,
        max_transpose=0, window=48, batch_size=4, max_steps=4, eval_steps=2, logging_steps=1, patience=None,
        model={"embedding_size": 16, "hidden_size": 24, "num_hidden_layers": 1},
    )  # fmt: skip
    summary = train(config)
    assert summary["steps"] == 4
    scheme = load_scheme(out)
    assert scheme.name == "notewise-bpe" and scheme.vocab_size == 300
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == 300 and model.config.token_scheme == "notewise-bpe"
    assert model.config.bos_token_id == scheme.special_ids["bos"]
    with pytest.raises(ValueError, match="notewise-bpe tokenization"):
        load_checkpoint(out)
    card = (out / "README.md").read_text()
    assert "notewise-bpe tokenization" in card


def study_modules():
    """(study_train, tokenization_study): scripts in benchmarks/studies/ (not installed), imported as they run."""
    folder = str(Path(__file__).parents[2] / "benchmarks" / "studies")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import study_train
    import tokenization_study

    return study_train, tokenization_study


def test_study_prepares_trains_and_compares(tiny_dataset, tmp_path):
    study_train, tokenization_study = study_modules()

    out = tmp_path / "study"
    prepared = tokenization_study.prepare(str(tiny_dataset), out, ["notewise", "tsd"])
    assert prepared[0].test_notes == prepared[1].test_notes > 0  # the same notes for every tokenization
    for label in ("notewise", "tsd"):
        summary = study_train.train_one(out / label, steps=4, batch=2, window=64, evaluations=2)
        assert summary["tokens_seen"] == 4 * 2 * 64 and summary["best_validation_loss"] is not None
    results = tokenization_study.evaluate(str(tiny_dataset), out, samples=6)
    assert [r["label"] for r in results] == ["notewise", "tsd"]
    for r in results:
        assert np.isfinite(r["bits_per_note"]) and r["bits_per_note"] > 0
        assert r["tokens_per_quarter"] > 1 and r["music_seconds_per_second_batch1"] > 0
        for run in r["samplers"].values():
            assert 0.0 <= run["decode_without_repair"] <= 1.0 and run["repairs_per_100_notes"] >= 0
    assert json.loads((out / "results.json").read_text())[0]["label"] == "notewise"
    assert "| notewise |" in (out / "results.md").read_text()


def test_study_train_runs_without_toccata(tiny_dataset, tmp_path):
    """study_train.py is the part that travels to a GPU box: it must run as a plain script, Toccata blocked."""
    study_train, tokenization_study = study_modules()

    out = tmp_path / "study"
    tokenization_study.prepare(str(tiny_dataset), out, ["remi"])
    blocker = tmp_path / "blocked" / "toccata"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('toccata must not be imported here')\n")
    script = Path(study_train.__file__)
    run = subprocess.run(
        [sys.executable, str(script), str(out / "remi"), "--steps", "2", "--batch", "2", "--window", "32",
         "--device", "cpu"],
        env={"PYTHONPATH": str(blocker.parent), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "remi" / "model.safetensors").is_file()
    assert json.loads((out / "remi" / "train_log.json").read_text())["steps"] == 2


def test_repairs_count_what_decoding_changes_not_the_order_within_a_step():
    from toccata.tokenization.schemes import notewise_repairs

    assert notewise_repairs(["NoteOn_64", "NoteOn_60", "Wait_12", "NoteOff_64", "NoteOff_60"]) == 0  # any order
    assert notewise_repairs(["NoteOff_60", "Wait_12"]) == 1  # a silent key
    assert notewise_repairs(["NoteOn_60", "Wait_3", "NoteOn_60"]) == 1  # a sounding key
    assert notewise_repairs(["NoteOn_60", "NoteOff_60", "Wait_3"]) == 1  # a note of no length
    assert notewise_repairs(["NoteOn_60", "TimeShift_0.3.12", "NoteOff_60", "NoteOn_62"]) == 0  # MIDILike, left on
