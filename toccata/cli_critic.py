"""`toccata critic` and `toccata composer`: arguments -> `classifiers.tasks` / `classifiers.model`.

toccata critic train --generator toccata/checkpoints/default --dataset data/piano --out runs/critic [--from-scratch] [--resume]
toccata critic score piece.mid other.mid [--model runs/critic]          # P(human) per file (default: embedded)
toccata critic check --critic runs/critic --dataset data/piano --split test [--generator G --samples N] [--tokens 0]
toccata composer train --dataset data/piano --out runs/composer [--generator PATH] [--from-scratch]
toccata composer predict piece.mid [--model runs/composer] [--top 3]
toccata composer control --generator RUN --dataset data/piano100 [--model runs/composer] [--samples 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import toccata
from toccata.cli_io import read_source


def add_classifier_parsers(commands: argparse._SubParsersAction) -> None:
    """Register `critic` and `composer` (imports torch only when they run)."""
    for task, help_text in (
        ("critic", "tell human-composed music from generated or spoilt music: train, score, check"),
        ("composer", "name the composer of a piece: train, predict"),
    ):
        cmd = commands.add_parser(task, help=help_text)
        actions = cmd.add_subparsers(dest="action", required=True)
        _add_train(actions.add_parser("train", help=f"train a {task} on a built dataset"), task)
        use = actions.add_parser(
            "score" if task == "critic" else "predict",
            help="P(human) per file: the critic's probability that a human wrote it"
            if task == "critic"
            else "the most likely composers per file, among those the classifier knows (it says which)",
        )
        use.add_argument("files", nargs="+", help="MIDI files, scores (.musicxml, .krn ...), or corpus:WORK")
        use.add_argument("--model", help=f"a {task} checkpoint folder or Hub id (default: the embedded one)")
        use.add_argument("--trust-remote-code", action="store_true", help="run code from the checkpoint folder/repo")
        use.add_argument("--json", action="store_true", help="print one JSON object per file")
        if task == "composer":
            use.add_argument("--top", type=int, default=3, help="composers listed per file (default %(default)s)")
        use.set_defaults(run=run_use, task=task)
        if task == "critic":
            use.description = SCORE_MEANING
            _add_check(actions)
        else:
            _add_control(actions)


SCORE_MEANING = (
    "Prints, per file, P(human): the critic's probability that a human wrote the music (0..1), the mean over up to "
    "16 evenly spread excerpts of the critic's excerpt length (in tokens). It was trained on real piano music against "
    "generated samples and real music spoilt in ways a listener hears (scrambled pitches, shuffled rhythm, ...); "
    "`toccata critic check` measures how well it tells them apart."
)


def _add_check(actions: argparse._SubParsersAction) -> None:
    cmd = actions.add_parser(
        "check",
        help="ROC AUC of real excerpts against each kind of spoilt or generated one, and a reliability curve",
        description="Scores real excerpts of a dataset split the critic never saw, the same excerpts spoilt in each "
        "way of toccata.classifiers.corruptions, and (with --generator/--samples) a generator's samples; prints the "
        "ROC AUC of real against each kind (1: always prefers real, 0.5: chance) and the reliability curve of its "
        "P(human).",
    )
    cmd.add_argument("--critic", help="the critic folder or Hub id (default: the embedded one)")
    cmd.add_argument("--dataset", required=True, help="built dataset folder or Hub id")
    cmd.add_argument("--split", default="test", help="the split to check on (default %(default)s)")
    cmd.add_argument("--generator", help="a generator checkpoint whose samples are one more kind (with --samples)")
    cmd.add_argument("--samples", type=int, default=0, help="samples of --generator to score (default 0: none)")
    cmd.add_argument(
        "--tokens", type=int, help="tokens per excerpt, two excerpts per piece (default: 512, the check's length); 0: "
        "whole pieces and samples, each spoilt whole and scored as `critic score` scores a file"
    )
    cmd.add_argument(
        "--samples-cache", metavar="DIR", help="keep --generator's samples in DIR and reuse them in the next check of "
        "the same generator (a critic's OUT/samples holds its generator's test samples already)"
    )
    cmd.add_argument("--json", action="store_true", help="print the check as JSON")
    cmd.set_defaults(run=run_check, task="critic")


def _add_control(actions: argparse._SubParsersAction) -> None:
    cmd = actions.add_parser(
        "control",
        help="does --composer NAME work? the classifier names the composer of samples asked for each label",
        description="Generates --samples pieces per composer label of a generator trained with labels (its preset), "
        "and as many unconditioned, and prints how often the composer classifier names the composer asked for "
        "(top-1, top-3) against chance and against the same classifier on that composer's real held-out pieces.",
    )
    cmd.add_argument("--generator", required=True, help="a generator checkpoint trained with composer labels")
    cmd.add_argument("--model", help="the composer classifier folder or Hub id (default: the embedded one)")
    cmd.add_argument("--dataset", help="built dataset: the classifier on real pieces of --split, the ceiling")
    cmd.add_argument("--split", default="test", help="the split of --dataset (default %(default)s)")
    cmd.add_argument("--composers", help="comma-separated labels to ask for (default: every label both know)")
    cmd.add_argument("--samples", type=int, default=10, help="samples per composer (default %(default)s)")
    cmd.add_argument("--tokens", type=int, default=1000, help="tokens per sample (default %(default)s)")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument(
        "--guidance", type=float,
        help="composer guidance of the conditioned samples: 1 the label alone, above 1 classifier-free guidance "
        "(default: compose()'s, 3)",
    )  # fmt: skip
    cmd.add_argument("--out", help="also write the report here: FILE.md (the table) and FILE.json")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    cmd.set_defaults(run=run_control, task="composer")


def run_control(args: argparse.Namespace) -> int:
    # start-up: torch and transformers load only for this command, not for `toccata --help`
    from toccata.classifiers.composer_control import composer_control
    from toccata.classifiers.model import load_classifier

    folder = args.model or toccata.default_composer()
    if folder is None:
        raise ValueError("no embedded composer classifier in this install: pass --model PATH")
    classifier, classifier_tokenizer = load_classifier(folder)
    generator, tokenizer = toccata.load_checkpoint(args.generator)
    composers = [name.strip() for name in args.composers.split(",")] if args.composers else None
    report = composer_control(
        generator, tokenizer, classifier, classifier_tokenizer, samples=args.samples, tokens=args.tokens,
        seed=args.seed, composers=composers, dataset=args.dataset, split=args.split,
        **({} if args.guidance is None else {"guidance": args.guidance}),
    )  # fmt: skip
    if args.out:
        out = Path(args.out).with_suffix("")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(report.markdown())
        out.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=2))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.markdown())
    return 0


def _add_train(cmd: argparse.ArgumentParser, task: str) -> None:
    cmd.add_argument("--dataset", required=True, help="built dataset folder or Hub id (train, validation, test)")
    cmd.add_argument("--out", required=True, help="the classifier folder to write (samples cached in OUT/samples)")
    cmd.add_argument("--generator", help="generator checkpoint: the encoder and the samples (default: embedded)")
    cmd.add_argument("--from-scratch", action="store_true", help="random encoder instead of the generator's")
    cmd.add_argument("--steps", type=int, default=300, help="optimizer steps (default %(default)s)")
    cmd.add_argument("--batch-size", type=int, default=32, help="excerpts per step (default %(default)s)")
    cmd.add_argument("--excerpt-tokens", type=int, default=256, help="tokens per excerpt (default %(default)s)")
    cmd.add_argument("--learning-rate", type=float, default=2e-3, help="(default %(default)s)")
    cmd.add_argument("--unfreeze-every", type=int, help="steps per unfrozen layer group (default steps/8; 0: off)")
    cmd.add_argument("--max-transpose", type=int, default=6, help="random transposition, ± semitones")
    cmd.add_argument("--eval-every", type=int, default=50, help="validation every N steps (best weights kept)")
    cmd.add_argument("--license", default="unknown", help="licence of the weights for the model card")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUT/checkpoints")
    if task == "critic":
        cmd.add_argument(
            "--train-samples", type=int, default=384, help="generated samples for training (default %(default)s)"
        )
        cmd.add_argument("--validation-samples", type=int, default=64, help="(default %(default)s)")
        cmd.add_argument("--test-samples", type=int, default=128, help="(default %(default)s)")
        cmd.add_argument("--sample-beats", type=float, default=96.0, help="length of each sample in quarter notes")
        cmd.add_argument(
            "--negatives",
            help="shares of the negative class, kind=share: generator (its samples), corrupted (real excerpts "
            "spoilt on the fly), weaker (the generator hot, an untrained model, a 5-gram) "
            "(default generator=0.4,corrupted=0.4,weaker=0.2)",
        )
        cmd.add_argument(
            "--weaker-temperature", type=float, default=1.8, help="temperature of the generator's weaker samples"
        )
        cmd.add_argument(
            "--weaker-from", action="append", default=[], metavar="CHECKPOINT",
            help="another generator whose samples (with its preset) join the weaker negatives, e.g. a model tuned "
            "against an earlier critic (repeatable)",
        )  # fmt: skip
        cmd.add_argument(
            "--paired", action="store_true",
            help="put each corrupted training excerpt beside its unspoilt original in the batch, so that only the "
            "corruption tells them apart (helps the subtle ones: bars reordered, reversed)",
        )  # fmt: skip
    else:
        cmd.add_argument("--min-pieces", type=int, default=5, help="training pieces a composer needs to be a class")
    cmd.set_defaults(run=run_train, task=task)


def run_train(args: argparse.Namespace) -> int:
    from toccata.classifiers.tasks import ClassifierTask, train_task  # start-up: torch; `toccata --help` must not wait

    generator = args.generator or toccata.default_checkpoint()
    if generator is None:
        raise ValueError("no embedded default checkpoint in this install: pass --generator PATH")
    if not Path(args.dataset).exists() and "/" not in args.dataset:
        raise ValueError(f"{args.dataset}: no such dataset folder; build one with `toccata build-dataset --out FOLDER`")
    options = {
        "task": args.task,
        "dataset": args.dataset,
        "output_dir": args.out,
        "generator": str(generator),
        "pretrained": not args.from_scratch,
        "excerpt_tokens": args.excerpt_tokens,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "unfreeze_every": args.unfreeze_every,
        "max_transpose": args.max_transpose,
        "eval_every": args.eval_every,
        "license": args.license,
        "seed": args.seed,
    }
    if args.task == "critic":
        options.update(
            train_samples=args.train_samples,
            validation_samples=args.validation_samples,
            test_samples=args.test_samples,
            sample_beats=args.sample_beats,
            weaker_temperature=args.weaker_temperature,
            weaker_from=tuple(args.weaker_from),
            paired=args.paired,
        )
        if args.negatives is not None:
            options["negatives"] = args.negatives
    else:
        options["min_pieces"] = args.min_pieces
    summary = train_task(ClassifierTask(**options), log=lambda line: print(line, file=sys.stderr), resume=args.resume)
    print(json.dumps(summary["test"], indent=2), file=sys.stderr)
    print(f"wrote the {args.task} to {args.out} (use it with --model {args.out})", file=sys.stderr)
    return 0


def _tokens(source: str, tokenizer) -> list[str]:

    if not source.startswith("corpus:") and not Path(source).is_file():
        raise ValueError(f"{source}: no such file; give a MIDI file, a score or corpus:WORK")
    return tokenizer.midi_to_tokens(read_source(source), safe=True)


def run_use(args: argparse.Namespace) -> int:
    # start-up: numpy, torch and transformers load only for this command, not for `toccata --help`
    import numpy as np

    from toccata.classifiers.data import windows
    from toccata.classifiers.model import (
        MAX_WINDOWS,
        critic_scores,
        excerpt_tokens,
        load_classifier,
        sequence_probabilities,
    )

    source = args.model or (toccata.default_critic() if args.task == "critic" else toccata.default_composer())
    if source is None:
        raise ValueError(f"no embedded {args.task} checkpoint in this install: pass --model PATH")
    model, tokenizer = load_classifier(source, trust_remote_code=args.trust_remote_code)
    task = (getattr(model.config, "toccata_classifier", None) or {}).get("task")
    if task and task != args.task:
        raise ValueError(f"{source}: is a {task} checkpoint, not a {args.task}; use `toccata {task}`")
    if args.task == "composer":  # a piece by anyone else still gets one of these: say who they are
        known = [model.config.id2label[i] for i in sorted(model.config.id2label, key=int)]
        print(
            f"this classifier knows {len(known)} composers ({', '.join(known)}); a piece by anyone else is named "
            "after the nearest of them",
            file=sys.stderr,
        )
    length = excerpt_tokens(model)
    if args.task == "critic" and not args.json:
        print(f"P(human): the critic's probability that a human wrote the file ({source})", file=sys.stderr)
    for path in args.files:
        tokens = _tokens(path, tokenizer)
        if not tokens:
            raise ValueError(f"{path}: no notes to score")
        if args.task == "critic":
            score = critic_scores(model, tokenizer, [tokens])[0]
            if args.json:
                print(json.dumps({"file": path, "p_human": score}))
            else:
                count = len(windows(np.arange(len(tokens)), length, MAX_WINDOWS))
                print(f"{path}\tP(human) {score:.3f}, the mean over {count} excerpt(s) of {length} tokens")
            continue
        probs = sequence_probabilities(model, tokenizer, [tokens])[0]
        best = probs.argsort()[::-1][: max(1, args.top)]
        ranked = [(model.config.id2label[int(i)], float(probs[i])) for i in best]
        if args.json:
            print(json.dumps({"file": path, "composers": [{"composer": c, "p": p} for c, p in ranked]}))
        else:
            print(f"{path}\t" + "\t".join(f"{c} {p:.3f}" for c, p in ranked))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from toccata.classifiers.critic_check import EXCERPT_TOKENS, check_folder  # start-up: torch, as run_train's
    from toccata.classifiers.model import MAX_WINDOWS  # start-up: as above

    critic = args.critic or toccata.default_critic()
    if critic is None:
        raise ValueError("no embedded critic in this install: pass --critic PATH")
    if args.samples < 0 or (args.samples and not args.generator):
        raise ValueError("--samples N needs N >= 0 and --generator PATH (the generator to sample)")
    if args.samples_cache and not args.samples:
        raise ValueError("--samples-cache DIR keeps a generator's samples: give --generator PATH and --samples N too")
    if not Path(args.dataset).exists() and "/" not in args.dataset:
        raise ValueError(f"{args.dataset}: no such dataset folder; build one with `toccata build-dataset --out FOLDER`")
    tokens = EXCERPT_TOKENS if args.tokens is None else args.tokens
    if tokens < 0:
        raise ValueError(f"--tokens {tokens}: give a positive excerpt length, or 0 for whole pieces")
    check = check_folder(critic, args.dataset, args.split, args.generator, args.samples, log=_stderr, tokens=tokens,
                         samples_cache=args.samples_cache)  # fmt: skip
    if args.json:
        print(json.dumps(asdict(check), indent=2))
    else:
        unit = (
            f"excerpts of {tokens} tokens, P(human) per excerpt"
            if tokens
            else f"whole pieces, P(human) per piece (the mean over up to {MAX_WINDOWS} excerpts, as `critic score`)"
        )
        print(f"critic {critic} on {args.dataset} [{args.split}]; {unit}\n")
        print(check.markdown())
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
