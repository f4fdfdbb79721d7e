"""Dataset builds on a Ray cluster (``toccata build-dataset --engine ray``; ``pip install toccata[ray]``).

The local build's steps, with the per-file and per-row work spread over the cluster:

1. per-file analysis (`planning.build_inputs`: read, safe parse with limits, tokenize, fingerprint) as Ray tasks over
   chunks of files, two per CPU running ahead of the driver;
2. dedup by bytes, notes and work, near-duplicates, splits and unseen composers (`ray_planning.plan_on_ray`): the
   files are shuffled by key into groups that no duplicate relation crosses, and each group is planned by the local
   build's `Planner` on a worker; the driver merges the plans (JSON lines) and the rejects manifest in stream order,
   a line at a time, in the work folder. It holds nothing per file;
3. rows: a Ray task per shard of `PIECES_PER_SHARD` plan lines makes the rows (`builder._rows`: cached tokens, MIDI
   bytes, transposed copies) and writes one parquet shard to the output, a folder or any fsspec URL; the driver gets
   back counts only;
4. the card, LICENSE and dataset_info.json (datasets' own writers) and rejects.jsonl; dataset_info.json comes last.

Workers read the source files and the work folder (the analysis cache): on several nodes both must be on a file
system every node mounts. Faults: a task whose worker dies is run again by Ray (`MAX_RETRIES`); per-file results are
cached atomically by content, and a shard is written under a temporary name and then moved to its fixed name, so a
retry neither loses nor duplicates a row. A killed driver: run the same command again; analysed files come from the
cache, and the output folder, marked as a build in progress (`BUILDING`), is written again.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import datasets
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from ..analysis import AnalysisSettings, tokenizer_for
from ..builder import BUILDING, FEATURES, ToccataBuilder, _rows
from ..card import REJECTS_FILE, license_summary, write_card
from ..pipeline import ALL_SPLITS, Planner, read_plan
from .ray_planning import FILES_PER_TASK, batched, plan_on_ray

PIECES_PER_SHARD = 1000  # kept pieces per parquet shard (each a task): ~25-100 MB of rows at 12 transpositions
WRITER_BATCH = 100  # rows per parquet row group (the local build's writer batch), the most a shard task holds
MAX_RETRIES = 3  # Ray runs a task again this many times when its worker dies
DELAY_ENV = "TOCCATA_RAY_TEST_DELAY_S"  # tests: seconds each analysis task waits per file, so a kill lands mid-build


@ray.remote(max_retries=MAX_RETRIES)
def _write_shard(plans: list[dict[str, Any]], settings: AnalysisSettings, out: str, name: str) -> tuple[int, int]:
    """Make the rows of `plans` and write them as parquet shard `name` in `out`; (rows, bytes in Arrow)."""
    fs, root = fsspec.core.url_to_fs(out)
    tokenizer = tokenizer_for(settings.tokenizer)
    schema = FEATURES.arrow_schema  # with datasets' features in its metadata, as the local build writes it
    temporary = f"{root}/.{name}.{uuid.uuid4().hex}.tmp"  # a retried task never sees a half-written shard
    rows = size = 0
    with fs.open(temporary, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        batch: list[dict[str, Any]] = []
        for plan in [*plans, None]:
            if plan is not None:
                batch.extend(_rows(plan, settings, tokenizer))
            if batch and (plan is None or len(batch) >= WRITER_BATCH):
                table = pa.Table.from_pylist(batch, schema=schema)
                writer.write_table(table)
                rows, size, batch = rows + table.num_rows, size + table.nbytes, []
    fs.mv(temporary, f"{root}/{name}")
    return rows, size


def build_with_ray(
    out: str,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    pieces_per_shard: int = PIECES_PER_SHARD,
    files_per_task: int = FILES_PER_TASK,
    **config_kwargs: Any,
) -> ToccataBuilder:
    """Build a Toccata dataset on Ray into `out` (a folder or an fsspec URL); the builder it returns holds the
    config, the statistics and `summary()`, as the local build's does.

    `address`: a running cluster ("auto", "ray://HOST:PORT"); None starts a local one with `num_cpus` (unless this
    process is connected already: then that cluster is used and left running). `pieces_per_shard`: kept pieces per
    parquet shard; `files_per_task`: files per partition of the planning (`ray_planning`), what bounds its tasks'
    memory (tests make both small to cross every stage with a few files).
    """
    remote = "://" in out and not out.startswith("file://")
    if remote and not config_kwargs.get("work_dir"):
        raise ValueError(f"output {out} is remote: give --work-dir, a folder every node mounts, for the build's cache")
    config_kwargs.setdefault("work_dir", out.removeprefix("file://").rstrip("/") + ".work")
    work = Path(config_kwargs["work_dir"]).expanduser()
    builder = ToccataBuilder(cache_dir=str(work / "datasets-cache"), **config_kwargs)  # validates the config
    config = builder.config
    if config.has_tokens_column:
        raise ValueError(
            f"--tokenizer {config.tokenizer} is not built on Ray yet (it learns from the train rows on one machine): "
            "build with the local engine"
        )
    fs, root = fsspec.core.url_to_fs(out)
    _check_output(fs, root, out)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False)
    try:
        delay_s = float(os.environ.get(DELAY_ENV, "0") or 0)
        planner = plan_on_ray(config, work, (out,), work / REJECTS_FILE, files_per_task, delay_s)
        builder.stats = planner.stats
        _reset_output(fs, root)  # only now: a build refused for a bad source leaves OUT as it was
        sizes = _write_splits(planner, config.analysis_settings(str(work)), out, pieces_per_shard)
        _write_card(builder, sizes, work, fs, root, out)
    finally:
        if started:
            ray.shutdown()
    return builder


def _check_output(fs: fsspec.AbstractFileSystem, root: str, out: str) -> None:
    """Refuse an output that is neither absent, empty, a dataset nor a Ray build in progress (it would be replaced)."""
    if not fs.exists(root):
        return
    names = {_name(path) for path in fs.ls(root, detail=False)}
    if not fs.isdir(root) or (names and not names & {"dataset_info.json", BUILDING}):
        raise ValueError(
            f"output {out!r} exists and is not a dataset built here; building would replace it. "
            "Choose a new or empty folder"
        )


def _reset_output(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """Empty the output and mark it as a build in progress (a rerun may replace it; `_write_card` takes the mark)."""
    if fs.exists(root):
        fs.rm(root, recursive=True)
    fs.makedirs(root, exist_ok=True)
    with fs.open(f"{root}/{BUILDING}", "w") as marker:
        marker.write("a Ray build writes this dataset; if it was stopped, run it again\n")


def _write_splits(
    planner: Planner, settings: AnalysisSettings, out: str, pieces_per_shard: int
) -> dict[str, tuple[int, int]]:
    """A shard task per `pieces_per_shard` plan lines of each split (train always, the others when kept), at most
    two per CPU in flight; (rows, bytes) per split."""
    settings_ref = ray.put(settings)
    window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    sizes: dict[str, tuple[int, int]] = {}
    for split in ALL_SPLITS:
        pieces = planner.stats.pieces[split]
        if not pieces and split != "train":
            continue
        count = max(1, math.ceil(pieces / pieces_per_shard))
        chunks = batched(read_plan(planner.plan_files[split]), pieces_per_shard) if pieces else iter([[]])
        pending, done = [], []
        for index, plans in enumerate(chunks):
            name = f"toccata-{split}-{index:05d}-of-{count:05d}.parquet"
            pending.append(_write_shard.remote(plans, settings_ref, out, name))
            if len(pending) >= window:
                ready, pending = ray.wait(pending, num_returns=1)
                done += ray.get(ready)
        done += ray.get(pending)
        sizes[split] = (sum(rows for rows, _ in done), sum(size for _, size in done))
    return sizes


def _write_card(
    builder: ToccataBuilder,
    sizes: dict[str, tuple[int, int]],
    work: Path,
    fs: fsspec.AbstractFileSystem,
    root: str,
    out: str,
) -> None:
    """README.md (the local build's card), rejects.jsonl, then dataset_info.json and LICENSE; the mark goes last."""
    info = builder.info
    info.splits = datasets.SplitDict(dataset_name=builder.dataset_name)
    for split, (rows, size) in sizes.items():
        info.splits.add(
            datasets.SplitInfo(name=split, num_bytes=size, num_examples=rows, dataset_name=builder.dataset_name)
        )
    info.dataset_size = sum(size for _, size in sizes.values())
    info.license = license_summary(builder.stats)
    stage = work / "card"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    card = write_card(
        stage, info, builder.config, builder.stats, dataset_name=builder.dataset_name, file_format="parquet"
    )
    fs.put_file(str(card), f"{root}/README.md")
    fs.put_file(str(work / REJECTS_FILE), f"{root}/{REJECTS_FILE}")
    info.write_to_directory(out)
    fs.rm(f"{root}/{BUILDING}")


def _name(path: str) -> str:
    """The last part of a path or URL."""
    return path.rstrip("/").rsplit("/", 1)[-1]


__all__ = ["DELAY_ENV", "PIECES_PER_SHARD", "build_with_ray"]
