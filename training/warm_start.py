"""Grow a piano checkpoint into a chamber one: add a violin and/or cello part to its vocabulary and start each new
word from the piano word of the same pitch (a warm start), so fine-tuning on chamber data begins from piano music.

The piano ids never move (the instrumented tokenizer appends the new parts after them), so
`resize_token_embeddings` keeps every piano row; the new rows are then copied: `v67` from `p67`, `endv67` from
`endp67` (embedding, and the head's row and bias where the head is not tied to the embedding). A checkpoint trained
with composer labels keeps its music but not its labels: composer words come last in a vocabulary, so their ids
become the new parts' words (overwritten by the copies), and the grown tokenizer has none (the chamber data's
composers are others).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from toccata.tokenization import NotewiseTokenizer


def parse_instruments(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`"piano,violin"` -> ("piano", "violin"); None stays None. The piano always comes first."""
    if value is None:
        return None
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    if not names or names[0] != "piano" or len(set(names)) != len(names):
        raise ValueError(f"instruments must start with piano and not repeat, e.g. piano,violin; got {value!r}")
    return tuple(names)


def instrumented_tokenizer(tokenizer, instruments: Sequence[str]):
    """A `NotewiseTokenizer` with `tokenizer`'s settings and the parts `instruments`."""
    kwargs = {
        name: getattr(tokenizer, name)
        for name in ("steps_per_quarter", "max_wait", "min_pitch", "max_pitch", "sustain_pedal")
        if hasattr(tokenizer, name)
    }
    return NotewiseTokenizer(instruments=tuple(instruments), **kwargs)


def _pitch_sources(old_layout: dict, new_layout: dict) -> list[tuple[int, int]]:
    """(new id, piano id to copy) for every note-on/off id of a part the piano vocabulary lacks."""
    piano = old_layout["piano"]
    pairs = []
    for name, part in new_layout.items():
        if name in old_layout:
            continue
        for i in range(part["num_pitches"]):
            pitch = part["low_pitch"] + i
            key = min(max(pitch, piano["low_pitch"]), piano["high_pitch"]) - piano["low_pitch"]  # same pitch (clamped)
            pairs.append((part["note_on_offset"] + i, piano["note_on_offset"] + key))
            pairs.append((part["note_off_offset"] + i, piano["note_off_offset"] + key))
    return pairs


@torch.no_grad()
def warm_start(model, tokenizer, instruments: Sequence[str]):
    """(model, tokenizer) with the parts `instruments`: the embedding and head grown to the new vocabulary, each new
    word's rows copied from the piano word of the same pitch, every piano id's weights unchanged."""
    instruments = parse_instruments(instruments)
    new_tok = instrumented_tokenizer(tokenizer, instruments)
    old_layout = dict(getattr(tokenizer, "instrument_layout", None) or {})
    if set(old_layout) - set(instruments):
        raise ValueError(f"the checkpoint has parts {sorted(old_layout)}; cannot drop any (asked for {instruments})")
    if model.config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"model vocab_size {model.config.vocab_size} != tokenizer's {tokenizer.vocab_size}")
    new_layout = new_tok.instrument_layout
    if new_tok.vocab_size == model.config.vocab_size:
        return model, new_tok  # nothing to add
    model.resize_token_embeddings(new_tok.vocab_size, mean_resizing=False)
    pairs = _pitch_sources(old_layout, new_layout)
    new_ids = torch.tensor([a for a, _ in pairs])
    src_ids = torch.tensor([b for _, b in pairs])
    embedding = model.get_input_embeddings().weight
    embedding[new_ids] = embedding[src_ids]
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() != embedding.data_ptr():
        head.weight[new_ids] = head.weight[src_ids]
    if head is not None and getattr(head, "bias", None) is not None:
        head.bias[new_ids] = head.bias[src_ids]
    model.config.vocab_size = new_tok.vocab_size
    model.config.instrument_layout = new_layout
    return model, new_tok


__all__ = ["instrumented_tokenizer", "parse_instruments", "warm_start"]
