"""Fine-tuning a sequence classifier in the transformers `Trainer`, the loop the language model trains in (set up by
`training.runs`: checkpoints, resume, the weights with the lowest validation loss kept), with ULMFiT's recipe on
top: discriminative learning rates (layer group k from the top at learning_rate / lr_decay**k), gradual unfreezing
(the head alone first, one more group every `unfreeze_every` steps) and a slanted-triangular learning rate.

    history = fine_tune(model, sampler, valid, task.training_arguments(), unfreeze_every=37, lr_decay=2.6, log=print)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from toccata.training.runs import LogAtSave
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import SequentialSampler
from transformers import (
    EvalPrediction,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from .data import Excerpts, ExcerptSampler, SamplerBatches
from .model import layer_groups


def slanted_triangle(step: int, steps: int, warmup: float) -> float:
    """ULMFiT's learning rate factor in step `step` (from 0) of `steps`: a linear rise over the first `warmup` share
    of the steps from 1/N, then a linear fall to 2 % (never 0: the last steps still learn)."""
    warm = max(1, int(steps * warmup))
    if step < warm:
        return (step + 1) / warm
    return max(0.02, (steps - step) / max(1, steps - warm))


def groups_training(step: int, unfreeze_every: int, groups: int) -> int:
    """How many layer groups, from the top, train in step `step` (from 0): all of them without gradual unfreezing."""
    return groups if not unfreeze_every else min(groups, 1 + step // unfreeze_every)


class GradualUnfreezing(TrainerCallback):
    """Before each step only the top `groups_training(step)` layer groups take gradients (AdamW leaves parameters
    without one as they are, weight decay included); once training ends, every parameter takes them again."""

    def __init__(self, groups: list[list[torch.nn.Parameter]], unfreeze_every: int) -> None:
        self.groups, self.every = groups, unfreeze_every

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        trainable = groups_training(state.global_step, self.every, len(self.groups))
        for k, group in enumerate(self.groups):
            for parameter in group:
                parameter.requires_grad_(k < trainable)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        for group in self.groups:
            for parameter in group:
                parameter.requires_grad_(True)


class ValidationRows(TrainerCallback):
    """Hands each evaluation's row (`validation_rows`) to `log` as a JSON line, as it comes."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if logs and "eval_loss" in logs and state.is_world_process_zero:
            self.log(json.dumps(validation_rows(state.log_history)[-1]))


class ClassifierTrainer(Trainer):
    """The Trainer with the batches in order (they are random already, a function of the seed and the step), AdamW
    over the layer groups with discriminative learning rates on a slanted triangle, and evaluation logs that say how
    many groups train."""

    def __init__(self, *args, lr_decay: float = 1.0, unfreeze_every: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lr_decay, self.unfreeze_every, self.started = lr_decay, unfreeze_every, time.perf_counter()

    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            rate = self.args.learning_rate
            groups = [{"params": g, "lr": rate / self.lr_decay**k} for k, g in enumerate(layer_groups(self.model))]
            self.optimizer = torch.optim.AdamW(groups, lr=rate, weight_decay=self.args.weight_decay)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None) -> LambdaLR:
        if self.lr_scheduler is None:
            shape = partial(slanted_triangle, steps=num_training_steps, warmup=self.args.warmup_steps)  # a share
            self.lr_scheduler = LambdaLR(optimizer if optimizer is not None else self.optimizer, shape)
            self._created_lr_scheduler = True  # as the Trainer's own: made again by a second `train()`
        return self.lr_scheduler

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "eval_loss" in logs:  # kept in the log history, so a resumed run's rows are whole
            groups = len(layer_groups(self.model))
            logs["groups_training"] = groups_training(self.state.global_step - 1, self.unfreeze_every, groups)
            logs["elapsed_s"] = round(time.perf_counter() - self.started, 1)  # of this invocation
        super().log(logs, start_time)


def validation_rows(log_history: list[dict]) -> list[dict]:
    """One row per evaluation in a run's log history: the step, the mean training loss since the evaluation before,
    validation loss and accuracy, layer groups training, seconds since this invocation began."""
    train_loss = {row["step"]: row["loss"] for row in log_history if "loss" in row}
    return [
        {
            "step": row["step"],
            "train_loss": train_loss.get(row["step"]),
            "valid_loss": row["eval_loss"],
            "valid_accuracy": row["eval_accuracy"],
            "groups_training": row["groups_training"],
            "elapsed_s": row["elapsed_s"],
        }
        for row in log_history
        if "eval_loss" in row
    ]


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """The share of validation excerpts whose most likely class is theirs."""
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def fine_tune(
    model,
    sampler: ExcerptSampler,
    valid: Excerpts,
    args: TrainingArguments,
    unfreeze_every: int = 0,
    lr_decay: float = 1.0,
    resume_from: Path | None = None,
    callbacks: list[TrainerCallback] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train `model` on `args.max_steps` batches of `sampler` (batch k is `sampler.batch(k, batch size)`), evaluate
    on `valid` every `args.eval_steps` steps and at the end, and keep the weights with the lowest validation loss.
    Returns the validation rows (`validation_rows`); `resume_from` is a checkpoint of the same run to continue."""
    trainer = ClassifierTrainer(
        model=model,
        args=args,
        train_dataset=SamplerBatches(sampler, args.max_steps, args.per_device_train_batch_size),
        eval_dataset=valid,
        data_collator=default_data_collator,
        compute_metrics=accuracy,
        callbacks=[
            GradualUnfreezing(layer_groups(model), unfreeze_every),
            LogAtSave(),  # the training loss at every evaluation (they fall on the checkpoints)
            *([ValidationRows(log)] if log else []),
            *(callbacks or []),
        ],
        lr_decay=lr_decay,
        unfreeze_every=unfreeze_every,
    )
    trainer.remove_callback(PrinterCallback)  # the rows go to `log`, not the Trainer's dicts to stdout
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return validation_rows(trainer.state.log_history)


__all__ = [
    "ClassifierTrainer",
    "GradualUnfreezing",
    "fine_tune",
    "groups_training",
    "slanted_triangle",
    "validation_rows",
]
