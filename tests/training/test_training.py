"""Training: windows and augmentation, the Trainer run, resume after kill -9, two-process DDP, fine-tuning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from toccata.cli import main
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from toccata.training.data import EpochSampler, Piece, WindowDataset, load_pieces
from toccata.training.runs import last_checkpoint
from toccata.training.trainer import read_metrics

TOKENIZER = NotewiseTokenizer()
LAYOUT = VocabLayout.from_config(TOKENIZER)
SPECIAL = {"bos_id": TOKENIZER.bos_token_id, "eos_id": TOKENIZER.eos_token_id, "pad_id": TOKENIZER.pad_token_id}
TINY_MODEL = ["--embedding-size", "24", "--hidden-size", "32", "--num-hidden-layers", "1"]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _windows(pieces, window, max_transpose=0, seed=0):
    return WindowDataset(pieces, window, LAYOUT, max_transpose=max_transpose, seed=seed, **SPECIAL)


def _pairs(ids: np.ndarray) -> list[tuple[int, int]]:
    return list(zip(ids[:-1].tolist(), ids[1:].tolist(), strict=True))


def test_windows_learn_every_next_token_pair_once(tiny_dataset):
    pieces = load_pieces(tiny_dataset, "train", TOKENIZER)
    data = _windows(pieces, window=37)
    learnt = []
    for i in range(len(data)):
        item = data[i]
        ids, labels = item["input_ids"].numpy(), item["labels"].numpy()
        assert ids.shape == labels.shape == (37,)
        keep = labels != -100
        assert (ids[keep] == labels[keep]).all() and keep[: keep.sum()].all()  # padding only at the end
        learnt += _pairs(labels[keep])
    expected = [pair for p in pieces for pair in _pairs(np.concatenate([[1], p.ids, [2]]))]
    assert sorted(learnt) == sorted(expected)
    assert data.num_targets() == len(expected)


def test_a_piece_cap_turns_through_a_long_piece_over_the_epochs(tiny_dataset, tmp_path, capsys):
    """`--max-piece-tokens`: a piece longer than the cap gives about the cap's worth of windows per epoch, a different
    run each epoch, every one in turn; shorter pieces keep all their windows, and the cap can be refused early."""
    pieces = load_pieces(tiny_dataset, "train", TOKENIZER)
    long = max(pieces, key=lambda p: len(p.ids))
    short = [Piece(p.row_id, p.piece_id, p.ids[:100]) for p in pieces if p is not long][:3]  # within the cap
    assert len(long.ids) > 12 * 36 and len(short) == 3
    plain = _windows([long, *short], window=37)
    capped = WindowDataset([long, *short], 37, LAYOUT, max_piece_tokens=4 * 36, **SPECIAL)
    full = int(plain.full_counts[0])
    assert len(capped) == len(plain) - full + 4
    assert capped.num_targets() == plain.num_targets() - (len(long.ids) + 1) + 4 * 36

    def piece_windows(data, epoch, piece):
        return [tuple(data[epoch * len(data) + i]["labels"].tolist()) for i in range(len(data))
                if data.window_sequence[i] == piece]  # fmt: skip

    everything = set(piece_windows(plain, 0, 0))
    seen, runs = set(), []
    for epoch in range(-(-full // 4)):
        run = piece_windows(capped, epoch, 0)
        assert len(run) == 4 and set(run) <= everything
        runs.append(run)
        seen |= set(run)
    assert seen == everything and runs[0] != runs[1]  # all of the piece, a different part each epoch
    twice = WindowDataset([long, long], 37, LAYOUT, max_piece_tokens=4 * 36, **SPECIAL)
    assert set(piece_windows(twice, 0, 0)).isdisjoint(piece_windows(twice, 0, 1))  # copies turn out of step
    for piece in range(1, 1 + len(short)):  # the short pieces: the same windows every epoch, as without the cap
        assert piece_windows(capped, 0, piece) == piece_windows(plain, 0, piece) == piece_windows(capped, 3, piece)
    with pytest.raises(ValueError, match="max_piece_tokens"):
        WindowDataset([long], 37, LAYOUT, max_piece_tokens=-1, **SPECIAL)
    args = ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "run"), "--max-piece-tokens", "-5"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--max-piece-tokens) must be an integer >= 0" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_transposition_shifts_notes_only_within_the_keyboard_and_is_reproducible():
    low_and_high = np.array(TOKENIZER.convert_tokens_to_ids("p21 wait12 endp21 p108 wait6 endp108".split()))
    middle = np.array(TOKENIZER.convert_tokens_to_ids("p60 p64 wait12 endp60 endp64".split()))
    data = _windows([Piece("a", "a", low_and_high), Piece("b", "b", middle)], window=64, max_transpose=6, seed=3)
    assert (data[0]["input_ids"] == data[len(data)]["input_ids"]).all()  # the whole keyboard: no room to move
    shifts = set()
    for epoch in range(30):
        item = data[epoch * len(data) + 1]
        again = data[epoch * len(data) + 1]
        assert (item["input_ids"] == again["input_ids"]).all()
        words = TOKENIZER.convert_ids_to_tokens(item["input_ids"][1:6].tolist())
        shift = int(words[0][1:]) - 60
        assert words == [f"p{60 + shift}", f"p{64 + shift}", "wait12", f"endp{60 + shift}", f"endp{64 + shift}"]
        shifts.add(shift)
    assert shifts <= set(range(-6, 7)) and len(shifts) >= 8


def test_windows_hold_about_two_bytes_a_token():
    """Every process holds its split's windows (docs/training.md, Memory): one array of 2-byte ids, not an int64
    array and a Python object per piece and window (~9 bytes a token)."""
    rng = np.random.default_rng(0)
    pieces = [Piece(f"r{i}", f"p{i}", rng.integers(4, len(TOKENIZER), size=500)) for i in range(200)]
    tracemalloc.start()
    try:
        windows = _windows(pieces, 64)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held / windows.num_targets() < 3


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    a, b = EpochSampler(50, seed=1), EpochSampler(50, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    assert sorted(x - 150 for x in a) == list(range(50))
    b.set_epoch(4)
    assert [x % 50 for x in b] != [x % 50 for x in a]


def _train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--dataset", str(dataset), "--out", str(out), "--window", "48", "--batch-size", "4",
        "--logging-steps", "1", "--seed", "5", *TINY_MODEL, *extra,
    ]  # fmt: skip


def test_train_writes_a_checkpoint_that_loads_and_learns(tiny_dataset, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "run"
    assert main(_train_args(tiny_dataset, out, "--epochs", "3", "--learning-rate", "1e-2")) == 0
    rows = read_metrics(out)
    evals = [row["eval_loss"] for row in rows if "eval_loss" in row]
    assert len(evals) == 3 and min(evals) < evals[0]
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("step,epoch")
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["best_validation_loss"] == pytest.approx(min(evals))
    assert summary["train_runtime_s"] > 0 and summary["machine"] and summary["torch_threads"] >= 1
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.hidden_size == 32
    piece = load_pieces(tiny_dataset, "validation", tokenizer)[0]
    ids = torch.tensor([[1, *piece.ids[:47].tolist()]])
    loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < np.log(model.config.vocab_size) - 1.0  # learnt something: uniform guessing is 5.4 nats
    assert "validation_loss" in (out / "README.md").read_text()
    from toccata.modeling.hub import load_checkpoint

    for checkpoint in (out / "checkpoints").glob("checkpoint-*"):  # every checkpoint is a usable model folder
        assert load_checkpoint(checkpoint)[1].vocab_size == tokenizer.vocab_size


class _Trainer:
    """A `toccata train` child process; `slow_after` makes steps after N sleep so that a kill lands mid-run."""

    SCRIPT = """
import sys, time
from transformers import TrainerCallback
from toccata.training.trainer import TrainConfig, train
slow_after = int(sys.argv[3])
class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if slow_after and state.global_step > slow_after:
            time.sleep(0.5)
config = TrainConfig(dataset=sys.argv[1], output_dir=sys.argv[2], window=48, batch_size=4, max_steps=24,
                     eval_steps=6, logging_steps=1, seed=5, patience=None,
                     model=dict(embedding_size=24, hidden_size=32, num_hidden_layers=1))
train(config, resume=sys.argv[4] == "resume", callbacks=[Slow()])
"""

    @classmethod
    def start(cls, dataset: Path, out: Path, slow_after: int = 0, resume: bool = False) -> subprocess.Popen:
        env = {**os.environ, **SINGLE_THREAD}
        args = [sys.executable, "-c", cls.SCRIPT, str(dataset), str(out), str(slow_after), "resume" if resume else ""]
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _losses(out: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_metrics(out) if "loss" in row}


@pytest.mark.slow
def test_resume_after_kill_9_continues_the_same_loss_curve(tiny_dataset, tmp_path):
    straight = _Trainer.start(tiny_dataset, tmp_path / "straight")
    interrupted = _Trainer.start(tiny_dataset, tmp_path / "interrupted", slow_after=12)
    deadline = time.monotonic() + 120

    def logged_past_checkpoint_12() -> bool:
        checkpoint = last_checkpoint(tmp_path / "interrupted")
        metrics = tmp_path / "interrupted" / "metrics.jsonl"
        return bool(
            checkpoint
            and checkpoint.name == "checkpoint-12"
            and metrics.exists()
            and max(_losses(tmp_path / "interrupted"), default=0) >= 14
        )

    while not logged_past_checkpoint_12():
        assert interrupted.poll() is None, interrupted.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint-12 and step 14 within 120 s"
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert interrupted.returncode == -signal.SIGKILL
    assert not (tmp_path / "interrupted" / "model.safetensors").exists()  # it did not finish
    assert max(_losses(tmp_path / "interrupted")) > 12  # and had logged past its checkpoint
    resumed = _Trainer.start(tiny_dataset, tmp_path / "interrupted", resume=True)
    for proc in (straight, resumed):
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]
    expected, got = _losses(tmp_path / "straight"), _losses(tmp_path / "interrupted")
    assert sorted(got) == sorted(expected) and max(got) == 24
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), f"step {step}"
    eval_losses = [r["eval_loss"] for r in read_metrics(tmp_path / "interrupted") if "eval_loss" in r]
    assert len(eval_losses) == 4  # steps 6, 12, 18, 24: none twice
    # the summary's train_loss averages all 24 steps, not only the 12 after the resume
    summaries = [json.loads((tmp_path / run / "train_summary.json").read_text()) for run in ("straight", "interrupted")]
    assert summaries[1]["train_loss"] == pytest.approx(summaries[0]["train_loss"], rel=1e-5)


@pytest.mark.slow
def test_two_processes_under_torchrun(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000)]
    # --memmap: both processes build the token cache into the same folder at once (each renames its own files in)
    cmd += ["-m", "toccata", *_train_args(tiny_dataset, out, "--max-steps", "8", "--eval-steps", "4", "--memmap")]
    done = subprocess.run(cmd, env={**os.environ, **SINGLE_THREAD}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 8
    single = tmp_path / "single"
    assert main(_train_args(tiny_dataset, single, "--max-steps", "8", "--eval-steps", "4")) == 0
    # two processes see twice the windows per step, so an epoch takes half the steps
    assert read_metrics(out)[-1]["epoch"] == pytest.approx(2 * read_metrics(single)[-1]["epoch"], rel=0.05)
    from toccata.modeling.hub import load_checkpoint

    model, _ = load_checkpoint(out)
    assert model.num_parameters() > 0


def test_fine_tune_starts_from_the_checkpoint(tiny_dataset, tmp_path):
    base = tmp_path / "base"
    assert main(_train_args(tiny_dataset, base, "--epochs", "4", "--learning-rate", "1e-2")) == 0
    tuned = tmp_path / "tuned"
    args = ["train", "--dataset", str(tiny_dataset), "--out", str(tuned), "--init-from", str(base)]
    assert main([*args, "--max-steps", "2", "--window", "48", "--batch-size", "4", "--logging-steps", "1"]) == 0
    first_base, first_tuned = read_metrics(base)[0]["loss"], read_metrics(tuned)[0]["loss"]
    assert first_tuned < first_base - 0.5  # it started where the base model ended, not from scratch
    assert json.loads((tuned / "config.json").read_text())["hidden_size"] == 32


def test_bad_dataset_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "'train' split" in err and "build-dataset" in err


def test_a_missing_split_says_how_to_get_it(tmp_path):
    from toccata.training.data import read_rows

    with pytest.raises(ValueError, match="build one with `toccata build-dataset --out FOLDER`"):
        read_rows(tmp_path, "validation")  # no dataset here at all
    (tmp_path / "toccata-train.parquet").write_bytes(b"")  # a dataset built with --splits 1,0,0
    with pytest.raises(ValueError, match=r"no 'validation' split .*rebuild it with a share for 'validation'"):
        read_rows(tmp_path, "validation")


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    """`--resume` with another model size loaded the checkpoint into the wrong shapes (a raw size-mismatch traceback);
    another window or batch size went on silently. Only settings that may change (steps, patience, ...) may."""
    from dataclasses import asdict

    from toccata.training.runs import CHECKPOINTS
    from toccata.training.trainer import TrainConfig, train

    out = tmp_path / "run"
    first = TrainConfig(dataset=str(tmp_path), output_dir=str(out), model={"hidden_size": 32}, window=64)
    (out / CHECKPOINTS / "checkpoint-6").mkdir(parents=True)
    (out / CHECKPOINTS / "checkpoint-6" / "trainer_state.json").write_text("{}")
    (out / "train_config.json").write_text(json.dumps(asdict(first)))
    changed = TrainConfig(dataset=str(tmp_path), output_dir=str(out), model={"hidden_size": 64}, window=128)
    with pytest.raises(ValueError, match=r"these differ: model .*hidden_size.*; window 64 -> 128\. Give the same"):
        train(changed, resume=True)


def test_train_loss_after_a_resume_averages_every_step_even_when_checkpoints_fall_between_logs(tiny_dataset, tmp_path):
    """A resumed run's summary said the mean loss of the resumed steps only; and steps after the last log before a
    checkpoint (logging every 2 steps, a checkpoint at step 3) were in no log at all. A constant learning rate makes
    a run stopped at step 3 and resumed to step 8 the same run as one of 8 steps."""
    from toccata.training.trainer import TrainConfig, train

    def config(out: Path, steps: int) -> TrainConfig:
        return TrainConfig(
            dataset=str(tiny_dataset), output_dir=str(out), window=48, batch_size=4, max_steps=steps, eval_steps=3,
            logging_steps=2, scheduler="constant", warmup=0.0, seed=5, patience=None,
            model={"embedding_size": 24, "hidden_size": 32, "num_hidden_layers": 1},
        )  # fmt: skip

    straight = train(config(tmp_path / "straight", 8))
    train(config(tmp_path / "resumed", 3))
    resumed = train(config(tmp_path / "resumed", 8), resume=True)
    assert resumed["steps"] == straight["steps"] == 8
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-5)


def test_mix_and_repeat_add_training_pieces_and_keep_the_validation(tiny_dataset, tmp_path, capsys):
    summaries = {}
    for name, extra in [("plain", []), ("mixed", ["--repeat", "2", "--mix", str(tiny_dataset)])]:
        out = tmp_path / name
        assert main(_train_args(tiny_dataset, out, "--max-steps", "1", *extra)) == 0
        summaries[name] = json.loads((out / "train_summary.json").read_text())
    plain, mixed = summaries["plain"], summaries["mixed"]
    assert mixed["train_tokens"] == 3 * plain["train_tokens"]  # its own pieces twice, the mixed-in split once
    assert mixed["validation_tokens"] == plain["validation_tokens"]
    assert "(its pieces 2 times) with the train split of" in (tmp_path / "mixed" / "README.md").read_text()
    assert main(_train_args(tiny_dataset, tmp_path / "bad", "--max-steps", "1", "--repeat", "0")) == 2
    assert "repeat must be an integer >= 1 (0 with --mix: the dataset only validates), got 0" in capsys.readouterr().err
    only_mix = tmp_path / "only-mix"
    args = _train_args(tiny_dataset, only_mix, "--max-steps", "1", "--repeat", "0", "--mix", str(tiny_dataset))
    assert main(args) == 0
    assert json.loads((only_mix / "train_summary.json").read_text())["train_tokens"] == plain["train_tokens"]
