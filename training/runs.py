"""What every Toccata training run on the transformers `Trainer` shares (the language model's `train()` and the
classifiers' `fine_tune()`): its TrainingArguments, its checkpoints under OUTPUT/checkpoints, `--resume` from the
newest of them (refused when the run's settings changed), a log at every checkpoint, and the machine it ran on.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import TrainerCallback, TrainingArguments

CHECKPOINTS = "checkpoints"


class RunSettings(Protocol):
    """The settings of a run that `trainer_arguments` reads (`TrainConfig`, `ClassifierTask` have them)."""

    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup: float  # share of the steps with a linear warm-up
    max_grad_norm: float
    seed: int
    device: str  # auto (CUDA when present), cpu or cuda


def trainer_arguments(run: RunSettings, out: Path, eval_steps: int | None, **options: Any) -> TrainingArguments:
    """TrainingArguments of a run into `out`: checkpoints in OUT/checkpoints (what `--resume` reads), an evaluation
    and a checkpoint every `eval_steps` steps (None: every epoch), the weights with the lowest validation loss loaded
    at the end, CUDA when present (DDP under torchrun), the run's optimisation; `options` add the run's own (its
    schedule, steps or epochs, logging)."""
    strategy = "steps" if eval_steps else "epoch"
    use_cpu = run.device == "cpu" or not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        per_device_train_batch_size=run.batch_size,
        learning_rate=run.learning_rate,
        weight_decay=run.weight_decay,
        warmup_steps=run.warmup,
        max_grad_norm=run.max_grad_norm,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=eval_steps,
        save_steps=eval_steps,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        seed=run.seed,
        use_cpu=use_cpu,
        ddp_backend=("gloo" if use_cpu else "nccl") if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=not use_cpu,
        remove_unused_columns=False,
        save_only_model=False,
        **{"report_to": "none", **options},
    )


class LogAtSave(TrainerCallback):
    """Logs the training loss at every checkpoint, so that a checkpoint's log history covers each step before it:
    a resumed run's summary averages the whole run from it (`run_train_loss`)."""

    def on_step_end(self, args, state, control, **kwargs) -> None:
        control.should_log = control.should_log or control.should_save

    def on_epoch_end(self, args, state, control, **kwargs) -> None:
        control.should_log = control.should_log or control.should_save


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete Trainer checkpoint of a run (trainer_state.json is written last), or None."""
    folder = Path(output_dir) / CHECKPOINTS
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file() and p.name[11:].isdigit()]
    return max(done, key=lambda p: int(p.name[11:]), default=None)


def step_of(checkpoint: Path) -> int:
    """The step a Trainer checkpoint (`checkpoint-N`) was written at."""
    return int(checkpoint.name.rsplit("-", 1)[1])


def resume_point(
    out: Path, settings: dict, saved_name: str, must_match: Iterable[str], log: Callable[[str], None] = print
) -> Path | None:
    """The checkpoint a `--resume` run into `out` continues from, or None (a fresh start, said when there is none).
    Before any weights load, a clear error when `settings` differ in a `must_match` key from the run's saved ones
    (OUT/`saved_name`): another model size or data would load into the wrong shapes or go on silently."""
    checkpoint = last_checkpoint(out)
    if checkpoint is None:
        log(f"no checkpoint in {out / CHECKPOINTS} yet: starting from the beginning")
        return None
    saved_file = out / saved_name
    if not saved_file.is_file():
        return checkpoint
    saved, now = json.loads(saved_file.read_text()), json.loads(json.dumps(settings))

    def same(name: str) -> bool:
        a, b = saved[name], now[name]
        if isinstance(a, str) and isinstance(b, str) and a and b and Path(a).exists() and Path(b).exists():
            return Path(a).resolve() == Path(b).resolve()  # a folder given from another working directory
        return a == b

    changed = [f"{name} {saved[name]!r} -> {now[name]!r}" for name in must_match if name in saved and not same(name)]
    if changed:
        raise ValueError(
            f"--resume continues the run in {out} with its settings, but these differ: {'; '.join(changed)}. "
            "Give the same settings, or a new --out for a new run"
        )
    return checkpoint


def machine() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and core count, for the card and the summary."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        name = models[0] if models else name
    return f"{name}, {os.cpu_count()} logical CPUs"


__all__ = [
    "CHECKPOINTS",
    "LogAtSave",
    "RunSettings",
    "last_checkpoint",
    "machine",
    "resume_point",
    "step_of",
    "trainer_arguments",
]
