"""Look and listen before calling a checkpoint good: piano rolls and WAVs of a few samples beside held-out excerpts.

    toccata look RUN --dataset data/piano --split test --out out/look [--samples 4 --beats 48]

Writes `sample-N.mid/.wav/.png` (the checkpoint's preset, seeds 0..N-1, from `<bos>`) and `heldout-N.mid/.wav/.png`
(the first `--beats` of N held-out pieces), and `look.md` with their note density, polyphony and range side by side.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from toccata.modeling import GenerationRequest, compose
from toccata.modeling.presets import preset_from_generation_config
from toccata.rendering import Synth, piano_roll, roll_notes
from toccata.tokenization.midi_io import save_score
from toccata.training.data import read_rows


def describe(notes: np.ndarray) -> str:
    """Notes per quarter, mean polyphony and pitch range of (n, 3) notes."""
    if not len(notes):
        return "no notes"
    length = max(notes[:, 1].max(), 1e-9)
    return (
        f"{len(notes) / length:.2f} notes/quarter, polyphony {np.sum(notes[:, 1] - notes[:, 0]) / length:.2f}, "
        f"range {int(notes[:, 2].min())}–{int(notes[:, 2].max())}"
    )


def look(model, tokenizer, title: str, dataset: str, split: str, out: str | Path, samples: int, beats: float) -> Path:
    """Write `samples` samples of `model` (named `title` in the page) and the openings of as many `split` pieces of
    `dataset` into `out` (MIDI, WAV when a synthesizer is installed, piano-roll PNG), and out/look.md; its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sampler, guards = preset_from_generation_config(model.generation_config)
    synth = Synth.find()
    lines = [f"# {title}: samples beside {split} excerpts", ""]

    def emit(name: str, tokens: list[str], caption: str) -> None:
        midi = save_score(tokenizer.tokens_to_midi(tokens, qpm=100.0), out / f"{name}.mid")
        parts = roll_notes(tokenizer, tokens)  # as the demo draws its rolls: each part in its own colour
        notes = np.concatenate(list(parts.values()))
        piano_roll(parts, 0.0, out / f"{name}.png", title=name, caption=caption)
        if synth is not None:
            synth.render(midi, out / f"{name}.wav")
        lines.append(f"- `{name}`: {describe(notes)}  \n  ![{name}]({name}.png)")

    for seed in range(samples):
        request = GenerationRequest(sampler=replace(sampler, seed=seed), guards=guards, beats=beats, qpm=100.0)
        (piece,) = compose(model, tokenizer, request)
        emit(f"sample-{seed}", list(piece.tokens), "generated")
    rows = [r for r in read_rows(dataset, split) if not r["transposition"]][:samples]
    for i, row in enumerate(rows):
        words, kept, steps = row["notewise"].split(), [], 0
        for word in words:  # the first `beats` quarter notes of the piece
            kept.append(word)
            steps += int(word[4:]) if word.startswith("wait") else 0
            if steps >= beats * tokenizer.steps_per_quarter:
                break
        emit(f"heldout-{i}", kept, f"{split} piece")  # real music, not a continuation
    (out / "look.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "look.md"
