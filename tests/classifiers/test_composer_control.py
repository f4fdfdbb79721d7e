"""Composer control: samples asked for a composer are classified as that composer when the generator learnt the
label, and at chance when it did not (a generator whose label word carries nothing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toccata.classifiers.composer_control import composer_control
from toccata.modeling import NotewiseLSTMConfig, NotewiseLSTMForSequenceClassification
from toccata.modeling.hub import random_model
from toccata.tokenization import NotewiseTokenizer

COMPOSERS = {"High": range(72, 84), "Low": range(36, 48)}  # two "styles": the register of every note
TOK = NotewiseTokenizer(composers=[*COMPOSERS, "other"])
SIZES = {"embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 1}


def _piece(rng: np.random.Generator, pitches: range, notes: int = 24) -> list[str]:
    words = []
    for pitch in rng.choice(list(pitches), notes):
        words += [f"p{pitch}", "wait6", f"endp{pitch}"]
    return words


def _batch(rng, labelled: bool, unlabelled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Generator windows `<composer> <bos> piece`; with `labelled` False the label word is a coin toss; with
    `unlabelled`, `<bos> piece` (the windows whose label training drops)."""
    rows, labels = [], []
    for _ in range(16):
        name = str(rng.choice(list(COMPOSERS)))
        word = name if labelled else str(rng.choice(list(COMPOSERS)))
        label = [] if unlabelled else [TOK.composer_token_id(word)]
        ids = [*label, TOK.bos_token_id, *TOK.convert_tokens_to_ids(_piece(rng, COMPOSERS[name]))]
        rows.append(ids)
        labels.append(list(COMPOSERS).index(name))
    return torch.tensor(rows), torch.tensor(labels)


NO_DROPOUT = {f"{name}_dropout": 0.0 for name in ("embedding", "input", "hidden", "output", "weight")}


def _generator(labelled: bool, steps: int = 300, dropout: float = 0.0):
    torch.manual_seed(0)
    model, rng = random_model(TOK, **SIZES, **NO_DROPOUT).train(), np.random.default_rng(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        ids, _ = _batch(rng, labelled, unlabelled=rng.random() < dropout)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _classifier(steps: int = 60):
    torch.manual_seed(0)
    config = NotewiseLSTMConfig(
        vocab_size=TOK.vocab_size, num_labels=2, id2label=dict(enumerate(COMPOSERS)),
        label2id={n: i for i, n in enumerate(COMPOSERS)}, pad_token_id=TOK.pad_token_id, **SIZES,
    )  # fmt: skip
    model, rng = NotewiseLSTMForSequenceClassification(config).train(), np.random.default_rng(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        ids, labels = _batch(rng, labelled=True)
        loss = model(input_ids=ids[:, 2:], labels=labels).loss  # the music only, as the classifier sees samples
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def classifier():
    return _classifier()


def test_a_generator_that_learnt_its_labels_is_recognised(classifier):
    report = composer_control(_generator(labelled=True), TOK, classifier, TOK, samples=6, tokens=60)
    assert [r.composer for r in report.rows] == list(COMPOSERS)
    assert report.top1 >= 0.9, report.markdown()
    assert report.chance_top1 == 0.5 and report.top3 == 1.0  # two labels: the top three hold both
    assert "| **mean** |" in report.markdown()


def test_a_generator_whose_labels_carry_nothing_is_at_chance(classifier):
    report = composer_control(_generator(labelled=False), TOK, classifier, TOK, samples=6, tokens=60)
    assert report.top1 <= 0.75, report.markdown()


def test_guidance_strengthens_a_label_the_generator_learnt_only_weakly(classifier):
    """Classifier-free guidance: a generator that has barely begun to learn its labels (and learnt the unlabelled
    music beside them) is recognised more often when its logits are pushed away from the unlabelled prediction."""
    weak = _generator(labelled=True, steps=100, dropout=0.3)
    plain = composer_control(weak, TOK, classifier, TOK, samples=20, tokens=60, guidance=1.0)
    guided = composer_control(weak, TOK, classifier, TOK, samples=20, tokens=60, guidance=4.0)
    assert guided.guidance == 4.0 and "composer guidance 4" in guided.markdown()
    assert plain.top1 <= 0.9 and guided.top1 >= plain.top1 + 0.1, (plain.markdown(), guided.markdown())


def test_unknown_composers_and_unlabelled_generators_are_clear_errors(classifier):
    with pytest.raises(ValueError, match="need labels both"):
        composer_control(random_model(TOK, **SIZES), TOK, classifier, TOK, composers=["Chopin"])
    with pytest.raises(ValueError, match="no composer labels"):
        composer_control(random_model(NotewiseTokenizer(), **SIZES), NotewiseTokenizer(), classifier, TOK)
