"""`toccata demo`: serve the Gradio app (demo/) on a host and port. No logic here: the app is `toccata.demo.ui`.

toccata demo                                  # http://127.0.0.1:7860, the default checkpoint (or random weights)
toccata demo --host 0.0.0.0 --port 8080 --model PATH_OR_REPO
toccata demo --answers answers.sqlite         # where the "Human or AI?" tab records answers
toccata listening-data --dataset data/piano --split test --out demo/listening   # rebuild the tab's real excerpts

The only module outside demo/ that imports it (tests/cli/test_import_graph.py allows it by name): these commands
start it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """Register the `demo` subcommand (gradio and torch are imported only when it runs)."""
    demo = commands.add_parser("demo", help="serve the Gradio demo in the browser")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    demo.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    demo.add_argument("--model", help="checkpoint folder or Hub id (default: the embedded default checkpoint)")
    demo.add_argument("--trust-remote-code", action="store_true", help="run code from the checkpoint folder/repo")
    demo.add_argument("--concurrency", type=int, default=8, help="requests served at once (default: %(default)s)")
    demo.add_argument(
        "--max-queue", type=int, default=32, help="requests waiting before new ones are refused (default: %(default)s)"
    )
    demo.add_argument(
        "--answers",
        help="SQLite file for the 'Human or AI?' answers (default: $TOCCATA_ANSWERS, else "
        "~/.cache/toccata/answers.sqlite)",
    )
    demo.add_argument(
        "--no-batching",
        action="store_true",
        help="decode each request in its own thread instead of one shared batch (for comparison)",
    )
    demo.add_argument(
        "--float32",
        action="store_true",
        help="decode with float32 weights (the tokens of model.generate()) instead of int8 (faster on a CPU, bits "
        "per note within 0.1%%)",
    )
    demo.set_defaults(run=run_demo)

    data = commands.add_parser("listening-data", help="rebuild the real excerpts of the demo's 'Human or AI?' tab")
    data.add_argument("--dataset", default="data/piano", help="a built dataset folder or Hub id")
    data.add_argument("--split", default="test", help="the split to take pieces from (default: %(default)s)")
    data.add_argument("--out", help="folder for the token files and the manifest (default: the package's own)")
    data.add_argument("--limit", type=int, default=40, help="at most this many pieces (default: %(default)s)")
    data.set_defaults(run=run_listening_data)


def run_demo(args: argparse.Namespace) -> int:
    # start-up: gradio and torch take seconds to import; `toccata --help` must not wait
    from toccata.demo.engine import load_engine
    from toccata.demo.ui import build_demo, serve

    if args.concurrency < 1 or args.max_queue < 1:
        raise ValueError(f"--concurrency and --max-queue must be >= 1, got {args.concurrency} and {args.max_queue}")
    engine = load_engine(
        args.model, trust_remote_code=args.trust_remote_code, batching=not args.no_batching, int8=not args.float32
    )
    demo = build_demo(engine, concurrency=args.concurrency, max_queue=args.max_queue, answers=args.answers)
    serve(demo, host=args.host, port=args.port)
    return 0


def run_listening_data(args: argparse.Namespace) -> int:
    from toccata.demo.listening_data import FOLDER, MANIFEST, extract  # start-up: as run_demo's

    out = Path(args.out or FOLDER)
    excerpts = extract(args.dataset, args.split, out, args.limit)
    size = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    print(f"wrote {len(excerpts)} excerpts and {MANIFEST} to {out} ({size / 1024:.0f} KB)")
    return 0
