"""`train()`: a NotewiseLSTM on a built Toccata dataset with the transformers `Trainer` (so DDP, CUDA, checkpoints,
resume and early stopping come from a maintained engine, not from us).

    OUTPUT/                     the best model as a checkpoint folder (safetensors, tokenizer, card): `--model OUTPUT`
    OUTPUT/checkpoints/         the Trainer's checkpoints (weights, optimizer, scheduler, RNG), what `resume` reads
    OUTPUT/metrics.jsonl, .csv  one row per logging step and evaluation
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from toccata.modeling.hub import CardInfo, load_checkpoint, random_model, save_checkpoint
from toccata.modeling.layout import VocabLayout
from toccata.modeling.presets import preset_from_generation_config
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.schemes import SCHEME_FILE, SCHEMES, grid_notes, load_scheme
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from .data import (
    DEFAULT_WINDOW,
    EpochSampler,
    WindowDataset,
    collate_windows,
    load_pieces,
    read_rows,
)
from .runs import LogAtSave, machine, resume_point, step_of, trainer_arguments
from .token_cache import CACHE_FOLDER, token_cache
from .warm_start import parse_instruments, warm_start

METRICS = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as `train_config.json` beside the result."""

    dataset: str  # a built dataset folder or a Hub dataset id (splits train and validation)
    output_dir: str
    init_from: str | None = None  # fine-tune this checkpoint (folder or Hub id) instead of a new model
    instruments: list[str] | None = None  # e.g. ["piano", "violin"]: parts of the vocabulary (None: the checkpoint's
    # or the piano's); with init_from, new parts start from the piano word of the same pitch (`warm_start`)
    tokenizer: str = "notewise"  # or notewise-bpe, chordwise, remi, midilike, tsd (`toccata.tokenization.schemes`)
    bpe_vocab_size: int | None = None  # notewise-bpe: vocabulary size, merges learnt from the training split
    model: dict[str, Any] = field(default_factory=dict)  # NotewiseLSTMConfig overrides for a new model
    window: int = DEFAULT_WINDOW  # tokens per training window (see docs/training.md for the choice)
    batch_size: int = 32  # windows per step and process
    epochs: float = 30.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.05  # share of the steps with a linear warm-up
    scheduler: str = "cosine"
    max_grad_norm: float = 0.5
    max_transpose: int = 6  # semitones up or down, drawn per window and epoch, always within the piano's range
    eval_steps: int | None = None  # evaluate and checkpoint every N steps; None: every epoch
    patience: int | None = 5  # early stopping after N evaluations without a better validation loss; None: off
    logging_steps: int = 10
    save_total_limit: int = 3
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    tensorboard: bool = False
    num_workers: int = 0  # dataloader worker processes
    memmap: bool = False  # the train split tokenized once to OUTPUT/token_cache/ and memory-mapped (`token_cache`)
    # Composer labels (notewise, new models): composers with at least this many training pieces get a word of their
    # own (`<composer:NAME>`, put before each training window), the rest share `<composer:other>`; 0: no labels.
    composer_min_pieces: int = 0
    composer_dropout: float = 0.2  # share of windows trained without their label, so unlabelled generation stays good
    # > 0: a training piece longer than this many tokens gives only about this many per epoch, a different part each
    # epoch (`WindowDataset`), so that one very long piece cannot dominate what the model learns; 0: no cap.
    max_piece_tokens: int = 0
    # More training data: the train splits of these datasets join `dataset`'s (validation stays `dataset`'s), and
    # `dataset`'s own training pieces count `repeat` times, so a small set of the music wanted weighs more (issue 32:
    # real duos beside quartets folded into duos); 0 with a mix: `dataset` only validates.
    mix: list[str] = field(default_factory=list)
    repeat: int = 1

    def __post_init__(self) -> None:
        for name in ("window", "batch_size", "logging_steps", "save_total_limit"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("give epochs > 0 or max_steps > 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
        if self.tokenizer not in SCHEMES:
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}: choose one of {', '.join(SCHEMES)}")
        if self.tokenizer != "notewise" and self.init_from:
            raise ValueError(
                f"--init-from fine-tunes a checkpoint in its own (notewise) vocabulary; leave out --tokenizer "
                f"{self.tokenizer}, or train a new model without --init-from"
            )
        if (
            self.tokenizer == "notewise-bpe"
            and not self.bpe_vocab_size
            and not (Path(self.dataset) / "tokenizer").is_dir()
        ):
            raise ValueError(
                "--tokenizer notewise-bpe needs --bpe-vocab-size, e.g. 1024 (notewise has 228 base tokens)"
            )
        if self.tokenizer in ("notewise-bpe", "chordwise") and self.max_transpose:
            raise ValueError(
                f"the {self.tokenizer} tokenizer's tokens hold pitches inside merges or chords, so windows cannot be "
                "transposed on the fly: pass --max-transpose 0 (build the dataset with transpositions instead)"
            )
        if self.tokenizer != "notewise" and self.instruments and list(self.instruments) != ["piano"]:
            raise ValueError("--instruments needs the notewise tokenizer: the other tokenizations are piano-only")
        if not isinstance(self.repeat, int) or self.repeat < (0 if self.mix else 1):
            raise ValueError(
                f"repeat must be an integer >= 1 (0 with --mix: the dataset only validates), got {self.repeat!r}"
            )
        if (self.mix or self.repeat > 1) and self.memmap:
            raise ValueError("--mix and --repeat read the training pieces into memory: leave out --memmap")
        if not isinstance(self.max_piece_tokens, int) or self.max_piece_tokens < 0:
            raise ValueError(
                f"max_piece_tokens (--max-piece-tokens) must be an integer >= 0 (0: no cap), got "
                f"{self.max_piece_tokens!r}; a cap of many windows, e.g. 20000, keeps long pieces from dominating"
            )
        if self.composer_min_pieces < 0 or not 0.0 <= self.composer_dropout < 1.0:
            raise ValueError(
                f"composer_min_pieces must be >= 0 and composer_dropout in [0, 1), got {self.composer_min_pieces} and "
                f"{self.composer_dropout}"
            )
        if self.composer_min_pieces and (self.tokenizer != "notewise" or self.init_from):
            raise ValueError(
                "--composer-min-pieces labels a new notewise model: leave out --init-from and --tokenizer (a "
                "checkpoint trained with labels keeps them when fine-tuned)"
            )
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"eval_steps must be a positive integer or None, got {self.eval_steps!r}")


class MetricsLog(TrainerCallback):
    """Appends each log (training loss, learning rate, evaluation) to metrics.jsonl and metrics.csv."""

    def __init__(self, folder: Path, resume_step: int | None) -> None:
        self.path = folder / METRICS
        if resume_step is not None and self.path.exists():  # drop what the interrupted run logged after its checkpoint
            rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            kept = [row for row in rows if row["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        write_csv(self.path)


def run_train_loss(log_history: list[dict], training_loss: float, steps: int, resumed_at: int | None) -> float:
    """The mean training loss over every step of a run. The Trainer's `training_loss` covers this invocation only:
    after a resume from step `resumed_at`, the steps before it come from the losses logged up to the checkpoint."""
    if not resumed_at:
        return training_loss
    logged, covered = 0.0, 0
    for row in log_history:
        if "loss" in row and covered < row["step"] <= resumed_at:
            logged += row["loss"] * (row["step"] - covered)  # each logged loss is the mean since the last log
            covered = row["step"]
    this_run = steps - resumed_at
    return (logged + training_loss * this_run) / max(covered + this_run, 1)


def write_csv(jsonl: Path) -> None:
    """metrics.csv beside metrics.jsonl: one column per key ever logged."""
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    with jsonl.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


class WindowTrainer(Trainer):
    """The Trainer with a shuffle that is a function of (seed, epoch), so resumed runs see the same data order."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochSampler(len(dataset), seed=self.args.seed)


def read_metrics(output_dir: str | os.PathLike) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    path = Path(output_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _scheme(config: TrainConfig, out: Path, resume: bool):
    """The run's token scheme: the one saved in `out` when resuming (same merges), else the dataset's own (built with
    `--tokenizer`, in DATASET/tokenizer/) when it is the same kind, else a new one learnt from the training split's
    original keys (BPE merges, the chordwise vocabulary); saved in `out` at once."""
    if resume and (out / SCHEME_FILE).is_file():
        return load_scheme(out)
    built = Path(config.dataset) / "tokenizer"  # a dataset built with --tokenizer keeps its scheme there: reuse it
    if (built / SCHEME_FILE).is_file():
        info = json.loads((built / SCHEME_FILE).read_text())
        if info["scheme"] == config.tokenizer and config.bpe_vocab_size in (None, info.get("bpe_vocab_size")):
            scheme = load_scheme(built)
            scheme.save(out)
            return scheme
    scheme = load_scheme(config.tokenizer, bpe_vocab_size=config.bpe_vocab_size)
    rows = read_rows(config.dataset, "train", columns=("midi", "transposition"))
    scheme.train([grid_notes(row["midi"]) for row in rows if not row["transposition"]])
    scheme.save(out)
    return scheme


def _model_and_tokenizer(config: TrainConfig, scheme=None):
    if scheme is not None:  # a tokenization other than notewise: the LSTM only needs its vocabulary size and ids
        ids = scheme.special_ids
        model = random_model(
            None, **{"vocab_size": scheme.vocab_size, "pad_token_id": ids["pad"], "bos_token_id": ids["bos"],
                     "eos_token_id": ids["eos"], **config.model},
        )  # fmt: skip
        model.config.token_scheme = scheme.name
        return model.train(), scheme

    instruments = parse_instruments(config.instruments)
    if config.init_from:
        model, tokenizer = load_checkpoint(config.init_from)
        if instruments is not None:
            model, tokenizer = warm_start(model, tokenizer, instruments)
        if config.model:
            model.config.update(config.model)  # e.g. dropouts for fine-tuning; sizes come from the checkpoint
        return model.train(), tokenizer
    composers = composer_labels(config.dataset, config.composer_min_pieces) if config.composer_min_pieces else ()
    tokenizer = NotewiseTokenizer(instruments=instruments or ("piano",), composers=composers)
    return random_model(tokenizer, **config.model).train(), tokenizer


OTHER_COMPOSER = "other"  # the label of composers with too few pieces for one of their own
UNLABELLED = ("", "unknown", "Anonymous")  # no composer to learn a style from: these windows get no label


def composer_labels(dataset: str, min_pieces: int) -> tuple[str, ...]:
    """The composer labels of a run: composers with at least `min_pieces` pieces in the train split, most pieces
    first, then `other` for the rest."""
    pieces: dict[str, set[str]] = {}
    for row in read_rows(dataset, "train", ("piece_id", "composer")):
        pieces.setdefault(row["composer"] or "", set()).add(row["piece_id"])
    counts = {name: len(ids) for name, ids in pieces.items() if name not in UNLABELLED}
    named = sorted((name for name, count in counts.items() if count >= min_pieces), key=lambda n: (-counts[n], n))
    if not named:
        most = max(counts.values(), default=0)
        raise ValueError(
            f"{dataset}: no composer has {min_pieces} pieces in the train split (the most is {most}); lower "
            "--composer-min-pieces, or build the dataset with composer metadata"
        )
    return (*named, OTHER_COMPOSER)


def _label_of(tokenizer) -> Callable[[str], int] | None:
    """A composer -> the id of its label word (-1 when it has none); None for a tokenizer without labels."""
    composers = getattr(tokenizer, "composers", ())
    if not composers:
        return None
    known = set(composers)

    def label(composer: str) -> int:
        if composer in UNLABELLED:
            return -1
        return tokenizer.composer_token_id(composer if composer in known else OTHER_COMPOSER)

    return label


def _label_ids(tokenizer, pieces) -> list[int] | None:
    """Per piece the id of its composer label word, -1 when it has none; None for a tokenizer without labels."""
    label = _label_of(tokenizer)
    return None if label is None else [label(piece.composer) for piece in pieces]


def _datasets(config: TrainConfig, tokenizer, layout: VocabLayout) -> tuple[WindowDataset, WindowDataset, dict]:
    if hasattr(tokenizer, "special_ids"):  # a TokenScheme
        ids = tokenizer.special_ids
        special = {"bos_id": ids["bos"], "eos_id": ids["eos"], "pad_id": ids["pad"]}
    else:
        special = {"bos_id": tokenizer.bos_token_id, "eos_id": tokenizer.eos_token_id, "pad_id": tokenizer.pad_token_id}
    labelled = _label_of(tokenizer) is not None
    options = dict(
        max_transpose=config.max_transpose, seed=config.seed, condition_dropout=config.composer_dropout,
        max_piece_tokens=config.max_piece_tokens,
    )  # fmt: skip
    if config.memmap:  # the train split streamed once to disk and memory-mapped: the same windows, not in memory
        folder = Path(config.output_dir) / CACHE_FOLDER
        cache = token_cache(config.dataset, "train", tokenizer, folder, special["bos_id"], special["eos_id"],
                            _label_of(tokenizer))  # fmt: skip
        train = WindowDataset.from_sequences(
            cache.tokens, cache.offsets, config.window, layout, special["pad_id"], conditions=cache.labels, **options
        )
        train_stats = {"train_pieces": cache.pieces, "train_rows": cache.rows}
    else:
        train_pieces = load_pieces(config.dataset, "train", tokenizer, with_composer=labelled) * config.repeat
        for extra in config.mix:
            train_pieces += load_pieces(extra, "train", tokenizer, with_composer=labelled)
        train = WindowDataset(
            train_pieces, config.window, layout, **special, conditions=_label_ids(tokenizer, train_pieces), **options
        )
        train_stats = {"train_pieces": len({p.piece_id for p in train_pieces}), "train_rows": len(train_pieces)}
    valid_pieces = load_pieces(config.dataset, "validation", tokenizer, original_key_only=True, with_composer=labelled)
    valid_labels = _label_ids(tokenizer, valid_pieces)
    valid = WindowDataset(valid_pieces, config.window, layout, **special, conditions=valid_labels)
    stats = {
        **train_stats,
        "train_tokens": train.num_targets(),
        "validation_pieces": len({p.piece_id for p in valid_pieces}),
        "validation_tokens": valid.num_targets(),
        "train_windows": len(train),
    }
    return train, valid, stats


def _training_arguments(config: TrainConfig, out: Path, steps_per_epoch: int) -> TrainingArguments:
    """The shared run set-up (`runs.trainer_arguments`) with the language model's epochs, logging and workers."""
    return trainer_arguments(
        config,
        out,
        config.eval_steps,
        per_device_eval_batch_size=config.batch_size,
        lr_scheduler_type=config.scheduler,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        logging_steps=min(config.logging_steps, max(steps_per_epoch, 1)),
        logging_first_step=True,
        save_total_limit=config.save_total_limit,
        dataloader_num_workers=config.num_workers,
        report_to=["tensorboard"] if config.tensorboard else "none",
    )


# What a resumed run must share with the run it continues: the model, its data and the optimisation. Others (epochs,
# max_steps, patience, logging, workers, device) may change between the two.
RESUME_MUST_MATCH = (
    "dataset", "init_from", "instruments", "tokenizer", "bpe_vocab_size", "model", "window", "batch_size",
    "learning_rate", "weight_decay", "warmup", "scheduler", "max_grad_norm", "max_transpose", "seed",
    "composer_min_pieces", "composer_dropout", "max_piece_tokens",
)  # fmt: skip


def train(config: TrainConfig, resume: bool = False, callbacks: list[TrainerCallback] | None = None) -> dict:
    """Train (or resume, or fine-tune) and write the best model to `config.output_dir`; returns the run summary.

    `callbacks` are extra `TrainerCallback`s (progress reporting, custom logging, ...)."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.tensorboard:
        try:
            import tensorboard  # noqa: F401  an optional dependency, checked only when asked for
        except ImportError:
            raise ValueError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    resume_from = resume_point(out, asdict(config), "train_config.json", RESUME_MUST_MATCH) if resume else None
    scheme = _scheme(config, out, resume) if config.tokenizer != "notewise" else None
    set_seed(config.seed)  # the new model's initial weights too
    model, tokenizer = _model_and_tokenizer(config, scheme)
    model.accepts_loss_kwargs = False  # its loss is already the mean over labelled tokens
    if model.config.tie_word_embeddings:  # the head is the embedding: not in checkpoints, re-tied when best is loaded
        model._keys_to_ignore_on_save = ["lm_head.weight"]
    train_set, valid_set, stats = _datasets(config, tokenizer, _layout(config, tokenizer, scheme))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * world))
    args = _training_arguments(config, out, steps_per_epoch)
    resumed_at = step_of(resume_from) if resume_from else None
    callbacks = [MetricsLog(out, resumed_at), LogAtSave(), *(callbacks or [])]
    if config.patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.patience))
    trainer = WindowTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=valid_set,
        data_collator=collate_windows,
        processing_class=None if scheme else tokenizer,  # saved in every checkpoint (`--model RUN/checkpoints/...`)
        callbacks=callbacks,
    )
    if trainer.is_world_process_zero():
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    best = trainer.state.best_metric
    summary = {
        **stats,
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 3),
        "train_loss": run_train_loss(
            trainer.state.log_history, result.training_loss, trainer.state.global_step, resumed_at
        ),  # every step of the run, those before a resume too
        "best_validation_loss": best,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "world_size": args.world_size,
        "rank": args.process_index,
        "device": str(args.device),
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 1),  # this invocation only, if resumed
    }
    if trainer.is_world_process_zero():
        card = CardInfo(
            title=f"Toccata NotewiseLSTM trained on {Path(config.dataset).name}",
            datasets=[] if Path(config.dataset).exists() else [config.dataset],
            training_data=_training_data_text(config, summary),
            metrics={"validation_loss": best} if best is not None else {},
            evaluation="Validation loss: mean cross-entropy (nats per token) of the best checkpoint.",
        )
        sampler, guards = preset_from_generation_config(trainer.model.generation_config)  # a fine-tune keeps its preset
        save_checkpoint(out, trainer.model.eval(), tokenizer, card=card, sampler=sampler, guards=guards)
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _layout(config: TrainConfig, tokenizer, scheme) -> VocabLayout:
    """Where the pitch ids are, for on-the-fly transposition; a clear error when a scheme's tokens merge pitches."""
    if scheme is None:
        return VocabLayout.from_config(tokenizer)
    pitch_ids = scheme.pitch_ids()
    if pitch_ids is None and config.max_transpose:
        raise ValueError(
            f"the {scheme.name} tokenizer has no pitch-only tokens (merges or chords hold pitches), so windows "
            "cannot be transposed on the fly: pass --max-transpose 0, or build the dataset with transpositions"
        )
    return VocabLayout.from_pitch_ids(pitch_ids)


def _training_data_text(config: TrainConfig, summary: dict) -> str:
    init = f"fine-tuned from `{config.init_from}`" if config.init_from else "trained from random initialisation"
    if config.tokenizer != "notewise":
        size = f" ({config.bpe_vocab_size} tokens)" if config.bpe_vocab_size else ""
        init += f", on the {config.tokenizer} tokenization{size} (token_scheme.json; `load_scheme` decodes it)"
    if config.init_from and config.instruments:
        init += f", grown to the parts {', '.join(config.instruments)} (new words start from the piano's, same pitch)"
    return (
        f"Dataset `{config.dataset}`{_mix_text(config)}: {summary['train_pieces']} training pieces "
        f"({summary['train_tokens']:,} tokens), "
        f"{summary['validation_pieces']} validation pieces; {init}. Windows of {config.window} tokens, transposed "
        f"on the fly by up to ±{config.max_transpose} semitones; AdamW (lr {config.learning_rate:g}, weight decay "
        f"{config.weight_decay:g}), {config.scheduler} schedule with {config.warmup:g} warm-up, gradient clipping at "
        f"{config.max_grad_norm:g}, batch {config.batch_size} × {summary['world_size']} process(es); "
        f"{summary['steps']} steps ({summary['epochs']} epochs), best validation loss "
        f"{summary['best_validation_loss']}."
    )


def _mix_text(config: TrainConfig) -> str:
    """" (its pieces 3 times) with the train split of `quartets`", or "" for a plain run."""
    text = {0: " (validation only)", 1: ""}.get(config.repeat, f" (its pieces {config.repeat} times)")
    if config.mix:
        text += " with the train split of " + ", ".join(f"`{extra}`" for extra in config.mix)
    return text


__all__ = ["TrainConfig", "read_metrics", "train"]
