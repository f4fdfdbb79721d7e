"""A split's token ids on disk, memory-mapped: training on a dataset larger than memory (`toccata train --memmap`).

The split is read from its parquet shards a batch of rows at a time and written once, `<bos> piece <eos>` after
`<bos> piece <eos>`, into one flat file of 2-byte ids, with an offsets file (8 bytes a piece) and the pieces' composer
label ids. `WindowDataset.from_sequences` windows it without copying: a training process holds 16 bytes a window
(0.03 bytes a token at window 512) and the operating system pages tokens in as windows are read, shared by the
processes of a run. The windows, their order and their transpositions are those of the in-memory dataset.

    OUTPUT/token_cache/train.tokens    the ids, uint16 (int32 past 65,536 words), read with numpy.memmap
    OUTPUT/token_cache/train.offsets   int64, one more than there are pieces
    OUTPUT/token_cache/train.labels    int32 composer label word per piece (-1: none), when the run has labels
    OUTPUT/token_cache/train.json      what it was built from (a fingerprint) and its counts; written last

A cache whose fingerprint matches (same dataset files, tokenizer vocabulary and options) is reused, on resume too;
another is rebuilt. Each process of a run may build it: files are written under names of their own, then renamed.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import iter_pieces

CACHE_FOLDER = "token_cache"


@dataclass(frozen=True)
class TokenCache:
    """The memory-mapped sequences of one split and what `train` reports about them."""

    tokens: np.ndarray  # numpy.memmap, uint16 or int32
    offsets: np.ndarray  # int64, sequence s is tokens[offsets[s]:offsets[s + 1]]
    labels: np.ndarray | None  # int32 label word id per sequence, -1 none; None: no labels
    rows: int  # dataset rows (pieces and their transposed copies)
    pieces: int  # distinct pieces
    targets: int  # next-token predictions per epoch


def fingerprint(dataset: str | os.PathLike, split: str, tokenizer, **options) -> str:
    """What a cache depends on: the split's files (names, sizes, modification times) or the Hub id, the tokenizer's
    vocabulary and the options (labels, keys)."""
    folder = Path(dataset)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet")) if folder.is_dir() else []
    stats = [(name, (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns) for name in files]
    vocab = sorted(tokenizer.get_vocab().items()) if hasattr(tokenizer, "get_vocab") else repr(tokenizer)
    text = json.dumps([str(dataset) if not files else str(folder.resolve()), split, stats, vocab, options], default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def token_cache(
    dataset: str | os.PathLike,
    split: str,
    tokenizer,
    folder: str | os.PathLike,
    bos_id: int,
    eos_id: int,
    label_of: Callable[[str], int] | None = None,
) -> TokenCache:
    """The split's cache in `folder`, built by streaming the split if it is missing or was built from other inputs.
    `label_of`: a piece's composer -> its label word id (-1: none), for a run with composer labels."""
    folder = Path(folder)
    meta_path = folder / f"{split}.json"
    key = fingerprint(dataset, split, tokenizer, labels=label_of is not None, bos=bos_id, eos=eos_id)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("fingerprint") != key:
        meta = _build(dataset, split, tokenizer, folder, bos_id, eos_id, label_of, key)
    dtype = np.dtype(meta["dtype"])
    tokens = np.memmap(folder / f"{split}.tokens", dtype=dtype, mode="r", shape=(meta["tokens"],))
    offsets = np.fromfile(folder / f"{split}.offsets", dtype=np.int64)
    labels = np.fromfile(folder / f"{split}.labels", dtype=np.int32) if meta["labels"] else None
    rows = len(offsets) - 1
    return TokenCache(tokens, offsets, labels, rows, meta["pieces"], meta["tokens"] - rows)


def _build(dataset, split, tokenizer, folder: Path, bos_id, eos_id, label_of, key: str) -> dict:
    """Stream the split into the cache files (under this process's own names, renamed when complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = len(tokenizer.get_vocab()) if hasattr(tokenizer, "get_vocab") else len(tokenizer)
    dtype = np.dtype(np.uint16 if vocab_size <= 2**16 else np.int32)
    names = {kind: folder / f"{split}.{kind}" for kind in ("tokens", "offsets", "labels")}
    temp = {kind: path.with_name(f".{path.name}.{os.getpid()}") for kind, path in names.items()}
    offsets, total = array.array("q", [0]), 0  # 8 bytes a piece: all that stays in memory
    piece_ids: set[str] = set()  # for the count of distinct pieces, freed at the end of the build
    with open(temp["tokens"], "wb") as tokens, open(temp["labels"], "wb") as labels:
        for piece in iter_pieces(dataset, split, tokenizer, with_composer=label_of is not None):
            sequence = np.empty(len(piece.ids) + 2, dtype=dtype)
            sequence[0], sequence[1:-1], sequence[-1] = bos_id, piece.ids, eos_id
            tokens.write(sequence.tobytes())
            total += len(sequence)
            offsets.append(total)
            piece_ids.add(piece.piece_id)
            if label_of is not None:
                labels.write(np.int32(label_of(piece.composer)).tobytes())
    if total == 0:
        for path in temp.values():
            path.unlink(missing_ok=True)
        raise ValueError(f"{dataset}: split {split!r} has no pieces")
    np.frombuffer(offsets, dtype=np.int64).tofile(temp["offsets"])
    for kind, path in temp.items():
        os.replace(path, names[kind])
    meta = {
        "fingerprint": key, "dtype": dtype.name, "tokens": total, "pieces": len(piece_ids),
        "labels": label_of is not None,
    }  # fmt: skip
    meta_temp = folder / f".{split}.json.{os.getpid()}"
    meta_temp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(meta_temp, folder / f"{split}.json")
    return meta


__all__ = ["CACHE_FOLDER", "TokenCache", "fingerprint", "token_cache"]
