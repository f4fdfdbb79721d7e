"""`evaluate()`: likelihood on a split against two baselines, and a generation report per sampler, with the goals.

    >>> report = evaluate(model, tokenizer, "data/toccata-corpus", split="test")
    >>> write_report(report, "out/eval")            # report.md, report.json, PNG plots (evaluation.report)
    >>> card = CardInfo(metrics=report.card_metrics())

Generation starts from `<bos>` alone with the checkpoint's preset (sampler settings and guards), changing only the
sampler's name, with the same fixed seed for every sampler. The raw generated ids are measured (nothing trimmed).
Greedy decoding is deterministic, so its N samples are one sample generated once. With the rest guard on (the
preset's default), a silence longer than `max_silence_beats` cannot happen; so the default sampler is also run
with the rest guard off, and the rest-collapse goal is measured there, on the model itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from toccata.modeling.decoding import DecodeJob, decode
from toccata.modeling.guards import GuardSettings
from toccata.modeling.layout import VocabLayout
from toccata.modeling.pipeline import check_compatible
from toccata.modeling.presets import preset_from_generation_config
from toccata.modeling.sampling import SAMPLERS, SamplerSettings
from toccata.training.data import load_pieces

from .copy_index import CopyIndex, CopyMatch
from .feature_critic import EXCERPT_TOKENS, CriticResult, critic_score, excerpts
from .giveaways import GiveawayRow, giveaway_table, giveaway_values, real_windows
from .likelihood import LikelihoodResult, likelihood_table, piece_sequences
from .music_stats import SetSummary, sample_stats, summarise_set
from .parts import is_instrumented, merge_table, note_on_ids, part_checks
from .parts import summarise as summarise_parts

COPY_QUARTERS = 16.0  # four bars of 4/4: a copy this long counts against the model
BASELINE_MARGIN = 0.30  # the model's bits per note must be at least this far below the n-gram's
MIN_OVERLAP = 0.8
MAX_COPY_SHARE = 0.05
MAX_CRITIC_AUC = 0.80  # a fresh classifier must not tell the default sampler's excerpts from real ones better than this
REAL_EXCERPTS_PER_PIECE = 10  # held-out excerpts for the critic, at most, per piece (long pieces would dominate)
Progress = Callable[[str], None]


@dataclass
class SamplerResult:
    """N samples of one sampler: their statistics, overlaps with the held-out split and copies of training data."""

    label: str  # the sampler's name, or e.g. "top_k (no rest guard)"
    sampler: dict
    guards: dict
    samples: int  # samples the rates stand for
    distinct: int  # sequences actually generated (1 for greedy: the others are identical)
    tokens_per_sample: int
    summary: SetSummary
    overlaps: dict[str, float]
    copies: list[CopyMatch]  # the longest copy in each generated sequence
    seconds: float
    critic: CriticResult | None = None  # None: too few distinct samples (greedy) or held-out excerpts
    parts: dict | None = None  # with a violin or cello: per part violations and sounding share (`evaluation.parts`)
    giveaways: list[GiveawayRow] = field(default_factory=list)  # per-sample spread of each giveaway vs real windows

    @property
    def longest_copy(self) -> float:
        """Quarter notes of the longest copy of training data in any sample."""
        return max((c.quarters for c in self.copies), default=0.0)

    @property
    def copy_share(self) -> float:
        """Share of samples holding a copy of at least `COPY_QUARTERS` quarter notes (4 bars of 4/4)."""
        return sum(c.quarters >= COPY_QUARTERS for c in self.copies) / len(self.copies) if self.copies else 0.0


@dataclass
class Goal:
    """One quality goal of the default checkpoint: what, the measured value, and whether it is met."""

    name: str
    target: str
    value: float | None
    met: bool | None  # None: not measured (e.g. generation skipped)
    note: str = ""


@dataclass
class EvaluationReport:
    """Everything `toccata evaluate` measured; `evaluation.report.write_report` turns it into files."""

    model: str
    dataset: str
    split: str
    likelihood: list[LikelihoodResult]  # the model first (when given), then the baselines
    reference: SetSummary  # the held-out pieces
    reference_copies: list[CopyMatch]  # their longest copies of training data (how much pieces share anyway)
    samplers: list[SamplerResult]
    goals: list[Goal]
    settings: dict
    seconds: dict[str, float] = field(default_factory=dict)
    reference_parts: dict | None = None  # with a violin or cello: the held-out pieces' per-part numbers

    def result(self, name: str) -> LikelihoodResult | None:
        """The likelihood row called `name` ("model", "unigram", "5-gram")."""
        return next((r for r in self.likelihood if r.name == name), None)

    def card_metrics(self) -> dict[str, float]:
        """Flat numbers for the model card (`CardInfo.metrics`)."""
        metrics: dict[str, float] = {}
        for row in self.likelihood:
            prefix = "" if row.name == "model" else f"{row.name}_".replace("-", "")
            metrics[f"{prefix}bits_per_token"] = row.bits_per_token
            metrics[f"{prefix}bits_per_note"] = row.bits_per_note
        if (model := self.result("model")) is not None:
            metrics["perplexity"] = model.perplexity
            metrics["loss"] = model.loss_per_token
        for goal in self.goals:
            if goal.value is not None and goal.name != "bits per note vs n-gram":
                metrics[goal.name.replace(" ", "_").replace("-", "_")] = goal.value
        return metrics

    def to_dict(self) -> dict:
        """A JSON-ready dict (histograms as lists; copies as dicts)."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "settings": self.settings,
            "seconds": self.seconds,
            "likelihood": [r.to_dict() for r in self.likelihood],
            "reference": asdict(self.reference),
            "reference_copies": [asdict(c) for c in self.reference_copies],
            "samplers": [
                {
                    **{k: v for k, v in asdict(s).items() if k not in ("summary", "copies")},
                    "summary": asdict(s.summary),
                    "longest_copy_quarters": s.longest_copy,
                    "copy_share": s.copy_share,
                    "copies": [asdict(c) for c in s.copies],
                    "giveaways": [{**asdict(g), "within": g.within} for g in s.giveaways],
                }
                for s in self.samplers
            ],
            "goals": [asdict(g) for g in self.goals],
            "reference_parts": self.reference_parts,
        }


@torch.inference_mode()
def generate_samples(
    model, sampler: SamplerSettings, guards: GuardSettings, num_samples: int, num_tokens: int, batch_size: int = 100
) -> list[np.ndarray]:
    """`num_samples` raw sequences of `num_tokens` ids from `<bos>` (no trimming); batch b uses seed `seed + b`.

    Decoded by the loop users run (`compose()`'s `decode`), which gives `generate()`'s tokens (tested). A sequence is
    cut before an `<eos>` (only possible with the grammar guard off).
    """
    if sampler.seed is None:
        raise ValueError("generate_samples: give the sampler a seed (the report must be reproducible)")
    config, was_training, out = model.config, model.training, []
    model.eval()
    try:
        for batch, start in enumerate(range(0, num_samples, batch_size)):
            rows = min(batch_size, num_samples - start)
            job = DecodeJob(
                [config.bos_token_id], rows, replace(sampler, seed=sampler.seed + batch), guards, num_tokens
            )
            for row in decode(model, job).tokens:
                row = np.asarray(row, dtype=np.int64)
                ends = np.flatnonzero(row == config.eos_token_id)
                out.append(row[: ends[0]] if ends.size else row)
    finally:
        model.train(was_training)
    return out


def evaluate_sampler(
    model,
    label: str,
    sampler: SamplerSettings,
    guards: GuardSettings,
    samples: int,
    tokens: int,
    reference: SetSummary,
    index: CopyIndex,
    layout: VocabLayout,
    batch_size: int = 100,
    real_excerpts: tuple[list[np.ndarray], list[int]] | None = None,
    tokenizer=None,
    real_giveaways: Sequence[dict[str, float]] | None = None,
) -> SamplerResult:
    """Generate, measure and compare one sampler's samples (and score them with the critic against `real_excerpts`).

    With an instrumented `tokenizer`, every part is checked (`evaluation.parts`) and the statistics, copies and critic
    read the texture with every part merged into the piano's words. `real_giveaways` (`giveaway_values` of real
    windows as long as the samples): each giveaway's spread over the samples against the real one."""
    start = time.perf_counter()
    distinct = 1 if sampler.sampler == "greedy" else samples
    sequences = generate_samples(model, sampler, guards, distinct, tokens, batch_size)
    parts = None
    if tokenizer is not None and is_instrumented(tokenizer):
        layout_parts = tokenizer.instrument_layout
        checks = [part_checks(tokenizer.convert_ids_to_tokens(s.tolist()), layout_parts) for s in sequences]
        parts = summarise_parts(checks)
        table = merge_table(layout_parts, model.config.vocab_size)
        sequences = [table[s] for s in sequences]
    summary = summarise_set([sample_stats(s, layout) for s in sequences])
    copies = [index.longest_copy(s) for s in sequences]
    critic = None
    if real_excerpts is not None and distinct > 1:
        generated, groups = excerpts(sequences, EXCERPT_TOKENS, per_sequence=1, seed=sampler.seed or 0)
        try:
            critic = critic_score(*real_excerpts, generated, groups, layout, seed=sampler.seed or 0)
        except ValueError:  # too few excerpts on one side (tiny splits, short samples): not measured
            critic = None
    giveaways = []
    if real_giveaways:
        giveaways = giveaway_table(real_giveaways, [giveaway_values(s, layout) for s in sequences])
    return SamplerResult(
        label=label,
        sampler=asdict(sampler),
        guards=asdict(guards),
        samples=samples,
        distinct=distinct,
        tokens_per_sample=tokens,
        summary=summary,
        overlaps=summary.overlaps(reference),
        copies=copies,
        seconds=time.perf_counter() - start,
        critic=critic,
        parts=parts,
        giveaways=giveaways,
    )


def evaluate(
    model,
    tokenizer,
    dataset: str,
    split: str = "validation",
    *,
    samples: int = 100,
    tokens: int = 2000,
    samplers: Sequence[str] = SAMPLERS,
    seed: int = 0,
    generation: bool = True,
    unguarded_check: bool = True,
    ngram_order: int = 5,
    copy_k: int = 16,
    batch_size: int = 100,
    model_name: str = "",
    progress: Progress | None = None,
) -> EvaluationReport:
    """Likelihood of `split` (model, unigram, Kneser-Ney n-gram fitted on train) and, unless `generation` is False,
    the generation report of every sampler in `samplers` (`samples` x `tokens`, fixed `seed`), with the goals."""
    say = progress or (lambda message: None)
    unknown = [name for name in samplers if name not in SAMPLERS]
    if unknown:
        raise ValueError(f"samplers: unknown {unknown}; choose from {', '.join(SAMPLERS)}")
    if samples < 1 or tokens < 1:
        raise ValueError(f"samples and tokens must be >= 1, got {samples} and {tokens}")
    check_compatible(model.config, tokenizer)
    layout, seconds = VocabLayout.from_config(tokenizer), {}
    clock = time.perf_counter()
    train = load_pieces(dataset, "train", tokenizer, original_key_only=True)
    held = load_pieces(dataset, split, tokenizer, original_key_only=True)
    say(f"{len(train)} training pieces, {len(held)} {split} pieces")

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    note_ids = range(layout.note_on_offset, layout.note_on_offset + layout.num_pitches)
    reference_parts = None
    if is_instrumented(tokenizer):  # notes of every part; the texture merged into piano words for the statistics
        note_ids = note_on_ids(tokenizer.instrument_layout)
    likelihood = likelihood_table(
        model,
        piece_sequences(train, bos, eos),
        piece_sequences(held, bos, eos),
        note_ids,
        model.config.vocab_size,
        bos,
        ngram_order,
    )
    seconds["likelihood"] = time.perf_counter() - clock
    say("likelihood: " + ", ".join(f"{r.name} {r.bits_per_token:.3f} bits/token" for r in likelihood))
    if is_instrumented(tokenizer):
        checks = [part_checks(tokenizer.convert_ids_to_tokens(p.ids.tolist()), tokenizer.instrument_layout)
                  for p in held]  # fmt: skip
        reference_parts = summarise_parts(checks)
        table = merge_table(tokenizer.instrument_layout, model.config.vocab_size)
        train = [replace(p, ids=table[p.ids]) for p in train]
        held = [replace(p, ids=table[p.ids]) for p in held]

    clock = time.perf_counter()
    index = CopyIndex.of_pieces(train, layout, copy_k)
    reference = summarise_set([sample_stats(p.ids, layout) for p in held])
    reference_copies = [index.longest_copy(p.ids) for p in held]
    real_excerpts = excerpts([p.ids for p in held], EXCERPT_TOKENS, REAL_EXCERPTS_PER_PIECE, seed)
    real_giveaways = [giveaway_values(w, layout) for w in real_windows([p.ids for p in held], tokens)]
    seconds["reference"] = time.perf_counter() - clock

    preset_sampler, preset_guards = preset_from_generation_config(model.generation_config)
    results = []
    if generation:
        runs = [(name, replace(preset_sampler, sampler=name, seed=seed), preset_guards) for name in samplers]
        if unguarded_check and preset_guards.rest_guard:
            unguarded = replace(preset_guards, rest_guard=False)
            runs.append((f"{preset_sampler.sampler} (no rest guard)", replace(preset_sampler, seed=seed), unguarded))
        for label, sampler, guards in runs:
            result = evaluate_sampler(
                model,
                label,
                sampler,
                guards,
                samples,
                tokens,
                reference,
                index,
                layout,
                batch_size,
                real_excerpts,
                tokenizer,
                real_giveaways,
            )
            seconds[f"generate {label}"] = result.seconds
            say(f"{label}: {result.distinct} x {tokens} tokens in {result.seconds:.1f} s")
            results.append(result)

    settings = {
        "samples": samples,
        "tokens": tokens,
        "seed": seed,
        "samplers": list(samplers) if generation else [],
        "preset_sampler": asdict(preset_sampler),
        "preset_guards": asdict(preset_guards),
        "ngram_order": ngram_order,
        "copy_k_tokens": copy_k,
        "copy_quarters": COPY_QUARTERS,
        "critic_excerpt_tokens": EXCERPT_TOKENS,
        "critic_real_excerpts": len(real_excerpts[0]),
        "train_pieces": len(train),
        "eval_pieces": len(held),
        "instruments": list(getattr(tokenizer, "instruments", ("piano",))),
    }
    return EvaluationReport(
        model=model_name or getattr(model.config, "_name_or_path", "") or "model",
        dataset=str(dataset),
        split=split,
        likelihood=likelihood,
        reference=reference,
        reference_copies=reference_copies,
        samplers=results,
        goals=quality_goals(likelihood, results, preset_sampler.sampler, ngram_order),
        settings=settings,
        seconds=seconds,
        reference_parts=reference_parts,
    )


def quality_goals(
    likelihood: Sequence[LikelihoodResult], samplers: Sequence[SamplerResult], default: str, ngram_order: int = 5
) -> list[Goal]:
    """The default checkpoint's goals, each with its measured value and met / not met."""
    rows = {r.name: r for r in likelihood}
    model, ngram = rows.get("model"), rows.get(f"{ngram_order}-gram")
    goals = []
    if model is not None and ngram is not None:
        gain = 1.0 - model.bits_per_note / ngram.bits_per_note
        goals.append(
            Goal(
                "bits per note vs n-gram",
                f">= {BASELINE_MARGIN:.0%} below the {ngram_order}-gram",
                gain,
                gain >= BASELINE_MARGIN,
                f"{model.bits_per_note:.3f} vs {ngram.bits_per_note:.3f} bits per note "
                f"({model.bits_per_token:.3f} vs {ngram.bits_per_token:.3f} bits per token)",
            )
        )
    by_label = {s.label: s for s in samplers}
    plain, raw = by_label.get(default), by_label.get(f"{default} (no rest guard)")
    collapse = raw or plain
    note = "rest guard off: with it on, longer silences cannot happen" if raw else "with the preset's guards"
    if collapse is not None:
        note = f"of {collapse.samples} samples; {note}"
    critic_note = ""
    if plain is not None and plain.critic is not None:
        top = ", ".join(row["feature"] for row in plain.critic.separating[:3])
        critic_note = f"{plain.critic.real} real vs {plain.critic.generated} generated excerpts; most telling: {top}"
    specs = (  # name, target, run measured, what, test, note
        ("rest collapse", f"0 samples ({default})", collapse, _collapsed, lambda v: v == 0, note),
        (
            "critic AUC",
            f"<= {MAX_CRITIC_AUC} ({default}; 0.5 = indistinguishable)",
            plain if plain is not None and plain.critic is not None else None,
            lambda r: r.critic.auc,
            lambda v: v <= MAX_CRITIC_AUC,
            critic_note,
        ),
        (
            "copy share",
            f"< {MAX_COPY_SHARE:.0%} of samples with a >= 4-bar copy ({default})",
            plain,
            lambda r: r.copy_share,
            lambda v: v < MAX_COPY_SHARE,
            "",
        ),
        *(
            (f"{what} overlap", f">= {MIN_OVERLAP} ({default})", plain, _overlap(key), _overlap_ok, "")
            for what, key in OVERLAP_GOALS
        ),
    )
    for name, target, run, measure, test, note in specs:
        if run is None:
            goals.append(Goal(name, target, None, None, "not measured: the default sampler was not run or scored"))
            continue
        value = float(measure(run))
        goals.append(Goal(name, target, value, bool(test(value)), note))
    return goals


OVERLAP_GOALS = (
    ("density", "density"),
    ("pitch class", "pitch_classes"),
    ("inter-onset", "iois"),
    ("polyphony", "polyphony"),
)


def _overlap(key: str) -> Callable[[SamplerResult], float]:
    return lambda run: run.overlaps[key]


def _overlap_ok(value: float) -> bool:
    return value >= MIN_OVERLAP


def _collapsed(run: SamplerResult) -> int:
    """Rest-collapsed samples among all `run.samples` (greedy's one sequence stands for all of them)."""
    return round(run.summary.rest_collapse_rate * run.samples)


__all__ = [
    "EvaluationReport",
    "Goal",
    "SamplerResult",
    "evaluate",
    "evaluate_sampler",
    "generate_samples",
    "quality_goals",
]
