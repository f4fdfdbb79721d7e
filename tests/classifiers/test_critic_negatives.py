"""The critic's negatives (issue 31): the task builds every kind (the generator's samples, weaker models' samples,
corrupted real excerpts) with seeds that no two splits share; the training batches mix the kinds in their shares;
`toccata critic check` prints its table; bad input exits 2 with one clear line. Real chorales, a tiny generator."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from toccata.classifiers.corruptions import CORRUPTIONS
from toccata.classifiers.data import dataset_rows
from toccata.classifiers.model import classifier_from_generator, save_classifier
from toccata.classifiers.negatives import WEAKER_MODELS, CriticSampler, cached_batches, negative_shares
from toccata.classifiers.tasks import ClassifierTask, _task_data
from toccata.modeling.hub import random_model, save_checkpoint
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer

from toccata.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOK = NotewiseTokenizer()
TINY = {"embedding_size": 16, "hidden_size": 24, "num_hidden_layers": 2}


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("tiny-generator"), random_model(TOK, **TINY), TOK)


@pytest.fixture(scope="module")
def critic_data(tiny_dataset, tiny_generator, tmp_path_factory):
    out = tmp_path_factory.mktemp("critic-task")
    task = ClassifierTask(
        "critic", str(tiny_dataset), str(out), str(tiny_generator), excerpt_tokens=64, train_samples=16,
        validation_samples=16, test_samples=16, sample_beats=24.0, corrupted_per_piece=4,
    )  # fmt: skip
    return task, _task_data(task, TOK, log=lambda line: None)


def _seeds(folder: Path, prefix: str) -> set[int]:
    seeds = set()
    for path in folder.glob(f"{prefix}-*.json"):
        record = json.loads(path.read_text())
        seeds.add(record["sampler"]["seed"] if "sampler" in record else record["seed"])
    return seeds


def test_the_critic_task_builds_every_negative_kind_with_seeds_apart(critic_data):
    task, (classes, data, notes) = critic_data
    assert classes == ["generated", "human"]
    for split, seqs in data.items():
        kinds = Counter(s.group.split(":")[0] for s in seqs)
        expected = {"piece", "sample", "weaker"} | ({"corrupted"} if split != "train" else set())
        assert set(kinds) == expected, (split, kinds)  # training corrupts on the fly
        assert {s.label for s in seqs if s.group.startswith("piece:")} == {1}
        assert {s.label for s in seqs if not s.group.startswith("piece:")} == {0}
        weaker = {s.group.split(":")[1] for s in seqs if s.group.startswith("weaker:")}
        assert weaker == set(WEAKER_MODELS), (split, weaker)  # the generator hot, an untrained model, the 5-gram
        assert "real pieces" in notes[split] and "weaker-model samples" in notes[split]
    spoilt = {s.group.split(":")[1] for s in data["test"] if s.group.startswith("corrupted:")}
    assert spoilt == set(CORRUPTIONS)
    folder = Path(task.output_dir) / "samples"
    for prefix in ("", "weaker-"):
        seeds = {split: _seeds(folder, prefix + split) for split in data}
        assert all(seeds.values()), seeds
        assert not seeds["train"] & seeds["validation"] and not seeds["train"] & seeds["test"]
        assert not seeds["validation"] & seeds["test"]
    pieces = {split: {s.group for s in seqs if s.group.startswith("piece:")} for split, seqs in data.items()}
    assert not pieces["train"] & pieces["test"] and not pieces["train"] & pieces["validation"]


def test_another_generator_joins_the_weaker_negatives_and_the_card(tiny_dataset, tiny_generator, tmp_path):
    """`--weaker-from`: a model tuned against an earlier critic (here another tiny one) is sampled with its own preset
    beside the built-in weaker models, in every split, and named in the check's kinds and the card's command."""
    torch.manual_seed(1)
    tuned = save_checkpoint(tmp_path / "tuned", random_model(TOK, **TINY), TOK)
    task = ClassifierTask(
        "critic", str(tiny_dataset), str(tmp_path / "critic"), str(tiny_generator), excerpt_tokens=64,
        train_samples=16, validation_samples=16, test_samples=16, sample_beats=24.0, weaker_from=(str(tuned),),
    )  # fmt: skip
    _, data, _ = _task_data(task, TOK, log=lambda line: None)
    for split, seqs in data.items():
        weaker = Counter(s.group.split(":")[1] for s in seqs if s.group.startswith("weaker:"))
        assert set(weaker) == {*WEAKER_MODELS, "tuned"}, (split, weaker)
    records = [json.loads(p.read_text()) for p in (tmp_path / "critic" / "samples").glob("weaker-test-*.json")]
    tuned_texts = [t for r in records if r["model"] == "tuned" for t in r["samples"]]
    hot_texts = [t for r in records if r["model"] == "hot" for t in r["samples"]]
    assert tuned_texts and not set(tuned_texts) & set(hot_texts)  # its own samples, not the generator's
    with pytest.raises(ValueError, match="two generators named 'tuned'"):
        _task_data(replace(task, weaker_from=(str(tuned), str(tuned) + "/")), TOK, log=lambda line: None)
    # One more model, in the same folder: the batches cached for the former list are of other models now
    more = save_checkpoint(tmp_path / "tuned2", random_model(TOK, **TINY), TOK)
    _, data, _ = _task_data(replace(task, weaker_from=(str(tuned), str(more))), TOK, log=lambda line: None)
    for split, seqs in data.items():
        weaker = Counter(s.group.split(":")[1] for s in seqs if s.group.startswith("weaker:"))
        assert set(weaker) == {*WEAKER_MODELS, "tuned", "tuned2"}, (split, weaker)


def test_cached_batches_of_another_list_of_models_are_made_again(tmp_path):
    """Weaker samples are cached batch by batch in turn over the models; with another list of models (one more
    `--weaker-from`), batch k is of another model, and the cached one must not stand in for it."""
    def run(names: list[str], log) -> list[str]:
        make = lambda batch, size: {"model": names[batch % len(names)], "samples": [f"{names[batch % len(names)]} x"]}
        records = cached_batches(tmp_path, "weaker-train", 4, make, log, model_of=lambda b: names[b % len(names)])
        return [r["model"] for r in records]

    assert run(["hot", "tuned"], log=lambda line: None) == ["hot", "tuned", "hot", "tuned"]
    lines = []
    assert run(["hot", "tuned", "tuned2"], lines.append) == ["hot", "tuned", "tuned2", "hot"]
    assert sum("another list of models): made again" in line for line in lines) == 2  # batches 2 and 3


def test_training_batches_mix_the_kinds_in_their_shares(critic_data):
    _, (_, data, _) = critic_data
    layout = VocabLayout.from_config(TOK)
    shares = negative_shares("generator=1,corrupted=2,weaker=1")
    sampler = CriticSampler(data["train"], 64, layout, TOK.pad_token_id, TOK, shares, seed=3)
    rng = np.random.default_rng(0)
    sampler.turn = 0
    picks = [sampler._pick(rng) for _ in range(600)]
    kinds = Counter(p.group.split(":")[0] for p in picks)
    assert 250 < kinds["piece"] < 350  # half real
    assert 100 < kinds["corrupted"] < 200 and 40 < kinds["sample"] < 110 and 40 < kinds["weaker"] < 110
    assert {p.group.split(":")[1] for p in picks if p.group.startswith("corrupted:")} == set(CORRUPTIONS)
    assert all(p.label == 0 for p in picks if not p.group.startswith("piece:"))
    first, again = sampler.batch(5, 16), sampler.batch(5, 16)
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    only = CriticSampler(data["train"], 64, layout, TOK.pad_token_id, TOK, {"corrupted": 1.0}, seed=3)
    assert {only._pick(rng).group.split(":")[0] for _ in range(50)} == {"piece", "corrupted"}


def _pitch_set(row: np.ndarray, layout: VocabLayout) -> set[int]:
    keys = layout.pitch_index(row)
    return set(keys[keys >= 0].tolist())


def test_paired_batches_put_each_corrupted_excerpt_beside_its_original(critic_data):
    """`--paired`: a spoilt row is followed by its twin, real music of the same span (a copy of a training piece up to
    transposition), cut at the same place: the two share far more of their pitches than unrelated rows; with other
    negatives too, reals still make about half of the rows."""
    from toccata.evaluation.copy_index import CopyIndex

    _, (_, data, _) = critic_data
    layout = VocabLayout.from_config(TOK)
    only = CriticSampler(data["train"], 64, layout, TOK.pad_token_id, TOK, {"corrupted": 1.0}, seed=3, paired=True)
    rows = []
    for step in range(6):
        batch = only.batch(step, 16)
        rows += [(ids[mask > 0].numpy(), int(label)) for ids, mask, label in zip(*batch.values())]
    assert [label for _, label in rows] == [0, 1] * (len(rows) // 2)  # every spoilt row, then its twin
    index = CopyIndex([s.ids for s in data["train"] if s.group.startswith("piece:")], layout, k=16)
    same, other = [], []
    for r in range(0, len(rows), 2):
        (bad, _), (twin, _) = rows[r], rows[r + 1]
        assert index.longest_copy(twin).tokens >= 0.75 * len(twin)  # real music, as a training piece has it
        a, b, c = (_pitch_set(x, layout) for x in (bad, twin, rows[(r + 7) % len(rows)][0]))
        same.append(len(a & b) / max(1, len(a | b)))
        other.append(len(a & c) / max(1, len(a | c)))
    assert np.mean(same) > np.mean(other) + 0.15, (np.mean(same), np.mean(other))
    mixed = CriticSampler(data["train"], 64, layout, TOK.pad_token_id, TOK, negative_shares("generator=1,corrupted=2"),
                          seed=3, paired=True)  # fmt: skip
    labels = torch.cat([mixed.batch(step, 16)["labels"] for step in range(20)]).float()
    assert 0.4 < labels.mean() < 0.6  # reals still about half
    with pytest.raises(ValueError, match="give corrupted a share"):
        replace(critic_data[0], paired=True, negatives="generator=1")
    with pytest.raises(ValueError, match="not for composers"):
        replace(critic_data[0], task="composer", paired=True)


def test_negative_shares_parse_and_refuse_bad_input():
    assert negative_shares("generator=0.4,corrupted=0.4,weaker=0.2") == pytest.approx(
        {"generator": 0.4, "corrupted": 0.4, "weaker": 0.2}
    )
    assert negative_shares("corrupted=3, generator=1, weaker=0") == {"corrupted": 0.75, "generator": 0.25}
    for bad, message in (
        ("generator=0.5,noise=0.5", "unknown kind 'noise'"),
        ("generator", "needs a share"),
        ("generator=-1", "needs a share"),
        ("generator=0", "at least one kind"),
    ):
        with pytest.raises(ValueError, match=message):
            negative_shares(bad)


def test_critic_check_prints_the_table_and_bad_input_exits_2(tiny_dataset, tiny_generator, tmp_path, capsys):
    critic = classifier_from_generator(tiny_generator, ["generated", "human"]).eval()
    folder = save_classifier(tmp_path / "critic", critic, TOK, {"task": "critic", "excerpt_tokens": 64}, "# c\n")
    args = ["critic", "check", "--critic", str(folder), "--dataset", str(tiny_dataset), "--split", "test"]
    cache = ["--generator", str(tiny_generator), "--samples", "4", "--samples-cache", str(tmp_path / "cache")]
    assert main(args + cache) == 0
    out, err = capsys.readouterr()
    assert "made test-000.json" in err and (tmp_path / "cache" / "test-000.json").is_file()
    assert "| negatives | excerpts | mean P(human) | ROC AUC real vs them |" in out
    for kind in (*CORRUPTIONS, "samples of"):
        assert f"| {kind}" in out, kind
    assert "| P(human) bin: mean | share real | excerpts |" in out
    assert main(args + ["--json"]) == 0
    check = json.loads(capsys.readouterr().out)
    assert set(check["auc"]) == set(CORRUPTIONS) and all(0 <= v <= 1 for v in check["auc"].values())
    assert main(args + cache + ["--tokens", "0"]) == 0  # whole pieces, as `critic score` judges a file
    out, err = capsys.readouterr()
    assert "whole pieces, P(human) per piece" in out and "| reversed |" in out and "| samples of" in out
    assert "made test-" not in err  # the cached samples again
    assert main(args + cache + ["--tokens", "0", "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    pieces = len(list(dataset_rows(tiny_dataset, "test", TOK)))  # the split's pieces, each once and whole
    assert whole["real"] == pieces and whole["counts"]["pitches scrambled"] == pieces
    other = ["--generator", str(tmp_path / "critic"), "--samples", "4", "--samples-cache", str(tmp_path / "cache")]
    assert main(args + other) == 2  # the cache holds another generator's samples
    assert "holds samples of" in capsys.readouterr().err
    assert main(args + ["--samples-cache", str(tmp_path / "cache")]) == 2
    assert "give --generator PATH and --samples N too" in capsys.readouterr().err
    assert main(args + ["--tokens", "-1"]) == 2
    assert "--tokens -1" in capsys.readouterr().err

    assert main(["critic", "check", "--critic", str(tmp_path), "--dataset", str(tiny_dataset)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a Toccata classifier folder" in err and str(tmp_path) in err
    composer = classifier_from_generator(tiny_generator, ["Bach", "Byrd"]).eval()
    other = save_classifier(tmp_path / "composer", composer, TOK, {"task": "composer", "excerpt_tokens": 64}, "#\n")
    assert main(["critic", "check", "--critic", str(other), "--dataset", str(tiny_dataset)]) == 2
    assert "not a critic" in capsys.readouterr().err
    train = ["critic", "train", "--generator", str(tiny_generator), "--dataset", str(tiny_dataset)]
    assert main(train + ["--out", str(tmp_path / "x"), "--negatives", "generator=1,noise=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown kind 'noise'" in err
    assert not (tmp_path / "x" / "samples").exists()  # refused before generating anything
    assert main(train + ["--out", str(tmp_path / "y"), "--negatives", "generator=1", "--paired"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give corrupted a share" in err
