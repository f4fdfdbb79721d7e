"""Sizes of an instrumented ("instrument + piano") dataset: pieces, tokens, and how much the instrument plays.

    toccata instrument-stats data/chamber-violin [--json out.json]

Counts rows as they are (transposition 0 only for the music measures): per split the pieces, rows and tokens; over
all pieces the notes of each part, the notes the ensemble mapping moved to the piano (out of range, beyond a double
stop), and the share of time steps (12 per quarter) in which each part sounds.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from toccata.tokenization import NotewiseTokenizer

from .pipeline import SPLITS


def sounding_steps(start: np.ndarray, end: np.ndarray, total: int) -> int:
    """How many of `total` steps at least one of the notes [start, end) covers."""
    if not len(start) or total <= 0:
        return 0
    delta = np.zeros(total + 1, dtype=np.int64)
    np.add.at(delta, np.minimum(start, total), 1)
    np.add.at(delta, np.minimum(end, total), -1)
    return int((np.cumsum(delta)[:total] > 0).sum())


def instrument_stats(folder: str | Path) -> dict[str, Any]:
    """The numbers of the module docstring for a dataset folder built with `instruments`."""
    folder = Path(folder)
    out: dict[str, Any] = {"splits": {}, "notes": Counter(), "moved_to_piano": Counter(), "sounding_steps": Counter()}
    tokenizer, total_steps = None, 0
    for split in SPLITS:
        rows = [row for path in sorted(folder.glob(f"*-{split}*.parquet")) for row in pq.read_table(path).to_pylist()]
        out["splits"][split] = {
            "pieces": len({row["piece_id"] for row in rows}),
            "rows": len(rows),
            "tokens": sum(row["num_tokens"] for row in rows),
        }
        for row in rows:
            ensemble = json.loads(row["metadata"]).get("ensemble")
            if ensemble is None:
                raise ValueError(f"{folder}: row {row['id']} has no ensemble metadata; not an instrumented build")
            if tokenizer is None:
                tokenizer = NotewiseTokenizer(instruments=("piano", *ensemble["sources"]))
            if row["transposition"] != 0:
                continue
            parts = tokenizer.tokens_to_parts(row["notewise"])
            steps = max((int(notes.end.max()) for notes in parts.values() if len(notes)), default=0)
            total_steps += steps
            for name, notes in parts.items():
                out["notes"][name] += len(notes)
                out["sounding_steps"][name] += sounding_steps(notes.start, notes.end, steps)
            for target in ensemble["sources"]:
                out["moved_to_piano"][target] += ensemble["out_of_range"][target] + ensemble["over_polyphony"][target]
    out["total"] = {key: sum(split[key] for split in out["splits"].values()) for key in ("pieces", "rows", "tokens")}
    out["steps"] = total_steps
    out["sounding_share"] = {name: count / total_steps for name, count in out["sounding_steps"].items()}
    return {key: dict(value) if isinstance(value, Counter) else value for key, value in out.items()}
