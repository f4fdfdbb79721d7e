"""Preference tuning: the DPO and IPO losses, dropout off, a few Trainer steps that move the policy towards the
preferred continuations and away from the rejected ones while the reference stays frozen, and whole rounds that raise
the score they are tuned on (a score written here: the share of high notes)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from support.models import TOK, tiny_model
from toccata.modeling.hub import save_checkpoint
from toccata.training.preference import (
    Pair,
    RealWindows,
    TuneConfig,
    anchor_nll,
    collate_pairs,
    dropout_off,
    fit_pairs,
    frozen_copy,
    preference_loss,
    reference_logprobs,
    sequence_logprobs,
)
from toccata.training.tuning import tune

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DROPOUTS = {"embedding_dropout": 0.1, "input_dropout": 0.2, "hidden_dropout": 0.2, "output_dropout": 0.3,
            "weight_dropout": 0.2}  # fmt: skip


def test_dpo_loss_is_log_two_at_the_reference_and_follows_the_margin():
    zero = torch.zeros(3)
    loss, stats = preference_loss(zero, zero, zero, zero, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and stats["margin"] == 0.0 and stats["reward_accuracy"] == 0.0
    chosen, rejected = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -15.0])
    ref_chosen, ref_rejected = torch.tensor([-11.0, -18.0]), torch.tensor([-11.0, -18.0])
    loss, stats = preference_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5)
    margins = [(-10 + 11) - (-12 + 11), (-20 + 18) - (-15 + 18)]  # 2 and -5
    expected = np.mean([math.log1p(math.exp(-0.5 * m)) for m in margins])  # -log sigmoid(x) = log(1 + e^-x)
    assert loss.item() == pytest.approx(expected) and stats["reward_accuracy"] == 0.5
    assert stats["margin"] == pytest.approx(np.mean(margins))
    ipo, _ = preference_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5, loss="ipo")
    assert ipo.item() == pytest.approx(np.mean([(m - 1.0) ** 2 for m in margins]))  # target margin 1 / (2 beta)
    with pytest.raises(ValueError, match="loss must be one of dpo, ipo"):
        preference_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.5, loss="kto")


def test_sequence_logprobs_count_the_continuation_only():
    model = tiny_model()
    prompt = [TOK.bos_token_id, *TOK.convert_tokens_to_ids(["p60", "wait12"])]
    cont = TOK.convert_tokens_to_ids(["endp60", "p62"])
    batch = collate_pairs([{"pair": Pair(prompt, cont, cont[:1], 0.0, 0.0), "reference": (0.0, 0.0)}], TOK.pad_token_id)
    assert batch["input_ids"].shape == (2, 5) and batch["target_mask"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 0]]
    with torch.no_grad():
        got = sequence_logprobs(model, batch["input_ids"], batch["target_mask"])
        logps = torch.log_softmax(model(torch.tensor([prompt + cont])).logits[0], -1)
    by_hand = logps[2, cont[0]] + logps[3, cont[1]]  # position t predicts token t + 1
    torch.testing.assert_close(got, torch.stack([by_hand, logps[2, cont[0]]]))


def test_dropout_off_matches_the_reference_in_training_mode_and_gives_the_rates_back():
    model = tiny_model(**DROPOUTS).train()
    ids = torch.tensor([[TOK.bos_token_id, *TOK.convert_tokens_to_ids(["p60", "wait12", "endp60", "p64", "wait6"])]])
    mask = torch.ones_like(ids, dtype=torch.float32)
    reference = frozen_copy(model)
    expected = sequence_logprobs(reference, ids, mask)
    with dropout_off(model):
        assert model.training
        torch.testing.assert_close(sequence_logprobs(model, ids, mask), expected)
    assert model.config.embedding_dropout == DROPOUTS["embedding_dropout"]
    assert model.model.layers[0].weight_dropout == DROPOUTS["weight_dropout"]
    torch.manual_seed(0)
    assert not torch.allclose(sequence_logprobs(model, ids, mask), expected)  # dropout is back in training


def _run(rng: np.random.Generator, up: bool) -> list[int]:
    """A continuation: eight notes walking up (the preferred kind) or down (the rejected kind)."""
    pitch, words = int(rng.integers(55, 70)), []
    for _ in range(8):
        pitch += 2 if up else -2
        words += [f"p{pitch}", "wait3", f"endp{pitch}"]
    return TOK.convert_tokens_to_ids(words)


def _pairs(seed: int, count: int) -> list[Pair]:
    rng = np.random.default_rng(seed)
    prompt = [TOK.bos_token_id, *TOK.convert_tokens_to_ids(["p48", "wait12", "endp48"])]
    return [Pair(prompt, _run(rng, up=True), _run(rng, up=False), 1.0, 0.0) for _ in range(count)]


def _margins(policy, reference, pairs: list[Pair]) -> tuple[float, float]:
    """Mean (chosen, rejected) log-ratio policy / reference over `pairs`."""
    policy_values = reference_logprobs(policy, pairs, 8, TOK.pad_token_id)
    reference_values = reference_logprobs(reference, pairs, 8, TOK.pad_token_id)
    chosen = np.mean([p[0] - r[0] for p, r in zip(policy_values, reference_values)])
    rejected = np.mean([p[1] - r[1] for p, r in zip(policy_values, reference_values)])
    return float(chosen), float(rejected)


def test_a_few_dpo_steps_raise_the_preferred_continuations_and_leave_the_reference_frozen(tmp_path):
    policy = tiny_model(**DROPOUTS)
    reference = frozen_copy(policy)
    before = {name: tensor.clone() for name, tensor in reference.state_dict().items()}
    train, held_out = _pairs(0, 16), _pairs(1, 8)
    config = TuneConfig(generator="unused", output_dir=str(tmp_path), epochs=3, batch_size=4, learning_rate=3e-3,
                        logging_steps=1, device="cpu")  # fmt: skip
    fitted = fit_pairs(policy, train, reference_logprobs(reference, train, 8, TOK.pad_token_id), config, tmp_path,
                       progress=lambda line: None)  # fmt: skip
    assert fitted["steps"] == 12 and (tmp_path / "metrics.jsonl").is_file()
    for pairs in (train, held_out):  # walking up (preferred) gains against the reference, walking down loses
        chosen, rejected = _margins(policy, reference, pairs)
        assert chosen > 0.0 > rejected, (chosen, rejected)
    assert fitted["reward_accuracy"] == 1.0 and fitted["margin"] > 0
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, before[name]), f"the reference moved: {name}"
    assert not any(p.requires_grad for p in reference.parameters()) and not reference.training
    assert not torch.equal(policy.model.embeddings.weight, reference.model.embeddings.weight)
    assert policy.config.output_dropout == DROPOUTS["output_dropout"]  # the rates survive the tuning


def _fitted_to(real: list[np.ndarray]):
    """A tiny model trained on `real` (as a generator is, before it is tuned)."""
    torch.manual_seed(0)
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    windows = RealWindows(real, 40, TOK.pad_token_id, seed=5)
    for _ in range(80):
        optimizer.zero_grad()
        anchor_nll(model.train(), windows, 8).backward()
        optimizer.step()
    return model.eval()


def test_the_anchor_keeps_the_policy_near_real_music_that_the_preferences_pull_away_from(tmp_path):
    """Real music here walks down, the rejected kind: DPO alone makes it less likely; the anchor holds it."""
    rng = np.random.default_rng(3)
    real = [np.asarray([TOK.bos_token_id, *sum((_run(rng, up=False) for _ in range(6)), [])]) for _ in range(6)]
    pairs, trained = _pairs(0, 16), _fitted_to(real)
    rises, logged = {}, {}
    for anchor in (0.0, 3.0):
        policy = copy.deepcopy(trained)
        reference = frozen_copy(policy)
        probe = RealWindows(real, 40, TOK.pad_token_id, seed=9)
        with torch.no_grad():
            before = float(anchor_nll(policy, probe, 16))
        config = TuneConfig(generator="unused", output_dir=str(tmp_path / str(anchor)), epochs=3, batch_size=4,
                            learning_rate=3e-3, anchor=anchor, dataset="real", device="cpu")  # fmt: skip
        windows = RealWindows(real, 40, TOK.pad_token_id, seed=1)
        logged[anchor] = fit_pairs(policy, pairs, reference_logprobs(reference, pairs, 8, TOK.pad_token_id), config,
                                   tmp_path / str(anchor), progress=lambda line: None, windows=windows)  # fmt: skip
        with torch.no_grad():
            probe.rng = np.random.default_rng(9)  # the same windows as before
            rises[anchor] = float(anchor_nll(policy.eval(), probe, 16)) - before
        chosen, rejected = _margins(policy, reference, pairs)
        assert chosen > rejected + 5.0  # the preference is learnt either way
    assert rises[0.0] > 0.1, rises  # DPO alone drifts away from the real runs
    assert rises[3.0] < 0.5 * rises[0.0], rises
    assert "anchor_nll" in logged[3.0] and "anchor_nll" not in logged[0.0]


def test_real_windows_of_a_short_piece_are_padded_and_the_padding_is_not_scored():
    ids, labels = RealWindows([np.arange(1, 6)], 8, 0, seed=0).batch(2)
    assert ids.shape == (2, 9) and (ids[:, :5] == torch.arange(1, 6)).all() and (ids[:, 5:] == 0).all()
    assert (labels[:, :5] == torch.arange(1, 6)).all() and (labels[:, 5:] == -100).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"anchor": -1.0, "dataset": "d"}, "anchor must be a number >= 0"), ({"anchor": 1.0}, "give a dataset"),
     ({"anchor": 1.0, "dataset": "d", "anchor_window": 0}, "anchor_window must be a positive integer"),
     ({"anchor": 1.0, "dataset": "d", "split": "test"}, "use split train, not test"),
     ({"max_copy_quarters": 8.0}, "max_copy_quarters looks for copies of a dataset's training pieces")],
)  # fmt: skip
def test_a_bad_anchor_is_refused_with_the_reason(settings, message):
    with pytest.raises(ValueError, match=message):
        TuneConfig(generator="g", output_dir="o", **settings)


def high_notes(token_lists: list[list[str]]) -> list[float]:
    """A score that prefers high music: the share of note-ons at or above C5 (p72)."""
    values = []
    for tokens in token_lists:
        pitches = [int(t[1:]) for t in tokens if t.startswith("p")]
        values.append(sum(p >= 72 for p in pitches) / max(len(pitches), 1))
    return values


def test_tuning_rounds_raise_the_score_they_are_tuned_on(tmp_path):
    generator = save_checkpoint(tmp_path / "generator", tiny_model(), TOK)
    config = TuneConfig(generator=str(generator), output_dir=str(tmp_path / "tuned"), critic="high notes",
                        candidates=6, prompts=8, rounds=2, beats=8, epochs=2, batch_size=4, learning_rate=3e-3,
                        device="cpu")  # fmt: skip
    summary = tune(config, high_notes, progress=lambda line: None)
    check = summary["check"]
    assert check["samples"] == 48 and [row["round"] for row in summary["rounds"]] == [1, 2]
    assert check["mean_score_after"] > check["mean_score_before"] + 0.05, check
    assert all(row["pairs"] >= 1 and row["mean_chosen_score"] > row["mean_rejected_score"] for row in summary["rounds"])
