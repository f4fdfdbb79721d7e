"""The preference loss (DPO, or IPO) of a causal LM on pairs of continuations, and the transformers `Trainer` that
minimises it against a frozen reference: sequence log-probabilities of the continuation (prompt masked), the
reference's computed once per round, dropout off. `tuning.py` makes the pairs (sampling, a scorer) and runs rounds.

    loss, stats = preference_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta=0.1)
    fit_pairs(policy, pairs, reference_logprobs(frozen_copy(generator), pairs, 8, pad_id), config, folder)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .trainer import MetricsLog

Score = Callable[[list[list[str]]], Sequence[float]]  # continuations (token lists) -> a score each, higher preferred
LOSSES = ("dpo", "ipo")
PROMPT_SOURCES = ("bos", "dataset", "both")
MAX_ROWS = 64  # rows `compose()` decodes in one batch (num_samples x best_of)


@dataclass
class TuneConfig:
    """Everything a tuning run depends on; saved as `tune_config.json` beside the result."""

    generator: str  # checkpoint folder or Hub id of the generator to tune (the reference is a frozen copy of it)
    output_dir: str
    critic: str = ""  # what `score` is (a critic folder's name): for the card and the summary
    max_copy_quarters: float = 0.0  # > 0: the caller wrapped `score` in `quotes_scored_zero` (the CLI does)
    candidates: int = 8  # N samples per prompt; the best and the worst of them make a pair
    prompts: int = 32  # prompts per round
    rounds: int = 1  # sample, pair and fine-tune this many times, each round sampling from the last round's policy
    beats: float = 32.0  # length of each candidate's continuation, in quarter notes
    prompt_from: str = "bos"  # bos (compose from nothing), dataset (openings of pieces of `split`), both (half each)
    dataset: str | None = None  # a built dataset (folder or Hub id), for prompt_from dataset or both
    split: str = "train"
    prompt_beats: float = 8.0  # beats of a dataset piece's opening kept as the prompt (whole bars, at least one)
    loss: str = "dpo"  # dpo: -log sigmoid(beta * margin); ipo: (margin - 1 / (2 beta))^2
    beta: float = 0.1  # strength of the pull towards the reference (a larger beta keeps the policy closer)
    min_gap: float = 0.05  # a prompt's best and worst candidates whose scores differ by less make no pair
    epochs: float = 2.0  # passes over each round's pairs
    batch_size: int = 8  # pairs per optimizer step
    learning_rate: float = 1e-4
    anchor: float = 0.0  # weight of a likelihood term on real music (windows of the dataset's split) at each step
    anchor_window: int = 256  # tokens per anchor window; batch_size windows per step
    max_grad_norm: float = 1.0
    warmup: float = 0.1  # share of each round's steps with a linear warm-up, then linear decay
    logging_steps: int = 5
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present), cpu or cuda

    def __post_init__(self) -> None:
        if not isinstance(self.candidates, int) or not 2 <= self.candidates <= MAX_ROWS:
            raise ValueError(
                f"candidates must be from 2 to {MAX_ROWS} (a pair needs a preferred and a rejected sample), got "
                f"{self.candidates!r}"
            )
        for name in ("prompts", "rounds", "batch_size", "logging_steps", "anchor_window"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("beats", "prompt_beats", "beta", "epochs", "learning_rate", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.prompt_from not in PROMPT_SOURCES:
            raise ValueError(f"prompt_from must be one of {', '.join(PROMPT_SOURCES)}, got {self.prompt_from!r}")
        if self.prompt_from != "bos" and not self.dataset:
            raise ValueError(f"prompt_from {self.prompt_from} takes openings of a dataset's pieces: give a dataset")
        if not (isinstance(self.max_copy_quarters, (int, float)) and 0.0 <= self.max_copy_quarters < math.inf):
            raise ValueError(f"max_copy_quarters must be a number >= 0 (0: off), got {self.max_copy_quarters!r}")
        if not (isinstance(self.anchor, (int, float)) and 0.0 <= self.anchor < math.inf):
            raise ValueError(f"anchor must be a number >= 0 (0: off), got {self.anchor!r}")
        if self.anchor and not self.dataset:
            raise ValueError("anchor is a likelihood term on the real music of a dataset's split: give a dataset")
        if self.anchor and self.split != "train":
            raise ValueError(f"anchor fits the tuned model to `split`'s music: use split train, not {self.split}")
        if self.max_copy_quarters and not self.dataset:
            raise ValueError("max_copy_quarters looks for copies of a dataset's training pieces: give a dataset")
        if not 0.0 <= self.min_gap < math.inf or not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"min_gap must be >= 0 and warmup in [0, 1), got {self.min_gap!r} and {self.warmup!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but torch sees no CUDA GPU; use --device cpu")


@dataclass
class Pair:
    """A prompt (ids from `<bos>`) with a preferred and a rejected continuation (ids) and their scores."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    chosen_score: float
    rejected_score: float


# ------------------------------------------------------------------------------------------------------- the loss


def sequence_logprobs(model, input_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Per row, the sum of log p(token | the tokens before it) over the positions `target_mask` marks (the
    continuation; the prompt and right padding are 0). input_ids, target_mask: (rows, time) -> (rows,)."""
    logits = model(input_ids=input_ids, use_cache=False, return_dict=True).logits[:, :-1].float()
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (token_logps * target_mask[:, 1:]).sum(dim=-1)


def preference_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
    loss: str = "dpo",
) -> tuple[torch.Tensor, dict[str, float]]:
    """(mean loss, statistics) of pairs' sequence log-probabilities under the policy and the reference.

    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected);
    DPO (Rafailov et al. 2023): -log sigmoid(beta * margin); IPO (Azar et al. 2023): (margin - 1 / (2 beta))^2."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    if loss == "dpo":
        losses = -F.logsigmoid(beta * margin)
    elif loss == "ipo":
        losses = (margin - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    stats = {
        "reward_accuracy": float((margin > 0).float().mean()),  # pairs where the policy already prefers the chosen
        "margin": float(margin.detach().mean()),  # in nats of log-ratio
        "chosen_logratio": float((policy_chosen - reference_chosen).detach().mean()),
        "rejected_logratio": float((policy_rejected - reference_rejected).detach().mean()),
    }
    return losses.mean(), stats


STATISTICS = ("reward_accuracy", "margin", "chosen_logratio", "rejected_logratio", "anchor_nll", "preference_loss")


class PairDataset(Dataset):
    """Pairs with their reference log-probabilities, as the collator wants them."""

    def __init__(self, pairs: list[Pair], reference: list[tuple[float, float]] | None = None):
        self.pairs, self.reference = pairs, reference or [(0.0, 0.0)] * len(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        return {"pair": self.pairs[index], "reference": self.reference[index]}


def collate_pairs(items: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """input_ids (2B, T): the B chosen sequences (prompt + continuation), then the B rejected ones, right-padded;
    target_mask (2B, T): 1 on the continuations' tokens; reference_logps (2B,) in the same order."""
    pairs = [item["pair"] for item in items]
    rows = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    width = max(len(prompt) + len(continuation) for prompt, continuation in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for row, (prompt, continuation) in enumerate(rows):
        ids[row, : len(prompt) + len(continuation)] = torch.tensor(prompt + continuation, dtype=torch.long)
        mask[row, len(prompt) : len(prompt) + len(continuation)] = 1.0
    reference = [item["reference"][0] for item in items] + [item["reference"][1] for item in items]
    return {"input_ids": ids, "target_mask": mask, "reference_logps": torch.tensor(reference, dtype=torch.float32)}


class RealWindows:
    """Random windows of real pieces (token ids, each piece framed by `<bos>` and `<eos>`) for the anchor: the
    likelihood term that keeps a tuned policy near real music where the critic's preferences would pull it away."""

    def __init__(self, pieces: list[np.ndarray], window: int, pad_id: int, seed: int):
        self.pieces = [piece for piece in pieces if len(piece) > 1]
        if not self.pieces:
            raise ValueError("the anchor has no real piece of two tokens or more to take windows from")
        lengths = np.asarray([len(piece) for piece in self.pieces], dtype=np.float64)
        self.weights = lengths / lengths.sum()  # pieces drawn in proportion to their length
        self.window, self.pad_id, self.rng = window, pad_id, np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels) of `size` windows of up to window + 1 tokens; labels -100 on the padding."""
        ids = torch.full((size, self.window + 1), self.pad_id, dtype=torch.long)
        labels = torch.full((size, self.window + 1), -100, dtype=torch.long)
        for row in range(size):
            piece = self.pieces[int(self.rng.choice(len(self.pieces), p=self.weights))]
            start = int(self.rng.integers(0, max(len(piece) - self.window - 1, 0) + 1))
            span = torch.as_tensor(piece[start : start + self.window + 1], dtype=torch.long)
            ids[row, : len(span)] = labels[row, : len(span)] = span
        return ids, labels


def anchor_nll(model, windows: RealWindows, size: int) -> torch.Tensor:
    """The mean negative log-likelihood per token (nats) of `size` real windows: the anchor term."""
    ids, labels = windows.batch(size)
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), use_cache=False, return_dict=True).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1).to(device))


class PreferenceTrainer(Trainer):
    """The Trainer with the DPO (or IPO) loss of `collate_pairs` batches; the reference's log-probabilities come in
    the batch (computed once per round), so the reference model never sits in the optimizer's reach. With an
    `anchor` weight and real `windows`, each step adds anchor x the policy's NLL of a batch of real windows."""

    def __init__(self, *args, beta: float, loss: str, anchor: float = 0.0, windows: RealWindows | None = None,
                 **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.beta, self.loss_kind = beta, loss
        self.anchor, self.windows = anchor, windows
        self.pending: list[dict[str, float]] = []  # statistics of the steps since the last log

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps = sequence_logprobs(model, inputs["input_ids"], inputs["target_mask"])
        reference = inputs["reference_logps"]
        half = logps.shape[0] // 2
        loss, stats = preference_loss(
            logps[:half], logps[half:], reference[:half], reference[half:], self.beta, self.loss_kind
        )
        if self.anchor and self.windows is not None:
            stats["preference_loss"] = float(loss.detach())  # comparable with runs without the anchor
            nll = anchor_nll(model, self.windows, half)
            loss = loss + self.anchor * nll
            stats["anchor_nll"] = float(nll.detach())
        self.pending.append(stats)
        return (loss, {"logps": logps}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.pending and "loss" in logs:  # the mean of each statistic over the steps this log covers
            logs = {**logs, **{key: float(np.mean([s[key] for s in self.pending])) for key in self.pending[0]}}
            self.pending = []
        super().log(logs, start_time)


class _Progress(TrainerCallback):
    """Passes each training log line to a `progress` function (the CLI prints them)."""

    def __init__(self, progress: Callable[[str], None], label: str):
        self.progress, self.label = progress, label

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if logs and "loss" in logs:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in logs.items() if isinstance(v, float) and k != "epoch")
            self.progress(f"{self.label} step {state.global_step}/{state.max_steps}: {shown}")


@contextmanager
def dropout_off(model) -> Iterator[None]:
    """Within the block, every dropout of `model` is 0 (in training mode too), so that the policy's log-probabilities
    are those of the model that samples, comparable with the reference's; the rates come back afterwards (a later
    fine-tune, and the saved config, keep them)."""
    saved = [
        (module, name, getattr(module, name))
        for module in model.modules()
        for name in ("p", "weight_dropout")  # nn.Dropout and LockedDropout; the LSTM layers' weight drop
        if isinstance(getattr(module, name, None), float)
    ]
    embedding = getattr(model.config, "embedding_dropout", None)  # read by the embedding at every forward
    try:
        for module, name, _ in saved:
            setattr(module, name, 0.0)
        if embedding is not None:
            model.config.embedding_dropout = 0.0
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
        if embedding is not None:
            model.config.embedding_dropout = embedding


@torch.inference_mode()
def reference_logprobs(reference, pairs: list[Pair], batch_size: int, pad_id: int) -> list[tuple[float, float]]:
    """(chosen, rejected) sequence log-probabilities of every pair under the frozen `reference` (eval mode)."""
    reference.eval()
    device = next(reference.parameters()).device
    out: list[tuple[float, float]] = []
    for start in range(0, len(pairs), batch_size):
        batch = collate_pairs([{"pair": p, "reference": (0.0, 0.0)} for p in pairs[start : start + batch_size]], pad_id)
        logps = sequence_logprobs(reference, batch["input_ids"].to(device), batch["target_mask"].to(device)).cpu()
        half = logps.shape[0] // 2
        out += list(zip(logps[:half].tolist(), logps[half:].tolist()))
    return out


def frozen_copy(model):
    """A copy of `model` in eval mode whose parameters take no gradient: the reference."""
    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def fit_pairs(policy, pairs: list[Pair], reference: list[tuple[float, float]], config: TuneConfig, folder: Path,
              progress: Callable[[str], None] = print, label: str = "",
              windows: RealWindows | None = None) -> dict:  # fmt: skip
    """Fine-tune `policy` on `pairs` (with their reference log-probabilities) with the Trainer and the preference
    loss (plus the anchor on `windows` when config.anchor > 0), dropout off; returns the run's numbers. The Trainer's
    logs go to `folder`/metrics.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    use_cpu = config.device == "cpu" or not torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(folder),  # nothing is saved there: save_strategy "no"
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=0.0,  # the pull towards the reference is the loss's, not towards zero
        warmup_steps=config.warmup,
        lr_scheduler_type="linear",
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="no",  # a round is short: `tune` saves the policy after each round instead
        report_to="none",
        seed=config.seed,
        use_cpu=use_cpu,
        dataloader_pin_memory=not use_cpu,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    pad_id = policy.config.pad_token_id
    trainer = PreferenceTrainer(
        model=policy,
        args=args,
        train_dataset=PairDataset(pairs, reference),
        data_collator=lambda items: collate_pairs(items, pad_id),
        callbacks=[MetricsLog(folder, None), _Progress(progress, label)],
        beta=config.beta,
        loss=config.loss,
        anchor=config.anchor,
        windows=windows,
    )
    trainer.remove_callback(PrinterCallback)  # `_Progress` says the same in one line
    with dropout_off(policy):
        result = trainer.train()
    logged = [row for row in trainer.state.log_history if "loss" in row]
    last = logged[-1] if logged else {}
    return {
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        **{key: last[key] for key in STATISTICS if key in last},
        "train_seconds": round(result.metrics.get("train_runtime", 0.0), 1),
    }


__all__ = [
    "LOSSES",
    "Pair",
    "PreferenceTrainer",
    "RealWindows",
    "Score",
    "TuneConfig",
    "collate_pairs",
    "dropout_off",
    "fit_pairs",
    "frozen_copy",
    "anchor_nll",
    "preference_loss",
    "reference_logprobs",
    "sequence_logprobs",
]
