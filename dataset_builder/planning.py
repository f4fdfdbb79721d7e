"""The global step of a build: every source's files analysed by an engine, results in source order, then kept or
rejected, deduplicated and split by one `Planner` in this process (`plan_build`, the local engine; the Ray engine plans
the same way in parts, `engines.ray_planning`, from the same `build_inputs` and `planner_options`).

`plan_build` writes the plans (one JSON-lines file per split, in ``<work>/plan/``) and the rejects manifest; the rows
are made from the plans afterwards, by the `datasets` builder (local engine) or by Ray tasks (`engines.ray_engine`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.parquet as pq
from datasets.utils.tqdm import tqdm as hf_tqdm

from .analysis import AnalysisSettings, analyse_item
from .config import ToccataConfig, is_url
from .engines import Engine
from .items import SCORE, SourceItem, metadata_json
from .pipeline import ALL_SPLITS, PinnedSplits, Planner
from .sources.corpus import Music21CorpusSource, is_corpus_spec
from .sources.crawler import CrawlConfig, crawl
from .sources.folder import FolderSource


def plan_build(config: ToccataConfig, work: Path, own: tuple[str, ...], rejects: Path, engine: Engine) -> Planner:
    """The build's global step, the same for every engine: `engine` analyses every source file (`_analyse_pair`,
    results in source order), and one `Planner` in this process dedups, splits and writes the plans (in
    ``<work>/plan/``) and the rejects manifest (`rejects`). Only per-file summaries reach this process, never rows.

    `own` are the build's output folders: a source folder that holds them does not read them back.
    """
    items, analyse = build_inputs(config, work, own)
    rejects.parent.mkdir(parents=True, exist_ok=True)
    with open(rejects, "w", encoding="utf-8") as manifest:
        pinned = splits_of(config.splits_from) if config.splits_from else None
        planner = Planner(work / "plan", manifest, fixed_splits=pinned, **planner_options(config))
        results = engine.map_ordered(analyse, items)
        for item, result in hf_tqdm(results, unit=" files", desc="Reading and tokenizing MIDI and scores"):
            planner.add(item, result)
        planner.close()
    return planner


def build_inputs(
    config: ToccataConfig, work: Path, own: tuple[str, ...]
) -> tuple[Iterable[SourceItem], Callable[[SourceItem], tuple[SourceItem, dict[str, Any]]]]:
    """Every source's items as one stream (URLs crawled first) and the per-file function an engine maps over them
    (`_analyse_pair`); `own` are the build's output folders, which a source folder does not read back."""
    sources = _resolve_sources(config, work, (str(work), *own))
    settings = config.analysis_settings(str(work))
    analyse = functools.partial(_analyse_pair, settings=settings, default_license=config.default_license)
    return itertools.chain.from_iterable(sources), analyse


def planner_options(config: ToccataConfig) -> dict[str, Any]:
    """`Planner`'s settings from a build's config (all but where it writes and the splits of an earlier build)."""
    return {
        "seed": config.seed,
        "fractions": config.split_fractions(),
        "min_quarters": config.min_quarters,
        "transpositions": config.transpositions,
        "pitch_range": (config.min_pitch, config.max_pitch),
        "licenses": config.licenses,
        "unseen": (config.unseen_composers, config.unseen_composer_count, config.unseen_composer_pieces),
    }


def splits_of(
    dataset: str | Path, files: Container[tuple[str, str]] | None = None, pieces: Container[str] | None = None
) -> PinnedSplits:
    """The split of every file and piece of an earlier built dataset folder, to build again with the same splits:
    a test set that must stay the test set (to compare checkpoints) is pinned this way.

    `files` ((source, path)) and `pieces` (piece ids), when given, keep only their own pins: a part of a build on
    Ray (`engines.ray_planning`) then holds what its own files need, not the whole earlier build."""
    folder = Path(dataset)
    pins, rows = PinnedSplits({}, {}), 0
    for split in ALL_SPLITS:  # "-test.parquet" or "-test-00000-of-00002.parquet", never "-test_x.parquet"
        for path in sorted(folder.glob(f"*-{split}.parquet")) + sorted(folder.glob(f"*-{split}-*.parquet")):
            for batch in pq.ParquetFile(path).iter_batches(columns=["source", "path", "piece_id"]):
                rows += batch.num_rows
                for row in batch.to_pylist():
                    if files is None or (row["source"], row["path"]) in files:
                        pins.by_file[(row["source"], row["path"])] = split
                    if pieces is None or row["piece_id"] in pieces:
                        pins.by_piece[row["piece_id"]] = split
    if not rows:
        raise ValueError(f"splits_from: {folder} holds no built dataset (no *-train/validation/test parquet files)")
    return pins


# ---------------------------------------------------------------------------------------------------- private


def _analyse_pair(
    item: SourceItem, settings: AnalysisSettings, default_license: str
) -> tuple[SourceItem, dict[str, Any]]:
    """`analyse_item` that hands its item back, so the parent pairs them without keeping a queue of items.

    A score file's own metadata fills what its source left empty (composer, title, licence; the movement and how
    its repeats were played go to `metadata`).
    """
    result = analyse_item(item, settings)
    if item.kind == SCORE:
        item = with_score_metadata(item, result.get("score") or {}, default_license)
    return item, result


def with_score_metadata(item: SourceItem, score: dict[str, Any], default_license: str) -> SourceItem:
    """`item` with the blanks its source left filled from the score's own metadata, then from the folder layout
    (`names.py`) and the defaults."""
    extra = json.loads(item.metadata)
    for key in ("movement", "repeats"):
        if score.get(key) and key not in extra:
            extra[key] = score[key]
    if score.get("scores_in_file", 1) > 1:
        extra["scores_in_file"] = f"{score['scores_in_file']} (the first is read)"
    title = item.title or score.get("title") or item.folder_title or Path(item.path).stem
    if score.get("movement") and not item.title and score.get("title"):
        title = f"{title}: {score['movement']}"
    return dataclasses.replace(
        item,
        composer=item.composer or score.get("composer") or item.folder_composer,
        title=title,
        license=item.license or score.get("license") or default_license,
        metadata=metadata_json(extra),
    )


def _resolve_sources(config: ToccataConfig, work: Path, own: tuple[str, ...]) -> list[Iterable[SourceItem]]:
    """One item stream per source string; URLs are crawled (resumably) into ``<work>/crawl/`` first.

    `own` are the build's output and work folders: a source folder that contains them does not walk them, or a
    rebuild would read its own cache (converted corpus works, crawls) as the folder's files.
    """
    streams: list[Iterable[SourceItem]] = []
    for spec in config.sources:
        if is_corpus_spec(spec):
            streams.append(Music21CorpusSource.from_spec(spec))
        elif is_url(spec):
            streams.append(_crawl(spec, work, config))
        else:
            streams.append(FolderSource(Path(spec), default_license=config.default_license, exclude=own))
    return streams


def _crawl(url: str, work: Path, config: ToccataConfig) -> FolderSource:
    """Crawl `url` politely into the work folder (a rerun resumes it) and read what it fetched as a folder."""
    slug = f"{urlsplit(url).hostname or 'site'}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"
    out = work / "crawl" / slug
    crawl(CrawlConfig(start_urls=[url], out_dir=out, **config.crawl_options), progress=True)
    return FolderSource(out, label=f"crawl:{url}", default_license=config.default_license, names_from_folders=False)


__all__ = ["PinnedSplits", "build_inputs", "plan_build", "planner_options", "splits_of", "with_score_metadata"]
