"""`toccata look`, `best-of` and `instrument-stats`: look at a checkpoint or a dataset before trusting it.

    toccata look RUN --dataset data/piano --split test --out out/look [--samples 4 --beats 48]
    toccata best-of --dataset data/piano --split test --samples 100 --best-of 8 [--model RUN] [--out result.json]
    toccata instrument-stats data/chamber-violin [--json out.json]

The work is imported when a command runs, not at start-up: torch and transformers would slow `toccata --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import toccata


def add_inspect_parsers(commands: argparse._SubParsersAction) -> None:
    """Register `look`, `best-of` and `instrument-stats`."""
    look = commands.add_parser("look", help="piano rolls and WAVs of samples beside held-out openings")
    look.add_argument("run_dir", metavar="RUN", help="a checkpoint folder")
    look.add_argument("--dataset", required=True)
    look.add_argument("--split", default="test")
    look.add_argument("--out", default="out/look")
    look.add_argument("--samples", type=int, default=4)
    look.add_argument("--beats", type=float, default=48.0)
    look.set_defaults(run=run_look)

    best = commands.add_parser("best-of", help="does best-of-N help? the feature critic judges plain and best-of")
    best.add_argument("--model", help="generator checkpoint (default: the embedded one)")
    best.add_argument("--dataset", required=True)
    best.add_argument("--split", default="test")
    best.add_argument("--samples", type=int, default=100)
    best.add_argument("--best-of", type=int, default=8)
    best.add_argument("--beats", type=float, default=96.0, help="length of each sample in quarter notes")
    best.add_argument("--seed", type=int, default=0)
    best.add_argument("--out", help="write the result as JSON here")
    best.set_defaults(run=run_best_of)

    stats = commands.add_parser("instrument-stats", help="sizes of an instrumented dataset and how much each part plays")
    stats.add_argument("dataset", help="a dataset folder built with instruments (toccata build-dataset)")
    stats.add_argument("--json", help="also write the numbers here")
    stats.set_defaults(run=run_instrument_stats)


def run_look(args: argparse.Namespace) -> int:
    from toccata.look import look  # start-up: torch and transformers; `toccata --help` must not wait

    model, tokenizer = toccata.load_checkpoint(args.run_dir)
    page = look(model, tokenizer, args.run_dir, args.dataset, args.split, args.out, args.samples, args.beats)
    print(f"wrote {page}", file=sys.stderr)
    return 0


def run_best_of(args: argparse.Namespace) -> int:
    from toccata.evaluation.best_of import compare  # start-up: as run_look's

    model, tokenizer = toccata.load_checkpoint(args.model)
    critic = toccata.default_critic_scorer()
    result = compare(
        model, tokenizer, critic, args.dataset, args.split, args.samples, args.best_of, args.beats, args.seed
    )
    print("| samples | judge ROC AUC (lower: harder to tell from real) | accuracy | LSTM critic mean P(human) |")
    print("|---|---:|---:|---:|")
    for label in ("plain", f"best of {args.best_of}"):
        row = result[label]
        print(
            f"| {label} | {row['judge_auc']:.3f} ± {row['judge_auc_std']:.3f} | {row['judge_accuracy']:.3f} "
            f"| {row['lstm_critic_mean_p_human']:.3f} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


def run_instrument_stats(args: argparse.Namespace) -> int:
    from toccata.dataset_builder.instrument_stats import instrument_stats  # start-up: datasets, as run_look's

    stats = instrument_stats(args.dataset)
    print("| split | pieces | rows | tokens |\n|---|---:|---:|---:|")
    for split, row in [*stats["splits"].items(), ("total", stats["total"])]:
        print(f"| {split} | {row['pieces']} | {row['rows']} | {row['tokens']:,} |")
    print(f"\nsteps (12 per quarter, transposition 0): {stats['steps']:,}")
    for name, share in stats["sounding_share"].items():
        moved = stats["moved_to_piano"].get(name)
        extra = f", {moved:,} notes moved to the piano" if moved is not None else ""
        print(f"{name}: {stats['notes'][name]:,} notes, sounds in {share:.1%} of the steps{extra}")
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    return 0
