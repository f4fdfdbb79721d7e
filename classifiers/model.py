"""Sequence classifiers on the generator's encoder: building (from a generator checkpoint or from scratch), its
layer groups (what gradual unfreezing frees in turn), scoring, saving and loading.

    model = classifier_from_generator("toccata/checkpoints/default", ["generated", "human"])   # pretrained encoder
    critic_scores(model, tokenizer, [tokens, ...])                                             # P(human) per piece

Fine-tuning (ULMFiT's recipe in the transformers Trainer) is in `fine_tune.py`; the tasks (critic, composer), their
data and their evaluation are in `tasks.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import toccata.tokenization  # noqa: F401  registers NotewiseTokenizer with AutoTokenizer
import torch
import torch.nn.functional as F
from toccata.modeling import NotewiseLSTMConfig, NotewiseLSTMForSequenceClassification  # registers the model too
from toccata.modeling.hub import forget_code, hub_load_options
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .data import windows

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
    "classifier_from_generator",
    "critic_scores",
    "excerpt_tokens",
    "layer_groups",
    "load_classifier",
    "predict_proba",
    "save_classifier",
    "sequence_probabilities",
]
