"""Verbatim copies of the training set in a token sequence, transposed or not, measured in quarter notes.

Two spans are the same music up to transposition when their words agree one by one (note-on, note-off, or the
same wait) and every pitch after the span's first one lies the same interval from the pitch before it. So each
token is read as (kind, interval to the previous pitch token), with the interval of the span's first pitch left
out: keys are invariant under any transposition, all 12 (and more) at once.

The index hashes every k-token window of the training pieces (k = 16 by default, about 1.5 quarter notes of
chorale) into a sorted array. A sample's windows are looked up; from every hit the match is extended token by
token against each candidate training position (verified on the tokens, so hash collisions cost time, never
accuracy), and only matches that reach past the furthest match found so far are extended (any other is contained
in it). The result is exact for copies of at least k tokens; shorter ones count as no copy. A copy's length in
quarter notes is the sum of its waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from toccata.modeling.layout import VocabLayout

from .music_stats import DEFAULT_LAYOUT

NO_MATCH = -1  # kind of separators and padding in the index; the query's special tokens get -2, so never equal
_PITCH_ON, _PITCH_OFF = 1, 2
_MAX_BLOCK = 2048
_MULTIPLIERS = np.random.default_rng(20240601).integers(1, 2**63 - 1, size=4096, dtype=np.int64).astype(np.uint64) | 1


@dataclass(frozen=True)
class CopyMatch:
    """The longest copy found in a sequence: where it is, how long, and where it comes from."""

    start: int  # first token of the copy in the query
    tokens: int  # 0 when no copy of at least k tokens was found
    quarters: float
    source: str | None = None  # name of the training sequence it copies
    source_offset: int | None = None  # first token of the copied span there
    transposition: int | None = None  # semitones from the training span to the copy (None without pitches)


def _encode(ids: np.ndarray, layout: VocabLayout, other: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kind, interval to the previous pitch token, pitch or -1) of every token; `other` is the kind of the rest."""
    ids = np.asarray(ids, dtype=np.int64)
    on = (ids >= layout.note_on_offset) & (ids < layout.note_on_offset + layout.num_pitches)
    off = (ids >= layout.note_off_offset) & (ids < layout.note_off_offset + layout.num_pitches)
    wait = (ids >= layout.wait_offset) & (ids < layout.wait_offset + layout.max_wait)
    kind = np.full(ids.shape, other, dtype=np.int64)
    kind[on], kind[off] = _PITCH_ON, _PITCH_OFF
    kind[wait] = ids[wait] - layout.wait_offset + 3
    pitch = np.where(on, ids - layout.note_on_offset, np.where(off, ids - layout.note_off_offset, -1))
    where = np.flatnonzero(pitch >= 0)
    interval = np.zeros(ids.shape, dtype=np.int64)
    interval[where[1:]] = np.diff(pitch[where])
    return kind, interval, pitch


def _next_pitch(pitch: np.ndarray) -> np.ndarray:
    """Index of the first pitch token at or after each position (len(pitch) where there is none)."""
    index = np.where(pitch >= 0, np.arange(pitch.size), pitch.size)
    return np.minimum.accumulate(index[::-1])[::-1] if pitch.size else index


def _window_keys(kind: np.ndarray, interval: np.ndarray, pitch: np.ndarray, k: int) -> np.ndarray:
    """A transposition-invariant 64-bit hash of every k-token window (uint64 arithmetic wraps on purpose)."""
    count = kind.size - k + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    code = ((kind + 8) * 1024 + np.where(pitch >= 0, interval + 256, 0)).astype(np.uint64)
    keys = np.zeros(count, dtype=np.uint64)
    for m in range(k):
        keys += code[m : m + count] * _MULTIPLIERS[m]
    starts = np.arange(count)
    first = _next_pitch(pitch)[:count]
    inside = first - starts < k
    where = first[inside]
    keys[inside] -= (interval[where] + 256).astype(np.uint64) * _MULTIPLIERS[(first - starts)[inside]]
    return keys


class CopyIndex:
    """Transposition-invariant index of the k-token windows of training sequences (ids without special tokens)."""

    def __init__(
        self,
        sequences: Sequence[np.ndarray],
        layout: VocabLayout = DEFAULT_LAYOUT,
        k: int = 16,
        names: Sequence[str] | None = None,
        max_candidates: int = 256,
    ) -> None:
        if not 2 <= k <= len(_MULTIPLIERS):
            raise ValueError(f"k must be 2..{len(_MULTIPLIERS)} tokens, got {k}")
        if names is not None and len(names) != len(sequences):
            raise ValueError(f"names: {len(names)} names for {len(sequences)} sequences")
        self.layout, self.k, self.max_candidates = layout, k, max_candidates
        self.names = list(names) if names is not None else [f"sequence {i}" for i in range(len(sequences))]
        parts, starts, position = [], [], 0
        for seq in sequences:
            starts.append(position)
            parts.append(np.append(np.asarray(seq, dtype=np.int64), -1))  # -1: a separator no window may cross
            position += len(seq) + 1
        ids = np.concatenate(parts + [np.full(_MAX_BLOCK + k, -1, dtype=np.int64)])  # padding for the extension
        self.starts = np.asarray(starts, dtype=np.int64)
        self.kind, self.interval, self.pitch = _encode(ids, layout, NO_MATCH)
        keys = _window_keys(self.kind, self.interval, self.pitch, k)
        bad = np.concatenate([[0], np.cumsum(self.kind == NO_MATCH)])
        valid = np.flatnonzero(bad[k : k + keys.size] - bad[: keys.size] == 0)  # windows without a separator
        order = np.argsort(keys[valid], kind="stable")
        self.keys, self.positions = keys[valid][order], valid[order]

    @classmethod
    def of_pieces(cls, pieces: Sequence, layout: VocabLayout = DEFAULT_LAYOUT, k: int = 16) -> CopyIndex:
        """The index of dataset pieces (anything with `ids` and `piece_id`, as `training.data.load_pieces` returns),
        each named by its piece id: what the evaluation, the preset search and `tune --max-copy` compare against."""
        return cls([p.ids for p in pieces], layout, k, names=[p.piece_id for p in pieces])

    def __len__(self) -> int:
        """Number of indexed windows."""
        return int(self.keys.size)

    def longest_copy(self, ids: Sequence[int] | np.ndarray) -> CopyMatch:
        """The copy of training music (up to transposition) with the most quarter notes in `ids`."""
        ids = np.asarray(ids, dtype=np.int64)
        kind, interval, pitch = _encode(ids, self.layout, NO_MATCH - 1)
        keys = _window_keys(kind, interval, pitch, self.k)
        low = np.searchsorted(self.keys, keys, side="left")
        high = np.searchsorted(self.keys, keys, side="right")
        steps = np.where(kind >= 3, kind - 2, 0)
        elapsed = np.concatenate([[0], np.cumsum(steps)])
        first_pitch = _next_pitch(pitch)
        best, reach = CopyMatch(0, 0, 0.0), 0
        for i in np.flatnonzero(high > low).tolist():
            need = max(reach + 1, i + self.k) - i  # a match must reach past `reach` to be worth extending
            if i + need > ids.size:
                continue
            candidates = self.positions[low[i] : min(high[i], low[i] + self.max_candidates)]
            length, source = self._extend(kind, interval, i, int(first_pitch[i]) - i, candidates, need)
            if length < need:
                continue
            reach = i + length
            quarters = float(elapsed[i + length] - elapsed[i]) / self.layout.steps_per_quarter
            if (quarters, length) > (best.quarters, best.tokens):
                best = self._match(i, length, quarters, source, pitch, int(first_pitch[i]))
        return best

    def _extend(
        self, kind: np.ndarray, interval: np.ndarray, i: int, first: int, candidates: np.ndarray, need: int
    ) -> tuple[int, int]:
        """(longest match from query position `i` over `candidates`, its training position); `first` is the
        offset of the span's first pitch token, whose interval is not compared."""
        length, alive, block = 0, candidates, max(need, 64)
        while alive.size:
            ids_left = kind.size - i - length
            size = min(block, _MAX_BLOCK, ids_left)
            offsets = np.arange(length, length + size)
            index = alive[:, None] + offsets[None, :]
            equal = (self.kind[index] == kind[i + offsets]) & (
                (self.interval[index] == interval[i + offsets]) | (offsets == first)
            )
            run = np.where(equal.all(axis=1), size, equal.argmin(axis=1))
            full = run == size
            if full.any() and size < ids_left:
                alive, length, block = alive[full], length + size, block * 2
                continue
            winner = int(np.argmax(run))
            return length + int(run[winner]), int(alive[winner])
        return 0, -1

    def _match(self, i: int, length: int, quarters: float, source: int, pitch: np.ndarray, first: int) -> CopyMatch:
        """A `CopyMatch` naming the training sequence and offset of the copied span and the transposition."""
        which = int(np.searchsorted(self.starts, source, side="right") - 1)
        shift = None
        if first < i + length:
            shift = int(pitch[first] - self.pitch[source + first - i])
        return CopyMatch(i, length, quarters, self.names[which], int(source - self.starts[which]), shift)


def quotes_scored_zero(
    score: Callable[[list[list[str]]], Sequence[float]], index: CopyIndex, tokenizer, max_quarters: float
) -> Callable[[list[list[str]]], list[float]]:
    """`score` (token lists -> a score each) with every list that copies `max_quarters` quarter notes or more of the
    indexed music (up to transposition) scored 0: a quote is not composing. For preference tuning, where a critic
    that rightly rates real music as real would otherwise reward the memorised passages of its training data."""
    if not max_quarters > 0:
        raise ValueError(f"max_quarters must be > 0, got {max_quarters!r}")

    def scored(token_lists: list[list[str]]) -> list[float]:
        values = [float(v) for v in score(token_lists)]
        for i, tokens in enumerate(token_lists):
            if index.longest_copy(tokenizer.convert_tokens_to_ids(tokens)).quarters >= max_quarters:
                values[i] = 0.0
        return values

    return scored


__all__ = ["CopyIndex", "CopyMatch", "quotes_scored_zero"]
