"""`toccata build-dataset` and `toccata crawl`: arguments -> `toccata.dataset_builder` -> a dataset folder.

    toccata build-dataset [--source DIR|corpus[:PATTERN]|URL ...] --out OUT [--num-proc N] [--push-to-hub ORG/NAME]
                          [--tokenizer remi|midilike|tsd|chordwise|notewise-bpe [--bpe-vocab-size N]]
                          [--engine ray [--address auto|ray://HOST:PORT]]   (a Ray cluster; OUT may be an fsspec URL)
    toccata crawl URL ... --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toccata.cli_io import add_choice


def add_dataset_parsers(commands: argparse._SubParsersAction) -> None:
    """Register `build-dataset` and `crawl` (the dataset builder is imported only when they run)."""
    build = commands.add_parser(
        "build-dataset", help="MIDI and score sources -> parquet dataset with card and rejects manifest"
    )
    build.add_argument(
        "--source",
        action="append",
        metavar="SRC",
        help="a folder of MIDI and score files (.mid, .krn, .musicxml/.mxl/.xml, .abc, .mei), "
        "corpus[:PATTERN,...] (music21's corpus; default: corpus) or an http(s) URL to crawl; repeat for several",
    )
    build.add_argument(
        "--out",
        required=True,
        help="the dataset folder to write (replaced if it is a dataset); with --engine ray also an fsspec URL (s3://...)",
    )
    build.add_argument("--num-proc", type=int, default=1, help="worker processes for reading and tokenizing")
    add_choice(
        build,
        "--engine",
        ["local", "ray"],
        "local (processes on this machine) or ray (a Ray cluster; pip install 'toccata[ray]'; docs/dataset.md)",
    )
    build.add_argument(
        "--address",
        help="with --engine ray: the cluster, auto or ray://HOST:PORT (default: a local one of --num-proc CPUs)",
    )
    build.add_argument("--push-to-hub", metavar="ORG/NAME", help="then publish with datasets' push_to_hub")
    build.add_argument("--private", action="store_true", help="with --push-to-hub: a private repository")
    build.add_argument("--transpositions", default="0", help="0 (none), 0,5,-3, -5..6 or all: a row per shift")
    build.add_argument("--splits", default="0.9,0.05,0.05", help="train,validation,test fractions of pieces")
    build.add_argument("--seed", type=int, default=0, help="split seed")
    build.add_argument("--splits-from", help="an earlier built dataset: the files it holds keep their split")
    build.add_argument(
        "--unseen-composers",
        metavar="N|NAMES",
        help="a second test split, unseen_composers, of composers held out whole: N chosen by the seed among those "
        "with 3-19 pieces, or names separated by ';' (e.g. 'Maria Szymanowska;Karol Kurpiński')",
    )
    build.add_argument(
        "--licenses",
        metavar="IDS",
        help="keep only files under these licences, e.g. cc-by-4.0,cc0-1.0 (or permissive = cc0-1.0,cc-by-4.0,mit): "
        "for weights free for commercial use; the others are rejected as license_excluded",
    )
    build.add_argument("--min-quarters", type=float, default=8.0, help="shorter pieces are rejected")
    build.add_argument("--max-file-bytes", type=int, default=5_000_000, help="larger files are rejected")
    build.add_argument("--license", default="unknown", help="licence of folder files their sidecar does not name")
    build.add_argument("--work-dir", help="cache of per-file results and crawls (default: OUT.work)")
    build.add_argument("--unsafe", action="store_true", help="parse in-process (faster; trusted files only)")
    build.add_argument("--score-timeout", type=float, default=120.0, help="seconds music21 may spend on one score")
    build.add_argument(
        "--instruments",
        default="piano",
        help="piano (default), piano,violin or piano,cello: ensembles become that instrument + piano (docs/instruments.md)",
    )
    add_choice(
        build,
        "--ensemble-rule",
        ["outer", "named", "exact"],
        "with --instruments: outer (the highest violin / lowest cello part), named (the first part of that name) or "
        "exact (named, and no other string part: real duos and trios only)",
    )
    add_choice(
        build,
        "--tokenizer",
        ["notewise", "remi", "midilike", "tsd", "chordwise", "notewise-bpe"],
        "notewise (default): the notewise column only; another scheme adds a tokens column of its words and saves "
        "the scheme in OUT/tokenizer/ (chordwise and notewise-bpe learn from the train split only)",
    )
    build.add_argument(
        "--bpe-vocab-size", type=int, help="with --tokenizer notewise-bpe: the vocabulary size, above 228 (e.g. 1024)"
    )
    _add_crawl_limits(build, "URL sources: ")
    build.set_defaults(run=run_build_dataset)

    crawl = commands.add_parser("crawl", help="fetch MIDI files politely from a site into a folder (resumable)")
    crawl.add_argument("url", nargs="+", help="start URLs (http or https)")
    crawl.add_argument("--out", required=True, help="folder for files/, metadata.jsonl and the crawl's state")
    crawl.add_argument("--allowed-host", action="append", help="hosts to follow links to (default: the start URLs')")
    _add_crawl_limits(crawl)
    crawl.add_argument("--max-pages", type=int, default=100_000, help="stop after this many HTML pages")
    crawl.set_defaults(run=run_crawl)


def _add_crawl_limits(parser: argparse.ArgumentParser, applies_to: str = "") -> None:
    """--max-files and --min-delay: the limits of a crawl, by `crawl` and by `build-dataset`'s URL sources alike."""
    parser.add_argument("--max-files", type=int, default=10_000, help=f"{applies_to}stop after this many MIDI files")
    parser.add_argument("--min-delay", type=float, default=1.0, help=f"{applies_to}seconds between requests to one host")


def run_build_dataset(args: argparse.Namespace) -> int:
    # start-up: the dataset builder loads datasets and toccata.tokenization (seconds); `toccata --help` must not wait
    from toccata.dataset_builder.build import build_dataset
    from toccata.dataset_builder.builder import push_to_hub
    from toccata.dataset_builder.config import parse_fractions, parse_transpositions

    options = dict(
        sources=tuple(args.source or ["corpus"]),
        transpositions=parse_transpositions(args.transpositions),
        seed=args.seed,
        min_quarters=args.min_quarters,
        max_file_bytes=args.max_file_bytes,
        safe=not args.unsafe,
        score_timeout_s=args.score_timeout,
        instruments=args.instruments,
        ensemble_rule=args.ensemble_rule,
        default_license=args.license,
        crawl_options={"max_files": args.max_files, "min_delay": args.min_delay},
        **parse_fractions(args.splits),
    )
    if args.work_dir:
        options["work_dir"] = args.work_dir
    if args.splits_from:
        options["splits_from"] = args.splits_from
    if args.unseen_composers:
        count, names = _unseen_composers(args.unseen_composers)
        options.update(unseen_composer_count=count, unseen_composers=names)
    if args.licenses:
        options["licenses"] = args.licenses
    if args.tokenizer != "notewise" or args.bpe_vocab_size is not None:  # the default build passes neither
        options.update(tokenizer=args.tokenizer, bpe_vocab_size=args.bpe_vocab_size)
    builder = build_dataset(args.out, num_proc=args.num_proc, engine=args.engine, address=args.address, **options)
    print(builder.summary(), file=sys.stderr)
    print(f"wrote the dataset, its card and rejects.jsonl to {args.out}", file=sys.stderr)
    if not sum(builder.stats.rows.values()):
        raise ValueError(f"no piece was kept from {', '.join(options['sources'])}: see {args.out}/rejects.jsonl")
    if args.push_to_hub:
        url = push_to_hub(args.out, args.push_to_hub, private=args.private)
        print(f"pushed to {url}", file=sys.stderr)
    return 0


def _unseen_composers(text: str) -> tuple[int, tuple[str, ...]]:
    """``--unseen-composers``: a number (that many composers chosen by the seed) or names separated by ``;``."""
    text = text.strip()
    if text.isdigit():
        return int(text), ()
    return 0, tuple(name.strip() for name in text.split(";") if name.strip())


def run_crawl(args: argparse.Namespace) -> int:
    from toccata.dataset_builder.sources.crawler import CrawlConfig, crawl  # start-up: as build-dataset's

    config = CrawlConfig(
        start_urls=args.url,
        out_dir=Path(args.out),
        allowed_hosts=args.allowed_host,
        max_files=args.max_files,
        max_pages=args.max_pages,
        min_delay=args.min_delay,
    )
    report = crawl(config, progress=True)
    ended = f"stopped by {report.stopped_by}" if report.stopped_by else "no URLs left"
    print(
        f"kept {len(report.fetched)} MIDI files, skipped {len(report.skipped)} URLs, fetched {report.pages} pages "
        f"({ended}) in {args.out}",
        file=sys.stderr,
    )
    return 0
