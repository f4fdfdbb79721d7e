"""Does a critic judge music? Real excerpts of pieces it never saw against each kind of negative, separately.

A critic that only learnt "does not sound like our generator" rates real music with scrambled pitches as human.
This check scores real excerpts of a held-out split, the same excerpts spoilt by each corruption
(`corruptions.CORRUPTIONS`), and any other negatives given (a generator's samples), and reports per kind the ROC
AUC of real against it (1: the critic always prefers the real excerpt; 0.5: chance; below 0.5: it prefers the fake),
with a reliability curve of its probabilities (calibration: of the excerpts given P(human) near p, about p should be
real, with real and spoilt excerpts weighted to equal totals).

Every excerpt, real or not, is read as notes and written back before it is scored, so that only the music differs
between them, not how the excerpt's edges were cut (notes sounding at the cut, releases of notes begun before it).
`check_folder` runs the check on a critic folder and a dataset split (`toccata critic check`), on excerpts or on
whole pieces (the verdict `toccata critic score` gives a file).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from toccata.modeling.hub import load_checkpoint

from .corruptions import CORRUPTIONS, corrupt
from .data import dataset_rows, windows
from .model import critic_scores, load_classifier
from .negatives import generated_samples

Scorer = Callable[[list[list[str]]], list[float]]  # token lists -> P(human) each
EXCERPT_TOKENS = 512
CALIBRATION_BINS = 10
CHECK_SPLITS = ("test", "unseen_composers")  # the splits a trained critic is checked on (those the dataset has)


@dataclass
class CriticCheck:
    """The check's numbers: AUC of real against each negative kind, and the reliability curve of all scores."""

    real: int  # real excerpts scored
    auc: dict[str, float] = field(default_factory=dict)  # negative kind -> ROC AUC of real against it
    counts: dict[str, int] = field(default_factory=dict)  # negative kind -> excerpts scored
    mean_p_human: dict[str, float] = field(default_factory=dict)  # "real" and each kind -> mean P(human)
    reliability: list[tuple[float, float, int]] = field(default_factory=list)  # (mean P, share real, count) per bin

    def markdown(self) -> str:
        """The check as a Markdown table and the reliability curve."""
        lines = ["| negatives | excerpts | mean P(human) | ROC AUC real vs them |", "|---|---:|---:|---:|"]
        lines.append(f"| (real excerpts) | {self.real} | {self.mean_p_human['real']:.3f} | |")
        for kind, value in self.auc.items():
            lines.append(f"| {kind} | {self.counts[kind]} | {self.mean_p_human[kind]:.3f} | {value:.3f} |")
        lines += ["", "| P(human) bin: mean | share real | excerpts |", "|---:|---:|---:|"]
        lines += [f"| {p:.2f} | {share:.2f} | {count} |" for p, share, count in self.reliability]
        return "\n".join(lines)


def real_excerpts(
    dataset: str | os.PathLike, split: str, tokenizer, length: int = EXCERPT_TOKENS, per_piece: int = 2
) -> list[list[str]]:
    """Up to `per_piece` excerpts of `length` tokens spread over each untransposed piece of `split`, as words."""
    out = []
    for _, ids in dataset_rows(dataset, split, tokenizer):
        out += [tokenizer.convert_ids_to_tokens(window.tolist()) for window in windows(ids, length, per_piece)]
    return out


def real_pieces(dataset: str | os.PathLike, split: str, tokenizer) -> list[list[str]]:
    """Every untransposed piece of `split`, whole, as words: what `toccata critic score` reads from a file."""
    return [tokenizer.convert_ids_to_tokens(ids.tolist()) for _, ids in dataset_rows(dataset, split, tokenizer)]


def corrupted(excerpts: Sequence[list[str]], tokenizer, kind: str | None, seed: int = 0) -> list[list[str]]:
    """Each excerpt spoilt by `kind` (None: not spoilt), read and written back as the tokenizer does (a seed per
    excerpt)."""
    out = []
    for index, tokens in enumerate(excerpts):
        notes = tokenizer.tokens_to_notes(tokens)
        if kind is not None:
            notes = corrupt(notes, kind, np.random.default_rng([seed, index]))
        out.append(tokenizer.notes_to_tokens(notes))
    return out


def _reliability(probs: np.ndarray, labels: np.ndarray, bins: int) -> list[tuple[float, float, int]]:
    """(mean P, share real, count) per probability bin, real and fake weighted to equal totals (a balanced prior)."""
    weight = np.where(labels == 1, 1.0 / max(1, (labels == 1).sum()), 1.0 / max(1, (labels == 0).sum()))
    index = np.minimum((probs * bins).astype(int), bins - 1)
    curve = []
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            share = float((weight[chosen] * labels[chosen]).sum() / weight[chosen].sum())
            curve.append((float(probs[chosen].mean()), share, int(chosen.sum())))
    return curve


def check_critic(
    score: Scorer,
    tokenizer,
    real: Sequence[list[str]],
    negatives: dict[str, Sequence[list[str]]] | None = None,
    corruptions: Sequence[str] = tuple(CORRUPTIONS),
    seed: int = 0,
) -> CriticCheck:
    """Score `real` excerpts, their corruptions and any other `negatives` (kind -> excerpts); AUC per kind."""
    if not real:
        raise ValueError("no real excerpts to check the critic on")
    kinds = {kind: corrupted(real, tokenizer, kind, seed) for kind in corruptions}
    kinds.update({kind: corrupted(excerpts, tokenizer, None) for kind, excerpts in (negatives or {}).items()})
    real = corrupted(real, tokenizer, None)  # written back like the others: only the music differs
    real_p = np.asarray(score(list(real)), dtype=np.float64)
    result = CriticCheck(real=len(real), mean_p_human={"real": float(real_p.mean())})
    all_p, all_labels = [real_p], [np.ones(len(real_p))]
    for kind, excerpts in kinds.items():
        if not excerpts:
            raise ValueError(f"no excerpts of negative kind {kind!r}")
        fake_p = np.asarray(score(list(excerpts)), dtype=np.float64)
        labels = np.r_[np.ones(len(real_p)), np.zeros(len(fake_p))]
        result.auc[kind] = float(roc_auc_score(labels, np.r_[real_p, fake_p]))
        result.counts[kind] = len(fake_p)
        result.mean_p_human[kind] = float(fake_p.mean())
        all_p.append(fake_p)
        all_labels.append(np.zeros(len(fake_p)))
    result.reliability = _reliability(np.concatenate(all_p), np.concatenate(all_labels), CALIBRATION_BINS)
    return result


CACHE_STAMP = "samples_of.json"  # in a samples cache: the generator and length its samples were made with


def _samples_cache(folder: Path, generator, beats: float, log=print) -> Path:
    """`folder`, stamped with the generator and sample length on first use; a clear error if it holds another's."""
    stamp = {"generator": str(Path(str(generator)).resolve()), "beats": float(beats)}
    path = folder / CACHE_STAMP
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != stamp:
            raise ValueError(
                f"{folder}: holds samples of {saved.get('generator')} ({saved.get('beats')} beats), not of "
                f"{stamp['generator']} ({beats:g} beats); give another --samples-cache folder"
            )
    else:
        if any(folder.glob("test-*.json")):  # e.g. a critic's OUT/samples: made by its own generator
            log(f"{folder}: reusing the samples there (made before any stamp; they must be {generator}'s)")
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stamp) + "\n", encoding="utf-8")
    return folder


def check_folder(
    critic: str | os.PathLike,
    dataset: str | os.PathLike,
    split: str = "test",
    generator: str | os.PathLike | None = None,
    samples: int = 0,
    beats: float = 96.0,
    log=print,
    tokens: int = EXCERPT_TOKENS,
    samples_cache: str | os.PathLike | None = None,
) -> CriticCheck:
    """`check_critic` of the critic in folder `critic` on `split` of `dataset`, with `samples` samples of `generator`
    (its preset mix of samplers, test seeds; their first `tokens` tokens) as one more kind. `tokens` 0: whole pieces
    and whole samples instead of excerpts, each scored as `toccata critic score` scores a file (the mean over up to
    `model.MAX_WINDOWS` excerpts), and each piece spoilt whole. `samples_cache`: a folder that keeps the samples
    (test-NNN.json, as `toccata critic train` caches them in OUT/samples) for the next check of the same generator."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0 (0: whole pieces), got {tokens}")
    model, tokenizer = load_classifier(critic)
    if (getattr(model.config, "toccata_classifier", None) or {}).get("task", "critic") != "critic":
        raise ValueError(f"{critic}: is a {model.config.toccata_classifier['task']} checkpoint, not a critic")
    score = lambda lists: critic_scores(model, tokenizer, lists)
    score([["wait12"]])  # fails early with a clear line if the labels are not a critic's
    negatives = {}
    if samples:
        lm, lm_tokenizer = load_checkpoint(str(generator))
        with tempfile.TemporaryDirectory() as folder:
            where = Path(folder)
            if samples_cache is not None:
                where = _samples_cache(Path(samples_cache), generator, beats, log)
            texts = generated_samples(lm, lm_tokenizer, where, "test", samples, beats, log)
        negatives[f"samples of {Path(str(generator)).name}"] = [words[: tokens or None] for words in texts]
    real = real_excerpts(dataset, split, tokenizer, tokens) if tokens else real_pieces(dataset, split, tokenizer)
    return check_critic(score, tokenizer, real, negatives)
