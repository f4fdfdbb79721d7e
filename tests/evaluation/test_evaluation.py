"""`evaluate()` and `toccata evaluate`: the model's bits agree with its own loss, a trained model beats the unigram,
generation is reproducible, the goals are judged, and the CLI writes report.md, report.json and the plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from toccata.modeling.guards import GuardSettings
from toccata.modeling.hub import random_model, save_checkpoint
from toccata.modeling.sampling import SamplerSettings
from toccata.tokenization import NotewiseTokenizer
from toccata.training.data import load_pieces
from toccata.evaluation.evaluation import SamplerResult, evaluate, generate_samples, quality_goals
from toccata.evaluation.giveaways import GIVEAWAYS
from toccata.evaluation.likelihood import LikelihoodResult, likelihood_table, model_log2probs, piece_sequences

from toccata.cli import main

TOK = NotewiseTokenizer()
TINY = {"embedding_size": 32, "hidden_size": 48, "num_hidden_layers": 1}
NOTES = range(TOK.note_on_offset, TOK.note_on_offset + TOK.num_pitches)


@pytest.fixture(scope="module")
def train_sequences(tiny_dataset):
    return piece_sequences(load_pieces(tiny_dataset, "train", TOK, original_key_only=True), 1, 2)


@pytest.fixture(scope="module")
def trained_model(train_sequences):
    """A tiny LSTM trained for 300 steps (about a second) on random windows of the training pieces."""
    torch.manual_seed(0)
    no_dropout = dict.fromkeys(
        ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_dropout"), 0.0
    )
    model = random_model(TOK, **TINY, **no_dropout).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(300):
        windows = []
        for _ in range(8):
            seq = train_sequences[rng.integers(len(train_sequences))]
            start = rng.integers(0, max(1, len(seq) - 65))
            windows.append(seq[start : start + 65])
        batch = torch.tensor(np.stack(windows))
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_bits_agree_with_the_models_own_loss(trained_model, train_sequences):
    seqs = train_sequences[:5]
    scores = model_log2probs(trained_model, seqs, chunk=37, batch_size=3)  # state carried over chunks, padded
    for seq, bits in zip(seqs, scores):
        assert bits.shape == (len(seq) - 1,)
        ids = torch.from_numpy(seq)[None]
        with torch.no_grad():
            loss = trained_model(input_ids=ids, labels=ids).loss.item()
        assert -bits.mean() * math.log(2) == pytest.approx(loss, rel=1e-5)


def test_a_trained_model_beats_the_unigram(trained_model, train_sequences):
    model, unigram, five = likelihood_table(trained_model, train_sequences, train_sequences, NOTES, len(TOK), 1)
    assert (model.name, unigram.name, five.name) == ("model", "unigram", "5-gram")
    assert model.tokens == unigram.tokens == five.tokens
    assert model.notes == unigram.notes > 0
    assert model.bits_per_token < unigram.bits_per_token - 0.5
    assert model.loss_per_token == pytest.approx(model.bits_per_token * math.log(2))


def test_generation_is_reproducible_and_greedy_is_deterministic(trained_model):
    top_k = SamplerSettings("top_k", k=5, seed=3)
    first = generate_samples(trained_model, top_k, GuardSettings(), 4, 60, batch_size=2)
    again = generate_samples(trained_model, top_k, GuardSettings(), 4, 60, batch_size=2)
    assert [len(s) for s in first] == [60] * 4
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    greedy = generate_samples(trained_model, SamplerSettings("greedy", seed=0), GuardSettings(), 2, 60)
    assert np.array_equal(greedy[0], greedy[1])
    with pytest.raises(ValueError, match="seed"):
        generate_samples(trained_model, SamplerSettings("top_k"), GuardSettings(), 1, 10)


def _likelihood(model_bits: float, ngram_bits: float) -> list[LikelihoodResult]:
    return [LikelihoodResult("model", 100, 40, 100 * model_bits), LikelihoodResult("5-gram", 100, 40, 100 * ngram_bits)]


def test_quality_goals_judge_the_thresholds():
    met = {g.name: g for g in quality_goals(_likelihood(1.9, 2.8), [], "top_k")}
    assert met["bits per note vs n-gram"].met and met["bits per note vs n-gram"].value == pytest.approx(0.9 / 2.8)
    assert not quality_goals(_likelihood(2.0, 2.8), [], "top_k")[0].met  # 28.6% below: under the 30% target
    assert met["rest collapse"].met is None and met["density overlap"].value is None  # generation not run


def test_evaluate_reports_every_sampler_and_the_goals(trained_model, tiny_dataset):
    report = evaluate(
        trained_model, TOK, tiny_dataset, "validation", samples=3, tokens=120, samplers=("greedy", "top_k"), seed=1
    )
    assert [s.label for s in report.samplers] == ["greedy", "top_k", "top_k (no rest guard)"]
    greedy, top_k, raw = report.samplers
    assert (greedy.samples, greedy.distinct, top_k.distinct) == (3, 1, 3)
    assert raw.guards["rest_guard"] is False and top_k.guards["rest_guard"] is True
    assert top_k.summary.tokens == 3 * 120
    assert set(top_k.overlaps) == {"density", "polyphony", "pitch_classes", "onset_positions", "iois"}
    assert all(0.0 <= v <= 1.0 for v in top_k.overlaps.values())
    assert report.reference.count == len(load_pieces(tiny_dataset, "validation", TOK, original_key_only=True))
    assert [g.name for g in report.goals] == [
        "bits per note vs n-gram",
        "rest collapse",
        "critic AUC",
        "copy share",
        "density overlap",
        "pitch class overlap",
        "inter-onset overlap",
        "polyphony overlap",
    ]
    critic = {g.name: g for g in report.goals}["critic AUC"]
    assert critic.met is None  # 3 samples of 120 tokens: no 600-token excerpt to judge
    assert all(g.met is not None for g in report.goals if g.name != "critic AUC")
    metrics = report.card_metrics()
    assert metrics["bits_per_token"] == report.result("model").bits_per_token
    assert "5gram_bits_per_token" in metrics and "pitch_class_overlap" in metrics
    json.dumps(report.to_dict(), allow_nan=False)  # plain JSON: no numpy values, no NaN
    assert [row.measure for row in top_k.giveaways] == list(GIVEAWAYS)  # each measure, sample by sample
    assert all(0.0 <= row.outside <= 1.0 for row in top_k.giveaways)


def test_sampler_result_copy_share():
    from toccata.evaluation.copy_index import CopyMatch

    copies = [CopyMatch(0, 200, 16.0), CopyMatch(0, 50, 4.0), CopyMatch(0, 0, 0.0), CopyMatch(0, 180, 15.9)]
    result = SamplerResult("x", {}, {}, 4, 4, 10, None, {}, copies, 0.0)
    assert result.copy_share == 0.25 and result.longest_copy == 16.0


def test_cli_writes_the_report(tiny_dataset, tmp_path, capsys):
    torch.manual_seed(2)
    checkpoint = save_checkpoint(tmp_path / "tiny", random_model(TOK, **TINY), TOK)
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--model",
            str(checkpoint),
            "--dataset",
            str(tiny_dataset),
            "--samples",
            "2",
            "--tokens",
            "200",
            "--samplers",
            "greedy,top_n,weighted,top_k,mixed",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    for name in ("report.md", "report.json", "pitch_classes.png", "onset_grid.png", "ioi.png", "density.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "report.json").read_text())
    assert [s["label"] for s in data["samplers"]] == [
        "greedy",
        "top_n",
        "weighted",
        "top_k",
        "mixed",
        "top_k (no rest guard)",
    ]
    assert data["likelihood"][0]["name"] == "model" and data["settings"]["tokens"] == 200
    text = (out / "report.md").read_text()
    assert "## Goals" in text and "| rest collapse |" in text and "![density](density.png)" in text
    assert "### What gives the samples away, sample by sample" in text and "| notes per quarter |" in text
    assert "rest collapse" in capsys.readouterr().err


def test_cli_errors_name_the_problem(tmp_path, capsys):
    torch.manual_seed(2)
    checkpoint = save_checkpoint(tmp_path / "tiny", random_model(TOK, **TINY), TOK)
    empty = tmp_path / "no-dataset"
    empty.mkdir()
    assert main(["evaluate", "--model", str(checkpoint), "--dataset", str(empty), "--no-generation"]) == 2
    assert "no 'train' split" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(checkpoint), "--dataset", str(empty), "--samplers", "nucleus"]) == 2
    assert "nucleus" in capsys.readouterr().err
