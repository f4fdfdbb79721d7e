"""`toccata preset`, `preset-search`, `publish` and `chamber`: arguments -> `toccata.release` -> files.

    toccata preset FOLDER temperature=0.9 calmness=1.0
    toccata preset-search RUN --dataset data/piano --candidates "sampler=top_k temperature=1.0" ...
    toccata publish RUN DEST [--report RUN/evaluation] [--half]
    toccata chamber compare|publish|card ...

The work is imported when a command runs, not at start-up: torch and transformers would slow `toccata --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import toccata
from toccata.cli_io import add_choice


def add_release_parsers(commands: argparse._SubParsersAction) -> None:
    """Register `preset`, `preset-search`, `publish` and `chamber`."""
    preset = commands.add_parser("preset", help="set a checkpoint folder's default sampler and guard preset")
    preset.add_argument("folder", help="a checkpoint folder (a `toccata train` output)")
    preset.add_argument("values", nargs="+", metavar="NAME=VALUE", help="e.g. temperature=0.9 calmness=1.0")
    preset.set_defaults(run=run_preset)

    search = commands.add_parser("preset-search", help="choose a checkpoint's preset on the validation split")
    search.add_argument("run_dir", metavar="RUN", help="a checkpoint folder (a `toccata train` output)")
    search.add_argument("--dataset", required=True)
    add_choice(search, "--split", ["validation", "test"])
    search.add_argument("--candidates", nargs="+", required=True, help='e.g. "sampler=top_k temperature=1.0"')
    search.add_argument("--samples", type=int, default=40)
    search.add_argument("--tokens", type=int, default=2000)
    search.add_argument("--seed", type=int, default=0)
    search.set_defaults(run=run_preset_search)

    publish = commands.add_parser("publish", help="a trained, evaluated run -> a checkpoint folder with its card")
    publish.add_argument("run_dir", metavar="RUN", help="a `toccata train` or `toccata tune` output folder")
    publish.add_argument("dest", help="the checkpoint folder to write (replaced)")
    publish.add_argument("--report", help="the `toccata evaluate` output folder (default: RUN/evaluation)")
    publish.add_argument("--title", default="Toccata NotewiseLSTM", help="the model card's title")
    publish.add_argument("--half", action="store_true", help="store the weights in float16 (they load as float32)")
    publish.add_argument(
        "--unseen-report",
        help="the `toccata evaluate --split unseen_composers` output (default: RUN/evaluation-unseen-composers)",
    )
    publish.add_argument(
        "--attribution",
        action="append",
        default=[],
        help="a collection's licence file whose opening lines the card must carry (CC BY data); repeat",
    )
    publish.set_defaults(run=run_publish)

    chamber = commands.add_parser("chamber", help="compare, publish and describe the chamber checkpoints")
    steps = chamber.add_subparsers(dest="step", required=True)
    compare = steps.add_parser("compare", help="bits per note of runs (NAME=FOLDER) on a held-out split -> JSON")
    compare.add_argument("--dataset", required=True)
    compare.add_argument("--split", default="test")
    compare.add_argument("--run", dest="runs", action="append", required=True, help="NAME=RUN_FOLDER (repeat)")
    compare.add_argument("--out", required=True)
    compare.add_argument(
        "--keep",
        metavar="NAME",
        help="keep this run rather than the one with the fewest bits per note on --split (a split of a few pieces "
        "can rank by chance: say why in the card's docs)",
    )
    for name, text in (("publish", "the comparison's winner -> DEST"), ("card", "DEST/README.md")):
        step = steps.add_parser(name, help=text)
        step.add_argument("comparison", help="the JSON `toccata chamber compare` wrote")
        step.add_argument("dest")
    chamber.set_defaults(run=run_chamber)


def _pairs(values: list[str]) -> dict[str, str]:
    """{"temperature": "0.9"} from ["temperature=0.9"]; a ValueError for an item without "="."""
    pairs = dict(item.split("=", 1) for item in values if "=" in item)
    if len(pairs) != len(values):
        raise ValueError(f"write each setting as NAME=VALUE, got {' '.join(values)}")
    return pairs


def run_preset(args: argparse.Namespace) -> int:
    from toccata.release.preset import set_preset  # start-up: torch and transformers; see the module docstring

    sampler, guards = set_preset(args.folder, _pairs(args.values))
    print(f"preset of {args.folder}: {asdict(sampler)}, {asdict(guards)}", file=sys.stderr)
    return 0


def run_preset_search(args: argparse.Namespace) -> int:
    from toccata.release import preset_search  # start-up: as run_preset's

    model, tokenizer = toccata.load_checkpoint(args.run_dir)
    candidates = [preset_search.parse_candidate(c) for c in args.candidates]
    rows = preset_search.search(
        model,
        tokenizer,
        args.dataset,
        candidates,
        split=args.split,
        samples=args.samples,
        tokens=args.tokens,
        seed=args.seed,
    )
    chosen = preset_search.best(rows)
    preset_search.save(args.run_dir, rows, chosen, args.dataset, args.split, args.samples, args.tokens)
    print(" ".join(f"{k}={v}" for k, v in chosen["values"].items()))
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from toccata.release.publish import publish  # start-up: as run_preset's

    dest = publish(
        args.run_dir, args.dest, args.report, args.title, half=args.half, unseen_report_dir=args.unseen_report,
        attributions=args.attribution,
    )  # fmt: skip
    print(f"wrote {dest}", file=sys.stderr)
    return 0


def run_chamber(args: argparse.Namespace) -> int:
    from toccata.release import chamber  # start-up: as run_preset's

    if args.step == "compare":
        result = chamber.compare(args.dataset, args.split, _pairs(args.runs), keep=args.keep)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print("\n".join(chamber.table(result)))
        return 0
    comparison = json.loads(Path(args.comparison).read_text())
    write = chamber.publish if args.step == "publish" else chamber.card
    print(f"wrote {write(comparison, args.dest)}", file=sys.stderr)
    return 0
