"""`toccata evaluate`: arguments -> `evaluation.evaluation.evaluate()` -> report.md, report.json and PNG plots.

toccata evaluate --model PATH_OR_REPO --dataset data/toccata-corpus --split test --out out/eval
toccata evaluate --dataset data/toccata-corpus --no-generation        # likelihood only, the default checkpoint
toccata evaluate --instruments piano,violin --dataset data/chamber-violin --split test   # the embedded duo checkpoint
"""

from __future__ import annotations

import argparse
import sys

import toccata
from toccata.cli_io import add_choice


def add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    """Register the `evaluate` subcommand (imports nothing heavy until it runs)."""
    ev = commands.add_parser("evaluate", help="likelihood vs baselines and a generation report per sampler")
    ev.add_argument("--model", default="default", help="checkpoint folder or Hub id (default: the embedded one)")
    ev.add_argument(
        "--instruments", help="with the default --model: the embedded checkpoint for piano,violin or piano,cello"
    )
    ev.add_argument("--trust-remote-code", action="store_true", help="run code from the checkpoint folder/repo")
    ev.add_argument("--dataset", required=True, help="a dataset folder built by `toccata build-dataset`, or a Hub id")
    add_choice(
        ev,
        "--split",
        ["validation", "test", "unseen_composers"],
        "held-out split to score (unseen_composers: composers held out whole, when the dataset has them)",
    )
    ev.add_argument("--out", default="out/evaluation", help="folder for report.md/.json and plots (%(default)s)")
    ev.add_argument("--samples", type=int, default=100, help="samples per sampler (default %(default)s)")
    ev.add_argument("--tokens", type=int, default=2000, help="tokens per sample (default %(default)s)")
    ev.add_argument("--samplers", default="greedy,top_n,weighted,top_k,mixed", help="comma-separated samplers")
    ev.add_argument("--seed", type=int, default=0, help="seed of every sampler (batch b uses seed + b)")
    ev.add_argument("--no-generation", dest="generation", action="store_false", help="likelihood only")
    ev.add_argument(
        "--no-unguarded-check",
        dest="unguarded_check",
        action="store_false",
        help="skip the default sampler's extra run with the rest guard off",
    )
    ev.add_argument("--batch-size", type=int, default=100, help="samples generated at once")
    ev.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    # start-up: torch, transformers and scikit-learn take seconds; `toccata --help` must not wait
    from toccata.evaluation.evaluation import evaluate
    from toccata.evaluation.report import write_report

    source = None if args.model == "default" else args.model
    model, tokenizer = toccata.load_checkpoint(
        source, trust_remote_code=args.trust_remote_code, instruments=args.instruments
    )
    samplers = [name.strip() for name in args.samplers.split(",") if name.strip()]
    report = evaluate(
        model,
        tokenizer,
        args.dataset,
        split=args.split,
        samples=args.samples,
        tokens=args.tokens,
        samplers=samplers,
        seed=args.seed,
        generation=args.generation,
        unguarded_check=args.unguarded_check,
        batch_size=args.batch_size,
        model_name=str(args.model if args.model != "default" else f"default checkpoint ({source})"),
        progress=lambda message: print(message, file=sys.stderr),
    )
    paths = write_report(report, args.out)
    for goal in report.goals:
        status = "not measured" if goal.met is None else ("met" if goal.met else "NOT met")
        value = "—" if goal.value is None else f"{goal.value:.4g}"
        print(f"{goal.name}: {value} (target {goal.target}): {status}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
