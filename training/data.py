"""Training data: the pieces of a built Toccata dataset as token ids, cut into windows, transposed on the fly.

Windows are fixed per piece (so an interrupted run resumes on the same data); which window comes when, and by how
many semitones it is transposed, depend only on (seed, epoch, window), never on a random state that a crash loses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from toccata.modeling.layout import VocabLayout
from torch.utils.data import Dataset, Sampler

from . import DEFAULT_WINDOW

SPLITS = ("train", "validation", "test", "unseen_composers")  # unseen_composers: composers held out whole


@dataclass(frozen=True)
class Piece:
    """One row of a Toccata dataset: its notewise token ids (no special tokens) and what the tokens do not carry."""

    row_id: str
    piece_id: str
    ids: np.ndarray  # (num_tokens,) int64
    transposition: int = 0
    qpm: float = 120.0
    time_signature: str = "4/4"
    composer: str = ""  # the dataset's `composer` (read when training with composer labels)


PIECE_COLUMNS = ("id", "piece_id", "transposition", "notewise", "qpm", "time_signature")
ROWS_PER_READ = 1024  # rows read from parquet at a time: a few MB of token text


def read_rows(dataset: str | os.PathLike, split: str, columns: tuple[str, ...] = PIECE_COLUMNS) -> list[dict]:
    """`columns` of the rows of one split of a built dataset folder (parquet read directly) or a Hub dataset id."""
    return list(iter_rows(dataset, split, columns))


def iter_rows(dataset: str | os.PathLike, split: str, columns: tuple[str, ...] = PIECE_COLUMNS) -> Iterator[dict]:
    """`read_rows` as a stream, a parquet batch at a time (a split's text need not be in memory at once); a missing
    split is an error here, before the first row."""
    columns = list(columns)
    folder = Path(dataset)
    if folder.is_dir():
        files = (
            sorted(folder.glob(f"*-{split}.parquet"))
            or sorted(folder.glob(f"*-{split}-*-of-*.parquet"))  # datasets' shards of a large split
            or sorted(folder.glob(f"{split}/*.parquet"))
        )
        if not files:
            found = sorted(p.name for p in folder.glob("*.parquet"))
            if found:  # a built dataset whose fractions gave this split nothing
                fix = f"rebuild it with a share for {split!r} in `toccata build-dataset --splits TRAIN,VALIDATION,TEST`"
            else:
                fix = "build one with `toccata build-dataset --out FOLDER`"
            raise ValueError(f"{folder}: no {split!r} split (parquet files found: {found or 'none'}); {fix}")
        import pyarrow.parquet as pq  # start-up: pyarrow and `datasets` take seconds to import; critics load this module

        batches = (batch for f in files for batch in pq.ParquetFile(f).iter_batches(ROWS_PER_READ, columns=columns))
        return (row for batch in batches for row in batch.to_pylist())
    import datasets  # start-up, as pyarrow above

    try:
        return iter(datasets.load_dataset(str(dataset), split=split).select_columns(columns).to_list())
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise ValueError(f"{dataset}: cannot load split {split!r} ({str(err).splitlines()[0]})") from None


def _piece(row: dict, ids: np.ndarray) -> Piece:
    """A `Piece` of a dataset row and its token ids."""
    return Piece(
        row_id=row["id"],
        piece_id=row["piece_id"],
        ids=ids,
        transposition=int(row["transposition"] or 0),
        qpm=float(row["qpm"] or 120.0),
        time_signature=row["time_signature"] or "4/4",
        composer=row.get("composer") or "",
    )


def load_pieces(
    dataset: str | os.PathLike, split: str, tokenizer, original_key_only: bool = False, with_composer: bool = False
) -> list[Piece]:
    """The pieces of `split` as token ids of `tokenizer` (`iter_pieces`); an empty split is an error."""
    pieces = list(iter_pieces(dataset, split, tokenizer, original_key_only, with_composer))
    if not pieces:
        raise ValueError(f"{dataset}: split {split!r} has no pieces")
    return pieces


def load_scheme_pieces(dataset: str | os.PathLike, split: str, scheme, original_key_only: bool = False) -> list[Piece]:
    """`load_pieces` with a `toccata.tokenization.schemes.TokenScheme` (kept for its callers' clarity)."""
    return load_pieces(dataset, split, scheme, original_key_only)


def iter_pieces(
    dataset: str | os.PathLike, split: str, tokenizer, original_key_only: bool = False, with_composer: bool = False
) -> Iterator[Piece]:
    """The pieces of `split` one at a time, as token ids of `tokenizer`: the notewise tokenizer reads each row's
    notewise text (a word it does not know is an error naming the row); a `TokenScheme` (`special_ids`) encodes each
    row's MIDI (transposed rows hold transposed MIDI). `with_composer`: read the `composer` column too."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if hasattr(tokenizer, "special_ids"):
        columns, encode = ("id", "piece_id", "transposition", "midi", "qpm", "time_signature"), _scheme_ids
    else:
        columns, encode = PIECE_COLUMNS, _notewise_ids
    for row in iter_rows(dataset, split, columns + (("composer",) if with_composer else ())):
        if original_key_only and row["transposition"]:
            continue
        yield _piece(row, encode(row, tokenizer, f"{dataset} [{split}] row {row['id']}"))


def _notewise_ids(row: dict, tokenizer, where: str) -> np.ndarray:
    words = row["notewise"].split()
    ids = np.asarray(tokenizer.convert_tokens_to_ids(words), dtype=np.int64)
    unk = tokenizer.unk_token_id
    if unk is not None and (ids == unk).any():
        raise ValueError(f"{where}: word {words[int(np.argmax(ids == unk))]!r} is not in the tokenizer's vocabulary")
    return ids


def _scheme_ids(row: dict, scheme, where: str) -> np.ndarray:
    try:
        return np.asarray(scheme.encode_midi(row["midi"]), dtype=np.int64)
    except ValueError as err:
        raise ValueError(f"{where}: cannot tokenize with {scheme.name}: {err}") from None


class WindowDataset(Dataset):
    """`<bos> piece <eos>` cut into windows of `window` tokens that overlap by one, so every next-token pair of a
    piece is learnt exactly once per epoch. Item `epoch * len(self) + i` is window i, transposed by a shift drawn
    from (seed, epoch, i) within the piano's range (see `EpochSampler`); plain `i` is epoch 0.

    `max_piece_tokens` > 0 caps what one piece weighs: a longer piece gives only its share of windows per epoch
    (about that many tokens; per row, so a piece stored in 12 keys gives 12), a different run of them each epoch,
    so that over enough epochs all of it is learnt, but a 120,000-token theme with variations no longer makes 3% of
    every epoch (a sampling attractor)."""

    def __init__(
        self,
        pieces: list[Piece],
        window: int,
        layout: VocabLayout,
        bos_id: int,
        eos_id: int,
        pad_id: int,
        max_transpose: int = 0,
        seed: int = 0,
        conditions: list[int] | None = None,
        condition_dropout: float = 0.0,
        max_piece_tokens: int = 0,
    ) -> None:
        # Every `<bos> piece <eos>` in one array of the smallest type that holds the ids (2 bytes a token for any
        # vocabulary under 65,536 words; int64 per piece took 8, and a Python object each), read as int64 per window.
        lengths = np.array([len(p.ids) + 2 for p in pieces], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])  # sequence s is tokens[offsets[s]:offsets[s + 1]]
        top = max([bos_id, eos_id, pad_id, *(int(p.ids.max()) for p in pieces if len(p.ids))])
        tokens = np.empty(int(offsets[-1]), dtype=np.uint16 if top < 2**16 else np.int64)
        for s, piece in enumerate(pieces):
            begin, end = offsets[s], offsets[s + 1]
            tokens[begin], tokens[begin + 1 : end - 1], tokens[end - 1] = bos_id, piece.ids, eos_id
        self._index(
            tokens, offsets, window, layout, pad_id, max_transpose, seed, conditions, condition_dropout,
            max_piece_tokens,
        )  # fmt: skip

    @classmethod
    def from_sequences(
        cls,
        tokens: np.ndarray,
        offsets: np.ndarray,
        window: int,
        layout: VocabLayout,
        pad_id: int,
        max_transpose: int = 0,
        seed: int = 0,
        conditions: list[int] | np.ndarray | None = None,
        condition_dropout: float = 0.0,
        max_piece_tokens: int = 0,
    ) -> WindowDataset:
        """The same windows over `<bos> piece <eos>` sequences already laid end to end in `tokens` (sequence s is
        `tokens[offsets[s]:offsets[s + 1]]`), e.g. a memory-mapped `token_cache.TokenCache`: nothing is copied."""
        dataset = cls.__new__(cls)
        dataset._index(
            tokens, offsets, window, layout, pad_id, max_transpose, seed, conditions, condition_dropout,
            max_piece_tokens,
        )  # fmt: skip
        return dataset

    def _index(
        self, tokens, offsets, window, layout, pad_id, max_transpose, seed, conditions, condition_dropout,
        max_piece_tokens: int = 0,
    ):  # fmt: skip
        """Check the settings and lay out the windows over the sequences (16 bytes a window)."""
        if window < 2:
            raise ValueError(f"window must be at least 2 tokens, got {window}")
        if not isinstance(max_piece_tokens, int) or max_piece_tokens < 0:
            raise ValueError(f"max_piece_tokens must be an integer >= 0 (0: no cap), got {max_piece_tokens!r}")
        if not 0 <= max_transpose <= 12:
            raise ValueError(f"max_transpose must be 0..12 semitones, got {max_transpose}")
        self.window, self.layout, self.pad_id = window, layout, pad_id
        self.max_transpose, self.seed = max_transpose, seed
        # Composer labels: per piece the id of its label word (-1: none), put before the window's first token, except
        # in a `condition_dropout` share of windows (drawn from seed, epoch, window), so that the model also learns
        # without one. Windows are then `window + 1` long (padded when unlabelled): every target is learnt as before.
        num_sequences = len(offsets) - 1
        if conditions is not None and len(conditions) != num_sequences:
            raise ValueError(f"conditions: one label id per piece, got {len(conditions)} for {num_sequences} pieces")
        if not 0.0 <= condition_dropout <= 1.0:
            raise ValueError(f"condition_dropout must be from 0 to 1, got {condition_dropout}")
        self.conditions, self.condition_dropout = conditions, condition_dropout
        self.tokens, self.offsets = tokens, np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(self.offsets)
        # Window i: sequence `window_sequence[i]` from token `window_start[i]`, sequences in order, starts ascending.
        # With a cap, sequence s of `full` windows keeps `counts` < `full` slots, and slot j of epoch e is its window
        # (j + (e + s) * counts) mod full (`_start`): the next run of windows each epoch, every one in turn; rows
        # that hold the same piece (in other keys, or `--repeat`) start at other windows.
        self.full_counts = -(-np.maximum(lengths - 1, 1) // (window - 1))
        counts = self.full_counts
        if max_piece_tokens:
            counts = np.minimum(counts, max(1, -(-max_piece_tokens // (window - 1))))
        self.capped_counts = counts
        self.window_sequence = np.repeat(np.arange(num_sequences), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        self.window_start = (np.arange(int(counts.sum())) - first) * (window - 1)

    def __len__(self) -> int:
        return len(self.window_sequence)

    def num_targets(self) -> int:
        """How many next-token predictions one epoch trains on (with a cap: at most, a capped piece's last window
        being shorter in some epochs)."""
        targets = np.diff(self.offsets) - 1
        return int(np.minimum(targets, self.capped_counts * (self.window - 1)).sum())

    def _start(self, s: int, index: int, epoch: int) -> int:
        """The first token of window `index` (of sequence `s`) in `epoch`: fixed, or turning with the cap."""
        start = int(self.window_start[index])
        full, kept = int(self.full_counts[s]), int(self.capped_counts[s])
        if kept == full:
            return start
        slot = start // (self.window - 1)
        return (slot + (epoch + s) * kept) % full * (self.window - 1)  # + s: copies of a piece turn out of step

    def _shift(self, ids: np.ndarray, pitch: np.ndarray, epoch: int, index: int) -> int:
        if self.max_transpose == 0 or not (pitch >= 0).any():
            return 0
        low, high = self.layout.shift_bounds(ids, pitch, self.max_transpose)  # every part stays in its range
        if low > high:
            return 0
        return int(np.random.default_rng([self.seed, epoch, index]).integers(low, high + 1))

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(int(item), len(self))
        s = int(self.window_sequence[index])
        start = self._start(s, index, epoch)
        begin, end = int(self.offsets[s]) + start, int(self.offsets[s + 1])
        ids = self.tokens[begin : min(begin + self.window, end)].astype(np.int64)
        pitch = self.layout.pitch_index(ids)
        ids[pitch >= 0] += self._shift(ids, pitch, epoch, index)
        labels = ids.copy()
        length = self.window
        if self.conditions is not None:
            length += 1
            label = int(self.conditions[s])
            dropped = np.random.default_rng([self.seed, epoch, index, 1]).random() < self.condition_dropout
            if label >= 0 and not dropped:
                ids, labels = np.concatenate([[label], ids]), np.concatenate([[-100], labels])
        if len(ids) < length:
            pad = length - len(ids)
            ids = np.concatenate([ids, np.full(pad, self.pad_id, dtype=np.int64)])
            labels = np.concatenate([labels, np.full(pad, -100, dtype=np.int64)])
        return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}


class EpochSampler(Sampler[int]):
    """A shuffle that is a pure function of (seed, epoch); yields `epoch * n + i` so the dataset knows the epoch.

    The Trainer (through accelerate) calls `set_epoch` at each epoch, on resume too, so a resumed run sees the
    same order and the same transpositions as an uninterrupted one."""

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True) -> None:
        self.num_items, self.seed, self.shuffle, self.epoch = num_items, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[int]:
        order = np.arange(self.num_items)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
        base = self.epoch * self.num_items
        return iter((base + order).tolist())


def collate_windows(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack equal-length windows into a batch."""
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


__all__ = [
    "DEFAULT_WINDOW",
    "SPLITS",
    "EpochSampler",
    "Piece",
    "WindowDataset",
    "collate_windows",
    "iter_pieces",
    "iter_rows",
    "load_pieces",
    "load_scheme_pieces",
]
