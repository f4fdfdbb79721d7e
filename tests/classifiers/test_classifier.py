"""Sequence classifiers: the model (pooling, padding, state), loading a generator's encoder, Auto classes and
trust_remote_code, training that separates separable data, and the critic/composer commands end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from toccata.modeling import NotewiseLSTMForCausalLM, NotewiseLSTMForSequenceClassification
from toccata.modeling.hub import copy_checkpoint, random_model, save_checkpoint
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from toccata.classifiers.data import ExcerptSampler, Labelled, fixed_excerpts
from toccata.classifiers.fine_tune import fine_tune
from toccata.classifiers.model import (
    classifier_from_generator,
    critic_scores,
    load_classifier,
    predict_proba,
    save_classifier,
)
from toccata.classifiers.tasks import ClassifierTask, metrics
from toccata.training.runs import last_checkpoint
from transformers import AutoModelForSequenceClassification, TrainerCallback

import toccata
from toccata.cli import main

TOK = NotewiseTokenizer()
LAYOUT = VocabLayout.from_config(TOK)
TINY = {"embedding_size": 16, "hidden_size": 24, "num_hidden_layers": 2}


def _runs(rng: np.random.Generator, length: int) -> str:
    """Composer A: fast single notes walking up and down (3-step notes)."""
    pitch, words = int(rng.integers(55, 70)), []
    while len(words) < length:
        pitch = int(np.clip(pitch + rng.choice([-2, -1, 1, 2]), 40, 90))
        words += [f"p{pitch}", "wait3", f"endp{pitch}"]
    return " ".join(words)


def _chords(rng: np.random.Generator, length: int) -> str:
    """Composer B: slow three-note chords (a half note each)."""
    words = []
    while len(words) < length:
        root = int(rng.integers(45, 65))
        keys = [root, root + 4, root + 7]
        words += [f"p{k}" for k in keys] + ["wait24"] + [f"endp{k}" for k in keys]
    return " ".join(words)


@pytest.fixture(scope="module")
def two_composers(tmp_path_factory) -> Path:
    """A built-dataset-shaped folder (parquet per split) of crafted pieces by two composers, split by piece."""
    folder = tmp_path_factory.mktemp("two-composers")
    rng = np.random.default_rng(0)
    for split, per in (("train", 6), ("validation", 2), ("test", 3)):
        rows = []
        for composer, make in (("Runs", _runs), ("Chords", _chords)):
            for i in range(per):
                piece = f"{split}-{composer}-{i}"
                rows.append(
                    {
                        "id": piece,
                        "piece_id": piece,
                        "composer": composer,
                        "transposition": 0,
                        "notewise": make(rng, 400),
                    }
                )
        pq.write_table(pa.Table.from_pylist(rows), folder / f"toccata-{split}.parquet")
    return folder


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-generator")
    return save_checkpoint(folder, random_model(TOK, **TINY), TOK)


def _ids(text: str) -> np.ndarray:
    return np.asarray(TOK.convert_tokens_to_ids(text.split()), dtype=np.int64)


def test_from_pretrained_copies_the_generator_encoder_exactly(tiny_generator):
    generator = NotewiseLSTMForCausalLM.from_pretrained(tiny_generator)
    model = classifier_from_generator(tiny_generator, ["generated", "human"])
    assert isinstance(model, NotewiseLSTMForSequenceClassification)
    assert model.config.num_labels == 2 and model.config.id2label == {0: "generated", 1: "human"}
    encoder = generator.model.state_dict()
    assert encoder.keys() == model.model.state_dict().keys()
    for name, tensor in model.model.state_dict().items():
        assert torch.equal(tensor, encoder[name]), name
    assert model.classifier.weight.shape == (2, 3 * TINY["embedding_size"])  # tied: the top layer is embedding-sized
    scratch = classifier_from_generator(tiny_generator, ["a", "b", "c"], pretrained=False)
    assert scratch.config.num_labels == 3
    assert not torch.equal(scratch.model.layers[0].lstm.weight_hh_l0, generator.model.layers[0].lstm.weight_hh_l0)


def test_padding_does_not_change_the_logits_and_pooling_is_last_max_mean(tiny_generator):
    model = classifier_from_generator(tiny_generator, ["generated", "human"]).eval()
    ids = torch.as_tensor(_ids("p60 wait6 endp60 p64 p67 wait12 endp64 endp67"))[None]
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones_like(ids), torch.zeros(1, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        plain = model(ids).logits
        again = model(padded, attention_mask=mask).logits
        hidden = model.model(ids).last_hidden_state[0]
    assert plain.shape == (1, 2)
    torch.testing.assert_close(plain, again)
    pooled = model.pool(hidden[None], None)[0]
    torch.testing.assert_close(pooled, torch.cat([hidden[-1], hidden.max(0).values, hidden.mean(0)]))
    out = model(padded, attention_mask=mask, labels=torch.tensor([1]))
    assert out.loss.ndim == 0 and out.loss > 0
    out.loss.backward()
    assert model.classifier.weight.grad is not None and model.model.embeddings.weight.grad is not None


def test_save_and_load_through_auto_class_and_remote_code(tiny_generator, tmp_path):
    """A classifier folder holds no code and loads through the package; its copy for the Hub loads without it."""
    model = classifier_from_generator(tiny_generator, ["generated", "human"]).eval()
    plain = save_classifier(tmp_path / "plain", model, TOK, {"task": "critic"}, "# card\n")
    assert not list(plain.glob("*.py"))
    assert "auto_map" not in json.loads((plain / "config.json").read_text())
    copy_checkpoint(plain, tmp_path / "clf", for_hub=True)
    config = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert config["auto_map"] == {  # no AutoModelForCausalLM entry: it would load the generator's headless LM
        "AutoConfig": "configuration_notewise_lstm.NotewiseLSTMConfig",
        "AutoModelForSequenceClassification": "modeling_notewise_lstm.NotewiseLSTMForSequenceClassification",
    }
    assert (tmp_path / "clf" / "README.md").read_text() == "# card\n"
    loaded = AutoModelForSequenceClassification.from_pretrained(plain).eval()
    ids = torch.as_tensor(_ids("p60 wait12 endp60 p62 wait12 endp62"))[None]
    with torch.no_grad():
        expected = model(ids).logits
        torch.testing.assert_close(loaded(ids).logits, expected)
    script = f"""
        import sys
        sys.modules["toccata"] = None  # only the code in the folder may run
        import torch
        from transformers import AutoModelForSequenceClassification, TrainerCallback
        model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "clf")!r}, trust_remote_code=True)
        assert not type(model).__module__.startswith("toccata"), type(model).__module__
        print(type(model).__name__, model.eval()(torch.tensor([{ids[0].tolist()}])).logits.tolist())
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    name, logits = result.stdout.strip().split(" ", 1)
    assert name == "NotewiseLSTMForSequenceClassification"
    np.testing.assert_allclose(json.loads(logits), expected.numpy(), atol=1e-5)


def _task(generator: Path, out: Path, **settings) -> ClassifierTask:
    """A task whose settings `fine_tune` reads (steps, batch size, learning rate, evaluation, seed) into `out`."""
    return ClassifierTask(task="composer", dataset=str(out), output_dir=str(out), generator=str(generator), **settings)


def test_a_tiny_critic_separates_trivially_separable_music(tiny_generator, tmp_path):
    rng = np.random.default_rng(1)
    train = [Labelled(_ids(_runs(rng, 300)), 0, f"r{i}") for i in range(6)]
    train += [Labelled(_ids(_chords(rng, 300)), 1, f"c{i}") for i in range(6)]
    test_seqs = [Labelled(_ids(_runs(rng, 300)), 0, f"tr{i}") for i in range(4)]
    test_seqs += [Labelled(_ids(_chords(rng, 300)), 1, f"tc{i}") for i in range(4)]
    test = fixed_excerpts(test_seqs, 64, 2, TOK.pad_token_id)
    sampler = ExcerptSampler(train, 64, LAYOUT, TOK.pad_token_id, max_transpose=6, balance_labels=True, seed=0)
    batch = sampler.batch(3, 8)
    assert batch["input_ids"].shape == (8, 64) and (batch["input_ids"] == sampler.batch(3, 8)["input_ids"]).all()
    model = classifier_from_generator(tiny_generator, ["generated", "human"])
    before = metrics("critic", _probs(model, test), test.labels, test.groups)
    task = _task(tiny_generator, tmp_path, steps=40, batch_size=8, learning_rate=1e-2, eval_every=20)
    history = fine_tune(model, sampler, test, task.training_arguments(), unfreeze_every=5, lr_decay=2.6)
    assert [row["groups_training"] for row in history] == [3, 3]  # head, top layer, then the rest, by step 10
    after = metrics("critic", _probs(model, test), test.labels, test.groups)
    assert after["excerpt_roc_auc"] > 0.95 and after["excerpt_accuracy"] >= 0.9, (before, after)
    kept = _loss(model, test)  # the weights of the evaluation with the lowest validation loss
    assert kept == pytest.approx(min(row["valid_loss"] for row in history), rel=1e-4), history
    scores = critic_scores(model, TOK, [_runs(rng, 200).split(), _chords(rng, 200).split()])
    assert scores[0] < 0.5 < scores[1]


def _probs(model, ex):
    return predict_proba(model, ex.ids, ex.mask)


def _loss(model, ex) -> float:
    """Mean cross-entropy of the excerpts' classes, as the Trainer's validation measures it."""
    probs = _probs(model, ex)
    return float(-np.log(probs[np.arange(len(probs)), ex.labels]).mean())


class _StopAt(TrainerCallback):
    """Counts the steps it sees; ends training after step `step` (and its checkpoint), as an interruption would."""

    def __init__(self, step: int = 0) -> None:
        self.step, self.seen = step, []

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.seen.append(state.global_step)
        if state.global_step == self.step:
            control.should_training_stop = True


def test_a_resumed_fine_tune_goes_on_as_if_never_stopped(tiny_generator, tmp_path):
    """The classifiers trained in a loop of their own that could not resume; in the Trainer, a run stopped at a
    checkpoint and resumed draws the same batches, frees the same layer groups and ends with the same weights."""
    rng = np.random.default_rng(3)
    seqs = [Labelled(_ids(_runs(rng, 200) if i % 2 else _chords(rng, 200)), i % 2, str(i)) for i in range(6)]
    valid = fixed_excerpts(seqs, 48, 2, TOK.pad_token_id)

    def run(out: Path, callbacks=(), resume: bool = False):
        sampler = ExcerptSampler(seqs, 48, LAYOUT, TOK.pad_token_id, seed=4)
        torch.manual_seed(0)
        model = classifier_from_generator(tiny_generator, ["a", "b"])
        args = _task(tiny_generator, out, steps=6, batch_size=4, eval_every=2, seed=4).training_arguments()
        start = last_checkpoint(out) if resume else None
        return model, fine_tune(model, sampler, valid, args, 2, 2.6, start, callbacks=list(callbacks))

    straight, rows = run(tmp_path / "straight")
    run(tmp_path / "stopped", [_StopAt(2)])
    assert last_checkpoint(tmp_path / "stopped").name == "checkpoint-2"
    counter = _StopAt()
    resumed, resumed_rows = run(tmp_path / "stopped", [counter], resume=True)
    assert counter.seen == [3, 4, 5, 6]  # from the checkpoint on, not from the start
    assert [r["step"] for r in resumed_rows] == [r["step"] for r in rows] == [2, 4, 6]
    assert [r["groups_training"] for r in resumed_rows] == [r["groups_training"] for r in rows] == [1, 2, 3]
    for mine, theirs in zip(resumed_rows, rows, strict=True):
        assert mine["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-5)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, msg=name)


def test_resume_with_other_settings_is_refused_naming_them(two_composers, tiny_generator, tmp_path, capsys):
    out = tmp_path / "composer"
    first = _task(tiny_generator, out, excerpt_tokens=64, batch_size=8)
    (out / "checkpoints" / "checkpoint-15").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-15" / "trainer_state.json").write_text("{}")
    (out / "task_config.json").write_text(json.dumps(asdict(first)))
    args = ["composer", "train", "--generator", str(tiny_generator), "--dataset", str(out), "--out", str(out)]
    assert main([*args, "--excerpt-tokens", "128", "--batch-size", "8", "--resume"]) == 2
    assert "these differ: excerpt_tokens 64 -> 128" in capsys.readouterr().err


def test_gradual_unfreezing_freezes_lower_groups_first(tiny_generator, tmp_path):
    rng = np.random.default_rng(2)
    seqs = [Labelled(_ids(_runs(rng, 100)), i % 2, str(i)) for i in range(4)]
    sampler = ExcerptSampler(seqs, 32, LAYOUT, TOK.pad_token_id)
    valid = fixed_excerpts(seqs, 32, 1, TOK.pad_token_id)
    model = classifier_from_generator(tiny_generator, ["a", "b"])
    embedding = model.model.embeddings.weight.detach().clone()
    top = model.model.layers[-1].lstm.weight_ih_l0.detach().clone()
    head = model.classifier.weight.detach().clone()
    args = _task(tiny_generator, tmp_path / "two", steps=2, batch_size=4, eval_every=2).training_arguments()
    fine_tune(model, sampler, valid, args, unfreeze_every=2)  # the head only
    assert torch.equal(model.model.embeddings.weight, embedding) and torch.equal(
        model.model.layers[-1].lstm.weight_ih_l0, top
    )
    assert not torch.equal(model.classifier.weight, head)
    args = _task(tiny_generator, tmp_path / "three", steps=3, batch_size=4, eval_every=3).training_arguments()
    fine_tune(model, sampler, valid, args, unfreeze_every=2)  # head, then the top layer
    assert torch.equal(model.model.embeddings.weight, embedding)
    assert not torch.equal(model.model.layers[-1].lstm.weight_ih_l0, top)
    assert all(p.requires_grad for p in model.parameters())  # every layer trains again for whoever trains it next


def test_critic_and_composer_commands_end_to_end(two_composers, tiny_generator, tmp_path, capsys):
    def train(task: str, out: Path, *options: str) -> int:
        """`toccata TASK train` on the two composers' dataset, small and quick."""
        data = ["--generator", str(tiny_generator), "--dataset", str(two_composers), "--out", str(out)]
        common = ["--steps", "30", "--eval-every", "15", "--excerpt-tokens", "64", "--batch-size", "8"]
        return main([task, "train", *data, *common, "--learning-rate", "0.01", *options])

    critic = tmp_path / "critic"
    samples = ["--train-samples", "12", "--validation-samples", "4", "--test-samples", "6", "--sample-beats", "24"]
    assert train("critic", critic, *samples, "--negatives", "generator=4,corrupted=1", "--paired") == 0
    assert json.loads((critic / "task_config.json").read_text())["paired"] is True
    summary = json.loads((critic / "metrics.json").read_text())
    assert summary["classes"] == ["generated", "human"] and 0.0 <= summary["test"]["excerpt_roc_auc"] <= 1.0
    assert [row["step"] for row in summary["history"]] == [15, 30] and summary["fit"]["unfreeze_every"] == 3
    assert not (critic / "checkpoints").exists()  # the Trainer's, for --resume; the finished folder is the critic
    check = summary["check"]["test"]["auc"]  # kind by kind: the test set holds every kind, whatever training used
    assert {"pitches scrambled", "reversed", "generator's samples", "5-gram"} <= set(check)
    assert check["generator's samples"] > 0.8  # a random generator against structured music
    assert sorted(p.name for p in (critic / "samples").glob("*.json"))[:2] == ["test-000.json", "train-000.json"]
    assert "ROC AUC" in (critic / "README.md").read_text() or "roc_auc" in (critic / "README.md").read_text()
    model, _tokenizer = load_classifier(critic)
    assert (
        model.config.toccata_classifier["task"] == "critic" and model.config.toccata_classifier["excerpt_tokens"] == 64
    )

    piece = tmp_path / "piece.mid"
    TOK.save_midi(_chords(np.random.default_rng(5), 120).split(), piece)
    capsys.readouterr()
    assert main(["critic", "score", str(piece), "--model", str(critic), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["file"] == str(piece) and 0.0 <= row["p_human"] <= 1.0
    assert main(["critic", "score", str(piece), "--model", str(critic)]) == 0  # says what the number is
    printed = capsys.readouterr()
    assert f"{piece}\tP(human) {row['p_human']:.3f}, the mean over " in printed.out
    assert " excerpt(s) of 64 tokens" in printed.out and "probability that a human wrote" in printed.err
    with pytest.raises(SystemExit):
        main(["critic", "score", "--help"])
    assert "probability that a human wrote the music" in " ".join(capsys.readouterr().out.split())
    assert main(["critic", "score", str(tmp_path / "missing.mid"), "--model", str(critic)]) == 2
    assert "missing.mid" in capsys.readouterr().err

    composer = tmp_path / "composer"
    assert train("composer", composer, "--min-pieces", "2") == 0
    summary = json.loads((composer / "metrics.json").read_text())
    assert sorted(summary["classes"]) == ["Chords", "Runs"]
    assert summary["test"]["majority_piece_top1"] == pytest.approx(0.5) and summary["test"]["piece_top3"] == 1.0
    assert summary["test"]["piece_top1"] >= 5 / 6
    capsys.readouterr()
    assert main(["composer", "predict", str(piece), "--model", str(composer), "--json"]) == 0
    printed = capsys.readouterr()
    assert "this classifier knows 2 composers (" in printed.err and "Chords" in printed.err  # not anyone's composer
    ranked = json.loads(printed.out.strip())["composers"]
    assert ranked[0]["composer"] == "Chords" and sum(r["p"] for r in ranked) == pytest.approx(1.0, abs=1e-4)
    assert main(["critic", "score", str(piece), "--model", str(composer)]) == 2  # a composer is not a critic


def test_embedded_classifiers_load_through_the_auto_class():
    for folder in (toccata.default_critic(), toccata.default_composer()):
        if folder is None:
            pytest.skip("no embedded classifier in this install")
        assert sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) <= 10_000_000
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        assert isinstance(model, NotewiseLSTMForSequenceClassification)
        assert model.config.toccata_classifier["task"] in ("critic", "composer")
        assert (folder / "README.md").is_file()
