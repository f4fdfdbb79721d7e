"""The `toccata` command: a thin layer over the package, holding no logic of its own.

    toccata tokenize FILE.mid|FILE.musicxml|FILE.krn|... [-o OUT.txt] [--format notewise|clara] [--tokenizer notewise|notewise-miditok|remi|...]
    toccata tokenize FILE.mid --tokenizer notewise-bpe|chordwise --scheme FOLDER   (a scheme saved by TokenScheme.save)
    toccata detokenize FILE.txt -o OUT.mid [--format notewise|clara] [--scheme FOLDER]
    toccata roll FILE.mid|FILE.musicxml|... -o ROLL.png [--compare OTHER.mid]
    toccata save SOURCE DEST [--for-hub]   (a checkpoint folder, or an embedded one by name: default, critic, ...)
    toccata critic train|score ...; toccata composer train|predict ...   (cli_critic.py)
    toccata tune --generator G --critic C --out OUT [--rounds N ...]    (cli_tune.py: preference tuning, DPO)
    toccata preset|preset-search|publish|chamber ...                     (cli_release.py)
    toccata look|best-of|instrument-stats ...                            (cli_inspect.py)
    toccata build-dataset|crawl ...                                      (cli_dataset.py)

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

import toccata
from toccata.cli_critic import add_classifier_parsers
from toccata.cli_dataset import add_dataset_parsers
from toccata.cli_demo import add_demo_parser
from toccata.cli_evaluate import add_evaluate_parser
from toccata.cli_generate import add_generate_parser
from toccata.cli_inspect import add_inspect_parsers
from toccata.cli_io import CORPUS_PREFIX, add_choice, output_file, read_source
from toccata.cli_release import add_release_parsers
from toccata.cli_train import add_train_parser
from toccata.cli_tune import add_tune_parser

MIDITOK_CHOICES = ("notewise-miditok", "remi", "midilike", "tsd")  # miditok's own settings, no scheme folder needed
LEARNED_CHOICES = ("notewise-bpe", "chordwise")  # token schemes that learn from data: need --scheme FOLDER
FORMATS = ("notewise", "clara")  # --format: Toccata's token text or Clara's


def _tokenize_scheme(args: argparse.Namespace):
    """The token scheme `tokenize` writes: ``--scheme FOLDER`` (checked against ``--tokenizer``), Clara's text, notewise
    (with ``--instruments``) or a miditok tokenizer with its own settings; flags that do not fit are refused."""
    # start-up: toccata.tokenization loads transformers and miditok (seconds); `toccata --help` must not wait
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
        return load_scheme("notewise", instruments=toccata.instrument_names(args.instruments))
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
    # start-up: numpy, Pillow and toccata.tokenization (seconds) load only for this command, not for `toccata --help`
    import numpy as np

    from toccata.rendering import piano_rolls
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
    # start-up: toccata.tokenization loads transformers and miditok (seconds); `toccata --help` must not wait
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


def _cmd_save(args: argparse.Namespace) -> int:
    # start-up: transformers, torch and toccata.tokenization take seconds; `toccata --help` must not wait
    from transformers.utils import logging as hf_logging

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
    add_choice(tokenize, "--format", FORMATS)
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
    add_choice(detokenize, "--format", FORMATS)
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

    add_dataset_parsers(commands)

    save = commands.add_parser("save", help="save a checkpoint folder again, with its code for the Hub (--for-hub)")
    save.add_argument(
        "source", help="a checkpoint folder, or an embedded one: default, critic, composer, piano-violin, piano-cello, piano-trio"
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
