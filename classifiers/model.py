"""Sequence classifiers on the generator's encoder: building (from a generator checkpoint or from scratch),
fine-tuning with gradual unfreezing and discriminative learning rates (ULMFiT), scoring, saving and loading.

    model = classifier_from_generator("toccata/checkpoints/default", ["generated", "human"])   # pretrained encoder
    fit(model, sampler, valid, FitSettings(steps=300))                                         # head first, then down
    critic_scores(model, tokenizer, [tokens, ...])                                             # P(human) per piece

The tasks (critic, composer), their data and their evaluation are in `tasks.py`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import toccata.tokenization  # noqa: F401  registers NotewiseTokenizer with AutoTokenizer
import torch
import torch.nn.functional as F
from toccata.modeling import NotewiseLSTMConfig, NotewiseLSTMForSequenceClassification  # registers the model too
from toccata.modeling.hub import hub_load_options
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data import Excerpts, ExcerptSampler, windows

HUMAN = "human"
GENERATED = "generated"
CRITIC_LABELS = [GENERATED, HUMAN]  # class 1: human-composed


def classifier_from_generator(
    generator: str | os.PathLike, labels: list[str], pretrained: bool = True, classifier_dropout: float = 0.1
):
    """A `NotewiseLSTMForSequenceClassification` with the generator's sizes and vocabulary; with `pretrained`, its
    embedding and LSTM weights too (the head is new either way)."""
    options = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
        "classifier_dropout": classifier_dropout,
    }
    try:
        if pretrained:
            return NotewiseLSTMForSequenceClassification.from_pretrained(str(generator), **options)
        config = NotewiseLSTMConfig.from_pretrained(str(generator), **options)
    except OSError as err:
        raise ValueError(f"{generator}: not a Toccata checkpoint folder ({str(err).splitlines()[0]})") from None
    config.architectures = None
    return NotewiseLSTMForSequenceClassification(config)


def layer_groups(model) -> list[list[torch.nn.Parameter]]:
    """Parameter groups from the top: the head, each LSTM layer from the last, then the embedding with the first."""
    layers = list(model.model.layers)
    groups = [list(model.classifier.parameters())]
    groups += [list(layer.parameters()) for layer in reversed(layers[1:])]
    groups.append(list(layers[0].parameters()) + list(model.model.embeddings.parameters()))
    return groups


@dataclass
class FitSettings:
    """How a classifier is fine-tuned; every run depends only on these and the data."""

    steps: int = 300  # optimizer steps
    batch_size: int = 32
    learning_rate: float = 2e-3  # of the head; group k below it gets learning_rate / lr_decay**k
    lr_decay: float = 2.6  # ULMFiT's discriminative factor (1: one learning rate for all)
    unfreeze_every: int = 0  # gradual unfreezing: one more group every N steps (0: everything trains from step 0)
    warmup: float = 0.1  # share of steps with a linear warm-up, then linear decay (a slanted triangle)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 50
    seed: int = 0


def _lr_factor(step: int, settings: FitSettings) -> float:
    warm = max(1, int(settings.steps * settings.warmup))
    if step < warm:
        return (step + 1) / warm
    return max(0.02, (settings.steps - step) / max(1, settings.steps - warm))


def fit(model, sampler: ExcerptSampler, valid: Excerpts | None, settings: FitSettings, log=None) -> list[dict]:
    """Train on `sampler`'s batches; keep the weights with the lowest validation loss. Returns the log rows.

    With `unfreeze_every`, only the head trains at first and one more group (from the top) joins every N steps."""
    torch.manual_seed(settings.seed)
    groups = layer_groups(model)
    optimizer = torch.optim.AdamW(
        [{"params": g, "lr": settings.learning_rate / settings.lr_decay**k} for k, g in enumerate(groups)],
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
    )
    base = [group["lr"] for group in optimizer.param_groups]
    history, best, best_state, started, running = [], math.inf, None, time.perf_counter(), []
    for step in range(settings.steps):
        trainable = len(groups) if not settings.unfreeze_every else 1 + step // settings.unfreeze_every
        for k, group in enumerate(groups):
            for p in group:
                p.requires_grad_(k < trainable)
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * _lr_factor(step, settings)
        model.train()
        loss = model(**sampler.batch(step, settings.batch_size)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], settings.max_grad_norm)
        optimizer.step()
        running.append(loss.item())
        if valid is not None and ((step + 1) % settings.eval_every == 0 or step + 1 == settings.steps):
            probs = predict_proba(model, valid.ids, valid.mask)
            v_loss = float(-np.log(np.clip(probs[np.arange(len(probs)), valid.labels], 1e-9, 1)).mean())
            row = {
                "step": step + 1,
                "train_loss": float(np.mean(running)),
                "valid_loss": v_loss,
                "valid_accuracy": float((probs.argmax(1) == valid.labels).mean()),
                "groups_training": min(trainable, len(groups)),
                "elapsed_s": round(time.perf_counter() - started, 1),
            }
            running = []
            history.append(row)
            if log:
                log(row)
            if v_loss < best:
                best, best_state = v_loss, copy.deepcopy(model.state_dict())
    for p in model.parameters():
        p.requires_grad_(True)
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


@torch.inference_mode()
def predict_proba(model, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, num_labels) of right-padded excerpts, in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(ids), batch_size):
        logits = model(
            input_ids=torch.as_tensor(ids[i : i + batch_size], device=device),
            attention_mask=torch.as_tensor(mask[i : i + batch_size], device=device),
        ).logits
        out.append(F.softmax(logits.float(), dim=-1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels))


def excerpt_tokens(model, default: int = 256) -> int:
    """The excerpt length a classifier was trained on (stored in its config)."""
    return int((getattr(model.config, "toccata_classifier", None) or {}).get("excerpt_tokens", default))


MAX_WINDOWS = 16  # excerpts a long sequence is scored by (their mean)


def sequence_probabilities(model, tokenizer, token_lists, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Class probabilities (n, num_labels) per token sequence: the mean over up to `max_windows` excerpts of the
    length the classifier was trained on. A sequence is a list of words (`p60`) or of token ids."""
    length, pad, first = excerpt_tokens(model), tokenizer.pad_token_id, int(model.config.note_on_offset)
    rows, owners = [], []
    for index, tokens in enumerate(token_lists):
        ids = tokenizer.convert_tokens_to_ids(list(tokens)) if _words(tokens) else list(tokens)
        ids = np.asarray([i for i in ids if i is not None and i >= first], dtype=np.int64)  # no specials, <unk>
        if len(ids) == 0:
            raise ValueError(f"sequence {index}: no note or wait tokens to classify")
        for window in windows(ids, length, max_windows):
            rows.append(window)
            owners.append(index)
    ids = np.full((len(rows), length), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, window in enumerate(rows):
        ids[r, : len(window)], mask[r, : len(window)] = window, 1
    probs = predict_proba(model, ids, mask)
    owners = np.asarray(owners)
    return np.stack([probs[owners == i].mean(axis=0) for i in range(len(token_lists))])


def _words(tokens) -> bool:
    return len(tokens) > 0 and isinstance(next(iter(tokens)), str)


def critic_scores(model, tokenizer, token_lists) -> list[float]:
    """The critic's probability that each token sequence (words or ids) is human-composed, 0..1."""
    human = model.config.label2id.get(HUMAN)
    if human is None:
        raise ValueError(f"not a critic: its labels are {list(model.config.label2id)}, expected {CRITIC_LABELS}")
    return [float(p) for p in sequence_probabilities(model, tokenizer, token_lists)[:, int(human)]]


def load_classifier(source: str | os.PathLike, trust_remote_code: bool = False):
    """(model, tokenizer) of a classifier folder or Hub id, in eval mode; a clear error if it is not one."""
    name = str(source)
    options = {"trust_remote_code": trust_remote_code, **hub_load_options(name, kind="classifier")}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(name, **options)
        tokenizer = AutoTokenizer.from_pretrained(name, **options)
    except (OSError, ValueError) as err:  # ValueError: a folder with a config.json of no known model
        raise ValueError(f"{name}: not a Toccata classifier folder ({str(err).splitlines()[0]})") from None
    return model.eval(), tokenizer


def save_classifier(folder: str | os.PathLike, model, tokenizer, info: dict, card: str) -> Path:
    """Weights (safetensors), config (with `info` as `toccata_classifier`), tokenizer and model card; no code (it
    loads through the package; `toccata save --for-hub` writes the Hub's copy with the code)."""
    from toccata.modeling.hub import forget_code

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.toccata_classifier = info
    model.config.architectures = [type(model).__name__]
    forget_code(model, tokenizer)  # a generator's auto_map would also load a headless LM
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


__all__ = [
    "CRITIC_LABELS",
    "MAX_WINDOWS",
    "FitSettings",
    "classifier_from_generator",
    "critic_scores",
    "excerpt_tokens",
    "fit",
    "layer_groups",
    "load_classifier",
    "predict_proba",
    "save_classifier",
    "sequence_probabilities",
]
