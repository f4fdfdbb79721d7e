"""`toccata train`: arguments -> `TrainConfig` -> `train()`. No training logic here.

toccata train --dataset data/toccata-corpus --out runs/small --epochs 30
toccata train --dataset data/toccata-corpus --out runs/small --resume           # after an interruption
torchrun --nproc_per_node 2 -m toccata train --dataset ... --out ...             # two processes (DDP)
toccata train --dataset data/piano --out runs/bpe --tokenizer notewise-bpe --bpe-vocab-size 1024 --max-transpose 0
toccata train --dataset my-data --init-from toccata/checkpoints/default --out runs/tuned --learning-rate 5e-4
toccata train --dataset data/chamber-violin --init-from toccata/checkpoints/default --instruments piano,violin \
    --max-transpose 0 --out runs/violin-warm                                      # piano -> piano + violin
"""

from __future__ import annotations

import argparse
import json
import sys

from toccata.cli_io import add_choice
from toccata.training import DEFAULT_WINDOW

MODEL_OPTIONS = {
    "embedding_size": int,
    "hidden_size": int,
    "num_hidden_layers": int,
    "embedding_dropout": float,
    "input_dropout": float,
    "hidden_dropout": float,
    "output_dropout": float,
    "weight_dropout": float,
    "initializer_range": float,
}


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    """Register the `train` subcommand (imports torch only when it runs)."""
    cmd = commands.add_parser("train", help="train a model on a built dataset (resumable; runs under torchrun)")
    cmd.add_argument("--dataset", required=True, help="built dataset folder or Hub dataset id (train + validation)")
    cmd.add_argument("--out", required=True, help="run folder: the best model, checkpoints/, metrics.jsonl")
    cmd.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    cmd.add_argument("--init-from", help="fine-tune this checkpoint folder or Hub id instead of a new model")
    cmd.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="DATASET",
        help="also train on this dataset's train split (repeatable); validation stays --dataset's",
    )
    cmd.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="--dataset's training pieces count N times (weighs them up beside --mix; 0: it only validates)",
    )
    cmd.add_argument(
        "--instruments",
        help="parts of the vocabulary, e.g. piano,violin or piano,cello (with --init-from: a piano checkpoint is "
        "grown and each new word starts from the piano word of the same pitch)",
    )
    add_choice(
        cmd,
        "--tokenizer",
        ("notewise", "notewise-bpe", "chordwise", "remi", "midilike", "tsd"),
        "the tokenization to train on (default notewise; see docs/tokenizations.md); others are read from the "
        "dataset's midi column, learnt from its training split where they learn (BPE merges, chordwise words)",
    )
    cmd.add_argument("--bpe-vocab-size", type=int, help="notewise-bpe: vocabulary size, e.g. 1024")
    cmd.add_argument("--epochs", type=float, default=30.0)
    cmd.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)")
    cmd.add_argument("--batch-size", type=int, default=32, help="windows per step and process (default 32)")
    cmd.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="tokens per training window")
    cmd.add_argument("--learning-rate", type=float, default=3e-3)
    cmd.add_argument("--weight-decay", type=float, default=0.01)
    cmd.add_argument("--warmup", type=float, default=0.05, help="share of steps with linear warm-up")
    cmd.add_argument("--scheduler", default="cosine", help="transformers lr scheduler name (default cosine)")
    cmd.add_argument("--max-grad-norm", type=float, default=0.5)
    cmd.add_argument("--max-transpose", type=int, default=6, help="random transposition, ± semitones (0: off)")
    cmd.add_argument("--eval-steps", type=int, help="evaluate and checkpoint every N steps (default: each epoch)")
    cmd.add_argument("--patience", type=int, default=5, help="early stopping patience in evaluations (0: off)")
    cmd.add_argument("--logging-steps", type=int, default=10)
    cmd.add_argument("--save-total-limit", type=int, default=3, help="checkpoints kept (the best is always kept)")
    cmd.add_argument("--seed", type=int, default=0)
    add_choice(cmd, "--device", ("auto", "cpu", "cuda"))
    cmd.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (needs tensorboard)")
    cmd.add_argument("--num-workers", type=int, default=0, help="dataloader worker processes")
    cmd.add_argument(
        "--memmap",
        action="store_true",
        help="for a train split larger than memory: tokenize it once to OUT/token_cache/ and memory-map it (the "
        "same windows; ~0.03 bytes a token in memory instead of ~13)",
    )
    cmd.add_argument(
        "--max-piece-tokens",
        type=int,
        default=0,
        help="cap what one training piece weighs: a longer piece gives about N tokens of windows per epoch, a "
        "different part each epoch (default 0: no cap; one 120k-token piece made 3%% of piano100's training tokens)",
    )
    cmd.add_argument(
        "--composer-min-pieces",
        type=int,
        default=0,
        help="composer labels: composers with at least N training pieces get a word of their own (generate "
        "--composer NAME), the rest share 'other'; 0 (default): no labels",
    )
    cmd.add_argument(
        "--composer-dropout", type=float, default=0.2, help="share of windows trained without their composer label"
    )
    size = cmd.add_argument_group("model (new models; a fine-tune keeps its checkpoint's sizes)")
    for name, kind in MODEL_OPTIONS.items():
        size.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    cmd.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from toccata.training.trainer import TrainConfig, train  # start-up: torch; `toccata --help` must not wait

    model = {name: getattr(args, name) for name in MODEL_OPTIONS if getattr(args, name) is not None}
    config = TrainConfig(
        dataset=args.dataset,
        output_dir=args.out,
        init_from=args.init_from,
        mix=list(args.mix),
        repeat=args.repeat,
        instruments=args.instruments.split(",") if args.instruments else None,
        tokenizer=args.tokenizer,
        bpe_vocab_size=args.bpe_vocab_size,
        model=model,
        window=args.window,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        scheduler=args.scheduler,
        max_grad_norm=args.max_grad_norm,
        max_transpose=args.max_transpose,
        eval_steps=args.eval_steps,
        patience=args.patience or None,
        logging_steps=args.logging_steps,
        save_total_limit=args.save_total_limit,
        seed=args.seed,
        device=args.device,
        tensorboard=args.tensorboard,
        num_workers=args.num_workers,
        memmap=args.memmap,
        composer_min_pieces=args.composer_min_pieces,
        composer_dropout=args.composer_dropout,
        max_piece_tokens=args.max_piece_tokens,
    )
    summary = train(config, resume=args.resume)
    if summary.get("rank", 0) == 0:
        print(json.dumps(summary, indent=2, default=str), file=sys.stderr)
        print(f"wrote the best model to {args.out} (use it with --model {args.out})", file=sys.stderr)
    return 0
