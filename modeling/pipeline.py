"""One place that turns (prompt MIDI, sampler, guards, length, tempo, seed) into music: tokens, a score and MIDI.

The CLI and the demo call `compose()`; neither holds sampling logic. The tokenizer is passed in (modeling never
imports tokenization): anything with the `NotewiseTokenizer` methods used below works.

    >>> pieces = compose(model, tokenizer, GenerationRequest(sampler=SamplerSettings("top_k", k=5, seed=1)))
    >>> pieces[0].save("out.mid")
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .batching import ContinuousBatcher
from .decoding import DecodeJob, ProgressCallback, decode
from .guards import GuardSettings
from .guidance import MAX_GUIDANCE
from .layout import VocabLayout
from .presets import preset_from_generation_config
from .sampling import SamplerSettings

Critic = Callable[[list[list[str]]], Sequence[float]]  # token lists -> probability that each is human-composed


class GenerationCancelled(RuntimeError):
    """Raised by `compose()` when its `cancel` event is set while tokens are being generated."""


MAX_BEATS = 50_000  # as tokenization's MidiLimits.max_quarters: about seven hours at 120 bpm
MAX_NEW_TOKENS = 1_000_000  # about 15 hours of dense piano music
QPM_RANGE = (1.0, 1200.0)  # the tempos MIDI files may carry here (tokenization's MidiLimits): quarters a minute
PROMPT_FROM = ("start", "end")  # which bars of a prompt to keep: its opening, or its close
EMPTY_PROMPT = (
    "the prompt {label} has no notes the model reads (drum tracks and empty tracks are dropped): "
    "this was composed from silence"
)
NO_NEW_NOTES = (
    "no new notes: the sampler and guards left only rests (a high calmness with the rest guard off?); "
    "lower the calmness or keep the rest guard"
)


@dataclass
class GenerationRequest:
    """Everything that decides a piece, so that the same request with the same seed gives the same music."""

    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    guards: GuardSettings = field(default_factory=GuardSettings)
    beats: float | None = 64.0  # length of the continuation in quarter notes (ignored when `seconds` is given)
    seconds: float | None = None  # length in seconds at `qpm`
    max_new_tokens: int | None = None  # token budget; default: enough for the length asked
    qpm: float | None = None  # tempo of the output; default: the prompt's, else 120
    prompt_beats: float | None = 16.0  # beats of the prompt to keep, in whole bars (at least one); None: all of it
    prompt_from: str = "start"  # keep the prompt's first bars ("start") or its last ("end")
    num_samples: int = 1
    best_of: int = 1  # candidates per piece: a critic keeps the num_samples it rates most human
    composer: str | None = None  # in this composer's style: a label the checkpoint was trained with (its tokenizer's)
    # how hard the label steers: 1 = the label alone, as trained; above 1, classifier-free guidance (the logits pushed
    # away from the unlabelled prediction: u + g (c - u), see guidance.py); ignored without a composer. 3: on the
    # default, the classifier names the composer asked for 25% of the time against 9% at 1, the judge no worse
    composer_guidance: float = 3.0

    def __post_init__(self) -> None:
        for name in ("beats", "seconds", "qpm", "prompt_beats"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name, most in (("beats", MAX_BEATS), ("prompt_beats", MAX_BEATS), ("max_new_tokens", MAX_NEW_TOKENS)):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and value > most:
                raise ValueError(f"{name} is at most {most:,} (hours of music), got {value:,}")
        if self.qpm is not None and not QPM_RANGE[0] <= self.qpm <= QPM_RANGE[1]:
            raise ValueError(f"qpm must be from {QPM_RANGE[0]:g} to {QPM_RANGE[1]:g}, got {self.qpm!r}")
        if self.beats is None and self.seconds is None and self.max_new_tokens is None:
            raise ValueError("give a length: beats, seconds or max_new_tokens")
        if not isinstance(self.num_samples, int) or not 1 <= self.num_samples <= 64:
            raise ValueError(f"num_samples must be an integer from 1 to 64, got {self.num_samples!r}")
        if not isinstance(self.best_of, int) or isinstance(self.best_of, bool) or not 1 <= self.best_of <= 16:
            raise ValueError(f"best_of must be an integer from 1 to 16, got {self.best_of!r}")
        if self.num_samples * self.best_of > 64:
            raise ValueError(
                f"num_samples x best_of is at most 64 (one batch), got {self.num_samples} x {self.best_of}"
            )
        guidance = self.composer_guidance
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= MAX_GUIDANCE:
            raise ValueError(
                f"composer_guidance must be a number from 0 to {MAX_GUIDANCE:g} (1: the label alone), got {guidance!r}"
            )
        if self.prompt_from not in PROMPT_FROM:
            raise ValueError(f"prompt_from must be start or end, got {self.prompt_from!r}")
        if self.max_new_tokens is not None and not (isinstance(self.max_new_tokens, int) and self.max_new_tokens > 0):
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")

    def length_quarters(self, qpm: float) -> float | None:
        """The requested continuation length in quarter notes at tempo `qpm` (None: token budget only)."""
        if self.seconds is not None:
            return self.seconds * qpm / 60.0
        return self.beats


@dataclass
class GeneratedPiece:
    """One variation: its tokens (prompt first), the decoded score, and how it was made."""

    tokens: list[str]
    prompt_length: int  # the first `prompt_length` tokens are the kept prompt
    prompt_quarters: float  # where the continuation starts, in quarter notes
    score: Any  # symusic.Score (one piano track)
    text: str  # token text with its header line
    settings: dict  # the request with the seed actually used; "piece_seed": the seed that makes this piece alone
    prompt_bars: tuple[int, int] | None = None  # the prompt's bars kept (first, last; counted from 1), if any

    @property
    def new_notes(self) -> int:
        """Notes that the continuation begins (the prompt's not counted): 0 means nothing new was composed."""
        return sum(1 for t in self.tokens[self.prompt_length :] if t[:1].isalpha() and not t.startswith(("wait", "end")))

    @property
    def midi_bytes(self) -> bytes:
        """The piece as a standard MIDI file."""
        return self.score.dumps_midi()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the MIDI file (and nothing else); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.midi_bytes)
        return path


def check_compatible(config, tokenizer) -> VocabLayout:
    """The vocabulary layout shared by model and tokenizer; a clear error when they disagree."""
    layout, theirs = VocabLayout.from_config(config), asdict(VocabLayout.from_config(tokenizer))
    wrong = {k: (getattr(layout, k), v) for k, v in theirs.items() if getattr(layout, k) != v}
    if wrong:
        detail = ", ".join(f"{k}: model {a} vs tokenizer {b}" for k, (a, b) in wrong.items())
        raise ValueError(
            f"the model and the tokenizer do not share a vocabulary ({detail}); load both from one checkpoint"
        )
    return layout


def _prompt_tokens(tokenizer, prompt: Any, request: GenerationRequest) -> tuple[list[str], Any, tuple[int, int] | None]:
    """(kept prompt tokens, metadata, the bars kept) of a prompt given as MIDI (path, bytes, score) or tokens."""
    if prompt is None:
        return [], None, None
    if isinstance(prompt, list):
        tokens, meta = list(prompt), None
    else:
        encoding = tokenizer.encode_midi(prompt, safe=True)
        tokens, meta = encoding.tokens, encoding.meta
    if not tokens:
        return [], meta, None
    kept, bars = _keep_bars(tokenizer, tokens, meta.time_signature if meta is not None else (4, 4), request)
    return kept, meta, bars


def _keep_bars(tokenizer, tokens: list[str], time_signature, request: GenerationRequest):
    """(tokens, (first bar, last bar)) of the prompt's first or last whole bars within `request.prompt_beats` (at
    least one bar; None: all of it), cut on the bar lines of `time_signature` counted from the file's start, as a
    sequencer shows them. A kept opening lasts to its closing bar line, so the continuation starts on a downbeat."""
    spq = tokenizer.steps_per_quarter
    bar = max(1, round(time_signature[0] * 4 / time_signature[1] * spq))  # steps in a bar
    notes = tokenizer.tokens_to_notes(tokens)
    total = int(notes.end.max()) if len(notes) else 0  # where the prompt's music ends, in steps
    in_prompt = max(1, math.ceil(total / bar))
    if request.prompt_beats is None:
        return tokens, (1, in_prompt)
    wanted = min(in_prompt, max(1, int(request.prompt_beats * spq // bar)))
    first = 1 if request.prompt_from == "start" else in_prompt - wanted + 1
    last = first + wanted - 1
    start, stop = (first - 1) * bar, min(last * bar, total)
    kept = tokenizer.excerpt(tokens, start / spq, stop / spq)
    rest = stop - start - _steps(kept)  # rests up to the cut: the excerpt ends with its last note
    max_wait = tokenizer.max_wait
    kept += [f"wait{max_wait}"] * (rest // max_wait) + ([f"wait{rest % max_wait}"] if rest % max_wait else [])
    return kept, (first, last)


def describe_prompt(piece: GeneratedPiece, label: str | None) -> str | None:
    """One line saying which beats of `piece` came from the prompt `label` (its name; None: no prompt was given),
    and from which of its bars; `EMPTY_PROMPT` when it had no notes. The CLI prints it and the demo shows it."""
    if label is None:
        return None
    if piece.prompt_bars is None:
        return EMPTY_PROMPT.format(label=label)
    first, last = piece.prompt_bars
    bars = f"bar {first}" if first == last else f"bars {first}\u2013{last}"
    return f"beats 0\u2013{piece.prompt_quarters:g} are the prompt ({bars} of {label}); the rest is new"


def _trim_trailing_silence(tokens: list[str]) -> list[str]:
    """Drop waits after the last note has ended, so that no piece ends in silence (every part: `p`, `v`, `c`)."""
    sounding: set[str] = set()
    last_sound = 0
    for index, token in enumerate(tokens):
        is_wait = token.startswith("wait")
        if token.startswith("end"):
            sounding.discard(token[3:])  # endv67 ends v67
        elif not is_wait and token[:1].isalpha():
            sounding.add(token)
        if sounding or not is_wait:
            last_sound = index + 1
    return tokens[:last_sound]


def _steps(tokens: list[str]) -> int:
    """Time steps that `tokens` advance."""
    return sum(int(t[4:]) for t in tokens if t.startswith("wait"))


@torch.inference_mode()
def compose(
    model,
    tokenizer,
    request: GenerationRequest | None = None,
    prompt: Any = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    batcher: ContinuousBatcher | None = None,
    critic: Critic | None = None,
    int8: bool = False,
) -> list[GeneratedPiece]:
    """Generate `request.num_samples` variations (one batch) continuing `prompt` (MIDI or tokens; None: from scratch).

    Decodes with the lean loop of `decoding.py` (the same tokens as `model.generate()` with `generate_kwargs()`),
    in this thread, or in `batcher`'s shared batch beside other requests (the same music either way). Variation
    (or candidate) i is seeded with seed + i, so each is the piece its seed makes alone (`settings["piece_seed"]`).
    With `request.best_of` N > 1, N candidates per piece are decoded in the same batch and `critic` (token lists ->
    probability that each is human-composed) keeps the best; every candidate's score is in the pieces' settings.
    `int8`: decode with int8 weights (faster on a CPU, bits per note within 0.1%, other tokens than `generate()`);
    a `batcher` decodes in its own precision. The pieces' settings say which (`"int8"`).
    Raises `GenerationCancelled` if `cancel` is set during generation, `ValueError` for bad settings or prompts.
    """
    request = request or GenerationRequest()
    layout = check_compatible(model.config, tokenizer)
    sampler = request.sampler.resolved()
    prompt_tokens, meta, prompt_bars = _prompt_tokens(tokenizer, prompt, request)
    qpm = request.qpm or (meta.qpm if meta is not None else 120.0)
    quarters = request.length_quarters(qpm)
    if quarters is not None and quarters > MAX_BEATS:
        raise ValueError(f"{request.seconds:.6g} seconds at {qpm:g} qpm is {quarters:.6g} beats; at most {MAX_BEATS:,}")
    target_steps = None if quarters is None else max(1, round(quarters * layout.steps_per_quarter))
    # Under the grammar a step holds at most max_polyphony note-ons, as many note-offs and one wait, so this budget
    # always reaches the length asked (4 tokens a step, the old budget, cut busy music short without a word).
    budget = request.max_new_tokens or int(target_steps * (2 * request.guards.max_polyphony + 1) + 64)

    if request.best_of > 1 and critic is None:
        raise ValueError(
            "best_of > 1 needs a critic to choose with: pass critic= (e.g. toccata.default_critic_scorer())"
        )
    ids = [model.config.bos_token_id] + tokenizer.convert_tokens_to_ids(prompt_tokens)
    unconditional, guidance = None, 1.0
    if request.composer and request.composer_guidance != 1.0:  # guided against the same prompt without the label
        unconditional, guidance = list(ids), float(request.composer_guidance)
    if request.composer:  # the label word goes first, as in training (`<composer:NAME> <bos> ...`)
        if not hasattr(tokenizer, "composer_token_id"):
            raise ValueError(f"composer {request.composer!r}: this tokenizer has no composer labels")
        ids = [tokenizer.composer_token_id(request.composer), *ids]
    rows = request.num_samples * request.best_of
    # A job per row, row i seeded with seed + i: each piece (each candidate) is the one `seed + i` makes alone, as the
    # shared batch gives every job the music it gets alone; so a variation can be composed again by itself.
    seeds = [sampler.seed + row for row in range(rows)]
    jobs = [
        DecodeJob(
            ids, 1, replace(sampler, seed=seed), request.guards, budget, target_steps, progress, cancel,
            unconditional_ids=unconditional, guidance=guidance,
        )  # fmt: skip
        for seed in seeds
    ]
    was_training = model.training
    model.eval()
    try:
        if batcher is not None:
            batcher.run(*jobs)
        else:
            decode(model, *jobs, int8=int8)
    finally:
        model.train(was_training)
    if any(job.cancelled for job in jobs):
        raise GenerationCancelled("generation was cancelled")

    int8 = batcher.int8 if batcher is not None else int8  # the precision that decoded (the command needs it)
    settings = {**asdict(replace(request, sampler=sampler)), "qpm": qpm, "int8": int8}
    time_signature = meta.time_signature if meta is not None else None
    prompt_quarters = _steps(prompt_tokens) / layout.steps_per_quarter
    candidates = []
    for job in jobs:
        new_ids = [i for i in job.tokens[0] if i >= layout.note_on_offset]
        new_tokens = tokenizer.convert_ids_to_tokens(new_ids)
        if target_steps is not None:
            new_tokens = _cut_at_steps(new_tokens, target_steps)
        candidates.append(_trim_trailing_silence(prompt_tokens + new_tokens))
    chosen = list(range(len(candidates)))
    if request.best_of > 1:
        judged = [tokens[len(prompt_tokens) :] or tokens for tokens in candidates]  # the continuations
        scores = [float(p) for p in critic(judged)]
        chosen = sorted(chosen, key=lambda i: -scores[i])[: request.num_samples]
        settings["candidates"] = [{"index": i, "human_probability": p} for i, p in enumerate(scores)]
    pieces = []
    for index in chosen:
        tokens = candidates[index]
        score = tokenizer.tokens_to_midi(tokens, meta=meta, qpm=qpm, time_signature=time_signature)
        text = tokenizer.tokens_to_text(tokens, meta=meta, qpm=qpm, time_signature=time_signature)
        own = {**settings, "piece_seed": seeds[index], **({"chosen": index} if request.best_of > 1 else {})}
        pieces.append(GeneratedPiece(tokens, len(prompt_tokens), prompt_quarters, score, text, own, prompt_bars))
    return pieces


def _cut_at_steps(tokens: list[str], target_steps: int) -> list[str]:
    """Tokens up to the wait that reaches `target_steps` (shortened to land exactly on it)."""
    elapsed = 0
    for index, token in enumerate(tokens):
        if token.startswith("wait"):
            step = int(token[4:])
            if elapsed + step >= target_steps:
                return tokens[:index] + [f"wait{target_steps - elapsed}"]
            elapsed += step
    return tokens


class MusicGenerationPipeline(Pipeline):
    """`transformers.pipeline("music-generation", model=...)`: a prompt (MIDI path/bytes, or None) -> pieces.

    Keywords are those of `SamplerSettings`, `GuardSettings` and `GenerationRequest`, e.g.
    `pipe("opening.mid", sampler="top_k", k=5, seed=1, seconds=30, num_samples=2)`; returns `GeneratedPiece`s.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    # Makes the critic that `best_of` > 1 chooses with (token lists -> P(human)); set by `register_pipeline`.
    critic_factory: Callable[[], Critic] | None = None

    def _sanitize_parameters(self, **kwargs):
        sampler_fields = {f.name for f in fields(SamplerSettings)}
        guard_fields = {f.name for f in fields(GuardSettings)}
        request_fields = {f.name for f in fields(GenerationRequest)} - {"sampler", "guards"}
        unknown = set(kwargs) - sampler_fields - guard_fields - request_fields
        if unknown:
            raise ValueError(f"music-generation: unknown arguments {sorted(unknown)}")
        preset_sampler, preset_guards = preset_from_generation_config(self.model.generation_config)
        sampler = replace(preset_sampler, **{k: v for k, v in kwargs.items() if k in sampler_fields})
        guards = replace(preset_guards, **{k: v for k, v in kwargs.items() if k in guard_fields})
        request = GenerationRequest(
            sampler=sampler, guards=guards, **{k: v for k, v in kwargs.items() if k in request_fields}
        )
        return {}, {"request": request}, {}

    def __call__(self, prompt: Any = None, **kwargs) -> list[GeneratedPiece]:
        """`prompt`: a MIDI path or bytes, notewise tokens (a list of words, or their text: "p60 wait12 endp60"), or
        None; a list of those is a batch."""
        if isinstance(prompt, list) and self._as_tokens(prompt) is not None:
            prompt = tuple(prompt)  # one prompt of tokens, not a batch of file names (transformers batches lists)
        return super().__call__(prompt, **kwargs)

    def preprocess(self, prompt: Any) -> dict:
        tokens = self._as_tokens(prompt)
        return {"prompt": prompt if tokens is None else tokens}

    def _as_tokens(self, prompt: Any) -> list[str] | None:
        """The words of a prompt made of this vocabulary's words (not a file's name), else None."""
        if isinstance(prompt, str) and not os.path.exists(prompt):
            words = prompt.split()
        elif isinstance(prompt, (list, tuple)) and all(isinstance(word, str) for word in prompt):
            words = list(prompt)
        else:
            return None
        vocabulary = self.tokenizer.get_vocab()
        return words if words and all(word in vocabulary for word in words) else None

    def _forward(self, inputs: dict, request: GenerationRequest) -> dict:
        factory = type(self).critic_factory
        critic = factory() if request.best_of > 1 and factory is not None else None
        return {"pieces": compose(self.model, self.tokenizer, request, prompt=inputs["prompt"], critic=critic)}

    def postprocess(self, outputs: dict) -> list[GeneratedPiece]:
        return outputs["pieces"]


def register_pipeline(default_model: str | os.PathLike | None = None, critic: Callable[[], Critic] | None = None) -> None:
    """Make `transformers.pipeline("music-generation", model=checkpoint)` build a `MusicGenerationPipeline`.

    The caller (toccata's embedded checkpoints: modeling knows no checkpoint) may give the model that
    `pipeline("music-generation")` loads without `model=`, and `critic`, which makes the scorer of `best_of` > 1."""
    task = "music-generation"
    if task not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=MusicGenerationPipeline, pt_model=AutoModelForCausalLM)
    if default_model is not None:
        PIPELINE_REGISTRY.supported_tasks[task]["default"] = {"model": (str(default_model), "main")}
    if critic is not None:
        MusicGenerationPipeline.critic_factory = critic


__all__ = [
    "GeneratedPiece",
    "GenerationCancelled",
    "GenerationRequest",
    "MusicGenerationPipeline",
    "check_compatible",
    "compose",
    "describe_prompt",
    "register_pipeline",
]
