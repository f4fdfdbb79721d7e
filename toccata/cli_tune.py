"""`toccata tune`: preference-tune a generator by a critic (DPO against a frozen copy): arguments -> the critic as a
score function -> `training.tuning.tune()` -> a checkpoint folder.

toccata tune --generator toccata/checkpoints/default --critic toccata/checkpoints/critic --out runs/tuned
toccata tune --out runs/tuned --dataset data/piano100 --prompt-from both --rounds 2 --candidates 8 --prompts 32
toccata tune --out runs/tuned --dataset data/piano100 --anchor 5      # a likelihood term on real music too
toccata tune --out runs/tuned --dataset data/piano100 --max-copy 8    # a 2-bar quote of training music scores 0
toccata tune --out runs/tuned --rounds 3 --resume          # continue after the last finished round
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import toccata

PROBE = ["p60", "wait12", "endp60"]  # a continuation any critic can score: checks that --critic is one, at once


def add_tune_parser(commands: argparse._SubParsersAction) -> None:
    """Register the `tune` subcommand (imports torch only when it runs)."""
    cmd = commands.add_parser(
        "tune",
        help="preference-tune a generator by a critic (DPO): sample, rank, pair best against worst, fine-tune",
        description="Each round samples --candidates pieces per prompt from the generator with its preset, ranks them "
        "by the critic's P(human), pairs each prompt's best with its worst and fine-tunes the generator on the pairs "
        "with DPO (or IPO) against a frozen copy of it. Writes an ordinary checkpoint folder. See docs/critic.md.",
    )
    cmd.add_argument("--generator", default="default", help="checkpoint folder to tune (default: the embedded default)")
    cmd.add_argument("--critic", default="critic", help="critic folder that ranks the samples (default: the embedded)")
    cmd.add_argument("--out", required=True, help="the folder to write (new or empty, unless --resume)")
    cmd.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished round")
    cmd.add_argument(
        "--rounds", type=int, default=1, help="sample-rank-tune rounds, each from the last round's model (default 1)"
    )
    cmd.add_argument("--candidates", type=int, default=8, help="samples per prompt, N >= 2 (default %(default)s)")
    cmd.add_argument("--prompts", type=int, default=32, help="prompts per round (default %(default)s)")
    cmd.add_argument("--beats", type=float, default=32.0, help="length of each sample in quarter notes")
    cmd.add_argument(
        "--prompt-from",
        choices=("bos", "dataset", "both"),
        default="bos",
        help="bos: compose from nothing (default); dataset: continue openings of --dataset's pieces; both: half each",
    )
    cmd.add_argument(
        "--dataset", help="a built dataset folder or Hub id: prompts (--prompt-from), --anchor's music, --max-copy's index"
    )
    cmd.add_argument("--split", default="train", help="the split of the prompts and the anchor (default train)")
    cmd.add_argument("--prompt-beats", type=float, default=8.0, help="beats of an opening kept (whole bars)")
    cmd.add_argument("--loss", choices=("dpo", "ipo"), default="dpo", help="dpo (default) or ipo; see docs/critic.md")
    cmd.add_argument("--beta", type=float, default=0.1, help="pull towards the frozen generator (default %(default)s)")
    cmd.add_argument(
        "--anchor",
        type=float,
        default=0.0,
        help="weight of a likelihood term on --dataset's real music at each step, keeping the tuned model near real "
        "music where the critic would pull it away (default 0: off; docs/critic.md)",
    )
    cmd.add_argument(
        "--max-copy",
        type=float,
        default=0.0,
        metavar="QUARTERS",
        help="score 0 any candidate that copies this many quarter notes or more of --dataset's training pieces (up "
        "to transposition): a quote is not composing, though the critic rates it real (default 0: off)",
    )
    cmd.add_argument("--anchor-window", type=int, default=256, help="tokens per real window of the anchor")
    cmd.add_argument("--min-gap", type=float, default=0.05, help="least score gap between a pair's two samples")
    cmd.add_argument("--epochs", type=float, default=2.0, help="passes over each round's pairs")
    cmd.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step (default %(default)s)")
    cmd.add_argument("--learning-rate", type=float, default=1e-4, help="(default %(default)s)")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    cmd.set_defaults(run=run_tune)


def _folder(name: str, what: str) -> str:
    """A folder as given, or the embedded checkpoint of that name ("default", "critic"); a clear error if neither."""
    if Path(name).is_dir():
        return name
    embedded = toccata.embedded_checkpoint(name)
    if embedded is None:
        raise ValueError(f"--{what} {name}: no such folder (give a folder, or an embedded name: default, critic)")
    return str(embedded)


def _without_quotes(score, config):
    """`score` with the candidates that quote the dataset's training pieces for `max_copy_quarters` scored 0."""
    # start-up: transformers and torch load only for this command, not for `toccata --help`
    from transformers import AutoTokenizer
    from toccata.evaluation.copy_index import CopyIndex, quotes_scored_zero
    from toccata.modeling.layout import VocabLayout
    from toccata.training.data import load_pieces

    tokenizer = AutoTokenizer.from_pretrained(config.generator)
    train = load_pieces(config.dataset, "train", tokenizer, original_key_only=True)
    index = CopyIndex.of_pieces(train, VocabLayout.from_config(tokenizer))
    return quotes_scored_zero(score, index, tokenizer, config.max_copy_quarters)


def run_tune(args: argparse.Namespace) -> int:
    # start-up: torch and transformers load only for this command, not for `toccata --help`
    from transformers.utils import logging as hf_logging
    from toccata.training.preference import TuneConfig
    from toccata.training.tuning import tune

    hf_logging.disable_progress_bar()
    config = TuneConfig(
        generator=_folder(args.generator, "generator"),
        output_dir=args.out,
        critic=_folder(args.critic, "critic"),
        candidates=args.candidates,
        prompts=args.prompts,
        rounds=args.rounds,
        beats=args.beats,
        prompt_from=args.prompt_from,
        dataset=args.dataset,
        split=args.split,
        prompt_beats=args.prompt_beats,
        loss=args.loss,
        beta=args.beta,
        min_gap=args.min_gap,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        anchor=args.anchor,
        anchor_window=args.anchor_window,
        max_copy_quarters=args.max_copy,
        seed=args.seed,
        device=args.device,
    )
    score = toccata.default_critic_scorer(config.critic)
    try:
        score([PROBE])
    except ValueError as err:  # a generator or composer folder given as the critic
        raise ValueError(f"--critic {config.critic}: {err}") from None
    if config.max_copy_quarters:
        score = _without_quotes(score, config)
    summary = tune(config, score, resume=args.resume, progress=lambda line: print(line, file=sys.stderr))
    check = summary["check"]
    print(
        f"critic's mean P(human) of {check['samples']} samples: {check['mean_score_before']:.4f} before, "
        f"{check['mean_score_after']:.4f} after (round 1's prompts and seeds)",
        file=sys.stderr,
    )
    print(f"wrote the tuned model to {args.out} (use it with --model {args.out})", file=sys.stderr)
    return 0
