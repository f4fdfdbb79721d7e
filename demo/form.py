"""The demo's form as data: what the user chose, in one dataclass, and how it becomes a `GenerationRequest`.

The UI hands the handler a dict of named values (`default_values` lists them); `settings_from_values` makes a
`DemoSettings` of it (the package's `SamplerSettings` and `GuardSettings` inside): no twenty positional arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from toccata.modeling import GenerationRequest, GuardSettings, SamplerSettings
from toccata.modeling.guidance import MAX_GUIDANCE
from toccata.modeling.pipeline import PROMPT_FROM
from toccata.modeling.sampling import SAMPLER_PARAMETERS  # noqa: F401 - the controls each sampler shows

# (label shown, value sent): the seed's four samplers and her mixed scheme.
SAMPLER_CHOICES = [
    ("greedy", "greedy"),
    ("top-n", "top_n"),
    ("weighted", "weighted"),
    ("top-k", "top_k"),
    ("mixed (the author's scheme)", "mixed"),
]
ALL_SAMPLER_PARAMETERS = ("temperature", "p_best", "n", "k", "random_freq", "trunc")

LENGTH_UNITS = ("seconds", "bars")
PROMPT_SOURCES = [
    ("none: compose from silence", "none"),
    ("music21 corpus", "corpus"),
    ("upload a MIDI file", "upload"),
]
CORPUS_EXCERPTS = [  # (label, music21 corpus work): short keyboard-friendly pieces that export in about a second
    ("Bach: chorale BWV 66.6", "bach/bwv66.6"),
    ("Bach: chorale BWV 1.6", "bach/bwv1.6"),
    ("Joplin: Maple Leaf Rag", "joplin/maple_leaf_rag"),
    ("Chopin: Mazurka op. 6 no. 2", "chopin/mazurka06-2"),
    ("C.P.E. Bach: H. 186", "cpebach/h186"),
    ("Mozart: K. 155, 2nd movement", "mozart/k155/movement2"),
    ("Schubert: Der Lindenbaum", "schubert/Lindenbaum"),
]
INSTRUMENT_CHOICES = [  # (label, value): the instrument sets with an embedded checkpoint
    ("piano", "piano"),
    ("piano and violin", "piano,violin"),
    ("piano and cello", "piano,cello"),
    ("piano trio (piano, violin, cello)", "piano,violin,cello"),
]
MAX_VARIATIONS = 4
MAX_BEST_OF = 8  # candidates per variation the critic chooses among (all decoded in one batch)
MAX_NEW_TOKENS = 6_000  # per variation: ~5 minutes of music at 120 qpm; bounds the time one request can take


@dataclass(frozen=True)
class PromptChoice:
    """Where the prompt comes from: nothing, a work of music21's corpus, or an uploaded file (its server path)."""

    source: str = "none"  # none | corpus | upload
    work: str | None = None  # corpus: e.g. "bach/bwv66.6"
    upload: str | None = None  # upload: the path Gradio saved the file to
    beats: float = 16.0  # quarter notes of the prompt to keep, in whole bars
    keep: str = "start"  # its opening bars ("start") or its last ("end"), as `toccata generate --prompt-from`

    def __post_init__(self) -> None:
        if self.source not in {value for _, value in PROMPT_SOURCES}:
            raise ValueError(f"prompt source must be none, corpus or upload, got {self.source!r}")
        if self.source == "corpus" and self.work not in {work for _, work in CORPUS_EXCERPTS}:
            raise ValueError(f"pick an excerpt of the list, got {self.work!r}")
        if self.source == "upload" and not self.upload:
            raise ValueError("no file uploaded: upload a MIDI file (.mid) or pick another prompt source")
        if self.keep not in PROMPT_FROM:
            raise ValueError(f"keep the prompt's start or end, got {self.keep!r}")
        if not (isinstance(self.beats, (int, float)) and 0 < self.beats <= 256):
            raise ValueError(f"beats of the prompt to keep must be in (0, 256], got {self.beats!r}")


@dataclass(frozen=True)
class DemoSettings:
    """Everything the form decides; `request()` makes the pipeline's `GenerationRequest` once the prompt is read."""

    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    guards: GuardSettings = field(default_factory=GuardSettings)
    length: float = 30.0  # in `length_unit`
    length_unit: str = "seconds"  # seconds | bars
    tempo: float = 120.0  # quarter notes per minute
    prompt_tempo: bool = True  # play at the prompt's own tempo when there is a prompt
    variations: int = 1
    prompt: PromptChoice = field(default_factory=PromptChoice)
    best_of: int = 1  # > 1: compose this many candidates per variation and keep the one the critic rates most human
    instruments: str = "piano"  # "piano", "piano,violin", "piano,cello" or "piano,violin,cello": which model
    composer: str = ""  # in this composer's style (a label of the model's tokenizer); "": no label, any style
    composer_guidance: float = GenerationRequest.composer_guidance  # how hard the style steers (1: the label alone)

    def __post_init__(self) -> None:
        if self.length_unit not in LENGTH_UNITS:
            raise ValueError(f"length unit must be seconds or bars, got {self.length_unit!r}")
        if not (isinstance(self.length, (int, float)) and 0 < self.length <= 600):
            raise ValueError(f"length must be in (0, 600] {self.length_unit}, got {self.length!r}")
        if not (isinstance(self.tempo, (int, float)) and 20 <= self.tempo <= 400):
            raise ValueError(f"tempo must be 20 to 400 quarter notes per minute, got {self.tempo!r}")
        if not 1 <= self.variations <= MAX_VARIATIONS:
            raise ValueError(f"variations must be 1 to {MAX_VARIATIONS}, got {self.variations!r}")
        if not (isinstance(self.best_of, int) and 1 <= self.best_of <= MAX_BEST_OF):
            raise ValueError(f"best of must be a whole number from 1 to {MAX_BEST_OF}, got {self.best_of!r}")
        if self.instruments not in {value for _, value in INSTRUMENT_CHOICES}:
            choices = ", ".join(value for _, value in INSTRUMENT_CHOICES)
            raise ValueError(f"instruments must be one of {choices}; got {self.instruments!r}")
        if not (isinstance(self.composer_guidance, (int, float)) and 0 <= self.composer_guidance <= MAX_GUIDANCE):
            raise ValueError(f"style strength must be from 0 to {MAX_GUIDANCE:g}, got {self.composer_guidance!r}")

    def request(self, prompt_qpm: float | None = None, time_signature: tuple[int, int] = (4, 4)) -> GenerationRequest:
        """The pipeline request, given the prompt's tempo (None: no prompt) and time signature (for bars)."""
        qpm = prompt_qpm if (self.prompt_tempo and prompt_qpm) else float(self.tempo)
        beats_per_bar = time_signature[0] * 4.0 / time_signature[1]
        in_bars = self.length_unit == "bars"
        return GenerationRequest(
            sampler=self.sampler,
            guards=self.guards,
            beats=self.length * beats_per_bar if in_bars else None,
            seconds=None if in_bars else float(self.length),
            max_new_tokens=MAX_NEW_TOKENS,
            qpm=qpm,
            prompt_beats=float(self.prompt.beats),
            prompt_from=self.prompt.keep,
            num_samples=self.variations,
            best_of=self.best_of,
            composer=self.composer or None,
            composer_guidance=float(self.composer_guidance),
        )


def _or_default(value: Any, default: Any) -> Any:
    """`value` unless it is None (an unset control; 0 is a value)."""
    return default if value is None else value


def _integer(values: dict[str, Any], name: str) -> int:
    value = values[name]
    if value is None or float(value) != int(float(value)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(float(value))


def settings_from_values(
    values: dict[str, Any], sampler_preset: SamplerSettings, guard_preset: GuardSettings
) -> DemoSettings:
    """`DemoSettings` from the form's named values (the keys of `default_values`); a `ValueError` on bad input."""
    seed = values.get("seed")
    sampler = replace(
        sampler_preset,
        sampler=values["sampler"],
        temperature=float(values["temperature"]),
        p_best=float(values["p_best"]),
        n=_integer(values, "n"),
        k=_integer(values, "k"),
        random_freq=float(values["random_freq"]),
        trunc=_integer(values, "trunc"),
        seed=None if seed in (None, "") else _integer(values, "seed"),
    )
    guards = replace(
        guard_preset,
        grammar=bool(values["grammar"]),
        rest_guard=bool(values["rest_guard"]),
        calmness=float(values["calmness"]),
        repeat_penalty=float(values["repeat_penalty"]),
        part_entry=bool(values.get("part_entry", guard_preset.part_entry)),
    )
    prompt = PromptChoice(
        source=values["prompt_source"],
        work=values.get("corpus_work"),
        upload=values.get("prompt_file") or None,
        beats=float(values["prompt_beats"]),
        keep=values.get("prompt_from") or "start",
    )
    return DemoSettings(
        sampler=sampler,
        guards=guards,
        length=float(values["length"]),
        length_unit=values["length_unit"],
        tempo=float(values["tempo"]),
        prompt_tempo=bool(values["prompt_tempo"]),
        variations=_integer(values, "variations"),
        prompt=prompt,
        best_of=_integer(values, "best_of") if values.get("best_of") is not None else 1,
        instruments=values.get("instruments") or "piano",
        composer=values.get("composer") or "",
        composer_guidance=float(_or_default(values.get("composer_guidance"), GenerationRequest.composer_guidance)),
    )


def default_values(sampler: SamplerSettings, guards: GuardSettings) -> dict[str, Any]:
    """The form's starting values: the checkpoint's preset, 30 seconds at 120 qpm, a Bach chorale as prompt."""
    return {
        "sampler": sampler.sampler,
        "temperature": sampler.temperature,
        "p_best": sampler.p_best,
        "n": sampler.n,
        "k": sampler.k,
        "random_freq": sampler.random_freq,
        "trunc": sampler.trunc,
        "seed": sampler.seed if sampler.seed is not None else 1,
        "grammar": guards.grammar,
        "rest_guard": guards.rest_guard,
        "calmness": guards.calmness,
        "repeat_penalty": guards.repeat_penalty,
        "part_entry": guards.part_entry,
        "length": 30,
        "length_unit": "seconds",
        "tempo": 120,
        "prompt_tempo": True,
        "variations": 1,
        "best_of": 1,
        "instruments": "piano",
        "composer": "",
        "composer_guidance": GenerationRequest.composer_guidance,
        "prompt_source": "corpus",
        "corpus_work": CORPUS_EXCERPTS[0][1],
        "prompt_file": None,
        "prompt_beats": 16,
        "prompt_from": "start",
    }
