"""The parent's side of a build: run the per-file analysis in order, dedup, assign splits, record rejects.

Order is what makes a build reproducible: workers may finish in any order, but `ordered_map` hands results back in
the order of the source stream, and every decision that depends on order (which of two duplicates is kept) is made
here, in one process. Split assignment depends on nothing but the seed and the piece: a hash of both, so adding files
never moves another piece between splits, and all transpositions of a piece share its split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import multiprocessing
import os
import posixpath
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from .analysis import (
    DUPLICATE,
    DUPLICATE_NOTES,
    DUPLICATE_WORK,
    EMPTY,
    LICENSE_EXCLUDED,
    NEAR_DUPLICATE,
    TOO_SHORT,
    TRANSPOSITION_OUT_OF_RANGE,
    sketch_similarity,
)
from .composers import ANONYMOUS, folded_composer
from .items import SourceItem
from .licenses import license_id
from .names import FORMAT_FOLDERS, work_name

SPLITS = ("train", "validation", "test")
UNSEEN = "unseen_composers"  # a second test split: every piece of a few composers held out whole (`Planner._hold_out`)
ALL_SPLITS = (*SPLITS, UNSEEN)
NEAR_DUPLICATE_SIMILARITY = 0.5  # pieces of one composer sharing this much of their note n-grams are one piece
SKETCH_BANDS = 21  # locality-sensitive hashing: pieces are compared only when a band of SKETCH_ROWS values is equal
SKETCH_ROWS = 3  # P(compared) = 1 - (1 - J^3)^21: 0.94 at the threshold J = 0.5, 0.99 at 0.6, 0.15 at 0.2
T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], num_proc: int = 1, window: int = 0) -> Iterator[R]:
    """`map(fn, items)` over `num_proc` processes, results in input order, at most `window` items in flight.

    Streams: items are pulled from the iterable as results are handed back, so memory stays bounded by the window.
    Workers are not daemonic (concurrent.futures), so `fn` may itself start a child process (midi_io's safe mode).
    """
    if num_proc <= 1:
        yield from map(fn, items)
        return
    window = window or 8 * num_proc
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(num_proc, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _exit_with(parent: int, poll_s: float = 1.0) -> None:
    """In each worker: exit once the build's process is gone. A `kill -9` of the build cannot stop its workers, which
    would otherwise wait on their pipe forever (holding memory, and the pipe of whatever reads the build's output)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="toccata-exit-with-parent", daemon=True).start()


def split_point(piece_id: str, seed: int) -> float:
    """A piece's uniform number in [0, 1) from sha256(seed, piece): where it falls among the cumulative fractions."""
    digest = hashlib.sha256(f"toccata-split|{seed}|{piece_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(piece_id: str, seed: int, fractions: dict[str, float]) -> str:
    """The split of a piece: its `split_point` against the cumulative fractions."""
    u = split_point(piece_id, seed)
    total = 0.0
    for name in SPLITS:
        total += fractions.get(name, 0.0)
        if u < total:
            return name
    return next(name for name in reversed(SPLITS) if fractions.get(name, 0.0) > 0)


def row_id(piece_id: str, transposition: int) -> str:
    """Stable row id: the piece id, with ``_t+N`` for a transposed copy."""
    return piece_id if transposition == 0 else f"{piece_id}_t{transposition:+d}"


def license_set(names: Iterable[str]) -> frozenset[str]:
    """The licence ids a build keeps (`file_problem`), from the names its config gives; empty: all."""
    return frozenset(license_id(name) for name in names)


def file_problem(
    item: SourceItem, result: dict[str, Any], licenses: frozenset[str], min_quarters: float
) -> tuple[str, str] | None:
    """Why a file is left out whatever the other files are (licence, unreadable, no notes, too short), as (reason,
    detail); None for a file that goes on to dedup. `licenses`: licence ids kept (empty: all)."""
    if licenses and license_id(item.license) not in licenses:
        return LICENSE_EXCLUDED, f"licence {item.license or 'unknown'!r} is not in {', '.join(sorted(licenses))}"
    if not result["ok"]:
        return result["reason"], result["problem"]
    if result["num_notes"] == 0:
        return EMPTY, "the file has no notes (drum tracks are not counted)"
    if result["length_quarters"] < min_quarters:
        return TOO_SHORT, f"lasts {result['length_quarters']:g} quarter notes, under the minimum of {min_quarters:g}"
    return None


@dataclass
class BuildStats:
    """Counts for the dataset card and the CLI summary."""

    files: int = 0
    pieces: Counter = field(default_factory=Counter)  # split -> pieces
    rows: Counter = field(default_factory=Counter)  # split -> rows (transpositions included)
    tokens: Counter = field(default_factory=Counter)  # split -> tokens
    rejects: Counter = field(default_factory=Counter)  # reason -> files
    sources: Counter = field(default_factory=Counter)  # source -> pieces kept
    licenses: Counter = field(default_factory=Counter)  # licence -> pieces kept
    composers: Counter = field(default_factory=Counter)  # composer -> pieces kept
    composer_notes: Counter = field(default_factory=Counter)  # composer -> notes of the pieces kept
    unseen_composers: list[str] = field(default_factory=list)  # the composers of the UNSEEN split
    license_files: Counter = field(default_factory=Counter)  # a collection's licence file -> pieces kept under it
    split_notes: list[str] = field(default_factory=list)  # a held-out split that the hash left empty: what was done

    def to_dict(self) -> dict[str, Any]:
        return {name: dict(value) if isinstance(value, Counter) else value for name, value in vars(self).items()}

    def add(self, other: BuildStats) -> None:
        """Count `other`'s files too: the planners of parts of one stream (`engines.ray_planning`) add up."""
        self.files += other.files
        for name, value in vars(other).items():
            if isinstance(value, Counter):
                getattr(self, name).update(value)
            elif isinstance(value, list):
                getattr(self, name).extend(value)


@dataclass
class PinnedSplits:
    """The splits of an earlier build, by file and by piece: a file keeps its split even when a new Toccata reads its
    notes differently (the split hash follows the notes), and a piece keeps its split even when another file of it
    (another name, source or key) now comes first and is the one kept."""

    by_file: dict[tuple[str, str], str]  # (source, path) -> split
    by_piece: dict[str, str]  # piece id (its notes' fingerprint, the same in every key) -> split

    def get(self, item: SourceItem, piece_id: str) -> str | None:
        return self.by_file.get((item.source, item.path)) or self.by_piece.get(piece_id)


class Planner:
    """Decides, file by file in stream order, what is kept (and in which split) and what is rejected, and why.

    Kept pieces are appended to one JSON-lines plan per split (read back by the builder's `_generate_examples`);
    rejects go to the rejects manifest. Both are streams: only hashes of kept pieces stay in memory.
    """

    def __init__(
        self,
        plan_dir: Path,
        rejects: TextIO,
        *,
        seed: int,
        fractions: dict[str, float],
        min_quarters: float,
        transpositions: tuple[int, ...],
        pitch_range: tuple[int, int],
        fixed_splits: PinnedSplits | None = None,
        licenses: tuple[str, ...] = (),
        unseen: tuple[tuple[str, ...], int, tuple[int, int]] = ((), 0, (3, 19)),
    ):
        self.seed, self.fractions, self.min_quarters = seed, fractions, min_quarters
        self.licenses = license_set(licenses)  # empty: every licence is kept
        self.unseen = unseen  # (composers named, how many more to choose, (min, max) pieces): `_hold_out`
        self.fixed_splits = fixed_splits  # from an earlier build (`splits_from`)
        self.transpositions, self.pitch_range = transpositions, pitch_range
        self.rejects = rejects
        self.stats = BuildStats()
        self.by_bytes: dict[str, dict[str, Any]] = {}  # content hash -> kept piece (id + provenance)
        self.by_notes: dict[str, dict[str, Any]] = {}  # note fingerprint -> kept piece (id, provenance, lowest pitch)
        self.by_work: dict[tuple[str, str], dict[str, Any]] = {}  # (source, path without extension) -> kept piece
        # (composer, band, the band's values) -> kept pieces (sketch, piece): a piece is compared with those it meets
        # in a bucket, not with every piece of its composer (a folder of 100k files without composers is one composer)
        # (one exact integer per bucket, `_bands`; the sketch as 64-bit words: ~4.5 KB a kept piece in all, not ~9.7)
        self.by_band: dict[int, list[tuple[array, dict[str, Any]]]] = {}
        self.composer_ids: dict[str, int] = {}  # a composer's number in the bucket keys
        self.spellings: dict[str, str] = {}  # a composer's name folded (accents, case) -> the first spelling kept
        plan_dir.mkdir(parents=True, exist_ok=True)
        self.plan_files = {name: plan_dir / f"{name}.jsonl" for name in ALL_SPLITS}
        self._plans = {  # closed by close()
            name: open(path, "w", encoding="utf-8")  # noqa: SIM115
            for name, path in self.plan_files.items()
        }

    def add(self, item: SourceItem, result: dict[str, Any]) -> None:
        """Record one analysed file: reject it with a reason, or keep it and write it to its split's plan."""
        self.stats.files += 1
        item = dataclasses.replace(item, composer=self._spelling(item.composer))
        problem = file_problem(item, result, self.licenses, self.min_quarters)
        if problem is not None:
            return self._reject(item, result, *problem)
        first = self.by_bytes.get(result["content_hash"])
        if first is not None:
            return self._reject(item, result, DUPLICATE, f"identical bytes to {first['source']}:{first['path']}", first)
        first = self.by_notes.get(result["fingerprint"])
        if first is not None:
            shift = result["lowest_pitch"] - first["lowest_pitch"]
            moved = f", transposed by {shift:+d} semitones" if shift else ""
            detail = f"same notes as {first['source']}:{first['path']}{moved} (tempo and velocities ignored)"
            return self._reject(item, result, DUPLICATE_NOTES, detail, first)
        first = self.by_work.get(work_key(item))
        if first is not None:  # a kern score and a MIDI rendering of it, a version without repeats: notes differ
            detail = (
                f"the same work as {first['source']}:{first['path']}: the same folder and name once formats and "
                "variant suffixes (_no_repeat, _v2, ...) are set aside"
            )
            return self._reject(item, result, DUPLICATE_WORK, detail, first)
        for sketch, first in self._near(item.composer, result.get("sketch") or []):  # in the order they were kept
            similarity = sketch_similarity(result.get("sketch") or [], sketch)
            if similarity >= NEAR_DUPLICATE_SIMILARITY:  # another edition or arrangement: test scores would flatter
                detail = (
                    f"another version of {first['source']}:{first['path']} (same composer, {similarity:.0%} of the "
                    "note n-grams shared)"
                )
                return self._reject(item, result, NEAR_DUPLICATE, detail, first)
        self._keep(item, result)

    def add_planned(self, stats: BuildStats, plans: dict[str, Iterable[str]], rejects: Iterable[str]) -> None:
        """Take what planners of parts of the stream decided, each part whole groups of files that may be duplicates
        of each other (`engines.ray_planning`): their plan and manifest lines merged in stream order, and their
        counts. `close` then finishes the build's plans as if this planner had seen every file."""
        for split, lines in plans.items():
            self._plans[split].writelines(lines)
        self.rejects.writelines(rejects)
        self.stats.add(stats)

    def close(self) -> BuildStats:
        """Flush the plans, give each held-out split the hash left empty a piece where there are enough; the
        statistics of the whole stream."""
        for handle in self._plans.values():
            handle.close()
        self._hold_out(*self.unseen)
        self._fill_empty_splits()
        return self.stats

    def _fill_empty_splits(self) -> None:
        """A validation or test split with a fraction above 0 that no piece hashed into (30 pieces at 5 % leave it
        empty one time in five) takes the train piece whose split point lies nearest its range, as long as train
        keeps a piece; pinned pieces (`splits_from`) never move. A split still empty gets a note saying which
        ``--splits`` to pass."""
        stats = self.stats
        empty = [name for name in SPLITS[1:] if self.fractions.get(name, 0.0) > 0 and not stats.pieces[name]]
        if not empty:
            return
        movable = self._movable(len(empty))
        moves: dict[str, str] = {}  # piece id -> split
        for name in empty:
            if not movable or stats.pieces["train"] < 2:
                continue
            _point, piece_id, rows, tokens = movable.pop(0)
            moves[piece_id] = name
            stats.pieces["train"] -= 1  # counted now: the next empty split needs train to keep a piece
            stats.pieces[name] += 1
            stats.split_notes.append(
                f"the {name} split got no piece from the hash ({self.fractions[name]:g} of {sum(stats.pieces.values())}"
                f" pieces), so it took piece {piece_id} from train"
            )
        if moves:
            self._move_plans(("train",), lambda plan: moves.get(plan["piece_id"]), count_pieces=False)
        still = [name for name in empty if not stats.pieces[name]]
        if still:
            fractions = dict(self.fractions)
            for name in still:
                fractions["train"] += fractions[name]
                fractions[name] = 0.0
            suggestion = ",".join(f"{round(fractions[name], 6):g}" for name in SPLITS)
            them = "them" if len(still) > 1 else "it"
            why = (
                f"the {stats.pieces['train']} train pieces are pinned there by splits_from"
                if stats.pieces["train"] > 1
                else f"{sum(stats.pieces.values())} pieces are too few to give {them} one"
            )
            stats.split_notes.append(
                f"warning: the {' and '.join(still)} split{'s are' if len(still) > 1 else ' is'} empty: {why}; "
                f"add pieces, or pass --splits {suggestion} to build without {them}"
            )

    def _movable(self, count: int) -> list[tuple[float, str, int, int]]:
        """The `count` train pieces that the hash put there (not pinned) with the highest split points, nearest the
        held-out splits, highest first, as (point, piece id, rows, tokens)."""
        found: list[tuple[float, str, int, int]] = []
        for plan in read_plan(self.plan_files["train"]):
            if plan.get("pinned"):
                continue
            rows, point = len(plan["transpositions"]), split_point(plan["piece_id"], self.seed)
            heapq.heappush(found, (point, plan["piece_id"], rows, plan["result"]["num_tokens"] * rows))
            if len(found) > count:
                heapq.heappop(found)
        return sorted(found, reverse=True)

    def _move_plans(
        self, splits: tuple[str, ...], target: Callable[[dict[str, Any]], str | None], count_pieces: bool = True
    ) -> None:
        """Move the plan lines for which `target(plan)` names another split from `splits` to the end of that split's
        plan, streaming each plan through a temporary file; the rows and tokens counts follow (and the pieces,
        unless the caller counted them)."""
        stats, handles = self.stats, {}
        try:
            for split in splits:
                path = self.plan_files[split]
                rest = path.with_suffix(".rest")
                with open(path, encoding="utf-8") as lines, open(rest, "w", encoding="utf-8") as kept:
                    for line in lines:
                        plan = json.loads(line)
                        to = target(plan)
                        if to is None or to == split:
                            kept.write(line)
                            continue
                        rows = len(plan["transpositions"])
                        amounts = [(stats.rows, rows), (stats.tokens, plan["result"]["num_tokens"] * rows)]
                        for counter, amount in amounts + ([(stats.pieces, 1)] if count_pieces else []):
                            counter[split] -= amount
                            counter[to] += amount
                        plan["split"] = to
                        if to not in handles:
                            handles[to] = open(self.plan_files[to], "a", encoding="utf-8")  # noqa: SIM115
                        handles[to].write(json.dumps(plan, sort_keys=True) + "\n")
                rest.replace(path)
        finally:
            for handle in handles.values():
                handle.close()

    def _keep(self, item: SourceItem, result: dict[str, Any]) -> None:
        piece_id = result["fingerprint"][:16]
        pinned = self.fixed_splits.get(item, piece_id) if self.fixed_splits else None
        split = pinned or assign_split(piece_id, self.seed, self.fractions)
        first = {"id": piece_id, **item.provenance(), "lowest_pitch": result["lowest_pitch"]}
        self.by_bytes[result["content_hash"]] = first
        self.by_notes[result["fingerprint"]] = first
        self.by_work[work_key(item)] = first
        entry = (array("Q", result.get("sketch") or []), first)  # one per piece, shared by its buckets
        for key in _bands(self._composer_id(item.composer), result.get("sketch") or []):
            self.by_band.setdefault(key, []).append(entry)
        low, high = self.pitch_range
        keys = []
        shift_low, shift_high = result.get("shift_range") or (low - result["lowest_pitch"], high - result["highest_pitch"])
        for shift in self.transpositions:
            if shift == 0 or shift_low <= shift <= shift_high:  # shift_range: instrumented builds, every part's range
                keys.append(shift)
            else:
                where = "a part's range" if "shift_range" in result else f"the tokenizer's pitch range {low}-{high}"
                detail = f"transposing by {shift:+d} moves notes outside {where}"
                self.stats.rejects[TRANSPOSITION_OUT_OF_RANGE] += 1  # a row not made, not a file rejected
                self._write_reject(item, result, TRANSPOSITION_OUT_OF_RANGE, detail, None, shift)
        plan = {"item": vars(item), "result": result, "piece_id": piece_id, "split": split, "transpositions": keys}
        plan["result"] = {key: value for key, value in result.items() if key != "sketch"}
        plan["pinned"] = bool(pinned)  # `splits_from` chose its split: an empty held-out split never takes it
        # ASCII: a locator may hold a file name that is not UTF-8 (surrogate escapes); json escapes them losslessly
        self._emit(self._plans[split], json.dumps(plan, sort_keys=True))
        stats = self.stats
        stats.pieces[split] += 1
        stats.rows[split] += len(keys)
        stats.tokens[split] += result["num_tokens"] * len(keys)
        stats.sources[item.source] += 1
        stats.licenses[item.license] += 1
        if item.license_file:
            stats.license_files[item.license_file] += 1
        stats.composers[item.composer or "unknown"] += 1
        stats.composer_notes[item.composer or "unknown"] += result["num_notes"]

    def _near(self, composer: str, sketch: list[int]) -> list[tuple[array, dict[str, Any]]]:
        """The kept pieces of `composer` that share a band of their sketch with `sketch`, each once."""
        found: dict[int, tuple[array, dict[str, Any]]] = {}
        for key in _bands(self._composer_id(composer), sketch):
            for candidate in self.by_band.get(key, ()):
                found.setdefault(id(candidate[1]), candidate)
        return list(found.values())

    def _composer_id(self, composer: str) -> int:
        return self.composer_ids.setdefault(composer, len(self.composer_ids))

    def _spelling(self, name: str) -> str:
        """`normalize_composer(name)`, and of two spellings that differ only by accents or case, the first seen."""
        name, folded = folded_composer(name)
        return self.spellings.setdefault(folded, name)

    def _hold_out(self, composers: tuple[str, ...] = (), count: int = 0, pieces: tuple[int, int] = (3, 19)) -> None:
        """Move every piece of some composers to the `UNSEEN` split: those named, plus `count` chosen by the seed
        among composers with `pieces` (min, max) pieces kept (never Anonymous or unknown); `stats.unseen_composers`
        lists them. Runs at `close`, before empty splits are filled."""
        named = {self._spelling(name) for name in composers if name.strip()}
        missing = sorted(name for name in named if name not in self.stats.composers)
        if missing:
            known = ", ".join(name for name, _ in self.stats.composers.most_common(30))
            raise ValueError(f"unseen composers {missing} have no piece in the build; composers kept: {known} ...")
        low, high = pieces
        eligible = sorted(
            name
            for name, kept in self.stats.composers.items()
            if low <= kept <= high and name not in named and name not in (ANONYMOUS, "unknown", "")
        )
        if count > len(eligible):
            raise ValueError(
                f"cannot hold out {count} composers: only {len(eligible)} have {low}-{high} pieces ({eligible})"
            )
        key = lambda name: hashlib.sha256(f"toccata-unseen|{self.seed}|{name}".encode()).hexdigest()  # noqa: E731
        chosen = set(named) | set(sorted(eligible, key=key)[:count])
        if chosen:
            self._move_plans(SPLITS, lambda plan: UNSEEN if (plan["item"]["composer"] or "unknown") in chosen else None)
        self.stats.unseen_composers = sorted(chosen)

    def _reject(
        self, item: SourceItem, result: dict[str, Any], reason: str, detail: str, first: dict[str, Any] | None = None
    ) -> None:
        self.stats.rejects[reason] += 1
        self._write_reject(item, result, reason, detail, first, None)

    def _write_reject(
        self,
        item: SourceItem,
        result: dict[str, Any],
        reason: str,
        detail: str,
        first: dict[str, Any] | None,
        transposition: int | None,
    ) -> None:
        row: dict[str, Any] = {
            **item.provenance(),
            "content_hash": result.get("content_hash", ""),
            "reason": reason,
            "detail": detail,
        }
        if first is not None:
            row["duplicate_of"] = {key: first[key] for key in ("id", "source", "path", "source_url")}
        if transposition is not None:
            row["transposition"] = transposition
        self._emit(self.rejects, json.dumps(row, ensure_ascii=False, sort_keys=True))

    def _emit(self, handle: TextIO, line: str) -> None:
        """Write one line of a plan or of the rejects manifest (`engines.ray_planning` tags each with its file's
        place in the stream, to merge the parts of a build in order)."""
        handle.write(line + "\n")


def _bands(composer_id: int, sketch: list[int]) -> list[int]:
    """The LSH bucket keys of a sketch: (composer, band index, the band's values) packed into one integer, exactly
    (each value below 2**64 gets 64 bits of its own), ~50 bytes where a tuple took ~240; none for a piece too short."""
    if len(sketch) < SKETCH_BANDS * SKETCH_ROWS:
        return []
    keys = []
    for band in range(SKETCH_BANDS):
        key = composer_id * SKETCH_BANDS + band
        for value in sketch[band * SKETCH_ROWS : (band + 1) * SKETCH_ROWS]:
            key = (key << 64) | value
        keys.append(key)
    return keys


def work_key(item: SourceItem) -> tuple[str, str]:
    """What names a work within its source, whatever its format or variant: the path without its extension, without
    folders named after a format and without variant suffixes (`names.work_name`), so ``kern/op1.krn``,
    ``midi/op1.mid``, ``op1.musicxml`` and ``op1_no_repeat.mid`` are one work, as are ``32-1/midi_score.mid`` and
    ``32-1_no_repeat/midi_score.mid``."""
    stem, ext = posixpath.splitext(item.path)
    parts = [part for part in (stem if ext else item.path).lower().split("/")[:-1] if part not in FORMAT_FOLDERS]
    names = [*parts, posixpath.basename(stem if ext else item.path).lower()]
    return item.source, "/".join(work_name(name) for name in names)


def read_plan(path: str | Path) -> Iterator[dict[str, Any]]:
    """The kept pieces of one split, in stream order, as written by `Planner`."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


__all__ = [
    "ALL_SPLITS",
    "SPLITS",
    "UNSEEN",
    "file_problem",
    "license_set",
    "BuildStats",
    "PinnedSplits",
    "Planner",
    "assign_split",
    "ordered_map",
    "read_plan",
    "row_id",
    "split_point",
    "work_key",
]
