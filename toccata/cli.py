"""The `toccata` command: a thin layer over the package, holding no logic of its own.

    toccata tokenize FILE.mid [-o OUT.txt] [--format notewise|clara]
    toccata detokenize FILE.txt -o OUT.mid [--format notewise|clara]

A source may be a MIDI path or ``corpus:WORK``, a work of music21's bundled corpus (e.g. ``corpus:bach/bwv66.6``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CORPUS_PREFIX = "corpus:"


def _read_source(source: str) -> tuple[object, str]:
    """(MIDI source for the tokenizer, a short stem for output names) of a path or ``corpus:WORK``."""
    from toccata.tokenization.midi_io import music21_corpus_midi

    if source.startswith(CORPUS_PREFIX):
        work = source[len(CORPUS_PREFIX) :]
        return music21_corpus_midi(work), Path(work).name
    return source, Path(source).stem


def _cmd_tokenize(args: argparse.Namespace) -> int:
    src, stem = _read_source(args.source)
    out = Path(args.output) if args.output else None
    if args.format == "clara":
        from toccata.tokenization.clara import midi_to_clara_text

        text = midi_to_clara_text(src, chamber=args.chamber, safe=args.safe) + "\n"
        count = len(text.split())
    else:
        from toccata.tokenization import NotewiseTokenizer

        encoding = NotewiseTokenizer().encode_midi(src, safe=args.safe)
        text, count = encoding.to_text(), len(encoding.tokens)
    if out is None:
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {count} {args.format} tokens of {args.source} to {out}", file=sys.stderr)
    return 0


def _cmd_detokenize(args: argparse.Namespace) -> int:
    from toccata.tokenization.midi_io import save_score

    path = Path(args.source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read token text ({err})") from None
    if args.format == "clara":
        from toccata.tokenization.clara import clara_text_to_midi

        score = clara_text_to_midi(text, qpm=args.qpm or 120.0)
    else:
        from toccata.tokenization import NotewiseTokenizer, parse_token_text

        encoding = parse_token_text(text)
        score = NotewiseTokenizer().tokens_to_midi(encoding.tokens, meta=encoding.meta, qpm=args.qpm)
    written = save_score(score, args.output)
    print(f"wrote {score.note_num()} notes from {path} to {written}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toccata", description="Compose piano music with a notewise LSTM.")
    commands = parser.add_subparsers(dest="command", required=True)

    tokenize = commands.add_parser("tokenize", help="MIDI -> token text (prints to stdout unless -o is given)")
    tokenize.add_argument("source", help="a MIDI file, or corpus:WORK from music21's corpus (corpus:bach/bwv66.6)")
    tokenize.add_argument("-o", "--output", help="where to write the token text")
    tokenize.add_argument("--format", choices=["notewise", "clara"], default="notewise")
    tokenize.add_argument("--chamber", action="store_true", help="clara only: non-piano tracks become v/endv")
    tokenize.add_argument("--safe", action="store_true", help="parse in a child process (untrusted files)")
    tokenize.set_defaults(run=_cmd_tokenize)

    detokenize = commands.add_parser("detokenize", help="token text -> MIDI")
    detokenize.add_argument("source", help="a token text file written by `toccata tokenize` (or Clara's .txt)")
    detokenize.add_argument("-o", "--output", required=True, help="the MIDI file to write")
    detokenize.add_argument("--format", choices=["notewise", "clara"], default="notewise")
    detokenize.add_argument("--qpm", type=float, help="tempo in quarter notes per minute (default: from the file)")
    detokenize.set_defaults(run=_cmd_detokenize)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `toccata` console script; user errors print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # MidiError and friends name the file and the problem
        print(f"toccata {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
