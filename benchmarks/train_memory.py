"""Memory of `toccata train`'s training windows: a split loaded into memory against `--memmap` (built, then reused).

    python benchmarks/train_memory.py --dataset data/piano100 [--window 512]

Each mode runs in a fresh process and reports the resident memory it added (VmRSS, and its peak VmHWM) beyond the
imports, per token of the split, and after reading every 7th window (mapped pages count once read). Prints a table;
JSON goes to benchmarks/results/train_memory.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("in memory", "memmap, building the cache", "memmap, cache built")


def _resident_mb() -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def measure(mode: str, dataset: str, window: int, cache: str) -> dict:
    """One mode, in this process: the windows of the train split as `toccata train` makes them."""
    import datasets  # noqa: F401  imported before the measure: every mode pays it the same
    import pyarrow  # noqa: F401
    from toccata.modeling.layout import VocabLayout
    from toccata.tokenization import NotewiseTokenizer
    from toccata.training.data import WindowDataset, load_pieces
    from toccata.training.token_cache import token_cache

    tokenizer = NotewiseTokenizer()
    layout = VocabLayout.from_config(tokenizer)
    special = dict(bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id)
    base, _ = _resident_mb()
    start = time.perf_counter()
    if mode == "in memory":
        windows = WindowDataset(load_pieces(dataset, "train", tokenizer), window, layout, **special,
                                pad_id=tokenizer.pad_token_id, max_transpose=6)  # fmt: skip
    else:
        built = token_cache(dataset, "train", tokenizer, cache, **special)
        windows = WindowDataset.from_sequences(built.tokens, built.offsets, window, layout, tokenizer.pad_token_id, 6)
    seconds = time.perf_counter() - start
    live, peak = _resident_mb()
    for item in range(0, len(windows), 7):
        windows[item]
    read, _ = _resident_mb()
    tokens = windows.num_targets()
    return {
        "mode": mode, "tokens": tokens, "seconds": round(seconds, 2), "live_mb": round(live - base, 1),
        "peak_mb": round(peak - base, 1), "bytes_per_token": round((live - base) * 2**20 / tokens, 2),
        "after_reading_mb": round(read - base, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a built dataset folder")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_memory.json"))
    parser.add_argument("--child", nargs=2, metavar=("MODE", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.dataset, args.window, args.child[1])))
        return
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for mode in MODES:  # each in a fresh process: resident memory is not given back within one
            cmd = [sys.executable, __file__, "--dataset", args.dataset, "--window", str(args.window), "--child", mode]
            done = subprocess.run([*cmd, cache], capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| mode | tokens | seconds | resident MB | peak MB | bytes a token | after reading 1/7 of the windows, MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['tokens']:,} | {r['seconds']} | {r['live_mb']} | {r['peak_mb']} | "
              f"{r['bytes_per_token']} | {r['after_reading_mb']} |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dataset": args.dataset, "window": args.window, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
