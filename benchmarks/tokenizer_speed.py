#!/usr/bin/env python
"""Tokenization speed: Toccata's notewise tokenizer against miditok (MIDILike) and the seed's music21 route.

Usage:
    python benchmarks/tokenizer_speed.py [--works N] [--repeat R] [--music21-works K] [--out benchmarks/results/tokenize.json]

What it does:
1. Exports a fixed, deterministic set of works from music21's bundled corpus (Bach chorales, Mozart, Beethoven and
   Haydn quartet movements, Joplin, Essen folk songs) to MIDI files in a temporary folder. Not timed.
2. Times, on the same files in one run and one thread, each method over the whole file set:
   - Toccata ``NotewiseTokenizer().midi_to_tokens(path)`` (strings) and ``midi_to_ids(path)`` (ints);
   - miditok 3 ``MIDILike`` at 12 steps per quarter note over the whole beat range, ``tokenizer.encode(Path)``,
     once with its default one-stream-per-track output and once merged into one stream with Program tokens
     (``use_programs=True``), which is what Toccata produces (one stream for all pitched tracks);
   - the seed's music21 route: ``converter.parse(path)`` and a walk of ``s.recurse()`` collecting notes and chords
     with offset and duration on a 12-per-quarter grid, as mcleavey/musical-neural-net's ``midi-to-encoding.py``.
     Pickle caching is off (``forceSource=True, storePickle=False``) so every parse is a real parse.
   - ``symusic.Score(path)`` alone, the parse floor every symusic-based method pays.
   Fast methods: one untimed warm-up pass, then best of R passes (whole set per pass). music21: one pass, on the
   first K files only if ``--music21-works K`` is given; its ratio is then taken against Toccata on the same K files.
3. Prints a Markdown table (files/s, notes/s, how many times faster Toccata is) and the machine, and writes JSON.

Notes are counted once per file with symusic (all tracks, drums included; the corpus has no drums).
"""

from __future__ import annotations

import os
import sys

# Single thread everywhere, set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import datetime as _dt
import gc
import importlib.metadata
import json
import math
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

# ---------------------------------------------------------------------------------------------------- work list

# (category, corpus work, opus index or None). Whole works from the corpus; Essen files are opuses of many songs,
# of which one is taken by index. The order is fixed; --works N < 40 takes evenly spaced entries of this list,
# N > 40 adds further Bach chorales.
BACH_CHORALES = 18
FIXED_WORKS: list[tuple[str, str, int | None]] = [
    ("mozart", "mozart/k458/movement1", None),
    ("mozart", "mozart/k458/movement2", None),
    ("mozart", "mozart/k458/movement3", None),
    ("mozart", "mozart/k458/movement4", None),
    ("mozart", "mozart/k80/movement1", None),
    ("mozart", "mozart/k156/movement1", None),
    ("beethoven", "beethoven/opus18no1/movement1.mxl", None),
    ("beethoven", "beethoven/opus18no1/movement2.mxl", None),
    ("beethoven", "beethoven/opus18no1/movement3.mxl", None),
    ("beethoven", "beethoven/opus18no1/movement4.mxl", None),
    ("beethoven", "beethoven/opus59no1/movement1", None),
    ("beethoven", "beethoven/opus59no2/movement2", None),
    ("haydn", "haydn/opus74no1/movement1", None),
    ("haydn", "haydn/opus74no1/movement2", None),
    ("haydn", "haydn/opus74no1/movement3", None),
    ("haydn", "haydn/opus74no1/movement4", None),
    ("joplin", "joplin/maple_leaf_rag", None),
    ("essen", "essenFolksong/altdeu10", 0),
    ("essen", "essenFolksong/ballad10", 0),
    ("essen", "essenFolksong/boehme10", 0),
    ("essen", "essenFolksong/erk10", 0),
    ("essen", "essenFolksong/han1", 0),
    ("essen", "essenFolksong/zuccal0", 0),
]


def bach_chorales() -> list[str]:
    """All of the corpus's Bach works as ``bach/<name>``, sorted (version-independent order within a corpus)."""
    from music21 import corpus

    names = sorted({p.stem for p in corpus.getComposer("bach") if p.stem.startswith("bwv")})
    return [f"bach/{n}" for n in names]


def select_works(n: int) -> list[tuple[str, str, int | None]]:
    chorales = bach_chorales()
    step = max(1, len(chorales) // BACH_CHORALES)
    picked = chorales[::step][:BACH_CHORALES]
    works = [("bach", w, None) for w in picked]
    # interleave so any evenly spaced subset keeps the mix
    merged: list[tuple[str, str, int | None]] = []
    others = list(FIXED_WORKS)
    while works or others:
        if works:
            merged.append(works.pop(0))
        if others:
            merged.append(others.pop(0))
        if others and len(merged) % 3 == 0:
            merged.append(others.pop(0))
    if n <= len(merged):
        idx = sorted({int(i * len(merged) / n) for i in range(n)})
        return [merged[i] for i in idx]
    extra = [("bach", w, None) for w in chorales if w not in picked]
    return merged + extra[: n - len(merged)]


def export_midi(works: list[tuple[str, str, int | None]], folder: Path, reuse: bool = False) -> list[dict]:
    """Write each work to ``folder`` as MIDI (music21's writer, via Toccata's helper where it applies).

    With `reuse`, a file already in `folder` under the same name is kept (``--midi-dir`` reruns skip the export).
    """
    from music21 import corpus
    from music21.midi.translate import streamToMidiFile

    from toccata.tokenization.midi_io import music21_corpus_midi

    files = []
    for i, (category, work, number) in enumerate(works):
        name = f"{i:03d}_{work.replace('/', '_').replace('.', '_')}" + (f"_{number}" if number is not None else "")
        path = folder / f"{name}.mid"
        if reuse and path.is_file() and path.stat().st_size > 0:
            files.append({"category": category, "work": work, "opus_index": number, "path": str(path),
                          "bytes": path.stat().st_size})
            continue
        if number is None:
            data = music21_corpus_midi(work)
        else:
            opus = corpus.parse(work)
            scores = list(opus.scores) if hasattr(opus, "scores") and len(opus.scores) else [opus]
            data = streamToMidiFile(scores[number]).writestr()
        path.write_bytes(data)
        files.append({"category": category, "work": work, "opus_index": number, "path": str(path), "bytes": len(data)})
    return files


# ---------------------------------------------------------------------------------------------------- methods


def make_methods() -> dict[str, Callable[[str], int]]:
    """name -> function(path) returning the number of tokens / events produced (so the work can't be skipped)."""
    import miditok
    import symusic

    from toccata.tokenization import NotewiseTokenizer

    toccata = NotewiseTokenizer()

    def toccata_tokens(path: str) -> int:
        return len(toccata.midi_to_tokens(path))

    def toccata_ids(path: str) -> int:
        return len(toccata.midi_to_ids(path))

    # 12 steps per quarter note over the whole beat range miditok covers (time shifts/durations up to 12 beats).
    common = dict(pitch_range=(21, 109), beat_res={(0, 4): 12, (4, 12): 12}, num_velocities=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        midilike = miditok.MIDILike(miditok.TokenizerConfig(**common))
        midilike_merged = miditok.MIDILike(
            miditok.TokenizerConfig(**common, use_programs=True, one_token_stream_for_programs=True)
        )

    def _count(seq) -> int:
        return sum(len(s) for s in seq) if isinstance(seq, list) else len(seq)

    def miditok_tracks(path: str) -> int:
        return _count(midilike.encode(Path(path)))

    def miditok_merged(path: str) -> int:
        return _count(midilike_merged.encode(Path(path)))

    def symusic_parse(path: str) -> int:
        return symusic.Score(path).note_num()

    return {
        "toccata_tokens": toccata_tokens,
        "toccata_ids": toccata_ids,
        "miditok_midilike": miditok_tracks,
        "miditok_midilike_merged": miditok_merged,
        "symusic_parse": symusic_parse,
    }


def music21_route(path: str) -> int:
    """The seed's route: music21 parse, then walk notes and chords with offsets/durations on a 12-per-quarter grid."""
    from music21 import converter, stream

    s = converter.parse(path, forceSource=True, storePickle=False)
    sample_freq = 12
    notes = []
    note_filter = stream.filters.ClassFilter("Note")
    chord_filter = stream.filters.ClassFilter("Chord")
    for n in s.recurse().addFilter(note_filter):
        notes.append((n.pitch.midi, math.floor(n.offset * sample_freq), math.floor(n.duration.quarterLength * sample_freq)))
    for c in s.recurse().addFilter(chord_filter):
        offset = math.floor(c.offset * sample_freq)
        duration = math.floor(c.duration.quarterLength * sample_freq)
        for p in c.pitches:
            notes.append((p.midi, offset, duration))
    return len(notes)


LABELS = {
    "toccata_tokens": "Toccata `midi_to_tokens` (str)",
    "toccata_ids": "Toccata `midi_to_ids` (int)",
    "miditok_midilike": "miditok MIDILike, 12/quarter, one stream per track",
    "miditok_midilike_merged": "miditok MIDILike, 12/quarter, one stream (use_programs)",
    "music21_route": "music21 parse + recurse (seed route)",
    "symusic_parse": "symusic parse only (floor, reference)",
}


def time_pass(fn: Callable[[str], int], paths: list[str]) -> tuple[list[float], list[int]]:
    times, outs = [], []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for p in paths:
            t0 = time.perf_counter()
            out = fn(p)
            times.append(time.perf_counter() - t0)
            outs.append(out)
    finally:
        if gc_was:
            gc.enable()
    return times, outs


def best_of(fn: Callable[[str], int], paths: list[str], repeat: int) -> tuple[list[float], list[int], list[float]]:
    time_pass(fn, paths)  # warm-up: imports, lazy init, file cache
    best, outs, totals = None, None, []
    for _ in range(repeat):
        times, outs = time_pass(fn, paths)
        totals.append(sum(times))
        if best is None or sum(times) < sum(best):
            best = times
    return best, outs, totals


# ---------------------------------------------------------------------------------------------------- machine


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
    for pkg in ("toccata", "miditok", "music21", "symusic", "numpy", "transformers"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "threads": "1 (OMP/MKL/OPENBLAS_NUM_THREADS=1; all methods single-threaded Python)",
        "versions": versions,
    }


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, default=40, help="number of corpus works (default 40)")
    parser.add_argument("--repeat", type=int, default=5, help="passes for the fast methods, best kept (default 5)")
    parser.add_argument(
        "--music21-works",
        type=int,
        default=None,
        help="time the music21 route on the first K files only (default: all); its ratio uses Toccata on the same K",
    )
    parser.add_argument("--skip-music21", action="store_true", help="do not time the music21 route")
    parser.add_argument(
        "--midi-dir",
        type=Path,
        default=None,
        help="keep the exported MIDI here and reuse it on later runs (default: a temp dir, exported every run)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tokenize.json"))
    args = parser.parse_args(argv)
    if args.works < 1 or args.repeat < 1:
        parser.error("--works and --repeat must be >= 1")

    import symusic

    started = time.perf_counter()
    tmp = None
    if args.midi_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="toccata-bench-")
        folder = Path(tmp.name)
    else:
        folder = args.midi_dir
        folder.mkdir(parents=True, exist_ok=True)

    try:
        t0 = time.perf_counter()
        works = select_works(args.works)
        print(f"Exporting {len(works)} corpus works to MIDI in {folder} (not timed) ...", file=sys.stderr, flush=True)
        files = export_midi(works, folder, reuse=args.midi_dir is not None)
        export_s = time.perf_counter() - t0
        paths = [f["path"] for f in files]
        for f in files:
            f["notes"] = int(symusic.Score(f["path"]).note_num())
        notes = [f["notes"] for f in files]
        total_notes = sum(notes)

        results: dict[str, dict] = {}
        per_file: dict[str, list[float]] = {}
        for name, fn in make_methods().items():
            print(f"Timing {name} (warm-up + best of {args.repeat}) ...", file=sys.stderr, flush=True)
            times, outs, totals = best_of(fn, paths, args.repeat)
            per_file[name] = times
            total = sum(times)
            results[name] = {
                "label": LABELS[name],
                "files": len(paths),
                "notes": total_notes,
                "seconds": total,
                "pass_seconds": totals,
                "files_per_s": len(paths) / total,
                "notes_per_s": total_notes / total,
                "outputs": int(sum(outs)),
                "timing": f"best of {args.repeat} passes after 1 warm-up pass",
            }

        if not args.skip_music21:
            k = len(paths) if args.music21_works is None else max(1, min(args.music21_works, len(paths)))
            sub = paths[:k]
            print(f"Timing music21 route once on {k} files (slow) ...", file=sys.stderr, flush=True)
            music21_route(paths[0])  # import + first-use cost outside the timing (parses one file once)
            times, outs = time_pass(music21_route, sub)
            per_file["music21_route"] = times
            sub_notes = sum(notes[:k])
            total = sum(times)
            results["music21_route"] = {
                "label": LABELS["music21_route"],
                "files": k,
                "notes": sub_notes,
                "seconds": total,
                "pass_seconds": [total],
                "files_per_s": k / total,
                "notes_per_s": sub_notes / total,
                "outputs": int(sum(outs)),
                "timing": "1 pass (after parsing one file untimed for imports)"
                + ("" if k == len(paths) else f"; first {k} of {len(paths)} files, rates are per that subset"),
                "subset": k != len(paths),
            }

        # Speedups: Toccata time over the same files / method time, i.e. how many times faster Toccata is.
        ref = per_file["toccata_tokens"]
        for name, res in results.items():
            k = res["files"]
            ref_s = sum(ref[:k])
            res["toccata_speedup"] = res["seconds"] / ref_s  # >1: Toccata faster
        runtime_s = time.perf_counter() - started

        info = machine_info()
        report = render(results, info, len(paths), total_notes, args)
        print(report)
        speed = {n: r["toccata_speedup"] for n, r in results.items()}
        goals = {
            "toccata_vs_miditok_goal": 3.0,
            "toccata_vs_miditok": speed["miditok_midilike"],
            "toccata_vs_miditok_merged": speed["miditok_midilike_merged"],
            "toccata_vs_music21_goal": 100.0,
            "toccata_vs_music21": speed.get("music21_route"),
        }
        goals["miditok_goal_met"] = goals["toccata_vs_miditok"] >= 3.0
        goals["music21_goal_met"] = None if goals["toccata_vs_music21"] is None else goals["toccata_vs_music21"] >= 100
        payload = {
            "benchmark": "tokenize",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": info,
            "export_seconds": export_s,
            "runtime_seconds": runtime_s,
            "files": [{k: v for k, v in f.items() if k != "path"} | {"name": Path(f["path"]).name} for f in files],
            "total_notes": total_notes,
            "results": results,
            "per_file_seconds": per_file,
            "goals": goals,
            "markdown": report,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1))
        print(f"\nWrote {args.out}; total runtime {runtime_s:.1f} s (MIDI export {export_s:.1f} s).", file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def render(results: dict, info: dict, n_files: int, total_notes: int, args) -> str:
    lines = [
        f"## Tokenization speed: {n_files} MIDI files from music21's corpus, {total_notes} notes",
        "",
        "| method | files/s | notes/s | Toccata is N× faster | timing |",
        "|---|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {r['label']} | {r['files_per_s']:.1f} | {r['notes_per_s']:,.0f} | {r['toccata_speedup']:.2f}× | "
            f"{r['timing']} |"
        )
    lines.append("")
    lines.append("Ratios compare wall time on the same files against Toccata `midi_to_tokens` (1.00× = Toccata itself).")
    s = {n: r["toccata_speedup"] for n, r in results.items()}
    mark = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    lines.append("")
    lines.append(
        f"Toccata vs miditok: {s['miditok_midilike']:.1f}× (goal ≥ 3×: {mark(s['miditok_midilike'] >= 3)}); "
        f"vs miditok one-stream: {s['miditok_midilike_merged']:.1f}×"
    )
    if "music21_route" in s:
        m = results["music21_route"]
        scope = "" if not m.get("subset") else f" (music21 timed on {m['files']} of {n_files} files, Toccata on the same)"
        lines.append(f"Toccata vs music21: {s['music21_route']:.0f}× (goal ≥ 100×: {mark(s['music21_route'] >= 100)}){scope}")
    else:
        lines.append("Toccata vs music21: not measured (--skip-music21)")
    v = info["versions"]
    lines += [
        "",
        f"Machine: {info['platform']}; CPU {info['cpu']} ({info['logical_cpus']} logical); "
        f"{info['implementation']} {info['python']}; single thread.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"Command: python benchmarks/tokenizer_speed.py --works {args.works} --repeat {args.repeat}"
        + (f" --music21-works {args.music21_works}" if args.music21_works else "")
        + (" --skip-music21" if args.skip_music21 else ""),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
