"""The piano roll the demo shows (audio comes from `toccata.audio`): prompt and continuation in two colours.

Drawn with Pillow, not matplotlib: about 10 ms instead of 180 ms a roll, and no Python-heavy drawing holding the GIL
while the shared decoding loop serves other requests. Safe to call from several threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PROMPT_COLOUR, CONTINUATION_COLOUR = "#4c72b0", "#dd8452"
SIZE = (1000, 340)  # pixels
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 12, 26, 40
GRID, AXIS, TEXT, SPLIT = "#dddddd", "#888888", "#333333", "#444444"


def piano_roll(notes: np.ndarray, split: float, path: Path, title: str = "") -> Path:
    """A PNG piano roll of `notes` ((n, 3): start and end in quarter notes, MIDI pitch); notes starting before
    `split` (the end of the prompt) in one colour, the continuation in another."""
    notes = np.asarray(notes, dtype=float).reshape(-1, 3)
    start, end, pitch = notes[:, 0], notes[:, 1], notes[:, 2]
    low, high = (pitch.min() - 2, pitch.max() + 2) if len(notes) else (55.0, 80.0)
    length = max(end.max() if len(notes) else 0.0, split, 1.0)
    width, height = SIZE
    left, right, top, bottom = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM

    def x_of(quarters: np.ndarray | float) -> np.ndarray:
        return left + np.asarray(quarters) / length * (right - left)

    def y_of(midi: np.ndarray | float) -> np.ndarray:
        return bottom - (np.asarray(midi) - low) / (high - low) * (bottom - top)

    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for octave in np.arange(12 * np.ceil(low / 12), high, 12):  # a line and a label at every C
        y = float(y_of(octave))
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 6, y), f"C{int(octave) // 12 - 1}", fill=TEXT, font=font, anchor="rm")
    x0, x1 = x_of(start), np.maximum(x_of(end), x_of(start) + 1.0)
    y0, y1 = y_of(pitch + 0.4), y_of(pitch - 0.4)
    for a, b, c, d, before in zip(x0, y0, x1, y1, start < split):
        draw.rectangle([(a, b), (c, d)], fill=PROMPT_COLOUR if before else CONTINUATION_COLOUR)
    if split > 0:
        x = float(x_of(split))
        for y in range(top, bottom, 8):  # dashed
            draw.line([(x, y), (x, min(y + 4, bottom))], fill=SPLIT)
    draw.rectangle([(left, top), (right, bottom)], outline=AXIS)
    for tick in _ticks(length):
        x = float(x_of(tick))
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS)
        draw.text((x, bottom + 6), f"{tick:g}", fill=TEXT, font=font, anchor="mt")
    draw.text(((left + right) / 2, height - 4), "quarter notes", fill=TEXT, font=font, anchor="mb")
    _legend(draw, font, right, height - 4, prompt=split > 0)
    if title:
        draw.text(((left + right) / 2, 6), title, fill=TEXT, font=font, anchor="mt")
    path = Path(path)
    image.save(path, format="PNG")
    return path


def _ticks(length: float) -> np.ndarray:
    """Round positions for about 8 to 16 ticks along `length` quarter notes."""
    step = next(s for s in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096) if length / s <= 16)
    return np.arange(0, length + 1e-9, step)


def _legend(draw: ImageDraw.ImageDraw, font, right: float, baseline: float, prompt: bool) -> None:
    entries = [("prompt", PROMPT_COLOUR)] if prompt else []
    entries.append(("continuation", CONTINUATION_COLOUR))
    x = right
    for label, colour in reversed(entries):
        x -= draw.textlength(label, font=font)
        draw.text((x, baseline), label, fill=TEXT, font=font, anchor="lb")
        x -= 14
        draw.rectangle([(x, baseline - 10), (x + 9, baseline - 1)], fill=colour)
        x -= 12
