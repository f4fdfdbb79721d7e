"""Baselines for the likelihood report: an add-one unigram and an interpolated modified Kneser-Ney n-gram model.

Both read token id sequences (each piece as ``<bos> ids <eos>``) and give `log2prob(sequence)`: the log2-probability
of every token after the first, the same tokens the LSTM is scored on. Everything is numpy over integer n-gram keys
(an n-gram of ids in base `vocab_size`), so fitting and scoring a few hundred thousand tokens takes about a second.

Kneser-Ney follows Chen & Goodman (1998), "interpolated modified KN": three discounts per order (for counts 1, 2,
3+), continuation counts below the top order (raw counts for n-grams that begin with `<bos>`, which cannot be
extended to the left, as KenLM does), and a uniform distribution over the whole vocabulary below the unigrams.
Near the start of a sequence the history is shorter than n - 1 tokens and the highest usable order is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _as_sequences(sequences: Sequence[np.ndarray], vocab_size: int) -> list[np.ndarray]:
    """int64 copies of `sequences`; a clear error for ids outside the vocabulary or sequences too short to score."""
    out = []
    for index, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.int64)
        if seq.ndim != 1 or seq.size < 2:
            raise ValueError(f"sequence {index}: need a 1-d sequence of at least 2 ids (<bos> ... <eos>), got {seq!r}")
        if seq.min() < 0 or seq.max() >= vocab_size:
            raise ValueError(f"sequence {index}: ids must be in [0, {vocab_size}), got {seq.min()}..{seq.max()}")
        out.append(seq)
    if not out:
        raise ValueError("no sequences to fit on")
    return out


def _gram_keys(seq: np.ndarray, order: int, vocab_size: int) -> np.ndarray:
    """Keys of the n-grams of `order` ending at positions order-1 .. len-1 (one per predicted token there)."""
    count = seq.size - order + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.zeros(count, dtype=np.int64)
    for offset in range(order):
        keys = keys * vocab_size + seq[offset : offset + count]
    return keys


class UnigramModel:
    """Add-one (Laplace) unigram over the predicted tokens of the training sequences."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.log2p = np.full(vocab_size, -np.log2(vocab_size))

    def fit(self, sequences: Sequence[np.ndarray]) -> UnigramModel:
        """Count every token but each sequence's first (`<bos>` is given, never predicted)."""
        seqs = _as_sequences(sequences, self.vocab_size)
        counts = np.bincount(np.concatenate([s[1:] for s in seqs]), minlength=self.vocab_size).astype(np.float64)
        self.log2p = np.log2((counts + 1.0) / (counts.sum() + self.vocab_size))
        return self

    def log2prob(self, sequence: np.ndarray) -> np.ndarray:
        """log2 P(token) of tokens 1.. of `sequence`."""
        seq = _as_sequences([sequence], self.vocab_size)[0]
        return self.log2p[seq[1:]]


@dataclass
class _OrderTable:
    """One order's n-grams (sorted keys, adjusted counts, discounted counts) and per-history totals."""

    keys: np.ndarray  # sorted n-gram keys
    discounted: np.ndarray  # max(count - D(count), 0) for each key
    histories: np.ndarray  # sorted history keys (key // vocab_size)
    totals: np.ndarray  # sum of counts over each history's continuations
    gamma_mass: np.ndarray  # D1 * N1 + D2 * N2 + D3 * N3+ of each history (mass handed to the lower order)
    discounts: tuple[float, float, float]


def _lookup(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, found) of each query in `sorted_keys`."""
    index = np.searchsorted(sorted_keys, queries)
    index = np.minimum(index, max(sorted_keys.size - 1, 0))
    found = sorted_keys[index] == queries if sorted_keys.size else np.zeros(queries.shape, dtype=bool)
    return index, found


def _discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Chen & Goodman's estimates D1, D2, D3+ from the counts of counts. Where those are too few to give
    0 < D_c <= c, one discount for all (Ney's D = n1 / (n1 + 2 n2), as SRILM does), or 0.5 without singletons;
    every D stays > 0, so every history hands some mass to the lower order and no token gets probability 0."""
    n = [int(np.sum(counts == c)) for c in (1, 2, 3, 4)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] else 0.5
    if min(n) > 0:
        ds = (1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2])
        if all(0.0 < d <= c for d, c in zip(ds, (1, 2, 3))):
            return tuple(float(d) for d in ds)
    return (y, y, y)


class KneserNeyModel:
    """Interpolated modified Kneser-Ney n-gram model over token ids; `order=5` is the report's 5-gram baseline."""

    def __init__(self, vocab_size: int, order: int = 5, bos_id: int = 1) -> None:
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        if vocab_size**order >= 2**62:
            raise ValueError(f"order {order} over {vocab_size} ids does not fit int64 keys; use a lower order")
        self.vocab_size, self.order, self.bos_id = vocab_size, order, bos_id
        self.tables: list[_OrderTable] = []

    def fit(self, sequences: Sequence[np.ndarray]) -> KneserNeyModel:
        """Count n-grams of every order up to `self.order` in `sequences` (each ``<bos> ids <eos>``)."""
        seqs = _as_sequences(sequences, self.vocab_size)
        raw = [
            np.unique(np.concatenate([_gram_keys(s, k, self.vocab_size) for s in seqs]), return_counts=True)
            for k in range(1, self.order + 1)
        ]
        self.tables = []
        for k in range(1, self.order + 1):
            keys, counts = raw[k - 1]
            if k < self.order:  # continuation counts: distinct left extensions in the order above
                above = raw[k][0] % (self.vocab_size**k)
                cont_keys, cont_counts = np.unique(above, return_counts=True)
                starts_bos = keys // (self.vocab_size ** (k - 1)) == self.bos_id  # cannot be extended to the left
                index, found = _lookup(cont_keys, keys)
                counts = np.where(starts_bos, counts, np.where(found, cont_counts[index], 0))
                keys, counts = keys[counts > 0], counts[counts > 0]
            self.tables.append(self._table(keys, counts.astype(np.float64)))
        return self

    def _table(self, keys: np.ndarray, counts: np.ndarray) -> _OrderTable:
        d1, d2, d3 = _discounts(counts)
        discount = np.where(counts == 1, d1, np.where(counts == 2, d2, d3))
        histories, inverse = np.unique(keys // self.vocab_size, return_inverse=True)
        totals = np.bincount(inverse, weights=counts)
        gamma = np.bincount(inverse, weights=discount)  # the discount taken from every continuation of the history
        return _OrderTable(keys, np.maximum(counts - discount, 0.0), histories, totals, gamma, (d1, d2, d3))

    def _prob(self, histories: list[np.ndarray], available: list[np.ndarray], tokens: np.ndarray) -> np.ndarray:
        """P(token | history) for arrays of queries; histories[k-1] holds the (k-1)-token history keys of order k,
        valid where available[k-1] is True (the history is long enough)."""
        if not self.tables:
            raise ValueError("KneserNeyModel: call fit() before scoring")
        prob = np.full(tokens.shape, 1.0 / self.vocab_size)
        for k, table in enumerate(self.tables, start=1):
            h_index, h_found = _lookup(table.histories, histories[k - 1])
            g_index, g_found = _lookup(table.keys, histories[k - 1] * self.vocab_size + tokens)
            use = available[k - 1] & h_found
            total = np.where(use, table.totals[h_index], 1.0)
            seen = np.where(use & g_found, table.discounted[g_index], 0.0)
            gamma = np.where(use, table.gamma_mass[h_index], 0.0)
            prob = np.where(use, (seen + gamma * prob) / total, prob)
        return prob

    def log2prob(self, sequence: np.ndarray) -> np.ndarray:
        """log2 P(token | up to order-1 previous tokens) of tokens 1.. of `sequence`."""
        seq = _as_sequences([sequence], self.vocab_size)[0]
        positions = np.arange(1, seq.size)
        histories, available = [], []
        for k in range(1, self.order + 1):
            start = positions - (k - 1)
            keys = np.zeros(positions.size, dtype=np.int64)
            for offset in range(k - 1):
                keys = keys * self.vocab_size + seq[np.maximum(start + offset, 0)]
            histories.append(keys)
            available.append(start >= 0)
        return np.log2(self._prob(histories, available, seq[1:]))

    def next_distribution(self, history: Sequence[int]) -> np.ndarray:
        """P(w | history) for every id w of the vocabulary (sums to 1); `history` starts with `<bos>`."""
        hist = np.asarray(history, dtype=np.int64)
        tokens = np.arange(self.vocab_size)
        histories, available = [], []
        for k in range(1, self.order + 1):
            key = 0
            for token in hist[max(hist.size - (k - 1), 0) :] if k > 1 else []:
                key = key * self.vocab_size + int(token)
            histories.append(np.full(self.vocab_size, key, dtype=np.int64))
            available.append(np.full(self.vocab_size, hist.size >= k - 1))
        return self._prob(histories, available, tokens)

    def sample(self, rng: np.random.Generator, max_tokens: int, eos_id: int = 2, allowed: np.ndarray | None = None):
        """Up to `max_tokens` ids drawn one by one from the model after `<bos>` (stops at `eos_id`, not included);
        `allowed` (a boolean mask over the vocabulary) keeps only those ids. A weak composer to compare against."""
        history, out = [self.bos_id], []
        while len(out) < max_tokens:
            p = self.next_distribution(history[-(self.order - 1) :] if self.order > 1 else [])
            if allowed is not None:
                p = np.where(allowed, p, 0.0)
            token = int(rng.choice(self.vocab_size, p=p / p.sum()))
            if token == eos_id:
                break
            out.append(token)
            history.append(token)
        return np.asarray(out, dtype=np.int64)


__all__ = ["KneserNeyModel", "UnigramModel"]
