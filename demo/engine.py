"""The demo's work without the UI: load a model once, then per request read the prompt, compose, and render
MIDI, audio and piano rolls into a folder. The UI only turns form values into `DemoSettings` and shows a `Result`."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from toccata.modeling import GeneratedPiece, GuardSettings, SamplerSettings, compose
from toccata.modeling.batching import ContinuousBatcher
from toccata.modeling.decoding import set_decoding_threads
from toccata.modeling.hub import load_checkpoint, random_model
from toccata.modeling.pipeline import NO_NEW_NOTES, describe_prompt
from toccata.modeling.presets import preset_from_generation_config
from toccata.modeling.quantized import int8_available
from toccata.tokenization import NotewiseTokenizer

import toccata
from toccata.cli_generate import generate_command
from toccata.rendering import SYNTH_MISSING, Synth, piano_roll, roll_notes

from .form import DemoSettings
from .prompt import read_prompt

RANDOM_WEIGHTS_SEED = 0  # the untrained model is the same in every process, so settings reproduce a piece


@dataclass(frozen=True)
class RenderedPiece:
    """One variation as files: MIDI, WAV (None without a synthesizer), piano roll PNG; and its token text."""

    midi: Path
    audio: Path | None
    roll: Path
    text: str
    notes: int
    seconds: float
    best_of: int = 1  # candidates the critic chose among (1: no choice)
    human_probability: float | None = None  # the critic's P(human) of this piece, when it chose it


@dataclass(frozen=True)
class Result:
    """What one request produced, and how to make it again."""

    pieces: list[RenderedPiece]
    settings: dict  # compose()'s settings with the seed used, plus the prompt and the model
    command: str  # the `toccata generate` command line for the same pieces
    notices: tuple[str, ...] = ()  # things the user should know (no synthesizer, ...)


@dataclass(frozen=True)
class Engine:
    """A loaded model and tokenizer, the synthesizer if any, and how to name the model in settings."""

    model: Any
    tokenizer: Any
    model_label: str
    trained: bool
    synth: Synth | None = field(default_factory=lambda: Synth.find(engine="workers"))  # renders beside the server
    model_args: tuple[str, ...] = ()  # `toccata generate` arguments that select this model
    batcher: ContinuousBatcher | None = None  # one decoding loop for all requests; None: each decodes on its own
    instruments: str = "piano"  # the parts this model writes
    int8: bool = False  # decode with int8 weights (`modeling/quantized.py`), with or without the batcher
    variants: dict = field(default_factory=dict, compare=False)  # instruments -> Engine, loaded on first use
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def variant(self, instruments: str) -> Engine:
        """The engine for `instruments`: this one, or the embedded checkpoint for them (loaded once, with its own
        batcher). A demo started with `--model` or random weights serves that model's instruments only."""
        if instruments == self.instruments:
            return self
        if self.model_args:
            raise ValueError(
                f"this demo serves {self.model_label}, which writes {self.instruments}: choose {self.instruments}"
            )
        with self.lock:
            if instruments not in self.variants:
                folder = toccata.default_checkpoint(instruments)  # a ValueError naming the available sets
                if folder is None:
                    raise ValueError(f"no checkpoint for {instruments} in this install: choose piano")
                model, tokenizer = toccata.load_checkpoint(str(folder))
                batcher = ContinuousBatcher(model.eval(), int8=self.int8) if self.batcher is not None else None
                label = f"the {instruments.replace(',', ' + ')} checkpoint"
                self.variants[instruments] = Engine(
                    model,
                    tokenizer,
                    label,
                    True,
                    self.synth,
                    ("--instruments", instruments),
                    batcher,
                    instruments,
                    int8=self.int8,
                )
            return self.variants[instruments]

    def presets(self) -> tuple[SamplerSettings, GuardSettings]:
        """The checkpoint's default sampler and guards (the form starts from them)."""
        return preset_from_generation_config(self.model.generation_config)

    def composers(self) -> tuple[str, ...]:
        """The composer labels this model was trained with (its tokenizer's), for the form's style choice."""
        return tuple(getattr(self.tokenizer, "composers", ()) or ())

    def critic(self):
        """The embedded critic as a scorer (token lists -> P(human) each), loaded once per process, for best-of-N."""
        if toccata.default_critic() is None:
            raise ValueError("best of N needs a critic, and this install has none: set best of to 1")
        return toccata.default_critic_scorer()

    def notice(self) -> str:
        """Markdown naming the model, with a warning when it is untrained."""
        if self.trained:
            return f"Model: **{self.model_label}**."
        return (
            "⚠️ **Untrained model: random weights.** No trained checkpoint is installed, so expect notes that obey "
            "the guards rather than music. Start the demo with `toccata demo --model PATH_OR_REPO` to use one."
        )

    def run(
        self,
        settings: DemoSettings,
        out_dir: Path,
        progress=None,
        cancel: threading.Event | None = None,
    ) -> Result:
        """Read the prompt, compose `settings.variations` pieces and render each into `out_dir`.

        Raises ValueError (MidiError included) with a message for the user, `GenerationCancelled` if cancelled.
        """
        if settings.instruments != self.instruments:
            engine = self.variant(settings.instruments)
            _, preset = engine.presets()  # its own bounds (polyphony, ...); the form's switches on top
            guards = replace(
                preset,
                grammar=settings.guards.grammar,
                rest_guard=settings.guards.rest_guard,
                calmness=settings.guards.calmness,
                repeat_penalty=settings.guards.repeat_penalty,
                part_entry=settings.guards.part_entry,
            )
            return engine.run(replace(settings, guards=guards), out_dir, progress, cancel)
        prompt = read_prompt(settings.prompt)
        meta = prompt.meta
        request = settings.request(meta.qpm if meta else None, meta.time_signature if meta else (4, 4))
        pieces = compose(
            self.model,
            self.tokenizer,
            request,
            prompt=prompt.score,
            progress=progress,
            cancel=cancel,
            batcher=self.batcher,
            critic=self.critic() if settings.best_of > 1 else None,
            int8=self.int8,
        )
        rendered, failures = self._render_all(pieces, out_dir)
        notices = ([] if self.synth else [SYNTH_MISSING]) + failures
        label = prompt.label.removeprefix("upload:").removeprefix("corpus:") if prompt.score is not None else None
        told = describe_prompt(pieces[0], label)  # which bars of the prompt were kept, or that it had no notes
        if told is not None and pieces[0].prompt_bars is None:
            notices.append(f"{told[0].upper()}{told[1:]}.")
        notices += [f"Variation {i}: {NO_NEW_NOTES}." for i, piece in enumerate(pieces, start=1) if not piece.new_notes]
        report = {**pieces[0].settings, "prompt": prompt.label, "model": self.model_label}
        report.pop("piece_seed")  # the request's seed makes them all; each piece's own is in its file name
        if told is not None and pieces[0].prompt_bars is not None:
            report["prompt_kept"] = told
        if settings.best_of > 1 and len(pieces) > 1:  # each variation kept its own candidate
            report["chosen"] = [piece.settings["chosen"] for piece in pieces]
        command = generate_command(report, prompt.cli_argument, self.model_args)
        return Result(rendered, report, command, tuple(dict.fromkeys(notices)))

    def _render_all(self, pieces: list[GeneratedPiece], out_dir: Path) -> tuple[list[RenderedPiece], list[str]]:
        """Each piece's files, and a notice for each render that failed, in the pieces' order. Several variations render
        side by side (the synthesizer's render workers are one per core), so a request for four waits for about two
        renders on two cores, not four."""
        notices: list[list[str]] = [[] for _ in pieces]  # one list per piece: the threads never share one
        jobs = [(piece, index, out_dir, notices[index - 1]) for index, piece in enumerate(pieces, start=1)]
        if len(jobs) == 1:
            rendered = [self._render(*jobs[0])]
        else:
            with ThreadPoolExecutor(len(jobs), thread_name_prefix="toccata-render") as pool:
                rendered = list(pool.map(lambda job: self._render(*job), jobs))
        return rendered, [notice for own in notices for notice in own]

    def _render(self, piece: GeneratedPiece, index: int, out_dir: Path, notices: list[str]) -> RenderedPiece:
        stem = f"toccata-{piece.settings['sampler']['seed']}-{index}"
        midi = piece.save(out_dir / f"{stem}.mid")
        roll = piano_roll(roll_notes(self.tokenizer, piece.tokens), piece.prompt_quarters, out_dir / f"{stem}.png")
        audio = None
        if self.synth is not None:
            try:
                audio = self.synth.render(midi, out_dir / f"{stem}.flac")  # lossless, 40% of the WAV
            except RuntimeError as err:
                notices.append(f"No audio for variation {index}: {err}. The MIDI file is below.")
        seconds = piece.score.end() / piece.score.ticks_per_quarter * 60.0 / piece.settings["qpm"]
        chosen, candidates = piece.settings.get("chosen"), piece.settings.get("candidates")
        p_human = candidates[chosen]["human_probability"] if chosen is not None and candidates else None
        best_of = piece.settings.get("best_of", 1)
        return RenderedPiece(midi, audio, roll, piece.text, piece.score.note_num(), seconds, best_of, p_human)


def load_engine(
    model: str | None = None,
    trust_remote_code: bool = False,
    torch_threads: int | None = None,
    batching: bool = True,
    int8: bool = True,
) -> Engine:
    """An `Engine` for `model` (folder or Hub id), else the embedded default checkpoint, else random weights.

    `torch_threads` (process-wide, set once here by `set_decoding_threads`): decoding is one small step at a time,
    where extra threads only contend. None: $OMP_NUM_THREADS if set, else 1. `batching`: concurrent requests share one decoding loop
    (`ContinuousBatcher`: each step reads the weights once for every row), else each decodes in its own thread.
    `int8`: decode with int8 weights where torch can (a CPU): bits per note within 0.1% of float32, steps 1.2-1.8x
    faster, and a request still gets the same music alone or in company and from `toccata generate --int8`;
    False: float32, the tokens of `model.generate()`.
    """
    set_decoding_threads(torch_threads)
    source = model or toccata.default_checkpoint()
    if source is None:
        tokenizer = NotewiseTokenizer()
        with torch.random.fork_rng():
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            network = random_model(tokenizer)
        label, trained, args = "untrained model: random weights", False, ("--random-weights",)
    else:
        network, tokenizer = load_checkpoint(source, trust_remote_code=trust_remote_code)
        label = "the default checkpoint" if model is None else str(model)
        trained, args = True, () if model is None else ("--model", str(model))
    int8 = int8 and int8_available(next(network.parameters()).device)
    batcher = ContinuousBatcher(network.eval(), int8=int8) if batching else None
    instruments = ",".join(getattr(tokenizer, "instruments", None) or ("piano",))
    return Engine(
        network, tokenizer, label, trained, model_args=args, batcher=batcher, instruments=instruments, int8=int8
    )
