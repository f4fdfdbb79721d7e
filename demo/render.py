"""The piano roll the demo shows (audio comes from `toccata.audio`): prompt and continuation in two colours.
matplotlib without pyplot, so it is safe to call from several threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PROMPT_COLOUR, CONTINUATION_COLOUR = "#4c72b0", "#dd8452"


def piano_roll(notes: np.ndarray, split: float, path: Path, title: str = "") -> Path:
    """A PNG piano roll of `notes` ((n, 3): start and end in quarter notes, MIDI pitch); notes starting before
    `split` (the end of the prompt) in one colour, the continuation in another."""
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    figure = Figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    notes = np.asarray(notes, dtype=float).reshape(-1, 3)
    start, end, pitch = notes[:, 0], notes[:, 1], notes[:, 2]
    low_edge, high_edge = pitch - 0.4, pitch + 0.4
    corners = ((start, low_edge), (end, low_edge), (end, high_edge), (start, high_edge))
    boxes = np.stack([np.stack(corner, axis=1) for corner in corners], axis=1)  # (n, 4 corners, xy)
    colours = np.where(start < split, PROMPT_COLOUR, CONTINUATION_COLOUR)
    axes.add_collection(PolyCollection(boxes, facecolors=colours, edgecolors="none"))
    low, high = (pitch.min() - 2, pitch.max() + 2) if len(notes) else (55, 80)
    axes.set_xlim(0, max(end.max() if len(notes) else 0, split, 1.0))
    axes.set_ylim(low, high)
    if split > 0:
        axes.axvline(split, color="#444444", linewidth=1, linestyle="--")
    octaves = np.arange(12 * np.ceil(low / 12), high, 12)
    axes.set_yticks(octaves, [f"C{int(c) // 12 - 1}" for c in octaves])
    axes.set_xlabel("quarter notes")
    axes.grid(axis="y", color="#dddddd", linewidth=0.5)
    axes.set_axisbelow(True)
    legend = [Patch(color=CONTINUATION_COLOUR, label="continuation")]
    if split > 0:
        legend.insert(0, Patch(color=PROMPT_COLOUR, label="prompt"))
    figure.legend(handles=legend, loc="outside lower right", ncols=2, fontsize=8, frameon=False)  # clear of UI icons
    if title:
        axes.set_title(title, fontsize=10)
    figure.savefig(path, format="png")
    return path
