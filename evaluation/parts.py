"""Per-part checks of notewise token text with a violin or cello beside the piano: what the instrument guards promise
(range, double stops, grammar) and how much the added instrument plays: its share of the notes, and whether it falls
silent for long (a duo whose violin rests for the whole piece, or for more than `LONG_REST_BARS` bars, is a piano solo
for that stretch: issue 32).

Works on token strings and a tokenizer's `instrument_layout`, so it reads generated pieces and dataset rows alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

NOTE = re.compile(r"^(end)?([a-z]+?)(\d+)$")
BOWED_LIMIT = 2  # notes a violin or cello part may sound at once (double stops)
LONG_REST_BARS = 8  # a part silent longer than this many bars (of 4/4: samples carry no metre) counts as a long rest
STEPS_PER_QUARTER = 12


def _parts_by_prefix(layout: Mapping[str, Mapping]) -> dict[str, str]:
    return {str(spec["prefix"]): name for name, spec in layout.items()}


def part_checks(tokens: Iterable[str], layout: Mapping[str, Mapping], max_part_polyphony: int = BOWED_LIMIT) -> dict:
    """Per part: `notes`, `range` (notes outside the part's range), `double_stop` (note-ons that make more than
    `max_part_polyphony` notes of a violin or cello part sound; the piano has no such limit), `grammar` (note-offs of
    a silent key or in the step the note began, note-ons of a sounding key), `sounding_steps` and `longest_rest`
    (the most steps in a row without a note of the part sounding, the start and the end included); plus `steps`."""
    prefixes = _parts_by_prefix(layout)
    keys = ("notes", "range", "double_stop", "grammar", "sounding_steps", "longest_rest")
    out = {name: dict.fromkeys(keys, 0) for name in layout}
    sounding: dict[str, dict[int, int]] = {name: {} for name in layout}  # part -> pitch -> onset step
    resting = dict.fromkeys(layout, 0)  # part -> steps of its current rest
    now = 0
    for token in tokens:
        if token.startswith("wait") and token[4:].isdigit():
            n = int(token[4:])
            for name in layout:
                if sounding[name]:
                    out[name]["sounding_steps"] += n
                    resting[name] = 0
                else:
                    resting[name] += n
                    out[name]["longest_rest"] = max(out[name]["longest_rest"], resting[name])
            now += n
            continue
        match = NOTE.match(token)
        if not match or match.group(2) not in prefixes:
            continue
        name, pitch = prefixes[match.group(2)], int(match.group(3))
        spec, keys, counts = layout[name], sounding[name], out[name]
        if match.group(1):  # note-off
            if pitch not in keys or keys[pitch] == now:
                counts["grammar"] += 1
            keys.pop(pitch, None)
            continue
        counts["notes"] += 1
        if not spec["low_pitch"] <= pitch <= spec["high_pitch"]:
            counts["range"] += 1
        if pitch in keys:
            counts["grammar"] += 1
        keys[pitch] = now
        if name != "piano" and len(keys) > max_part_polyphony:
            counts["double_stop"] += 1
    return {"steps": now, "parts": out}


def summarise(checks: list[dict], long_rest_bars: float = LONG_REST_BARS) -> dict[str, dict]:
    """Totals over pieces per part: violations, notes, the share of steps in which the part sounds, its share of all
    notes (overall, and the pieces' 5th percentile, median and 95th percentile), the pieces in which it plays no note
    (`silent_pieces`) and those in which it rests longer than `long_rest_bars` bars of 4/4 (`long_rest_pieces`, the
    silent ones included), and how many pieces were read."""
    steps = sum(c["steps"] for c in checks)
    names = list(checks[0]["parts"]) if checks else []
    limit = long_rest_bars * 4 * STEPS_PER_QUARTER
    notes_per_piece = np.asarray([sum(p["notes"] for p in c["parts"].values()) for c in checks], dtype=float)
    out = {}
    for name in names:
        total = {key: sum(c["parts"][name][key] for c in checks) for key in checks[0]["parts"][name]}
        total["sounding_share"] = total.pop("sounding_steps") / steps if steps else 0.0
        total["longest_rest"] = max(c["parts"][name]["longest_rest"] for c in checks)
        own = np.asarray([c["parts"][name]["notes"] for c in checks], dtype=float)
        total["note_share"] = float(own.sum() / notes_per_piece.sum()) if notes_per_piece.sum() else 0.0
        shares = own[notes_per_piece > 0] / notes_per_piece[notes_per_piece > 0]
        spread = np.percentile(shares, [5, 50, 95]) if shares.size else np.zeros(3)
        total["note_share_p5"], total["note_share_median"], total["note_share_p95"] = map(float, spread)
        total["silent_pieces"] = int(sum(c["parts"][name]["notes"] == 0 for c in checks))
        total["long_rest_pieces"] = int(
            sum(c["parts"][name]["notes"] == 0 or c["parts"][name]["longest_rest"] > limit for c in checks)
        )
        total["pieces"] = len(checks)
        out[name] = total
    return out


def is_instrumented(tokenizer) -> bool:
    """Whether `tokenizer` has a part beside the piano."""
    return len(getattr(tokenizer, "instrument_layout", None) or {}) > 1


def note_on_ids(layout: Mapping[str, Mapping]) -> list[int]:
    """The note-on ids of every part (what bits per note counts as notes)."""
    return [spec["note_on_offset"] + i for spec in layout.values() for i in range(spec["num_pitches"])]


def merge_table(layout: Mapping[str, Mapping], vocab_size: int) -> np.ndarray:
    """id -> id where every violin or cello word becomes the piano word of the same pitch (the whole texture as one
    piano part), so the piano-only statistics, copy index and critic read chamber music too."""
    table = np.arange(vocab_size, dtype=np.int64)
    piano = layout["piano"]
    for name, spec in layout.items():
        if name == "piano":
            continue
        for i in range(spec["num_pitches"]):
            key = min(max(spec["low_pitch"] + i, piano["low_pitch"]), piano["high_pitch"]) - piano["low_pitch"]
            table[spec["note_on_offset"] + i] = piano["note_on_offset"] + key
            table[spec["note_off_offset"] + i] = piano["note_off_offset"] + key
    return table


__all__ = ["BOWED_LIMIT", "LONG_REST_BARS", "is_instrumented", "merge_table", "note_on_ids", "part_checks", "summarise"]
