"""`toccata generate`: arguments -> `GenerationRequest` -> `compose()` -> MIDI files. No sampling logic here.

toccata generate --sampler top_k --k 5 --temperature 1.0 --seconds 30 -o out.mid
toccata generate --model PATH_OR_REPO --prompt corpus:bach/bwv66.6 --num-samples 4 -o variations/piece.mid
toccata generate --instruments piano,violin --seconds 30 -o duo.mid      # the embedded piano + violin checkpoint
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace


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
    gen.add_argument("-o", "--output", default="out/generated.mid", help="MIDI file to write (default: %(default)s)")
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
    gen.add_argument("--prompt-beats", type=float, default=16.0, help="beats of the prompt's end to keep")

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
    gen.set_defaults(run=run_generate)


def _override(settings, args: argparse.Namespace):
    """`settings` with the fields the user gave on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(settings) if getattr(args, f.name, None) is not None}
    return replace(settings, **given)


def _load(args: argparse.Namespace):
    """(model, tokenizer) of --model, the default checkpoint, or random weights."""
    import toccata
    from toccata.modeling.hub import random_model
    from toccata.tokenization import NotewiseTokenizer

    instruments = getattr(args, "instruments", None)
    if args.random_weights:
        tokenizer = NotewiseTokenizer(instruments=toccata._instrument_names(instruments))
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
    from toccata.cli import _read_source  # imported here: cli imports this module

    return None if source is None else _read_source(source)


def _synth(wanted: bool | None):
    """The synthesizer for --audio: None when audio is off or (by default) unavailable; an error when asked for."""
    from toccata.audio import INSTALL_HINT, Synth

    if wanted is False:
        return None
    synth = Synth.find()
    if synth is None:
        if wanted:
            raise ValueError(f"--audio: no synthesizer found; {INSTALL_HINT}")
        print(f"no audio (MIDI only): to hear pieces as WAV, {INSTALL_HINT}", file=sys.stderr)
    return synth


def run_generate(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from toccata.modeling import GenerationRequest, compose
    from toccata.modeling.sampling import preset_from_generation_config

    from toccata.cli import output_file  # imported here: cli imports this module

    output = output_file(args.output, "MIDI file")  # before composing: a bad path costs nothing
    if output.suffix.lower() in (".txt", ".wav", ".flac"):
        raise ValueError(f"-o {output}: name the MIDI file (.mid); the tokens (.txt) and audio (.wav) go beside it")
    hf_logging.disable_progress_bar()
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
        num_samples=args.num_samples,
        best_of=args.best_of,
    )
    synth = _synth(args.audio)
    critic = None
    if args.best_of > 1:
        import toccata

        critic = toccata.default_critic_scorer(args.critic)
    pieces = compose(model, tokenizer, request, prompt=_prompt(args.prompt), critic=critic, int8=args.int8)
    for index, piece in enumerate(pieces, start=1):
        path = output if len(pieces) == 1 else output.with_name(f"{output.stem}-{index}{output.suffix or '.mid'}")
        piece.save(path)
        seconds = piece.score.end() / piece.score.ticks_per_quarter * 60.0 / piece.settings["qpm"]
        print(
            f"wrote {path} ({piece.score.note_num()} notes, {seconds:.1f} s, seed {piece.settings['sampler']['seed']})",
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
        if args.save_tokens:
            text_path = path.with_suffix(".txt")
            text_path.write_text(piece.text, encoding="utf-8")
            print(f"wrote {text_path} ({len(piece.tokens)} notewise tokens)", file=sys.stderr)
        if synth is not None:
            print(f"wrote {synth.render(path, path.with_suffix('.wav'))} (FluidSynth)", file=sys.stderr)
    return 0
