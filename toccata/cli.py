"""The `toccata` command: a thin layer over the package, holding no logic of its own.

    toccata tokenize FILE.mid|FILE.musicxml|FILE.krn|... [-o OUT.txt] [--format notewise|clara] [--tokenizer notewise|notewise-miditok|remi|...]
    toccata tokenize FILE.mid --tokenizer notewise-bpe|chordwise --scheme FOLDER   (a scheme saved by TokenScheme.save)
    toccata detokenize FILE.txt -o OUT.mid [--format notewise|clara] [--scheme FOLDER]
    toccata roll FILE.mid|FILE.musicxml|... -o ROLL.png [--compare OTHER.mid]
    toccata build-dataset [--source DIR|corpus[:PATTERN]|URL ...] --out OUT [--num-proc N] [--push-to-hub ORG/NAME]
                          [--tokenizer remi|midilike|tsd|chordwise|notewise-bpe [--bpe-vocab-size N]]
                          [--engine ray [--address auto|ray://HOST:PORT]]   (a Ray cluster; OUT may be an fsspec URL)
    toccata crawl URL ... --out DIR
    toccata save SOURCE DEST [--for-hub]   (a checkpoint folder, or an embedded one by name: default, critic, ...)
    toccata critic train|score ...; toccata composer train|predict ...   (cli_critic.py)
    toccata tune --generator G --critic C --out OUT [--rounds N ...]    (cli_tune.py: preference tuning, DPO)
    toccata preset|preset-search|publish|chamber ...                     (cli_release.py)
    toccata look|best-of|instrument-stats ...                            (cli_inspect.py)

Each subcommand imports its work when it runs, not at the top: torch, transformers and music21 take seconds to load,
and `toccata --help` or `toccata tokenize` should not wait for them.

A source may be a MIDI path, a score (read as the dataset builder reads them) or ``corpus:WORK``, a work of music21's
bundled corpus (e.g. ``corpus:bach/bwv66.6``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from toccata.cli_critic import add_classifier_parsers
from toccata.cli_demo import add_demo_parser
from toccata.cli_evaluate import add_evaluate_parser
from toccata.cli_generate import add_generate_parser
from toccata.cli_inspect import add_inspect_parsers
from toccata.cli_io import CORPUS_PREFIX, output_file, read_source
from toccata.cli_release import add_release_parsers
from toccata.cli_train import add_train_parser
from toccata.cli_tune import add_tune_parser

MIDITOK_CHOICES = ("notewise-miditok", "remi", "midilike", "tsd")  # miditok's own settings, no scheme folder needed
LEARNED_CHOICES = ("notewise-bpe", "chordwise")  # token schemes that learn from data: need --scheme FOLDER


def _tokenize_scheme(args: argparse.Namespace):
    """The token scheme `tokenize` writes: ``--scheme FOLDER`` (checked against ``--tokenizer``), Clara's text, notewise
    (with ``--instruments``) or a miditok tokenizer with its own settings; flags that do not fit are refused."""
    from toccata.tokenization import load_scheme

    name = args.tokenizer or "notewise"
    if args.scheme is not None:
        if not Path(args.scheme).is_dir():
            raise ValueError(f"--scheme {args.scheme}: no such folder (give a folder saved by TokenScheme.save)")
        scheme = load_scheme(Path(args.scheme))
        if args.tokenizer is not None and args.tokenizer != scheme.name:
            raise ValueError(
                f"--scheme {args.scheme} holds a {scheme.name} scheme, not {args.tokenizer}: leave out --tokenizer "
                "or give a folder of that scheme"
            )
        name = scheme.name
    elif name in LEARNED_CHOICES:
        raise ValueError(
            f"--tokenizer {name} learns its vocabulary from data: give --scheme FOLDER, a scheme saved by "
            f"TokenScheme.save, e.g. the tokenizer/ folder of a dataset built with `toccata build-dataset "
            f"--tokenizer {name}`"
        )
    if args.format == "clara" and (name != "notewise" or args.scheme is not None):
        raise ValueError(f"--tokenizer {name} writes its own tokens: leave out --format clara")
    if args.instruments and (args.format == "clara" or name != "notewise" or args.scheme is not None):
        raise ValueError("--instruments is for notewise tokens (Clara's format has --chamber)")
    if args.scheme is not None:
        return scheme
    if args.format == "clara":
        return load_scheme("clara", chamber=args.chamber)
    if name == "notewise":
        from toccata import instrument_names

        return load_scheme("notewise", instruments=instrument_names(args.instruments))
    return load_scheme(name, miditok_defaults=True)


def _cmd_tokenize(args: argparse.Namespace) -> int:
    scheme = _tokenize_scheme(args)
    out = output_file(args.output, "token text") if args.output else None
    encoding = scheme.tokenize(read_source(args.source), safe=args.safe)
    if not encoding.tokens:
        raise ValueError(
            f"{args.source}: no notes to tokenize (drum tracks and empty tracks are left out); nothing written"
        )
    text = scheme.to_text(encoding)
    if out is None:
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {len(encoding.tokens)} {scheme.name} tokens of {args.source} to {out}", file=sys.stderr)
    return 0


def _cmd_roll(args: argparse.Namespace) -> int:
    import numpy as np

    from toccata.render import piano_rolls
    from toccata.tokenization import NotewiseTokenizer
    from toccata.tokenization.tokenization_notewise import INSTRUMENTS

    out = output_file(args.output, "PNG file")
    if out.suffix.lower() != ".png":
        raise ValueError(f"-o {out}: a piano roll is a PNG image; give a .png name")
    reader = NotewiseTokenizer(instruments=tuple(INSTRUMENTS))  # violin and cello tracks in their own colours
    rolls = []
    for source in [args.source, *args.compare]:
        parts, _ = reader.read_parts(read_source(source))
        notes = {
            name: np.column_stack([found.start, found.end, found.pitch]) / [found.tpq, found.tpq, 1]
            for name, found in parts.items()
            if len(found)
        }
        if not notes:
            raise ValueError(f"{source}: no notes to draw (drum tracks are left out)")
        rolls.append((notes, source if source.startswith(CORPUS_PREFIX) else Path(source).name))
    piano_rolls(rolls, out, caption="piano")
    print(f"wrote the piano roll of {', '.join(title for _, title in rolls)} to {out}", file=sys.stderr)
    return 0


def _cmd_detokenize(args: argparse.Namespace) -> int:
    from toccata.tokenization import load_scheme, scheme_of_text
    from toccata.tokenization.midi_io import save_score

    path = Path(args.source)
    output_file(args.output, "MIDI file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read token text ({err})") from None
    try:  # a malformed header, a tempo or time signature no MIDI file can carry, words of another scheme
        if args.scheme is not None and args.format == "clara":
            raise ValueError("--scheme reads a scheme's own tokens: leave out --format clara")
        if args.scheme is not None:  # text of `toccata tokenize --scheme` (or a dataset's tokens column)
            scheme = load_scheme(Path(args.scheme))
        else:  # Clara's text has no header to say so; every other text's header names its scheme
            scheme = load_scheme("clara") if args.format == "clara" else scheme_of_text(text)
        score = scheme.detokenize(text, qpm=args.qpm)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if not score.note_num():
        raise ValueError(
            f"{path}: no notes in its words (token text looks like 'p60 wait12 endp60', as `toccata tokenize` writes "
            "it); nothing written"
        )
    written = save_score(score, args.output)
    print(f"wrote {score.note_num()} notes from {path} to {written}", file=sys.stderr)
    return 0


def _cmd_build_dataset(args: argparse.Namespace) -> int:
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


def _cmd_crawl(args: argparse.Namespace) -> int:
    from toccata.dataset_builder.sources.crawler import CrawlConfig, crawl

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


def _cmd_save(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    import toccata
    import toccata.tokenization  # noqa: F401  registers NotewiseTokenizer with AutoTokenizer: the copy loads it
    from toccata.modeling.hub import copy_checkpoint

    hf_logging.disable_progress_bar()
    source = Path(args.source)
    if not source.is_dir():
        source = toccata.embedded_checkpoint(args.source) or source  # "default", "critic", "piano-violin": a shipped one
    dest = copy_checkpoint(source, args.dest, for_hub=args.for_hub)
    code = sorted(path.name for path in dest.glob("*.py"))
    print(f"wrote {dest}" + (f" with its code ({', '.join(code)})" if code else ""), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toccata", description="Compose piano music with a notewise LSTM.")
    commands = parser.add_subparsers(dest="command", required=True)

    tokenize = commands.add_parser("tokenize", help="MIDI or a score -> token text (stdout unless -o is given)")
    tokenize.add_argument(
        "source", help="a MIDI file, a score (.musicxml, .mxl, .krn, .abc, .mei), or corpus:WORK (corpus:bach/bwv66.6)"
    )
    tokenize.add_argument("-o", "--output", help="where to write the token text")
    tokenize.add_argument("--format", choices=["notewise", "clara"], default="notewise")
    tokenize.add_argument(
        "--tokenizer",
        choices=["notewise", *MIDITOK_CHOICES, *LEARNED_CHOICES],
        default=None,
        help="notewise (default): Toccata's words; notewise-miditok: the same as miditok token strings (NoteOn_60 "
        "...); remi, midilike, tsd: miditok's own at 12 steps per quarter, all tracks in one stream; notewise-bpe, "
        "chordwise: learnt schemes, which need --scheme",
    )
    tokenize.add_argument(
        "--scheme",
        metavar="FOLDER",
        help="a token scheme saved by TokenScheme.save (e.g. a dataset's tokenizer/ folder): write its words, as the "
        "dataset's tokens column holds them; needed by notewise-bpe and chordwise, works for any scheme",
    )
    tokenize.add_argument("--chamber", action="store_true", help="clara only: non-piano tracks become v/endv")
    tokenize.add_argument(
        "--instruments",
        help="notewise: piano,violin or piano,cello (as the duo models): tracks of that instrument get its own words "
        "(v67, c43) instead of joining the piano",
    )
    tokenize.add_argument("--safe", action="store_true", help="parse in a child process (untrusted files)")
    tokenize.set_defaults(run=_cmd_tokenize)

    detokenize = commands.add_parser("detokenize", help="token text -> MIDI")
    detokenize.add_argument("source", help="a token text file written by `toccata tokenize` (or Clara's .txt)")
    detokenize.add_argument("-o", "--output", required=True, help="the MIDI file to write")
    detokenize.add_argument("--format", choices=["notewise", "clara"], default="notewise")
    detokenize.add_argument("--qpm", type=float, help="tempo in quarter notes per minute (default: from the file)")
    detokenize.add_argument(
        "--scheme", metavar="FOLDER", help="read the words of this saved token scheme (as `tokenize --scheme` wrote)"
    )
    detokenize.set_defaults(run=_cmd_detokenize)

    roll = commands.add_parser("roll", help="the piano roll of a MIDI file or score (as the demo draws it) -> PNG")
    roll.add_argument("source", help="a MIDI file, a score (.musicxml, .mxl, .krn, .abc, .mei), or corpus:WORK")
    roll.add_argument("-o", "--output", required=True, help="the PNG file to write")
    roll.add_argument(
        "--compare", action="append", default=[], metavar="OTHER", help="another piece drawn below on the same scales"
    )
    roll.set_defaults(run=_cmd_roll)

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
    build.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (processes on this machine) or ray (a Ray cluster; pip install 'toccata[ray]'; docs/dataset.md)",
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
    build.add_argument(
        "--ensemble-rule",
        choices=["outer", "named"],
        default="outer",
        help="with --instruments: outer (the highest violin / lowest cello part) or named (the first part of that name)",
    )
    build.add_argument(
        "--tokenizer",
        choices=["notewise", "remi", "midilike", "tsd", "chordwise", "notewise-bpe"],
        default="notewise",
        help="notewise (default): the notewise column only; another scheme adds a tokens column of its words and "
        "saves the scheme in OUT/tokenizer/ (chordwise and notewise-bpe learn from the train split only)",
    )
    build.add_argument(
        "--bpe-vocab-size", type=int, help="with --tokenizer notewise-bpe: the vocabulary size, above 228 (e.g. 1024)"
    )
    build.add_argument("--max-files", type=int, default=10_000, help="URL sources: most MIDI files to crawl")
    build.add_argument("--min-delay", type=float, default=1.0, help="URL sources: seconds between requests")
    build.set_defaults(run=_cmd_build_dataset)

    crawl = commands.add_parser("crawl", help="fetch MIDI files politely from a site into a folder (resumable)")
    crawl.add_argument("url", nargs="+", help="start URLs (http or https)")
    crawl.add_argument("--out", required=True, help="folder for files/, metadata.jsonl and the crawl's state")
    crawl.add_argument("--allowed-host", action="append", help="hosts to follow links to (default: the start URLs')")
    crawl.add_argument("--max-files", type=int, default=10_000, help="stop after this many MIDI files")
    crawl.add_argument("--max-pages", type=int, default=100_000, help="stop after this many HTML pages")
    crawl.add_argument("--min-delay", type=float, default=1.0, help="seconds between requests to one host")
    crawl.set_defaults(run=_cmd_crawl)

    save = commands.add_parser("save", help="save a checkpoint folder again, with its code for the Hub (--for-hub)")
    save.add_argument(
        "source", help="a checkpoint folder, or an embedded one: default, critic, composer, piano-violin, piano-cello"
    )
    save.add_argument("dest", help="the folder to write (new or empty)")
    save.add_argument(
        "--for-hub",
        action="store_true",
        help="also write the modeling and tokenizer modules with an auto_map, so that trust_remote_code=True loads it "
        "without toccata: the folder to upload (huggingface_hub's `hf upload ORG/NAME DEST`)",
    )
    save.set_defaults(run=_cmd_save)

    add_generate_parser(commands)
    add_evaluate_parser(commands)
    add_demo_parser(commands)
    add_train_parser(commands)
    add_tune_parser(commands)
    add_classifier_parsers(commands)
    add_release_parsers(commands)
    add_inspect_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `toccata` console script; user errors print one line and exit with status 2, warnings
    (such as notes a file never switched off) one line each."""
    args = build_parser().parse_args(argv)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"toccata {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            return args.run(args)
        except ValueError as err:  # MidiError and friends name the file and the problem
            print(f"toccata {args.command}: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # a file that cannot be written (permissions, a full disk): strerror and the path
            print(f"toccata {args.command}: error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
