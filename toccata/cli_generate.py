"""`toccata generate`: arguments -> `GenerationRequest` -> `compose()` -> MIDI files. No sampling logic here.

toccata generate --sampler top_k --k 5 --temperature 1.0 --seconds 30 -o out.mid
toccata generate --model PATH_OR_REPO --prompt corpus:bach/bwv66.6 --num-samples 4 -o variations/piece.mid
toccata generate --instruments piano,violin --seconds 30 -o duo.mid      # the embedded piano + violin checkpoint
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields, replace

import toccata
from toccata.cli_io import add_choice, output_file, read_source


def add_generate_parser(commands: argparse._SubParsersAction) -> None:
    """Register the `generate` subcommand (without importing torch: `toccata tokenize` stays quick)."""
    gen = commands.add_parser("generate", help="compose a piece (or continue a prompt) and write MIDI")
    gen.add_argument("--model", help="checkpoint folder or Hub id (default: the embedded default checkpoint)")
    gen.add_argument(
        "--instruments",
        help="parts to compose for: piano (default), piano,violin or piano,cello; picks the matching embedded "
        "checkpoint (with --model: checks that the checkpoint has these parts)",
    )
    gen.add_argument("--random-weights", action="store_true", help="use an untrained model (for testing)")
    gen.add_argument("--trust-remote-code", action="store_true", help="run code from the checkpoint folder/repo")
    gen.add_argument(
        "-o", "--output", "--out", dest="output", default="out/generated.mid",
        help="MIDI file to write (default: %(default)s)",
    )  # fmt: skip
    gen.add_argument("--num-samples", type=int, default=1, help="variations, written as NAME-1.mid, NAME-2.mid, ...")
    gen.add_argument("--save-tokens", action="store_true", help="also write each piece's token text (.txt)")
    gen.add_argument(
        "--best-of",
        type=int,
        default=1,
        help="decode N candidates per piece in one batch; the embedded critic keeps the pieces it rates most human "
        "(with --num-samples S: the best S of all S x N)",
    )
    gen.add_argument("--critic", help="with --best-of: a critic folder (default: the embedded critic)")
    gen.add_argument(
        "--int8",
        action="store_true",
        help="decode with int8 weights: faster on a CPU, bits per note within 0.1%%, other notes than float32",
    )
    gen.add_argument(
        "--threads",
        type=int,
        help="torch threads for decoding (default: $OMP_NUM_THREADS, else 1: a step is too small to share, and more "
        "threads spin against any other busy core)",
    )
    gen.add_argument(
        "--audio",
        action=argparse.BooleanOptionalAction,
        help="also render each piece to WAV with FluidSynth (default: when FluidSynth and a GM soundfont are found)",
    )
    length = gen.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length of the continuation in seconds")
    length.add_argument("--beats", type=float, help="length of the continuation in quarter notes (default 64)")
    length.add_argument("--tokens", type=int, help="length of the continuation in tokens")
    gen.add_argument("--qpm", type=float, help="tempo in quarter notes per minute (default: the prompt's, or 120)")
    gen.add_argument("--prompt", help="MIDI file, score (.musicxml, .mxl, .krn, .abc ...) or corpus:WORK to continue")
    gen.add_argument(
        "--composer",
        help="in this composer's style, for a checkpoint trained with composer labels (its model card lists them)",
    )
    gen.add_argument(
        "--composer-guidance", type=float, metavar="G",
        help="how hard --composer steers, 0 to 10: 1 is the label alone; above 1, classifier-free guidance "
        "(default 3; docs/generation.md)",
    )  # fmt: skip
    add_choice(
        gen,
        "--prompt-from",
        ["start", "end"],
        "keep the prompt's opening bars (default: a whole piece is not continued after its final cadence) or its last "
        "bars",
    )
    gen.add_argument(
        "--prompt-beats",
        type=float,
        default=16.0,
        help="beats of the prompt to keep, rounded down to whole bars, at least one (default 16: 4 bars of 4/4)",
    )

    sampling = gen.add_argument_group("sampler (defaults: the checkpoint's preset)")
    sampling.add_argument("--sampler", help="greedy, top_n, weighted, top_k or mixed")
    sampling.add_argument("--temperature", type=float)
    sampling.add_argument("--seed", type=int, help="same seed + same settings = same music (default: random)")
    sampling.add_argument("--p-best", dest="p_best", type=float, help="top_n: probability of the best guess")
    sampling.add_argument("--n", type=int, help="top_n: the best guess and n-1 runners-up")
    sampling.add_argument("--k", type=int, help="top_k: draw among the k most likely")
    sampling.add_argument("--random-freq", dest="random_freq", type=float, help="mixed: share of weighted draws")
    sampling.add_argument("--trunc", type=int, help="mixed: weighted draws among the trunc most likely")

    guards = gen.add_argument_group("guards")
    guards.add_argument("--calmness", type=float, help="> 0 fewer notes and longer waits, < 0 busier")
    guards.add_argument("--no-grammar", dest="grammar", action="store_false", default=None)
    guards.add_argument("--no-rest-guard", dest="rest_guard", action="store_false", default=None)
    guards.add_argument("--max-silence-beats", dest="max_silence_beats", type=float)
    guards.add_argument("--max-polyphony", dest="max_polyphony", type=int)
    guards.add_argument("--max-note-beats", dest="max_note_beats", type=float)
    guards.add_argument(
        "--repeat-penalty", dest="repeat_penalty", type=float, help="> 0: re-strike the last onset's top note less"
    )
    guards.add_argument(
        "--no-part-entry", dest="part_entry", action="store_false", default=None,
        help="with a violin or cello: do not push a part that rests too long to enter",
    )
    guards.add_argument(
        "--max-part-rest-beats", dest="max_part_rest_beats", type=float,
        help="with a violin or cello: beats a part may rest before it is pushed to enter (default 16)",
    )
    gen.set_defaults(run=run_generate)


def _override(settings, args: argparse.Namespace):
    """`settings` with the fields the user gave on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(settings) if getattr(args, f.name, None) is not None}
    return replace(settings, **given)


def _load(args: argparse.Namespace):
    """(model, tokenizer) of --model, the default checkpoint, or random weights."""
    # start-up: torch, transformers and toccata.tokenization take seconds; `toccata --help` must not wait
    from toccata.modeling.hub import random_model
    from toccata.tokenization import NotewiseTokenizer

    instruments = getattr(args, "instruments", None)
    if args.random_weights:  # the same untrained weights every time, so that a printed command makes its piece again
        import torch  # start-up: as above

        tokenizer = NotewiseTokenizer(instruments=toccata.instrument_names(instruments))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return random_model(tokenizer), tokenizer
    if args.model is None and toccata.default_checkpoint(instruments) is None:
        raise ValueError(
            f"no embedded checkpoint for {instruments or 'piano'} (embedded: "
            f"{', '.join(toccata.available_instruments()) or 'none'}): pass --model PATH_OR_REPO (or --random-weights "
            "to try an untrained model)"
        )
    return toccata.load_checkpoint(args.model, trust_remote_code=args.trust_remote_code, instruments=instruments)


def _prompt(source: str | None):
    """The prompt as the tokenizer takes it: a MIDI path, or the MIDI bytes of a score or ``corpus:WORK``."""

    return None if source is None else read_source(source)


def _synth(wanted: bool | None):
    """The synthesizer for --audio: None when audio is off or (by default) unavailable; an error when asked for."""
    from toccata.rendering import INSTALL_HINT, Synth  # start-up: numpy and Pillow, for `generate` only

    if wanted is False:
        return None
    synth = Synth.find()
    if synth is None:
        if wanted:
            raise ValueError(f"--audio: no synthesizer found; {INSTALL_HINT}")
        print(f"no audio (MIDI only): to hear pieces as WAV, {INSTALL_HINT}", file=sys.stderr)
    return synth


def run_generate(args: argparse.Namespace) -> int:
    # start-up: torch and transformers take seconds; `toccata --help` must not wait
    from transformers.utils import logging as hf_logging

    from toccata.modeling import GenerationRequest, compose
    from toccata.modeling.decoding import set_decoding_threads
    from toccata.modeling.pipeline import describe_prompt
    from toccata.modeling.presets import preset_from_generation_config

    output = output_file(args.output, "MIDI file")  # before composing: a bad path costs nothing
    if output.suffix.lower() in (".txt", ".wav", ".flac"):
        raise ValueError(f"-o {output}: name the MIDI file (.mid); the tokens (.txt) and audio (.wav) go beside it")
    hf_logging.disable_progress_bar()
    set_decoding_threads(args.threads)
    model, tokenizer = _load(args)
    sampler, guards = preset_from_generation_config(model.generation_config)
    length_given = args.seconds is not None or args.tokens is not None
    beats = None if length_given else (64.0 if args.beats is None else args.beats)
    request = GenerationRequest(
        sampler=_override(sampler, args),
        guards=_override(guards, args),
        beats=beats,
        seconds=args.seconds,
        max_new_tokens=args.tokens,
        qpm=args.qpm,
        prompt_beats=args.prompt_beats,
        prompt_from=args.prompt_from,
        num_samples=args.num_samples,
        best_of=args.best_of,
        composer=args.composer,
        **({} if args.composer_guidance is None else {"composer_guidance": args.composer_guidance}),
    )
    if args.composer:  # an unknown name fails now, listing the known ones, not after the synthesizer is found
        compose_check = getattr(tokenizer, "composer_token_id", None)
        if compose_check is None:
            raise ValueError(f"--composer {args.composer!r}: this checkpoint has no composer labels")
        compose_check(args.composer)
    synth = _synth(args.audio)
    critic = None
    if args.best_of > 1:
        critic = toccata.default_critic_scorer(args.critic)
    pieces = compose(model, tokenizer, request, prompt=_prompt(args.prompt), critic=critic, int8=args.int8)
    prompt_line = describe_prompt(pieces[0], args.prompt)
    if prompt_line is not None:
        print(prompt_line if pieces[0].prompt_bars else f"toccata generate: warning: {prompt_line}", file=sys.stderr)
    retell = len(pieces) > 1 or args.best_of > 1 or args.seed is None  # the command says what the output cannot
    written = []
    for index, piece in enumerate(pieces, start=1):
        path = output if len(pieces) == 1 else output.with_name(f"{output.stem}-{index}{output.suffix or '.mid'}")
        written.append(_write_piece(piece, path, args, synth, asdict(guards) if retell else None))
    return 0 if all(written) else 2  # a piece without new notes is not written: nothing useful came of it


def _write_piece(piece, path, args: argparse.Namespace, synth, preset_guards: dict | None) -> bool:
    """Write `piece` to `path` (and its tokens and audio as asked), saying what was written; False, with an error
    line, when its continuation has no notes. `preset_guards` (the model's): also print the command for this piece."""
    from toccata.modeling.pipeline import NO_NEW_NOTES  # start-up: torch (run_generate has loaded it by now)

    if not piece.new_notes:
        print(f"toccata generate: error: {path}: {NO_NEW_NOTES}; not written", file=sys.stderr)
        return False
    piece.save(path)
    seconds = piece.score.end() / piece.score.ticks_per_quarter * 60.0 / piece.settings["qpm"]
    print(
        f"wrote {path} ({piece.score.note_num()} notes, {seconds:.1f} s, seed {piece.settings['piece_seed']})",
        file=sys.stderr,
    )
    if "candidates" in piece.settings:
        scores = [c["human_probability"] for c in piece.settings["candidates"]]
        chosen = piece.settings["chosen"]
        print(
            f"  best of {len(scores)} candidates: P(human) {scores[chosen]:.3f} "
            f"(all: {', '.join(f'{p:.2f}' for p in scores)})",
            file=sys.stderr,
        )
    if preset_guards is not None:
        again = generate_command(piece.settings, args.prompt, _model_args(args), str(path), True, preset_guards)
        print(f"  this piece again: {again}", file=sys.stderr)
    if args.save_tokens:
        text_path = path.with_suffix(".txt")
        text_path.write_text(piece.text, encoding="utf-8")
        print(f"wrote {text_path} ({len(piece.tokens)} notewise tokens)", file=sys.stderr)
    if synth is not None:
        print(f"wrote {synth.render(path, path.with_suffix('.wav'))} (FluidSynth)", file=sys.stderr)
    return True


def _model_args(args: argparse.Namespace) -> list[str]:
    """The arguments of `args` that choose the model, as `toccata generate` takes them."""
    words = ["--model", args.model] if args.model else []
    words += ["--instruments", args.instruments] if args.instruments else []
    words += ["--random-weights"] if args.random_weights else []
    return words + (["--trust-remote-code"] if args.trust_remote_code else [])


def _number(value: float) -> str:
    """`value` as short as it reads back exactly (1, 0.95, 0.123456789)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def generate_command(
    settings: dict,
    prompt: str | None,
    model_args: Sequence[str] = (),
    output: str | None = None,
    alone: bool = False,
    preset_guards: dict | None = None,
) -> str:
    """The `toccata generate` command that makes the same pieces again, from the settings `compose()` reports.

    `alone`: this one piece by itself, with its own seed (`settings["piece_seed"]`: every piece is the one its seed
    makes alone); else the whole request. `prompt`: what `--prompt` takes. `preset_guards`: the model's guard preset,
    so that bounds given on the command line (--max-polyphony, ...) are written too. The CLI and the demo print it."""
    from toccata.modeling.sampling import SAMPLER_PARAMETERS  # start-up: torch would slow every other command

    sampler, guards = settings["sampler"], settings["guards"]
    seed = settings["piece_seed"] if alone else sampler["seed"]
    words = ["toccata", "generate", *model_args, "--sampler", sampler["sampler"], "--seed", str(seed)]
    for name in SAMPLER_PARAMETERS[sampler["sampler"]]:
        words += [f"--{name.replace('_', '-')}", _number(sampler[name])]
    if settings["seconds"]:
        words += ["--seconds", _number(settings["seconds"])]
    elif settings["beats"]:
        words += ["--beats", _number(settings["beats"])]
    else:
        words += ["--tokens", str(settings["max_new_tokens"])]
    words += ["--qpm", _number(settings["qpm"])]
    if not alone:
        words += ["--num-samples", str(settings["num_samples"])]
        words += ["--best-of", str(settings["best_of"])] if settings.get("best_of", 1) > 1 else []
    words += ["--int8"] if settings.get("int8") else []
    if settings.get("composer"):
        words += ["--composer", settings["composer"], "--composer-guidance", _number(settings["composer_guidance"])]
    if prompt:
        words += ["--prompt", prompt, "--prompt-from", settings["prompt_from"]]
        words += ["--prompt-beats", _number(settings["prompt_beats"])] if settings["prompt_beats"] else []
    words += ["--calmness", _number(guards["calmness"])] if guards["calmness"] else []
    words += [] if guards["grammar"] else ["--no-grammar"]
    words += [] if guards["rest_guard"] else ["--no-rest-guard"]
    words += [] if guards["part_entry"] else ["--no-part-entry"]
    for name in ("max_polyphony", "max_note_beats", "max_silence_beats", "repeat_penalty", "max_part_rest_beats"):
        if (name == "repeat_penalty" and guards[name]) or (
            preset_guards is not None and guards[name] != preset_guards[name]
        ):
            words += [f"--{name.replace('_', '-')}", _number(guards[name])]
    words += ["-o", output] if output else []
    return " ".join(shlex.quote(word) for word in words)
