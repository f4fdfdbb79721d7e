"""Data of the sequence classifiers (critic, composer): labelled token sequences, random excerpts of equal length
with random transposition for training, fixed excerpts for evaluation.

A `Labelled` sequence carries its group (the piece, or the generated sample) so no group straddles training and test.
Random excerpts are a pure function of (seed, step): a rerun, or a resumed run, draws the same batches. The
Trainer reads them through `SamplerBatches` (training) and `Excerpts` (evaluation), both torch datasets.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from toccata.modeling.layout import VocabLayout
from toccata.training.data import read_rows

ROW_COLUMNS = ("id", "piece_id", "composer", "notewise", "transposition")

# Overrides of the generator's preset sampler: the critic must not learn one sampler's quirks only.
SAMPLER_SPREAD = (
    {},  # the preset itself
    {"sampler": "top_k", "k": 5, "temperature": 0.8},
    {"sampler": "top_k", "k": 12, "temperature": 1.2},
    {"sampler": "top_n", "n": 3, "p_best": 0.95, "temperature": 1.0},
    {"sampler": "weighted", "temperature": 0.9},
    {"sampler": "weighted", "temperature": 1.1},
    {"sampler": "mixed", "random_freq": 0.5, "trunc": 5, "temperature": 1.0},
)


@dataclass(frozen=True)
class Labelled:
    """One token id sequence (no special tokens), its class id and its group (piece id or sample id)."""

    ids: np.ndarray  # (num_tokens,) int64
    label: int
    group: str


def dataset_rows(dataset: str | os.PathLike, split: str, tokenizer) -> list[tuple[dict, np.ndarray]]:
    """(row, token ids) of the untransposed rows of one split; a word outside the vocabulary is an error naming it."""
    out = []
    for row in read_rows(dataset, split, ROW_COLUMNS):
        if row["transposition"]:
            continue  # training transposes on the fly; a built transposed copy would repeat the piece
        words = row["notewise"].split()
        ids = np.asarray(tokenizer.convert_tokens_to_ids(words), dtype=np.int64)
        if tokenizer.unk_token_id is not None and (ids == tokenizer.unk_token_id).any():
            bad = words[int(np.argmax(ids == tokenizer.unk_token_id))]
            raise ValueError(f"{dataset} [{split}] row {row['id']}: word {bad!r} is not in the tokenizer's vocabulary")
        out.append((row, ids))
    if not out:
        raise ValueError(f"{dataset}: split {split!r} has no untransposed rows")
    return out


def composer_classes(rows: list[tuple[dict, np.ndarray]], min_pieces: int) -> list[str]:
    """Composers with at least `min_pieces` pieces among `rows` (unknown ones left out), most pieces first."""
    counts = Counter()
    for piece, composer in {(row["piece_id"], (row["composer"] or "").strip()) for row, _ in rows}:
        if composer:
            counts[composer] += 1
    classes = [name for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if count >= min_pieces]
    if len(classes) < 2:
        raise ValueError(
            f"composer task needs at least 2 composers with {min_pieces} or more training pieces; the dataset has "
            f"{dict(counts) or 'no composer labels'}: build a dataset with composer metadata, or lower --min-pieces"
        )
    return classes


def composer_sequences(rows: list[tuple[dict, np.ndarray]], classes: list[str]) -> list[Labelled]:
    """The rows whose composer is one of `classes`, labelled by its index."""
    index = {name: i for i, name in enumerate(classes)}
    return [
        Labelled(ids, index[(row["composer"] or "").strip()], row["piece_id"])
        for row, ids in rows
        if (row["composer"] or "").strip() in index
    ]


def transpose(ids: np.ndarray, layout: VocabLayout, shift: int) -> np.ndarray:
    """`ids` with every note-on and note-off moved by `shift` semitones (the caller keeps it on the keyboard)."""
    out = ids.copy()
    out[layout.pitch_index(ids) >= 0] += shift
    return out


class ExcerptSampler:
    """Batches of random excerpts of `length` tokens, each transposed by up to ±`max_transpose` semitones within the
    keyboard. Sequences are drawn uniformly (with `balance_labels`, a label first, then one of its sequences)."""

    def __init__(
        self,
        sequences: list[Labelled],
        length: int,
        layout: VocabLayout,
        pad_id: int,
        max_transpose: int = 6,
        balance_labels: bool = False,
        seed: int = 0,
    ) -> None:
        if not sequences:
            raise ValueError("no training sequences")
        self.sequences, self.length, self.layout, self.pad_id = sequences, length, layout, pad_id
        self.max_transpose, self.seed = max_transpose, seed
        labels = np.asarray([s.label for s in sequences])
        self.by_label = [np.flatnonzero(labels == label) for label in sorted(set(labels.tolist()))]
        self.balance = balance_labels

    def _pick(self, rng: np.random.Generator) -> Labelled:
        if self.balance:
            members = self.by_label[int(rng.integers(len(self.by_label)))]
            return self.sequences[int(members[int(rng.integers(len(members)))])]
        return self.sequences[int(rng.integers(len(self.sequences)))]

    def batch(self, step: int, size: int) -> dict[str, torch.Tensor]:
        """Batch number `step`: input_ids, attention_mask (batch, length) and labels (batch,)."""
        rng = np.random.default_rng([self.seed, step])
        ids = np.full((size, self.length), self.pad_id, dtype=np.int64)
        mask = np.zeros((size, self.length), dtype=np.int64)
        labels = np.zeros(size, dtype=np.int64)
        for row, (window, label) in enumerate(self._rows(rng, size)):
            ids[row, : len(window)], mask[row, : len(window)], labels[row] = window, 1, label
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "labels": torch.from_numpy(labels),
        }

    def _rows(self, rng: np.random.Generator, size: int) -> list[tuple[np.ndarray, int]]:
        """`size` (excerpt, label) rows, each of a sequence drawn by `_pick`."""
        return [self._excerpt(self._pick(rng), rng)[:2] for _ in range(size)]

    def _excerpt(
        self, seq: Labelled, rng: np.random.Generator, like: tuple[float, int] | None = None
    ) -> tuple[np.ndarray, int, tuple[float, int]]:
        """(excerpt, label, where) of `seq`: a random excerpt transposed by a random shift within ±`max_transpose`
        that keeps its notes on the keyboard; `where` is (share of the free room before it, shift), and `like` a
        `where` to cut at and transpose by instead (the shift brought into the keyboard)."""
        room = max(len(seq.ids) - self.length, 0)
        start = int(rng.integers(0, room + 1)) if like is None else round(like[0] * room)
        window = seq.ids[start : start + self.length]
        keys = self.layout.pitch_index(window)
        keys = keys[keys >= 0]
        shift = 0
        if self.max_transpose and keys.size:
            low = max(-self.max_transpose, -int(keys.min()))
            high = min(self.max_transpose, self.layout.num_pitches - 1 - int(keys.max()))
            shift = int(rng.integers(low, high + 1)) if like is None else min(max(like[1], low), high)
            window = transpose(window, self.layout, shift)
        return window, seq.label, (start / room if room else 0.0, shift)


class SamplerBatches(torch.utils.data.Dataset):
    """The rows of batches 0 .. `steps` - 1 of a sampler, in order: read in order in batches of `batch_size` (the
    Trainer's loader with a sequential sampler), batch k is `sampler.batch(k, batch_size)`, and a resumed run, which
    skips the batches it has trained on, goes on with the batch an uninterrupted run would draw."""

    def __init__(self, sampler: ExcerptSampler, steps: int, batch_size: int) -> None:
        self.sampler, self.steps, self.batch_size = sampler, steps, batch_size
        self.step, self.batch = -1, {}  # the batch of the rows being read

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        step, row = divmod(index, self.batch_size)
        if step != self.step:
            self.step, self.batch = step, self.sampler.batch(step, self.batch_size)
        return {name: values[row] for name, values in self.batch.items()}


@dataclass
class Excerpts(torch.utils.data.Dataset):
    """Fixed excerpts for evaluation: right-padded ids and mask (n, length), labels and the group of each; as a
    dataset, one excerpt (input_ids, attention_mask, labels) per item."""

    ids: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    groups: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": torch.as_tensor(self.ids[index]),
            "attention_mask": torch.as_tensor(self.mask[index]),
            "labels": torch.as_tensor(self.labels[index]),
        }


def fixed_excerpts(sequences: list[Labelled], length: int, per_sequence: int, pad_id: int) -> Excerpts:
    """Up to `per_sequence` non-overlapping excerpts of each sequence, evenly spread, untransposed; a sequence
    shorter than `length` gives one padded excerpt."""
    ids, masks, labels, groups = [], [], [], []
    for seq in sequences:
        for window in windows(seq.ids, length, per_sequence):
            row = np.full(length, pad_id, dtype=np.int64)
            row[: len(window)] = window
            ids.append(row)
            masks.append((np.arange(length) < len(window)).astype(np.int64))
            labels.append(seq.label)
            groups.append(seq.group)
    if not ids:
        raise ValueError("no excerpts: every sequence is empty")
    return Excerpts(np.stack(ids), np.stack(masks), np.asarray(labels, dtype=np.int64), groups)


def windows(ids: np.ndarray, length: int, most: int) -> list[np.ndarray]:
    """Up to `most` non-overlapping windows of `length` tokens spread evenly over `ids` (one shorter one if short)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return []
    count = max(1, min(most, len(ids) // length))
    if len(ids) <= length:
        return [ids]
    starts = np.linspace(0, len(ids) - length, count).round().astype(int)
    return [ids[s : s + length] for s in starts]


__all__ = [
    "SAMPLER_SPREAD",
    "ExcerptSampler",
    "Excerpts",
    "Labelled",
    "SamplerBatches",
    "composer_classes",
    "composer_sequences",
    "dataset_rows",
    "fixed_excerpts",
    "transpose",
    "windows",
]
