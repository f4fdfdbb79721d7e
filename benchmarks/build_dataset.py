#!/usr/bin/env python
"""Dataset build speed and memory: files/s, tokens/s and peak memory of `build_dataset` with num_proc 1 and 2.

Usage:
    python benchmarks/build_dataset.py [--works N] [--num-proc 1 2] [--out benchmarks/results/build_dataset.json]

What it does:
1. Picks N works (default 300), evenly spaced, from the default music21-corpus selection (Bach chorales, Chopin,
   Joplin, Mozart K545, Schoenberg op. 19, Clara Schumann, ...), in a fixed order.
2. For each num_proc, in a fresh child process (so peak memory is that build's own):
   - ``corpus, cold``: a build from scratch (empty work folder): music21 parses each work and writes MIDI, then
     Toccata checks, parses, tokenizes and fingerprints it, dedups, splits and writes parquet. music21 dominates.
   - ``corpus, cached``: the same build again on the same work folder (what a restart after a crash, or a rebuild
     with new split fractions, pays): per-file results come from the cache.
   - ``folder, cold``: the same works as a folder of .mid files (exported from the first build), built from scratch
     with safe parsing (a child process per file, as for untrusted files): the path of a real MIDI collection.
3. Prints a Markdown table and writes JSON (machine, versions, per-build numbers).

Peak memory: ``ru_maxrss`` of the build process (the parent, which dedups and writes) and the largest of its worker
and parser processes (``RUSAGE_CHILDREN``). tokens/s counts the notewise tokens of the rows written.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def select_works(n: int) -> list[str]:
    """N works evenly spaced over the default corpus selection (its sorted order), as corpus work ids."""
    from toccata.dataset_builder.sources.corpus import Music21CorpusSource

    works = [item.path for item in Music21CorpusSource()]
    if n >= len(works):
        return works
    return [works[int(i * len(works) / n)] for i in range(n)]


def child(spec: dict) -> dict:
    """Run one build in this process and measure it (called in a fresh interpreter)."""
    import resource

    import datasets
    from toccata.dataset_builder import build_dataset

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    start = time.perf_counter()
    builder = build_dataset(spec["out"], num_proc=spec["num_proc"], **spec["config"])
    seconds = time.perf_counter() - start
    stats = builder.stats
    kib = 1024  # ru_maxrss is in KiB on Linux
    return {
        "seconds": seconds,
        "files": stats.files,
        "rows": sum(stats.rows.values()),
        "tokens": sum(stats.tokens.values()),
        "rejects": dict(stats.rejects),
        "peak_parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 2**20,
        "peak_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 2**20,
    }


def run_child(spec: dict) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"build failed ({spec['label']}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def export_folder(work_dir: Path, folder: Path) -> int:
    """Copy the MIDI files the corpus build converted into a plain folder (what a user's collection looks like)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted((work_dir / "music21").rglob("*.mid"))
    for path in files:
        shutil.copyfile(path, folder / path.name)
    return len(files)


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("toccata", "datasets", "pyarrow", "music21", "symusic"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


def render(rows: list[dict], info: dict, works: int) -> str:
    lines = [
        f"Dataset build, {works} works of music21's corpus; {info['cpu']} ({info['logical_cpus']} logical CPUs)",
        "",
        "| build | num_proc | files | seconds | files/s | tokens/s | peak parent MB | peak worker MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = row["result"]
        lines.append(
            f"| {row['label']} | {row['num_proc']} | {r['files']} | {r['seconds']:.1f} | "
            f"{r['files'] / r['seconds']:,.1f} | {r['tokens'] / r['seconds']:,.0f} | "
            f"{r['peak_parent_mb']:.0f} | {r['peak_worker_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, default=300, help="corpus works to build from (default 300)")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2], help="values of num_proc (default 1 2)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/build_dataset.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.works < 1 or any(n < 1 for n in args.num_proc):
        parser.error("--works and --num-proc must be >= 1")

    works = select_works(args.works)
    source = "corpus:" + ",".join(works)
    rows = []
    with tempfile.TemporaryDirectory(prefix="toccata-build-bench-") as tmp:
        for num_proc in args.num_proc:
            base = Path(tmp) / f"np{num_proc}"
            corpus = {"out": str(base / "corpus"), "num_proc": num_proc, "config": {"sources": [source]}}
            for label in ("corpus, cold", "corpus, cached"):
                print(f"{label}, num_proc={num_proc} ...", file=sys.stderr, flush=True)
                rows.append({"label": label, "num_proc": num_proc, "result": run_child({**corpus, "label": label})})
            folder = base / "midi"
            export_folder(base / "corpus.work", folder)
            label = "folder, cold (safe parse)"
            spec = {"out": str(base / "folder"), "num_proc": num_proc, "config": {"sources": [str(folder)]}}
            print(f"{label}, num_proc={num_proc} ...", file=sys.stderr, flush=True)
            rows.append({"label": label, "num_proc": num_proc, "result": run_child({**spec, "label": label})})

    info = machine_info()
    print(render(rows, info, len(works)))
    payload = {
        "benchmark": "build_dataset",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "works": works,
        "builds": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
