"""The global step of a build on Ray (`ray_engine`), with the driver's memory flat in the number of files.

The local build decides file by file in source order, in one `Planner` (`pipeline.py`): a file is kept unless an
earlier *kept* file has its bytes, its notes or its work (the same name in the same source), or is by the same
composer and shares half its note n-grams (a near-duplicate). A decision involves only files linked by one of those
relations, so the files are split into groups that no link crosses, and each group is planned by the same `Planner`
code, in source order, on a worker. The result is the local build's, decision for decision:

1. analysis: Ray tasks of `CHUNK` files (`planning.build_inputs`: read, safe parse, tokenize, fingerprint); a task per
   block of `BLOCK` files writes their summaries to ``<work>/ray/`` and hands the driver the first spelling of each
   composer it met;
2. keys: per block, each file that passes the checks that need no other file (`pipeline.file_problem`) gives its
   keys (bytes hash, notes fingerprint, work name, the 21 LSH bands of its sketch, `pipeline._bands`), shuffled by
   key into partitions;
3. links: per partition, files that share a key are linked; for a band, only when their sketches share half their
   values (`sketch_similarity` on the values' low 16 bits, which never says less than on the whole values);
4. groups: the connected components of the links, by min-label propagation (each round a groupby by key, then by
   file, until no label changes: as many rounds as the longest chain of links, two or three in practice);
5. plans: per block, each file goes to the partition of its group (a hash of the group's first file); per partition,
   a `Planner` seeded with the build's composer spellings (and the earlier build's pins of its own files, for
   ``splits_from``) plans its files in source order, tagging each plan and manifest line with its file's place;
6. the driver merges the partitions' lines in stream order, a line at a time (`Planner.add_planned`), and its
   `Planner` then holds out unseen composers and fills empty splits as the local build's does (`Planner.close`).

The driver holds the summaries of the blocks in flight (Ray keeps small task results in their owner's memory: three
blocks, ~10 MB), a file handle per partition and a spelling and counts per composer: nothing that grows with the
number of files. Every file a task writes is written under a temporary name and then renamed, so a task
that Ray runs again (its worker died) writes the same file again.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import shutil
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from datasets.utils.tqdm import tqdm as hf_tqdm

from ..analysis import sketch_similarity
from ..composers import folded_composer
from ..config import ToccataConfig
from ..items import SourceItem
from ..pipeline import (
    ALL_SPLITS,
    NEAR_DUPLICATE_SIMILARITY,
    BuildStats,
    Planner,
    _bands,
    file_problem,
    license_set,
    work_key,
)
from ..planning import build_inputs, planner_options, splits_of

T = TypeVar("T")
R = TypeVar("R")
CHUNK = 16  # files per analysis task: large enough to hide the task overhead (~ms), small enough to balance
FILES_PER_TASK = 10_000  # files per partition of the planning tasks: ~100 MB for the largest task
BLOCK = 1024  # files per block of summaries (a task writes it); the driver holds three blocks' summaries in flight
MAX_RETRIES = 3  # Ray runs a task again this many times when its worker dies
TAG = 13  # a part's line starts with its file's place in the stream: 12 digits and a space
SUMMARY = pa.schema([("idx", pa.int64()), ("item", pa.string()), ("result", pa.string())])
KEYS = pa.schema([("key", pa.binary()), ("node", pa.int64()), ("sketch", pa.binary())])
LINKS = pa.schema([("key", pa.binary()), ("node", pa.int64()), ("label", pa.int64())])


def plan_on_ray(
    config: ToccataConfig,
    work: Path,
    own: tuple[str, ...],
    rejects: Path,
    files_per_task: int = FILES_PER_TASK,
    delay_s: float = 0.0,
) -> Planner:
    """`planning.plan_build` on a Ray cluster (this process is connected): the same plans in ``<work>/plan/`` and the
    same rejects manifest (`rejects`), made by the steps in this module's text; the driver's `Planner` is returned
    closed. `delay_s`: seconds each analysis task waits per file (tests: a kill lands mid-build)."""
    if files_per_task < 1:
        raise ValueError(f"files_per_task must be 1 or more, got {files_per_task!r}")
    if config.splits_from:
        splits_of(config.splits_from, files=(), pieces=())  # a clear error here, not in a task (each reads its own)
    items, analyse = build_inputs(config, work, own)
    stage = work / "ray"
    shutil.rmtree(stage, ignore_errors=True)  # a rerun after a killed driver starts its stages again
    block = min(BLOCK, files_per_task)
    files, blocks, spellings = _analyse(items, analyse, stage / "blocks", block, delay_s)
    parts = max(1, math.ceil(files / files_per_task))
    summaries, keep = [_path(stage / "blocks", b) for b in blocks], (license_set(config.licenses), config.min_quarters)
    ray.get([_block_keys.remote(summaries[b], _path(stage / "keys", b), parts, *keep) for b in blocks])
    ray.get([_links.remote(stage / "keys", len(blocks), p, _path(stage / "links", p), parts) for p in range(parts)])
    groups = _groups(stage, parts, block)
    ray.get([_block_parts.remote(summaries[b], groups, b, block, _path(stage / "map", b), parts) for b in blocks])
    options = planner_options(config)
    folders = [stage / f"part{p:05d}" for p in range(parts)]
    shared = ray.put(options), ray.put(spellings), config.splits_from
    counts = [_plan_part.remote(stage / "map", len(blocks), p, folders[p], *shared) for p in range(parts)]
    rejects.parent.mkdir(parents=True, exist_ok=True)
    with open(rejects, "w", encoding="utf-8") as manifest:
        planner = Planner(work / "plan", manifest, **options)
        planner.spellings.update(spellings)
        total = BuildStats()
        for ref in counts:
            total.add(ray.get(ref))
        plans = {split: _merged([folder / f"{split}.jsonl" for folder in folders]) for split in ALL_SPLITS}
        planner.add_planned(total, plans, _merged([folder / "rejects.jsonl" for folder in folders]))
        planner.close()
    shutil.rmtree(stage, ignore_errors=True)
    return planner


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last may be shorter), pulled from `items` as they are needed."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# ---------------------------------------------------------------------------------------------------- driver steps


def _analyse(
    items: Iterable[SourceItem], analyse: Callable, folder: Path, block: int, delay_s: float
) -> tuple[int, range, dict[str, str]]:
    """Step 1: analysis tasks over chunks, at most two per CPU running ahead, and a task per block that writes the
    block's summaries; (files, block numbers, folded composer -> first spelling, in stream order)."""
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    fn_ref = ray.put(analyse)
    running: deque[tuple[ray.ObjectRef, int]] = deque()
    writing: deque[ray.ObjectRef] = deque()
    spellings: dict[str, str] = {}
    files = blocks = 0
    progress = hf_tqdm(unit=" files", desc="Reading and tokenizing MIDI and scores")
    for index, block_items in enumerate(batched(items, block)):
        chunks = []
        for chunk in batched(block_items, CHUNK):
            chunks.append(_map_chunk.remote(fn_ref, chunk, delay_s))
            running.append((chunks[-1], len(chunk)))
            if len(running) >= window:
                ref, count = running.popleft()
                ray.wait([ref], fetch_local=False)
                progress.update(count)
        writing.append(_write_block.remote(_path(folder, index), index * block, *chunks))
        files, blocks = files + len(block_items), index + 1
        while len(writing) > 2:
            _first_spellings(spellings, ray.get(writing.popleft()))
    for ref, count in running:
        ray.wait([ref], fetch_local=False)
        progress.update(count)
    for ref in writing:
        _first_spellings(spellings, ray.get(ref))
    progress.close()
    return files, range(blocks), spellings


def _first_spellings(spellings: dict[str, str], block: dict[str, str]) -> None:
    """Add a block's spellings, blocks in stream order: the first spelling met of a composer stays."""
    for folded, name in block.items():
        spellings.setdefault(folded, name)


def _groups(stage: Path, parts: int, block: int) -> Path:
    """Step 4: label every linked file with the first file of its group, by rounds of min-label propagation; the
    folder of the last round, whose partition `q` holds the files of the blocks `b` with ``b % parts == q``."""
    current, by, round_ = stage / "links", "key", 0
    while True:
        out = stage / f"round{round_:04d}-{by}"
        changed = sum(
            ray.get([_min_label.remote(current, parts, p, by, _path(out, p), parts, block) for p in range(parts)])
        )
        if by == "key" and changed == 0:  # every file's rows agree, and now every key's: the groups are found
            return out
        current, by, round_ = out, "node" if by == "key" else "key", round_ + 1


def _merged(paths: list[Path]) -> Iterator[str]:
    """The lines of the parts' files, each sorted by its tag, merged in stream order, tags taken off."""
    with ExitStack() as stack:
        handles = [stack.enter_context(open(path, encoding="utf-8")) for path in paths]
        for line in heapq.merge(*handles, key=lambda line: int(line[: TAG - 1])):
            yield line[TAG:]


# ---------------------------------------------------------------------------------------------------- Ray tasks


@ray.remote(max_retries=MAX_RETRIES)
def _map_chunk(fn: Callable[[T], R], items: list[T], delay_s: float) -> list[R]:
    """Step 1: `fn` over one chunk of items, in a Ray worker."""
    results = []
    for item in items:
        if delay_s:
            time.sleep(delay_s)
        results.append(fn(item))
    return results


@ray.remote(max_retries=MAX_RETRIES)
def _write_block(path: Path, first: int, *chunks: list[tuple[SourceItem, dict[str, Any]]]) -> dict[str, str]:
    """Step 1: one block's summaries (item and result as JSON, numbered from `first` in stream order) to `path`;
    the first spelling of each composer it holds (folded -> spelling), in its order."""
    pairs = [pair for chunk in chunks for pair in chunk]
    spellings: dict[str, str] = {}
    for item, _ in pairs:
        name, folded = folded_composer(item.composer)
        spellings.setdefault(folded, name)
    columns = {
        "idx": range(first, first + len(pairs)),
        "item": [json.dumps(vars(item)) for item, _ in pairs],
        "result": [json.dumps(result) for _, result in pairs],
    }
    _write(path, [pa.table(columns, schema=SUMMARY)], SUMMARY)
    return spellings


@ray.remote(max_retries=MAX_RETRIES)
def _block_keys(block: Path, out: Path, parts: int, licenses: frozenset[str], min_quarters: float) -> None:
    """Step 2: the keys of a block's files that go on to dedup, in partitions by key. A band's rows carry the
    sketch's low 16 bits, to check the link where the band meets another file's."""
    rows: dict[str, list] = {"key": [], "node": [], "sketch": []}
    for idx, item, result in _summaries(_read([block], 0, SUMMARY)):
        if file_problem(item, result, licenses, min_quarters) is not None:
            continue
        sketch = result.get("sketch") or []
        low = np.asarray(sketch, dtype=np.uint64).astype(np.uint16).tobytes()
        keys = [
            (_digest("bytes", result["content_hash"]), None),
            (_digest("notes", result["fingerprint"]), None),
            (_digest("work", "\0".join(work_key(item))), None),
            *((_digest("band", band), low) for band in _bands(_number(folded_composer(item.composer)[1]), sketch)),
        ]
        for key, carried in keys:
            rows["key"].append(key)
            rows["node"].append(idx)
            rows["sketch"].append(carried)
    table = pa.table(rows, schema=KEYS)
    _write(out, _split(table, [_key_part(key, parts) for key in rows["key"]], parts), KEYS)


@ray.remote(max_retries=MAX_RETRIES)
def _links(keys: Path, blocks: int, part: int, out: Path, parts: int) -> None:
    """Step 3: the files of partition `part`'s keys that share a key, as rows (link, file, label = the file): every
    file of a bytes, notes or work key; for a band, each pair whose sketches are near (a link of its own)."""
    table = _read([_path(keys, b) for b in range(blocks)], part, KEYS)
    counts = table.group_by("key").aggregate([("node", "count")])
    shared = counts.filter(pc.greater(counts["node_count"], 1))["key"]
    groups: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
    for row in table.filter(pc.is_in(table["key"], value_set=shared)).to_pylist():  # files with a duplicate: few
        groups[row["key"]].append(row)
    links: set[tuple[bytes, int]] = set()
    for key, members in groups.items():
        if members[0]["sketch"] is None:
            links.update((key, member["node"]) for member in members)
            continue
        sketches = [np.frombuffer(member["sketch"], dtype=np.uint16).tolist() for member in members]
        for (a, sketch_a), (b, sketch_b) in itertools.combinations(zip(members, sketches, strict=True), 2):
            if sketch_similarity(sketch_a, sketch_b) >= NEAR_DUPLICATE_SIMILARITY:
                pair = _digest("near", f"{a['node']} {b['node']}")
                links.update(((pair, a["node"]), (pair, b["node"])))
    rows = sorted(links)
    table = pa.table({"key": [k for k, _ in rows], "node": [n for _, n in rows], "label": [n for _, n in rows]}, LINKS)
    _write(out, _split(table, [_key_part(key, parts) for key, _ in rows], parts), LINKS)


@ray.remote(max_retries=MAX_RETRIES)
def _min_label(folder: Path, inputs: int, part: int, by: str, out: Path, parts: int, block: int) -> int:
    """Step 4, one round's half: every row takes the smallest label among the rows of its `by` ("key" or "node"),
    written in partitions by the other column for the next half; how many labels went down."""
    table = _read([_path(folder, i) for i in range(inputs)], part, LINKS)
    groups, labels = table[by].to_pylist(), table["label"].to_pylist()
    lowest: dict[Any, int] = {}
    for group, label in zip(groups, labels, strict=True):
        lowest[group] = min(label, lowest.get(group, label))
    new = [lowest[group] for group in groups]
    table = table.set_column(2, "label", pa.array(new, pa.int64()))
    if by == "key":
        then = [(node // block) % parts for node in table["node"].to_pylist()]
    else:
        then = [_key_part(key, parts) for key in table["key"].to_pylist()]
    _write(out, _split(table, then, parts), LINKS)
    return sum(1 for old, now in zip(labels, new, strict=True) if now < old)


@ray.remote(max_retries=MAX_RETRIES)
def _block_parts(block: Path, groups: Path, index: int, size: int, out: Path, parts: int) -> None:
    """Step 5: a block's summaries in partitions by group (a file without links is a group of its own)."""
    first = index * size
    labels = _read([_path(groups, q) for q in range(parts)], index % parts, LINKS)
    labels = labels.filter(pc.and_(pc.greater_equal(labels["node"], first), pc.less(labels["node"], first + size)))
    label_of = dict(zip(labels["node"].to_pylist(), labels["label"].to_pylist(), strict=True))
    table = _read([block], 0, SUMMARY)
    group = np.array([label_of.get(idx, idx) for idx in table["idx"].to_pylist()], dtype=np.uint64)
    mixed = (group * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)  # a group's partition: a hash of its first file
    _write(out, _split(table, (mixed % np.uint64(parts)).astype(np.int64), parts), SUMMARY)


@ray.remote(max_retries=MAX_RETRIES)
def _plan_part(
    folder: Path,
    blocks: int,
    part: int,
    out: Path,
    options: dict[str, Any],
    spellings: dict[str, str],
    splits_from: str | None,
) -> BuildStats:
    """Step 5: plan partition `part`'s files in stream order with one `Planner`; plan lines and manifest lines, each
    tagged with its file's place, to `out`; the partition's counts."""
    table = _read([_path(folder, b) for b in range(blocks)], part, SUMMARY)
    table = table.take(pc.sort_indices(table["idx"]))
    pinned = None
    if splits_from:
        summaries = list(_summaries(table))
        files = {(item.source, item.path) for _, item, _ in summaries}
        pieces = {result.get("fingerprint", "")[:16] for _, _, result in summaries}
        pinned = splits_of(splits_from, files=files, pieces=pieces)
    shutil.rmtree(out, ignore_errors=True)  # a retried task starts again
    out.mkdir(parents=True)
    with open(out / "rejects.jsonl", "w", encoding="utf-8") as manifest:
        planner = _PartPlanner(out, manifest, fixed_splits=pinned, **options)
        planner.spellings.update(spellings)
        for idx, item, result in _summaries(table):
            planner.position = idx
            planner.add(item, result)
        return planner.close()


class _PartPlanner(Planner):
    """A `Planner` of some whole groups of the stream: tags each line with its file's place, and leaves the steps that
    need every file (unseen composers, empty splits) to the driver's planner."""

    position = 0

    def _emit(self, handle: TextIO, line: str) -> None:
        handle.write(f"{self.position:0{TAG - 1}d} {line}\n")

    def close(self) -> BuildStats:
        for handle in self._plans.values():
            handle.close()
        return self.stats


# ---------------------------------------------------------------------------------------------------- files


def _path(folder: Path, index: int) -> Path:
    return folder / f"{index:06d}.arrow"


def _write(path: Path, tables: list[pa.Table], schema: pa.Schema) -> None:
    """An Arrow file with one record batch per table (partition `p` is batch `p`, empty or not), written under a
    temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for table in tables:
            batches = table.combine_chunks().to_batches()
            writer.write_batch(batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema))
    temporary.replace(path)


def _read(paths: list[Path], part: int, schema: pa.Schema) -> pa.Table:
    """Batch `part` of each file, as one table."""
    return pa.Table.from_batches([pa.ipc.open_file(pa.memory_map(str(path))).get_batch(part) for path in paths], schema)


def _split(table: pa.Table, part_of_row: list[int] | np.ndarray, parts: int) -> list[pa.Table]:
    """`table`'s rows in `parts` tables by `part_of_row`, each in the rows' order."""
    part = np.asarray(part_of_row, dtype=np.int64)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    ordered = table.take(order)
    return [ordered.slice(bounds[p], bounds[p + 1] - bounds[p]) for p in range(parts)]


def _summaries(table: pa.Table) -> Iterator[tuple[int, SourceItem, dict[str, Any]]]:
    """(place in the stream, item, result) of each row of a summary table."""
    for idx, item, result in zip(table["idx"].to_pylist(), table["item"].to_pylist(), table["result"].to_pylist(),
                                 strict=True):
        yield idx, SourceItem(**json.loads(item)), json.loads(result)


def _digest(kind: str, value: object) -> bytes:
    """A key of 16 bytes: two keys meet when kind and value do (a collision would only link two files more, which
    the planner then tells apart)."""
    return hashlib.blake2b(f"{kind}\0{value}".encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _key_part(key: bytes, parts: int) -> int:
    return int.from_bytes(key[:8], "little") % parts


def _number(name: str) -> int:
    """A composer's number in the band keys: the same in every task."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


__all__ = ["CHUNK", "FILES_PER_TASK", "batched", "plan_on_ray"]
