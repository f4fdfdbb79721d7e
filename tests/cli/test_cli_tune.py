"""`toccata tune` end to end on tiny data: a tiny random generator, a tiny critic trained here (slow chords rated
human, fast runs not), prompts from `<bos>` and from the tiny chorale dataset; the result is an ordinary checkpoint
that composes, a run resumes after its last round, and bad input is refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.models import TOK, tiny_model
from toccata.classifiers.data import ExcerptSampler, Labelled, fixed_excerpts
from toccata.classifiers.fine_tune import fine_tune
from toccata.classifiers.model import classifier_from_generator, save_classifier
from toccata.classifiers.tasks import ClassifierTask
from toccata.modeling import GenerationRequest, SamplerSettings, compose
from toccata.modeling.hub import save_checkpoint
from toccata.modeling.layout import VocabLayout

import toccata
from toccata.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _words(rng: np.random.Generator, chords: bool, length: int = 200) -> list[str]:
    """Slow three-note chords (the critic's human class) or fast single notes (its generated class)."""
    words: list[str] = []
    while len(words) < length:
        root = int(rng.integers(45, 70))
        keys = [root, root + 4, root + 7] if chords else [root]
        words += [f"p{k}" for k in keys] + ["wait24" if chords else "wait3"] + [f"endp{k}" for k in keys]
    return words


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny random generator, a tiny critic trained to prefer chords) as folders."""
    root = tmp_path_factory.mktemp("tune-models")
    generator = save_checkpoint(root / "generator", tiny_model(embedding_dropout=0.05, output_dropout=0.2), TOK)
    rng = np.random.default_rng(0)
    pieces = [Labelled(np.asarray(TOK.convert_tokens_to_ids(_words(rng, i % 2 == 1))), i % 2, str(i)) for i in range(8)]
    sampler = ExcerptSampler(pieces, 48, VocabLayout.from_config(TOK), TOK.pad_token_id, balance_labels=True)
    critic = classifier_from_generator(generator, ["generated", "human"])
    valid = fixed_excerpts(pieces, 48, 1, TOK.pad_token_id)
    task = ClassifierTask(task="critic", dataset=str(root), output_dir=str(root / "critic-run"), generator=str(generator),
                          steps=20, batch_size=8, learning_rate=1e-2, eval_every=20)  # fmt: skip
    fine_tune(critic, sampler, valid, task.training_arguments())
    folder = save_classifier(root / "critic", critic.eval(), TOK, {"task": "critic", "excerpt_tokens": 48}, "# tiny\n")
    return generator, folder


def _tune(generator: Path, critic: Path, out: Path, *more: str) -> int:
    small = ["--candidates", "3", "--prompts", "4", "--beats", "6", "--batch-size", "2", "--epochs", "1",
             "--min-gap", "0", "--learning-rate", "1e-3"]  # fmt: skip
    return main(["tune", "--generator", str(generator), "--critic", str(critic), "--out", str(out), *small, *more])


def test_tune_writes_a_checkpoint_that_composes_and_resumes_after_its_last_round(
    models, tiny_dataset, tmp_path, capsys, monkeypatch
):
    generator, critic = models
    from toccata.evaluation import copy_index

    wrapped, original_wrap = [], copy_index.quotes_scored_zero
    monkeypatch.setattr(copy_index, "quotes_scored_zero", lambda *a: wrapped.append(a[3]) or original_wrap(*a))
    out = tmp_path / "tuned"
    both = ["--prompt-from", "both", "--dataset", str(tiny_dataset), "--prompt-beats", "4", "--anchor", "0.5",
            "--anchor-window", "32", "--max-copy", "4"]  # fmt: skip
    assert _tune(generator, critic, out, "--rounds", "2", *both) == 0
    err = capsys.readouterr().err
    assert "round 2/2" in err and "critic's mean P(human) of 12 samples" in err and f"--model {out}" in err
    summary = json.loads((out / "tune_summary.json").read_text())
    assert [row["round"] for row in summary["rounds"]] == [1, 2] and summary["critic"] == str(critic)
    assert all(0.0 <= row["mean_score"] <= 1.0 and row["pairs"] >= 1 for row in summary["rounds"])
    pairs = json.loads((out / "rounds" / "round-1" / "pairs.json").read_text())
    assert len({tuple(pair["prompt"]) for pair in pairs}) > 1  # openings of chorales beside `<bos>`
    card = (out / "README.md").read_text()
    assert "Preference-tuned" in card and str(generator) in card and str(critic) in card
    assert "anchored to real music: each step adds 0.5 x the NLL per token of 2 windows of 32 tokens" in card
    assert "a continuation that copies 4 quarter notes or more of the training pieces scored 0" in card
    assert wrapped == [4.0]  # the critic's score went through the quote filter
    metrics = [json.loads(line) for line in (out / "rounds" / "round-1" / "metrics.jsonl").read_text().splitlines()]
    assert any(row.get("anchor_nll", 0) > 0 for row in metrics)
    assert f"before {summary['check']['mean_score_before']:.4f}" in card

    model, tokenizer = toccata.load_checkpoint(str(out))  # an ordinary checkpoint: no code, loads by its folder
    original, _ = toccata.load_checkpoint(str(generator))
    assert not list(out.glob("*.py"))
    assert model.config.embedding_dropout == 0.05 and model.config.output_dropout == 0.2  # the generator's rates
    assert model.generation_config.to_dict() == original.generation_config.to_dict()  # and its preset
    assert not torch.equal(model.model.embeddings.weight, original.model.embeddings.weight)
    piece = compose(model, tokenizer, GenerationRequest(SamplerSettings("top_k", k=5, seed=1), beats=8))[0]
    assert piece.new_notes > 0

    first = (out / "rounds" / "round-1" / "round.json").stat().st_mtime_ns
    assert _tune(generator, critic, out, "--rounds", "3", "--resume", *both) == 0
    assert "resuming after round 2 of 3" in capsys.readouterr().err
    assert (out / "rounds" / "round-1" / "round.json").stat().st_mtime_ns == first  # not redone
    assert [row["round"] for row in json.loads((out / "tune_summary.json").read_text())["rounds"]] == [1, 2, 3]
    assert _tune(generator, critic, out, "--rounds", "3", "--resume", "--beta", "0.5", *both) == 2
    assert "beta 0.1 -> 0.5" in capsys.readouterr().err
    saved = json.loads((out / "tune_config.json").read_text())
    del saved["anchor"]  # a run made before the anchor existed ran without one
    (out / "tune_config.json").write_text(json.dumps(saved))
    assert _tune(generator, critic, out, "--rounds", "3", "--resume", *both) == 2
    assert "anchor 0.0 -> 0.5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case,message",
    [
        ("empty generator", "not a Toccata checkpoint folder"),
        ("critic as generator", "not a generator"),
        ("generator as critic", "not a critic"),
        ("one candidate", "candidates must be from 2 to 64 (a pair needs a preferred and a rejected sample)"),
        ("dataset prompts without a dataset", "takes openings of a dataset's pieces: give a dataset"),
        ("output not empty", "exists and is not empty: give a new folder, or --resume"),
        ("missing generator", "--generator"),
        ("copies without a dataset", "max_copy_quarters looks for copies of a dataset's training pieces: give a"),
    ],
)
def test_tune_refuses_bad_input_with_the_reason(models, tmp_path, capsys, case, message):
    generator, critic = models
    out, more = tmp_path / "out", []
    if case == "empty generator":
        generator = tmp_path / "empty"
        generator.mkdir()
    elif case == "critic as generator":
        generator = critic
    elif case == "generator as critic":
        critic = generator
    elif case == "one candidate":
        more = ["--candidates", "1"]
    elif case == "dataset prompts without a dataset":
        more = ["--prompt-from", "dataset"]
    elif case == "output not empty":
        out.mkdir()
        (out / "something.txt").write_text("kept")
    elif case == "missing generator":
        generator = tmp_path / "nowhere"
    elif case == "copies without a dataset":
        more = ["--max-copy", "8"]
    assert main(["tune", "--generator", str(generator), "--critic", str(critic), "--out", str(out), *more]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    if case in ("empty generator", "missing generator", "critic as generator"):
        assert str(generator) in err
    if case == "output not empty":
        assert (out / "something.txt").read_text() == "kept"
