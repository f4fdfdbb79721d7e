"""The two classifier tasks, from data to a saved, evaluated checkpoint folder.

- **critic**: real excerpts (a built dataset's splits, by piece) against negatives of three kinds in set shares
  (`negatives.py`): the generator's own samples (its preset guards, a spread of samplers and temperatures, cached
  under OUT/samples so an interrupted run reuses them), real excerpts corrupted in ways a listener hears, and
  weaker composers' samples; class 1 is "human". Tested on the test split's pieces and on negatives drawn with seeds
  never used in training, and checked kind by kind (`critic_check.py`) on the test and unseen-composer splits.
- **composer**: the composer column of a built dataset (composers with at least `min_pieces` training pieces);
  tested on the test split's pieces, by piece (mean log-probability over its excerpts).

Both train on random excerpts of equal length with random transposition, and are compared with a features +
logistic-regression baseline (the feature critic's musical features of the same excerpts).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from toccata.evaluation.feature_critic import excerpt_features
from toccata.modeling.hub import load_checkpoint
from toccata.modeling.layout import VocabLayout
from toccata.training.runs import CHECKPOINTS, machine, resume_point, trainer_arguments
from transformers import TrainingArguments, set_seed

from .card import card_text
from .critic_check import CHECK_SPLITS, check_critic, real_excerpts
from .critic_check import EXCERPT_TOKENS as CHECK_TOKENS
from .data import (
    SAMPLER_SPREAD,
    Excerpts,
    ExcerptSampler,
    Labelled,
    composer_classes,
    composer_sequences,
    dataset_rows,
    fixed_excerpts,
)
from .fine_tune import fine_tune
from .model import CRITIC_LABELS, classifier_from_generator, critic_scores, predict_proba, save_classifier
from .negatives import (
    DEFAULT_NEGATIVES,
    SAMPLE_BATCH,
    WEAKER_MODELS,
    CriticSampler,
    corrupted_excerpts,
    generated_samples,
    negative_shares,
    weaker_samples,
)


@dataclass
class ClassifierTask:
    """Everything a classifier run depends on; saved as `task_config.json` beside the result."""

    task: str  # critic or composer
    dataset: str  # a built dataset folder or Hub id (splits train, validation, test)
    output_dir: str
    generator: str  # the generator checkpoint: the encoder (and, for the critic, the samples)
    pretrained: bool = True  # encoder initialised from the generator; False: from scratch, same sizes
    excerpt_tokens: int = 256
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-3
    unfreeze_every: int | None = None  # None: steps // 8 when pretrained, 0 (all at once) from scratch
    lr_decay: float | None = None  # None: 2.6 when pretrained, 1 from scratch
    max_transpose: int = 6
    eval_every: int = 50
    eval_windows: int = 8  # excerpts per test piece (and per generated sample: a quarter of it)
    warmup: float = 0.1  # share of steps with a linear warm-up, then a linear decay (ULMFiT's slanted triangle)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    train_samples: int = 384  # critic: generated samples per split
    validation_samples: int = 64
    test_samples: int = 128
    sample_beats: float = 96.0
    negatives: str = DEFAULT_NEGATIVES  # critic: shares of the negative class, kind=share (see negatives.py)
    weaker_temperature: float = 1.8  # critic: the temperature of the generator's "hot" weaker samples
    weaker_from: tuple[str, ...] = ()  # critic: more generators whose samples are weaker negatives (e.g. a tuned one)
    corrupted_per_piece: int = 4  # critic: spoilt excerpts per validation/test piece
    paired: bool = False  # critic: each spoilt training excerpt beside its unspoilt twin in the batch (negatives.py)
    min_pieces: int = 5  # composer: a composer needs this many training pieces to be a class
    license: str = "unknown"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in ("critic", "composer"):
            raise ValueError(f"task must be critic or composer, got {self.task!r}")
        for name in ("excerpt_tokens", "steps", "batch_size", "eval_every", "eval_windows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.excerpt_tokens < 16:
            raise ValueError(f"excerpt_tokens must be at least 16, got {self.excerpt_tokens}")
        if self.task == "critic":
            shares = negative_shares(self.negatives)  # a clear error now, not after generating samples
            if self.paired and "corrupted" not in shares:
                raise ValueError(f"paired pairs corrupted excerpts with their originals: give corrupted a share in "
                                 f"negatives (like corrupted=0.5), got {self.negatives!r}")  # fmt: skip
        elif self.paired:
            raise ValueError("paired is for the critic (corrupted excerpts beside their originals), not for composers")

    def unfreezing(self) -> tuple[int, float]:
        """(unfreeze_every, lr_decay), the defaults resolved: ULMFiT's for a pretrained encoder (one more layer group
        every steps / 8 steps, each group below the head at ÷2.6 the learning rate), neither from scratch."""
        unfreeze = (
            self.unfreeze_every if self.unfreeze_every is not None else (self.steps // 8 if self.pretrained else 0)
        )
        return unfreeze, self.lr_decay if self.lr_decay is not None else (2.6 if self.pretrained else 1.0)

    def training_arguments(self) -> TrainingArguments:
        """The Trainer's arguments (`training.runs`): batches of `batch_size` excerpts for `steps` steps, validation
        and a checkpoint in OUT/checkpoints every `eval_every` steps and at the end, the best weights kept."""
        return trainer_arguments(
            self,
            Path(self.output_dir),
            self.eval_every,
            max_steps=self.steps,
            per_device_eval_batch_size=64,
            logging_steps=self.eval_every,
            save_total_limit=2,  # the best and the newest
            disable_tqdm=True,  # a JSON row per validation instead (`fine_tune`'s log)
        )


# What `--resume` may change from the run it continues: everything else is its data, model or optimisation.
RESUME_MAY_CHANGE = ("output_dir", "steps", "eval_every", "license", "device")
RESUME_MUST_MATCH = tuple(f.name for f in fields(ClassifierTask) if f.name not in RESUME_MAY_CHANGE)


def _critic_split(
    task, tokenizer, generator, split: str, count: int, train_real: list[Labelled], log, others: dict | None = None
) -> list:
    """Labelled sequences of one split: real pieces (group "piece:..."), the generator's samples ("sample:..."),
    weaker composers' samples ("weaker:MODEL:..."), and outside training fixed corrupted excerpts
    ("corrupted:KIND:..."; training corrupts on the fly). Training makes only the kinds with a share."""
    human = CRITIC_LABELS.index("human")
    shares = negative_shares(task.negatives) if split == "train" else dict.fromkeys(("generator", "weaker"), 1.0)
    real = train_real if split == "train" else _real_sequences(task, tokenizer, split)
    folder = Path(task.output_dir) / "samples"
    fake = []
    if "generator" in shares:
        texts = generated_samples(generator, tokenizer, folder, split, count, task.sample_beats, log)
        fake += [Labelled(_ids(tokenizer, words), 1 - human, f"sample:{split}:{i}") for i, words in enumerate(texts)]
    if "weaker" in shares:
        records = weaker_samples(
            generator,
            tokenizer,
            train_real,
            folder,
            split,
            _weaker_count(count, len(WEAKER_MODELS) + len(task.weaker_from)),
            task.sample_beats,
            task.weaker_temperature,
            log,
            others=others,
        )
        fake += [
            Labelled(_ids(tokenizer, r["tokens"]), 1 - human, f"weaker:{r['model']}:{split}:{i}")
            for i, r in enumerate(records)
        ]
    if split != "train":
        fake += corrupted_excerpts(real, tokenizer, task.excerpt_tokens, task.corrupted_per_piece, split, 1 - human)
    short = task.excerpt_tokens
    return [s for s in real + fake if len(s.ids) >= short] or real + fake  # equal-length excerpts on both sides


def _weaker_count(count: int, models: int) -> int:
    return max(SAMPLE_BATCH * models, count // 2)  # at least one batch of each weaker model


def _weaker_name(path: str) -> str:
    """A `--weaker-from` generator's name in the data and the check: its folder's."""
    return Path(str(path).rstrip("/")).name


def _other_generators(task: ClassifierTask) -> dict:
    """`task.weaker_from` loaded, each named by its folder (`weaker:NAME:...` in the data and the check)."""
    others = {}
    for path in task.weaker_from:
        name = _weaker_name(path)
        if name in others:
            raise ValueError(f"weaker_from: two generators named {name!r}; give folders with different names")
        others[name] = load_checkpoint(path)[0].eval()
    return others


def _ids(tokenizer, words: list[str]) -> np.ndarray:
    return np.asarray(tokenizer.convert_tokens_to_ids(words), dtype=np.int64)


def _real_sequences(task, tokenizer, split: str) -> list[Labelled]:
    human = CRITIC_LABELS.index("human")
    return [
        Labelled(ids, human, "piece:" + row["piece_id"]) for row, ids in dataset_rows(task.dataset, split, tokenizer)
    ]


def _task_data(task: ClassifierTask, tokenizer, log) -> tuple[list[str], dict[str, list[Labelled]], dict]:
    """(class names, split -> labelled sequences, notes on the data)."""
    if task.task == "composer":
        rows = {split: dataset_rows(task.dataset, split, tokenizer) for split in ("train", "validation", "test")}
        classes = composer_classes(rows["train"], task.min_pieces)
        data = {split: composer_sequences(r, classes) for split, r in rows.items()}
        notes = {
            split: f"{len(data[split])} of {len(r)} pieces in the {len(classes)} classes" for split, r in rows.items()
        }
        return classes, data, notes

    generator, _ = load_checkpoint(task.generator)
    counts = {"train": task.train_samples, "validation": task.validation_samples, "test": task.test_samples}
    train_real = _real_sequences(task, tokenizer, "train")
    others = _other_generators(task)  # loaded once for the three splits
    data = {
        split: _critic_split(task, tokenizer, generator, split, n, train_real, log, others)
        for split, n in counts.items()
    }
    notes = {split: _kinds_note(seqs) for split, seqs in data.items()}
    return list(CRITIC_LABELS), data, notes


def _kinds_note(seqs: list[Labelled]) -> str:
    """'N real pieces, N generator samples, ...' of one split."""
    names = {"piece": "real pieces", "sample": "generator samples", "weaker": "weaker-model samples"}
    names["corrupted"] = "corrupted excerpts"
    counts = Counter(s.group.split(":")[0] for s in seqs)
    return ", ".join(f"{counts[k]} {names[k]}" for k in names if counts[k])


def _eval_excerpts(task: ClassifierTask, seqs: list[Labelled], pad_id: int) -> Excerpts:
    # generated samples are many and short: fewer excerpts each, so both sides weigh about the same
    real = [s for s in seqs if not s.group.startswith(("sample:", "weaker:", "corrupted:"))]
    fake = [s for s in seqs if s.group.startswith(("sample:", "weaker:"))]
    fake += [s for s in seqs if s.group.startswith("corrupted:")]  # one excerpt each already
    parts = [fixed_excerpts(real, task.excerpt_tokens, task.eval_windows, pad_id)]
    if fake:
        parts.append(fixed_excerpts(fake, task.excerpt_tokens, max(1, task.eval_windows // 4), pad_id))
    return Excerpts(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.mask for p in parts]),
        np.concatenate([p.labels for p in parts]),
        [g for p in parts for g in p.groups],
    )


def by_group(probs: np.ndarray, labels: np.ndarray, groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One row per group: the mean log-probability of its excerpts (renormalised), and its label."""
    names = list(dict.fromkeys(groups))
    index = {g: i for i, g in enumerate(names)}
    owner = np.asarray([index[g] for g in groups])
    logp = np.log(np.clip(probs, 1e-9, 1.0))
    mean = np.stack([logp[owner == i].mean(axis=0) for i in range(len(names))])
    p = np.exp(mean - mean.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), np.asarray([labels[owner == i][0] for i in range(len(names))])


def metrics(task: str, probs: np.ndarray, labels: np.ndarray, groups: list[str], prefix: str = "") -> dict:
    """Critic: ROC AUC and accuracy of P(human) per excerpt and per piece/sample. Composer: top-1/top-3 per piece
    and top-1 per excerpt."""
    piece_probs, piece_labels = by_group(probs, labels, groups)
    if task == "critic":
        out = {}
        for level, p, y in (("excerpt", probs, labels), ("piece", piece_probs, piece_labels)):
            out[f"{level}_roc_auc"] = float(roc_auc_score(y, p[:, 1]))
            out[f"{level}_accuracy"] = float(((p[:, 1] >= 0.5) == y).mean())
            out[f"{level}_balanced_accuracy"] = float(balanced_accuracy_score(y, p[:, 1] >= 0.5))
        out["excerpts"], out["pieces_and_samples"] = len(labels), len(piece_labels)
    else:
        ranks = np.argsort(-piece_probs, axis=1)
        out = {
            "piece_top1": float((ranks[:, 0] == piece_labels).mean()),
            "piece_top3": float((ranks[:, :3] == piece_labels[:, None]).any(axis=1).mean()),
            "excerpt_top1": float((probs.argmax(axis=1) == labels).mean()),
            "pieces": len(piece_labels),
            "excerpts": len(labels),
        }
    return {prefix + key: value for key, value in out.items()}


def features_baseline(task: ClassifierTask, train: list[Labelled], test: Excerpts, tokenizer) -> np.ndarray:
    """Class probabilities of the test excerpts from a logistic regression on the feature critic's musical features
    of untransposed training excerpts (up to `eval_windows` per training sequence)."""
    layout = VocabLayout.from_config(tokenizer)
    fit_on = fixed_excerpts(train, task.excerpt_tokens, task.eval_windows, tokenizer.pad_token_id)

    def features(ex: Excerpts) -> np.ndarray:
        return np.stack([excerpt_features(ids[mask > 0], layout) for ids, mask in zip(ex.ids, ex.mask)])

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    model.fit(features(fit_on), fit_on.labels)
    probs = np.zeros((len(test.labels), int(max(fit_on.labels.max(), test.labels.max()) + 1)))
    probs[:, model.classes_] = model.predict_proba(features(test))
    return probs


def majority_baseline(train: list[Labelled], test: Excerpts, num_labels: int) -> np.ndarray:
    """Every excerpt gets the training pieces' class shares (so top-k picks the k most common classes)."""
    counts = np.bincount([s.label for s in train], minlength=num_labels).astype(float)
    return np.tile(counts / counts.sum(), (len(test.labels), 1))


def train_task(task: ClassifierTask, log=print, resume: bool = False) -> dict:
    """Train, evaluate (with baselines) and save a classifier to `task.output_dir`; returns the summary. `resume`:
    continue from the newest checkpoint in OUT/checkpoints (removed once the classifier is saved)."""
    out = Path(task.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume_from = resume_point(out, asdict(task), "task_config.json", RESUME_MUST_MATCH, log) if resume else None
    (out / "task_config.json").write_text(json.dumps(asdict(task), indent=2) + "\n")
    started = time.perf_counter()
    _, tokenizer = load_checkpoint(task.generator)
    classes, data, notes = _task_data(task, tokenizer, log)
    prepared = time.perf_counter() - started
    pad = tokenizer.pad_token_id
    valid = _eval_excerpts(task, data["validation"], pad)
    test = _eval_excerpts(task, data["test"], pad)
    layout = VocabLayout.from_config(tokenizer)
    if task.task == "critic":
        sampler = CriticSampler(
            data["train"],
            task.excerpt_tokens,
            layout,
            pad,
            tokenizer,
            negative_shares(task.negatives),
            task.max_transpose,
            task.seed,
            task.paired,
        )
    else:
        sampler = ExcerptSampler(data["train"], task.excerpt_tokens, layout, pad, task.max_transpose, False, task.seed)
    set_seed(task.seed)  # the new head's initial weights too
    model = classifier_from_generator(task.generator, classes, pretrained=task.pretrained)
    unfreeze_every, lr_decay = task.unfreezing()
    fit_started = time.perf_counter()
    args = task.training_arguments()
    history = fine_tune(model, sampler, valid, args, unfreeze_every, lr_decay, resume_from, log=log)
    fit_s = time.perf_counter() - fit_started
    probs = predict_proba(model, test.ids, test.mask)
    result = metrics(task.task, probs, test.labels, test.groups)
    result.update(
        metrics(
            task.task, features_baseline(task, data["train"], test, tokenizer), test.labels, test.groups, "features_lr_"
        )
    )
    if task.task == "composer":
        result.update(
            metrics(
                task.task, majority_baseline(data["train"], test, len(classes)), test.labels, test.groups, "majority_"
            )
        )
    info = {
        "task": task.task,
        "excerpt_tokens": task.excerpt_tokens,
        "generator": str(task.generator),
        "pretrained_encoder": task.pretrained,
    }
    model.config.toccata_classifier = info  # the excerpt length the checks score with
    checks = _critic_checks(task, model.eval(), tokenizer, data, log) if task.task == "critic" else {}
    summary = {
        "task": task.task,
        "classes": classes,
        "data": notes,
        "test": result,
        "history": history,
        "fit": _fit_settings(task),
        "fit_seconds": round(fit_s, 1),
        "data_seconds": round(prepared, 1),
        "torch_threads": torch.get_num_threads(),
        "machine": machine(),
    }
    if checks:
        summary["check"] = checks
    save_classifier(out, model.eval(), tokenizer, info, card_text(task, summary))
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)  # the run is done: its folder is the classifier
    return summary


def _fit_settings(task: ClassifierTask) -> dict:
    """The fine-tuning's settings for the summary and the card, the defaults resolved."""
    unfreeze_every, lr_decay = task.unfreezing()
    names = ("steps", "batch_size", "learning_rate", "warmup", "weight_decay", "max_grad_norm")
    settings = {name: getattr(task, name) for name in (*names, "eval_every", "seed")}
    return {**settings, "lr_decay": lr_decay, "unfreeze_every": unfreeze_every}


def _critic_checks(task: ClassifierTask, model, tokenizer, data: dict[str, list[Labelled]], log) -> dict:
    """`check_critic` on every split of `CHECK_SPLITS` the dataset has: real excerpts against each corruption and
    against the test split's generated and weaker samples (the first excerpt of each), kind by kind."""
    negatives: dict[str, list[list[str]]] = {}
    names = {"sample": "generator's samples", "hot": f"generator at T {task.weaker_temperature:g}"}
    names.update(untrained="untrained model", ngram="5-gram")
    names.update({_weaker_name(p): f"{_weaker_name(p)}'s samples" for p in task.weaker_from})
    for seq in data["test"]:
        head, *rest = seq.group.split(":")
        kind = names.get(rest[0] if head == "weaker" else head)
        if kind and head in ("sample", "weaker"):
            negatives.setdefault(kind, []).append(tokenizer.convert_ids_to_tokens(seq.ids[:CHECK_TOKENS].tolist()))
    checks = {}
    for split in CHECK_SPLITS:
        try:
            real = real_excerpts(task.dataset, split, tokenizer, CHECK_TOKENS)
        except ValueError as err:
            log(f"critic check: no {split} split ({err})")
            continue
        check = check_critic(lambda lists: critic_scores(model, tokenizer, lists), tokenizer, real, negatives)
        log(f"critic check on {split}:\n{check.markdown()}")
        checks[split] = asdict(check)
    return checks


def comparison_task(task: ClassifierTask, output_dir: str | os.PathLike) -> ClassifierTask:
    """The same task trained from scratch (same sizes, steps and data) into `output_dir`, for the comparison."""
    return replace(task, pretrained=False, output_dir=str(output_dir), unfreeze_every=None, lr_decay=None)


__all__ = [
    "SAMPLER_SPREAD",
    "ClassifierTask",
    "by_group",
    "comparison_task",
    "features_baseline",
    "generated_samples",
    "majority_baseline",
    "metrics",
    "train_task",
]
