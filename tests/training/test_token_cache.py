"""`toccata train --memmap`: the train split streamed once to disk and memory-mapped gives the in-memory windows."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
from toccata.cli import main
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from toccata.training.data import WindowDataset, load_pieces
from toccata.training.token_cache import token_cache
from toccata.training.trainer import read_metrics

TOKENIZER = NotewiseTokenizer()
LAYOUT = VocabLayout.from_config(TOKENIZER)
BOS, EOS, PAD = TOKENIZER.bos_token_id, TOKENIZER.eos_token_id, TOKENIZER.pad_token_id


def _label_of(composer: str) -> int:
    return 7 if composer else -1  # the chorales' composer gets a label word (dropped from some windows)


def test_memory_mapped_windows_equal_the_in_memory_windows(tiny_dataset, tmp_path):
    cache = token_cache(tiny_dataset, "train", TOKENIZER, tmp_path / "cache", BOS, EOS, _label_of)
    assert isinstance(cache.tokens, np.memmap) and cache.tokens.dtype == np.uint16
    options = dict(max_transpose=6, seed=3, condition_dropout=0.3)
    mapped = WindowDataset.from_sequences(
        cache.tokens, cache.offsets, 40, LAYOUT, PAD, conditions=cache.labels, **options
    )
    pieces = load_pieces(tiny_dataset, "train", TOKENIZER, with_composer=True)
    labels = [_label_of(p.composer) for p in pieces]
    assert set(labels) == {7}
    memory = WindowDataset(pieces, 40, LAYOUT, BOS, EOS, PAD, conditions=labels, **options)
    assert len(mapped) == len(memory) and mapped.num_targets() == memory.num_targets() == cache.targets
    for item in range(2 * len(memory)):  # two epochs: other transpositions and label drops
        a, b = mapped[item], memory[item]
        assert (a["input_ids"] == b["input_ids"]).all() and (a["labels"] == b["labels"]).all(), item
    assert cache.rows == len(pieces) and cache.pieces == len({p.piece_id for p in pieces})


def test_the_cache_is_reused_when_nothing_changed_and_rebuilt_when_something_did(tiny_dataset, tmp_path):
    folder = tmp_path / "cache"
    token_cache(tiny_dataset, "train", TOKENIZER, folder, BOS, EOS)
    built = (folder / "train.tokens").stat().st_mtime_ns
    again = token_cache(tiny_dataset, "train", TOKENIZER, folder, BOS, EOS)
    assert (folder / "train.tokens").stat().st_mtime_ns == built and again.labels is None
    labelled = token_cache(tiny_dataset, "train", TOKENIZER, folder, BOS, EOS, _label_of)  # other options: rebuilt
    assert labelled.labels is not None and len(labelled.labels) == labelled.rows
    assert sorted(p.name for p in folder.iterdir()) == ["train.json", "train.labels", "train.offsets", "train.tokens"]


def test_building_the_cache_holds_no_tokens_in_memory(tmp_path):
    """The build streams: its peak Python memory is the parquet batch being read (1,024 rows), not the split's
    tokens (what `load_pieces` holds), so it stays a fraction of that however large the split is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    words = np.array(TOKENIZER.convert_ids_to_tokens(list(range(4, len(TOKENIZER)))))
    rows = 4000
    table = pa.table({
        "id": [f"r{i}" for i in range(rows)], "piece_id": [f"p{i // 2}" for i in range(rows)],
        "transposition": [i % 2 for i in range(rows)], "qpm": [120.0] * rows, "time_signature": ["4/4"] * rows,
        "notewise": [" ".join(rng.choice(words, 200)) for _ in range(rows)],
    })  # fmt: skip
    (tmp_path / "big").mkdir()
    pq.write_table(table, tmp_path / "big" / "toccata-train.parquet", row_group_size=1024)
    del table
    tracemalloc.start()
    try:
        cache = token_cache(tmp_path / "big", "train", TOKENIZER, tmp_path / "cache", BOS, EOS)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        pieces = load_pieces(tmp_path / "big", "train", TOKENIZER)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(cache.tokens) == rows * 202 and cache.pieces == rows // 2 and len(pieces) == rows
    assert peak < held / 3, (peak, held)  # measured 0.24 at 4 batches; it falls as the split grows


def _train(dataset, out, *extra):
    args = ["train", "--dataset", str(dataset), "--out", str(out), "--window", "48", "--batch-size", "4",
            "--logging-steps", "1", "--seed", "5", "--max-steps", "6", "--eval-steps", "3",
            "--embedding-size", "24", "--hidden-size", "32", "--num-hidden-layers", "1", *extra]  # fmt: skip
    assert main(args) == 0
    return [(row.get("loss"), row.get("eval_loss")) for row in read_metrics(out)]


def test_training_on_the_memory_map_follows_the_same_loss_curve(tiny_dataset, tmp_path):
    plain = _train(tiny_dataset, tmp_path / "plain")
    mapped = _train(tiny_dataset, tmp_path / "mapped", "--memmap")
    assert (tmp_path / "mapped" / "token_cache" / "train.tokens").is_file()
    assert len(plain) == len(mapped) > 6
    np.testing.assert_allclose(np.array(mapped, dtype=float), np.array(plain, dtype=float), rtol=1e-5)
    summaries = [json.loads((tmp_path / run / "train_summary.json").read_text()) for run in ("plain", "mapped")]
    for key in ("train_pieces", "train_rows", "train_tokens", "train_windows"):
        assert summaries[0][key] == summaries[1][key], key
