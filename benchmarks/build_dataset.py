#!/usr/bin/env python
"""Dataset build speed and memory: files/s, tokens/s and peak memory of `build_dataset` with num_proc 1 and 2, or
of the local and Ray engines on folders of 1k to 100k files (--scale).

Usage:
    python benchmarks/build_dataset.py [--works N] [--num-proc 1 2] [--out benchmarks/results/build_dataset.json]
    python benchmarks/build_dataset.py --scale 1000 10000 [100000] [--engines local ray] [--num-proc 2] [--unsafe]

--scale N ...: folders of N distinct pieces made from `--base` real works of music21's corpus (`scale_folder`): each
file a base work transposed (-5..+6), re-timed (onsets stretched by 1, 1.25 or 1.5) and with one or two notes left out,
which makes its notes a piece of its own (no duplicate), under a composer of its own per variant (no near-duplicate).
Each build runs in a fresh child process: the local engine with --num-proc processes, the Ray engine on a local
cluster of --num-proc CPUs (`ray.init(num_cpus=...)`). Memory: the build process (the driver) by ``ru_maxrss``,
every other process by sampling (psutil, every 0.2 s): the largest one and the largest sum of all at one time.

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
    import threading

    import datasets
    import psutil
    from toccata.dataset_builder import build_dataset

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    peaks = {"largest_other_mb": 0.0, "all_others_mb": 0.0}
    done = threading.Event()

    def sample() -> None:  # Ray's workers are not this process's children to `wait` for: sample every process
        me = psutil.Process()
        while not done.wait(0.2):
            sizes = []
            for process in me.children(recursive=True):
                try:
                    sizes.append(process.memory_info().rss / 2**20)
                except psutil.Error:
                    continue
            peaks["largest_other_mb"] = max(peaks["largest_other_mb"], max(sizes, default=0.0))
            peaks["all_others_mb"] = max(peaks["all_others_mb"], sum(sizes))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    builder = build_dataset(spec["out"], num_proc=spec["num_proc"], engine=spec.get("engine", "local"), **spec["config"])
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    stats = builder.stats
    kib = 1024  # ru_maxrss is in KiB on Linux
    return {
        "seconds": seconds,
        "files": stats.files,
        "pieces": sum(stats.pieces.values()),
        "rows": sum(stats.rows.values()),
        "tokens": sum(stats.tokens.values()),
        "rejects": dict(stats.rejects),
        "peak_parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 2**20,
        "peak_worker_mb": max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 2**20, peaks["largest_other_mb"]),
        "peak_all_others_mb": peaks["all_others_mb"],
    }


def scale_folder(folder: Path, count: int, bases: list[bytes]) -> Path:
    """`count` MIDI files, each a distinct piece made from a base work (see the module's text), and a metadata.csv
    giving each variant its own composer; made once per folder (a rerun reuses it)."""
    import symusic

    done = folder / "metadata.csv"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["file_name,composer"]
    for index in range(count):
        variant, base = divmod(index, len(bases))
        score = symusic.Score.from_midi(bases[base])
        notes = sorted({(n.time, n.pitch) for track in score.tracks for n in track.notes})  # doubled notes once
        total = len(notes)
        drop = {notes[variant % total], notes[(variant // total + variant) % total]} if variant else set()
        stretch = (1.0, 1.25, 1.5)[(variant // 12) % 3]
        for track in score.tracks:
            kept = [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes if (n.time, n.pitch) not in drop]
            track.notes.clear()
            for time_, duration, pitch, velocity in kept:  # re-timed: onsets and ends stretched
                start, end = round(time_ * stretch), round((time_ + duration) * stretch)
                track.notes.append(symusic.Note(start, max(1, end - start), pitch, velocity))
            track.shift_pitch(variant % 12 - 5, inplace=True)
        name = f"v{variant:05d}/w{base:03d}.mid"
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(bytes(score.dumps_midi()))
        lines.append(f"{name},Variant {variant:05d}")
    done.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def base_works(count: int, cache: Path) -> list[bytes]:
    """MIDI of `count` works of the default corpus selection (music21 exports, kept in `cache`)."""
    from toccata.tokenization.midi_io import music21_corpus_midi

    cache.mkdir(parents=True, exist_ok=True)
    found = []
    for index, work in enumerate(select_works(count)):
        path = cache / f"{index:03d}.mid"
        if not path.is_file():
            path.write_bytes(music21_corpus_midi(work))
        found.append(path.read_bytes())
    return found


def run_scale(args: argparse.Namespace) -> list[dict]:
    """The --scale builds: every size, every engine, in order of size."""
    bases = base_works(args.base, args.data / "base")
    rows = []
    for count in args.scale:
        folder = scale_folder(args.data / f"scale-{count}", count, bases)
        for engine in args.engines:
            with tempfile.TemporaryDirectory(prefix="toccata-scale-bench-") as tmp:
                config = {"sources": [str(folder)], "safe": not args.unsafe}
                spec = {"out": f"{tmp}/out", "num_proc": args.num_proc[-1], "engine": engine, "config": config}
                label = f"{count} files, {engine}"
                print(f"{label} ...", file=sys.stderr, flush=True)
                result = run_child({**spec, "label": label})
                rows.append({"label": label, "engine": engine, "files": count, "num_proc": args.num_proc[-1], "result": result})
                print(render_scale(rows[-1:]), file=sys.stderr, flush=True)
    return rows


def render_scale(rows: list[dict]) -> str:
    lines = [
        "| files | engine | CPUs | pieces kept | seconds | files/s | peak driver MB | largest other process MB "
        "| all others MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = row["result"]
        lines.append(
            f"| {row['files']:,} | {row['engine']} | {row['num_proc']} | {r['pieces']:,} | {r['seconds']:.0f} | "
            f"{r['files'] / r['seconds']:.1f} | {r['peak_parent_mb']:.0f} | {r['peak_worker_mb']:.0f} | "
            f"{r['peak_all_others_mb']:.0f} |"
        )
    return "\n".join(lines)


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
    parser.add_argument("--scale", type=int, nargs="+", help="folders of this many files: local vs Ray")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--base", type=int, default=60, help="--scale: real corpus works the files are made from")
    parser.add_argument(  # not in the repository: test_packaging copies the tree, and 100k files weigh 500 MB
        "--data", type=Path, default=Path(tempfile.gettempdir(), "toccata-build-bench"), help="--scale: folders, kept"
    )
    parser.add_argument("--unsafe", action="store_true", help="--scale: parse in the worker (no child per file)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.scale:
        rows = run_scale(args)
        print(render_scale(rows))
        payload = {"benchmark": "build_dataset --scale", "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                   "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine_info(),
                   "load_average": os.getloadavg(), "builds": rows}
        out = args.out.with_name("build_dataset_scale.json") if args.out.name == "build_dataset.json" else args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"\nwrote {out}", file=sys.stderr)
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
