"""How well a model predicts a split: loss per token, perplexity, bits per token and bits per note.

Every piece is scored whole, as ``<bos> ids <eos>``: `<bos>` is given and never predicted, every other token
(the piece's tokens and `<eos>`) is predicted from everything before it. The LSTM reads pieces in chunks with its
recurrent state carried, so long pieces cost no more memory than short ones and nothing is cut at a window edge.
The baselines (`ngram.py`) are scored on exactly the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .ngram import KneserNeyModel, UnigramModel


@dataclass
class LikelihoodResult:
    """Totals and rates of one model on one split; `notes` counts the note-on tokens among the predicted ones."""

    name: str
    tokens: int  # predicted tokens (pieces' tokens + one <eos> each)
    notes: int
    total_bits: float

    @property
    def bits_per_token(self) -> float:
        return self.total_bits / self.tokens

    @property
    def loss_per_token(self) -> float:
        """Mean cross-entropy in nats, the number the Trainer reports as loss."""
        return self.bits_per_token * math.log(2.0)

    @property
    def perplexity(self) -> float:
        return 2.0**self.bits_per_token

    @property
    def bits_per_note(self) -> float:
        """Total bits divided by the notes: what a note costs, waits and note-offs included."""
        return self.total_bits / self.notes if self.notes else float("nan")

    def to_dict(self) -> dict:
        extra = ("bits_per_token", "loss_per_token", "perplexity", "bits_per_note")
        return {**asdict(self), **{name: getattr(self, name) for name in extra}}


def piece_sequences(pieces: Sequence, bos_id: int, eos_id: int) -> list[np.ndarray]:
    """``<bos> ids <eos>`` of every piece (anything with an `.ids` array, e.g. `training.data.Piece`)."""
    return [np.concatenate([[bos_id], np.asarray(p.ids, dtype=np.int64), [eos_id]]) for p in pieces]


@torch.no_grad()
def model_log2probs(model, sequences: Sequence[np.ndarray], chunk: int = 512, batch_size: int = 16) -> list[np.ndarray]:
    """log2 P(token | all previous tokens) of tokens 1.. of each sequence, under `model` in eval mode.

    Sequences of similar length are batched (right-padded: an LSTM reads left to right, so padding never reaches
    the real positions) and read `chunk` tokens at a time with the recurrent state carried in the cache.
    """
    if chunk < 1 or batch_size < 1:
        raise ValueError(f"chunk and batch_size must be >= 1, got {chunk} and {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out: list[np.ndarray | None] = [None] * len(sequences)
    try:
        for start in range(0, len(order), batch_size):
            batch = [order[i] for i in range(start, min(start + batch_size, len(order)))]
            scores = _batch_log2probs(model, [np.asarray(sequences[i]) for i in batch], chunk, device)
            for i, row in zip(batch, scores):
                out[i] = row
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def _batch_log2probs(model, seqs: list[np.ndarray], chunk: int, device) -> list[np.ndarray]:
    """Scores of one batch of sequences (see `model_log2probs`)."""
    length = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), length), dtype=np.int64)  # id 0 pads; its scores are dropped
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
    ids_t = torch.from_numpy(ids).to(device)
    cache, pieces = None, []
    for begin in range(0, length - 1, chunk):
        inputs = ids_t[:, begin : min(begin + chunk, length - 1)]
        targets = ids_t[:, begin + 1 : begin + 1 + inputs.shape[1]]
        output = model(input_ids=inputs, cache=cache, use_cache=True)
        cache = output.cache
        logp = torch.log_softmax(output.logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        pieces.append(logp.double().cpu().numpy() / math.log(2.0))
    scores = np.concatenate(pieces, axis=1)
    return [scores[row, : len(seq) - 1] for row, seq in enumerate(seqs)]


def summarise(
    name: str, log2probs: Sequence[np.ndarray], sequences: Sequence[np.ndarray], note_ids: range | Sequence[int]
) -> LikelihoodResult:
    """Totals of per-token log2 probabilities; notes are the predicted tokens whose id is in `note_ids` (a range, or
    the note-on ids of every part with a violin or cello)."""
    predicted = np.concatenate([np.asarray(s)[1:] for s in sequences])
    bits = -float(sum(np.sum(lp) for lp in log2probs))
    if isinstance(note_ids, range):
        notes = int(np.sum((predicted >= note_ids.start) & (predicted < note_ids.stop)))
    else:
        notes = int(np.isin(predicted, np.asarray(list(note_ids), dtype=np.int64)).sum())
    return LikelihoodResult(name=name, tokens=int(predicted.size), notes=notes, total_bits=bits)


def likelihood_table(
    model,
    train_sequences: Sequence[np.ndarray],
    eval_sequences: Sequence[np.ndarray],
    note_ids: range | Sequence[int],
    vocab_size: int,
    bos_id: int,
    ngram_order: int = 5,
) -> list[LikelihoodResult]:
    """The model, an add-one unigram and a Kneser-Ney `ngram_order`-gram (both fitted on `train_sequences`),
    scored on the same tokens of `eval_sequences`; `model=None` scores the baselines only."""
    unigram = UnigramModel(vocab_size).fit(train_sequences)
    ngram = KneserNeyModel(vocab_size, ngram_order, bos_id).fit(train_sequences)
    results = []
    if model is not None:
        results.append(summarise("model", model_log2probs(model, eval_sequences), eval_sequences, note_ids))
    results.append(summarise("unigram", [unigram.log2prob(s) for s in eval_sequences], eval_sequences, note_ids))
    kn = [ngram.log2prob(s) for s in eval_sequences]
    results.append(summarise(f"{ngram_order}-gram", kn, eval_sequences, note_ids))
    return results


__all__ = ["LikelihoodResult", "likelihood_table", "model_log2probs", "piece_sequences", "summarise"]
