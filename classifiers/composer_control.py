"""Does `--composer NAME` give music in NAME's style? A composer classifier (trained on real pieces, never on the
generator's samples) names the composer of samples conditioned on each label the generator knows.

    report = composer_control(generator, tokenizer, classifier, classifier_tokenizer, samples=10, tokens=1000)

Reported per composer and over all: top-1 and top-3 (the requested composer among the classifier's three most likely),
against chance (1 / the classifier's labels, 3 / them) and against the same classifier on real held-out pieces by that
composer (its ceiling: a sample cannot be recognised more surely than the composer's own music is). Unconditioned
samples are classified too: a label that wins there as often as when asked for is not control. Steering must not
cost the music: with a dataset, the feature judge of `toccata evaluate` (never trained on samples by any of these
models) tells the conditioned samples from the composers' real pieces (`judge_auc`, lower is better).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from toccata.evaluation.feature_critic import excerpts
from toccata.evaluation.feature_critic import critic_score as judge_score
from toccata.modeling.layout import VocabLayout
from toccata.modeling.pipeline import GenerationRequest, compose
from toccata.modeling.presets import preset_from_generation_config
from toccata.training.data import load_pieces
from toccata.training.trainer import OTHER_COMPOSER

from .model import sequence_probabilities


@dataclass
class ComposerRow:
    """One requested composer: how often the classifier names it first / among three, on samples and on real pieces."""

    composer: str
    samples: int
    top1: float
    top3: float
    real_pieces: int = 0  # held-out real pieces by this composer (0: no ceiling measured)
    real_top1: float | None = None
    real_top3: float | None = None
    unconditioned_top1: float = 0.0  # share of unconditioned samples the classifier gives to this composer


@dataclass
class ComposerControlReport:
    """Per composer and overall; chance levels from the classifier's number of labels."""

    rows: list[ComposerRow] = field(default_factory=list)
    classifier_labels: list[str] = field(default_factory=list)
    tokens: int = 0
    seed: int = 0
    guidance: float = 1.0  # the requests' composer_guidance (1: the label alone)
    judge_auc: float | None = None  # the feature judge: conditioned samples against the real pieces (lower: closer)
    judge_auc_std: float | None = None

    @property
    def top1(self) -> float:
        return float(np.mean([r.top1 for r in self.rows])) if self.rows else float("nan")

    @property
    def top3(self) -> float:
        return float(np.mean([r.top3 for r in self.rows])) if self.rows else float("nan")

    @property
    def chance_top1(self) -> float:
        return 1.0 / len(self.classifier_labels)

    @property
    def chance_top3(self) -> float:
        return min(1.0, 3.0 / len(self.classifier_labels))

    def real(self, key: str) -> float | None:
        values = [getattr(r, key) for r in self.rows if getattr(r, key) is not None]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict:
        return {
            "rows": [asdict(r) for r in self.rows],
            "top1": self.top1,
            "top3": self.top3,
            "chance_top1": self.chance_top1,
            "chance_top3": self.chance_top3,
            "real_top1": self.real("real_top1"),
            "real_top3": self.real("real_top3"),
            "classifier_labels": self.classifier_labels,
            "tokens": self.tokens,
            "seed": self.seed,
            "guidance": self.guidance,
            "judge_auc": self.judge_auc,
            "judge_auc_std": self.judge_auc_std,
        }

    def markdown(self) -> str:
        """The table: per composer and the mean, with chance and the real pieces' ceiling."""

        def pct(value: float | None) -> str:
            return "—" if value is None else f"{100 * value:.0f}%"

        lines = [
            f"Composer control: {self.rows[0].samples if self.rows else 0} samples × {self.tokens} tokens per "
            f"composer (seed {self.seed}, composer guidance {self.guidance:g}); the classifier knows {len(self.classifier_labels)} composers (chance: "
            f"top-1 {pct(self.chance_top1)}, top-3 {pct(self.chance_top3)}).",
            "",
            "| asked for | top-1 | top-3 | real held-out pieces: top-1 / top-3 (n) | unconditioned samples given to it |",
            "|---|---:|---:|---|---:|",
        ]
        for r in self.rows:
            real = f"{pct(r.real_top1)} / {pct(r.real_top3)} ({r.real_pieces})" if r.real_pieces else "—"
            lines.append(
                f"| {r.composer} | {pct(r.top1)} | {pct(r.top3)} | {real} | {pct(r.unconditioned_top1)} |"
            )
        real_mean = f"{pct(self.real('real_top1'))} / {pct(self.real('real_top3'))}"
        lines.append(f"| **mean** | **{pct(self.top1)}** | **{pct(self.top3)}** | {real_mean} | |")
        if self.judge_auc is not None:
            lines += [
                "",
                f"Feature judge, the conditioned samples against these composers' real pieces: ROC AUC "
                f"{self.judge_auc:.3f} ± {self.judge_auc_std:.3f} (0.5: indistinguishable).",
            ]
        return "\n".join(lines) + "\n"


def _ranks(classifier, classifier_tokenizer, token_lists) -> list[list[str]]:
    """Per sequence the classifier's labels, most likely first."""
    probs = sequence_probabilities(classifier, classifier_tokenizer, token_lists)
    names = classifier.config.id2label
    return [[names[int(i)] for i in np.argsort(-row)] for row in probs]


def composer_control(
    generator,
    tokenizer,
    classifier,
    classifier_tokenizer,
    *,
    samples: int = 10,
    tokens: int = 1000,
    seed: int = 0,
    composers: list[str] | None = None,
    dataset: str | None = None,
    split: str = "test",
    guidance: float = GenerationRequest.composer_guidance,
) -> ComposerControlReport:
    """Generate `samples` pieces of `tokens` tokens per composer label (all the generator's but `other`, or
    `composers`) with the generator's preset, and as many unconditioned; classify them. With `dataset`, the classifier's
    hits on the real pieces of `split` by each composer too. `guidance`: the conditioned requests' composer_guidance
    (classifier-free guidance; 1 is the label alone)."""
    known = [c for c in getattr(tokenizer, "composers", ()) if c != OTHER_COMPOSER]
    if not known:
        raise ValueError("this generator has no composer labels: train it with --composer-min-pieces")
    labels = list(classifier.config.id2label.values())
    asked = composers or [c for c in known if c in labels]
    unknown = [c for c in asked if c not in known or c not in labels]
    if unknown or not asked:
        raise ValueError(
            f"composers {unknown or asked}: need labels both the generator ({', '.join(known)}) and the classifier "
            f"({', '.join(labels)}) know"
        )
    if samples < 1 or tokens < 16:
        raise ValueError(f"samples must be >= 1 and tokens >= 16, got {samples} and {tokens}")
    sampler, guards = preset_from_generation_config(generator.generation_config)

    def generate(composer: str | None) -> list[list[str]]:
        request = GenerationRequest(
            sampler=replace(sampler, seed=seed), guards=guards, beats=None, max_new_tokens=tokens,
            num_samples=samples, composer=composer, composer_guidance=guidance if composer else 1.0,
        )  # fmt: skip
        pieces = compose(generator, tokenizer, request)
        empty = [i for i, piece in enumerate(pieces) if not piece.tokens]
        if empty:
            raise ValueError(f"composer {composer!r}: samples {empty} came out empty")
        return [piece.tokens for piece in pieces]

    plain = _ranks(classifier, classifier_tokenizer, generate(None))
    real: dict[str, list[list[str]]] = {}
    chosen = []  # the real pieces by the composers asked for
    if dataset:
        pieces = load_pieces(dataset, split, tokenizer, original_key_only=True, with_composer=True)
        chosen = [p for p in pieces if p.composer in asked]
        ranks = _ranks(classifier, classifier_tokenizer, [p.ids for p in chosen]) if chosen else []
        for piece, rank in zip(chosen, ranks):
            real.setdefault(piece.composer, []).append(rank)
    report = ComposerControlReport(classifier_labels=labels, tokens=tokens, seed=seed, guidance=guidance)
    conditioned: list[list[str]] = []
    for composer in asked:
        made = generate(composer)
        conditioned += made
        ranks = _ranks(classifier, classifier_tokenizer, made)
        own = real.get(composer, [])
        report.rows.append(
            ComposerRow(
                composer=composer,
                samples=len(ranks),
                top1=float(np.mean([r[0] == composer for r in ranks])),
                top3=float(np.mean([composer in r[:3] for r in ranks])),
                real_pieces=len(own),
                real_top1=float(np.mean([r[0] == composer for r in own])) if own else None,
                real_top3=float(np.mean([composer in r[:3] for r in own])) if own else None,
                unconditioned_top1=float(np.mean([r[0] == composer for r in plain])),
            )
        )
    if dataset and chosen:
        layout = VocabLayout.from_config(generator.config)
        real_excerpts, real_groups = excerpts([p.ids for p in chosen], per_sequence=2, seed=seed)
        made_ids = [np.asarray(tokenizer.convert_tokens_to_ids(t)) for t in conditioned]
        made_excerpts, made_groups = excerpts(made_ids, per_sequence=1, seed=seed)
        if len(real_excerpts) >= 5 and len(made_excerpts) >= 5:
            judged = judge_score(real_excerpts, real_groups, made_excerpts, made_groups, layout, seed=seed)
            report.judge_auc, report.judge_auc_std = judged.auc, judged.auc_std
    return report
