"""The piano roll the demo shows, `toccata roll` draws for any MIDI file or score and `toccata look` draws for
samples (through `toccata.rendering`, beside the audio): the piano's prompt and the rest in two colours, a violin or
cello part in its own.

Drawn with Pillow, not matplotlib: about 6 ms instead of 180 ms a roll, and no Python-heavy drawing holding the GIL
while the shared decoding loop serves other requests. A palette image (seven colours, text without anti-aliasing):
its PNG compresses in 1.5 ms instead of 8 for RGB. Each label's pixels are drawn by FreeType once and stamped after: the
same labels recur on every roll, and drawing them was ~40% of a roll's time (10.7 -> 4.8 ms a roll on a 2-core VM).
Safe to call from several threads.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PROMPT_COLOUR, CONTINUATION_COLOUR = "#4c72b0", "#dd8452"
PART_COLOURS = {"violin": "#2e9c4a", "cello": "#8c4fb8"}  # other parts than the piano, prompt and continuation alike
SIZE = (1000, 340)  # pixels
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 12, 26, 40
GRID, AXIS, TEXT, SPLIT = "#dddddd", "#888888", "#333333", "#444444"


def roll_notes(tokenizer, tokens: list[str]) -> dict[str, np.ndarray]:
    """Each part's notes as (n, 3) arrays of start and end in quarter notes and MIDI pitch, for `piano_roll`."""
    if not getattr(tokenizer, "is_instrumented", False):
        grid = tokenizer.tokens_to_notes(tokens)
        return {"piano": np.column_stack([grid.start / grid.tpq, grid.end / grid.tpq, grid.pitch])}
    return {
        part: np.column_stack([grid.start / grid.tpq, grid.end / grid.tpq, grid.pitch])
        for part, grid in tokenizer.tokens_to_parts(tokens).items()
    }


def piano_roll(
    notes: np.ndarray | dict[str, np.ndarray], split: float, path: Path, title: str = "", caption: str | None = None
) -> Path:
    """A PNG piano roll of `notes` ((n, 3): start and end in quarter notes, MIDI pitch), or of several parts
    ({"piano": notes, "violin": notes}); piano notes starting before `split` (the end of the prompt) in one colour,
    the rest in another (named `caption` in the legend; default "continuation"), every other part in its own colour."""
    path = Path(path)
    roll_image(notes, split, title, caption).save(path, format="PNG")
    return path


def piano_rolls(rolls: list[tuple[dict[str, np.ndarray], str]], path: Path, caption: str | None = None) -> Path:
    """One PNG of several rolls ((parts, title) each, as `piano_roll` takes them, no prompt), one above the other on
    the same time and pitch scales, so that pieces compare at a glance."""
    arrays = [np.asarray(part, dtype=float).reshape(-1, 3) for parts, _ in rolls for part in parts.values()]
    notes = np.concatenate(arrays) if arrays else np.zeros((0, 3))
    pitches = (notes[:, 2].min() - 2, notes[:, 2].max() + 2) if len(notes) else None
    length = notes[:, 1].max() if len(notes) else None
    images = [roll_image(parts, 0.0, title, caption, length=length, pitches=pitches) for parts, title in rolls]
    sheet = Image.new("RGB", (SIZE[0], SIZE[1] * len(images)), "white")
    for row, image in enumerate(images):
        sheet.paste(image.convert("RGB"), (0, row * SIZE[1]))  # each palette image has its own palette
    path = Path(path)
    sheet.save(path, format="PNG")
    return path


def roll_image(
    notes: np.ndarray | dict[str, np.ndarray],
    split: float = 0.0,
    title: str = "",
    caption: str | None = None,
    *,
    length: float | None = None,
    pitches: tuple[float, float] | None = None,
) -> Image.Image:
    """The image `piano_roll` saves; `length` (quarter notes) and `pitches` (lowest, highest) fix the scales, which
    otherwise fit the notes."""
    parts = notes if isinstance(notes, dict) else {"piano": notes}
    parts = {name: np.asarray(part, dtype=float).reshape(-1, 3) for name, part in parts.items()}
    notes = np.concatenate(list(parts.values())) if parts else np.zeros((0, 3))
    end, pitch = notes[:, 1], notes[:, 2]
    low, high = pitches or ((pitch.min() - 2, pitch.max() + 2) if len(notes) else (55.0, 80.0))
    length = max(length or 0.0, end.max() if len(notes) else 0.0, split, 1.0)
    width, height = SIZE
    left, right, top, bottom = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM

    def x_of(quarters: np.ndarray | float) -> np.ndarray:
        return left + np.asarray(quarters) / length * (right - left)

    def y_of(midi: np.ndarray | float) -> np.ndarray:
        return bottom - (np.asarray(midi) - low) / (high - low) * (bottom - top)

    image = Image.new("P", SIZE, "white")  # a palette: a third of the bytes to compress, 1.5 ms instead of 8 to save
    draw = ImageDraw.Draw(image)
    for octave in np.arange(12 * np.ceil(low / 12), high, 12):  # a line and a label at every C
        y = float(y_of(octave))
        draw.line([(left, y), (right, y)], fill=GRID)
        _label(draw, (left - 6, y), f"C{int(octave) // 12 - 1}", anchor="rm")
    for name, part in parts.items():
        x0, x1 = x_of(part[:, 0]), np.maximum(x_of(part[:, 1]), x_of(part[:, 0]) + 1.0)
        y0, y1 = y_of(part[:, 2] + 0.4), y_of(part[:, 2] - 0.4)
        own = PART_COLOURS.get(name)
        for a, b, c, d, before in zip(x0, y0, x1, y1, part[:, 0] < split):
            draw.rectangle([(a, b), (c, d)], fill=own or (PROMPT_COLOUR if before else CONTINUATION_COLOUR))
    if split > 0:
        x = float(x_of(split))
        for y in range(top, bottom, 8):  # dashed
            draw.line([(x, y), (x, min(y + 4, bottom))], fill=SPLIT)
    draw.rectangle([(left, top), (right, bottom)], outline=AXIS)
    for tick in _ticks(length):
        x = float(x_of(tick))
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS)
        _label(draw, (x, bottom + 6), f"{tick:g}", anchor="mt")
    _label(draw, ((left + right) / 2, height - 4), "quarter notes", anchor="mb")
    others = [name for name in parts if name != "piano"]
    _legend(draw, right, height - 4, prompt=split > 0, others=others, caption=caption)
    if title:
        _label(draw, ((left + right) / 2, 6), title, anchor="mt")
    return image


def _ticks(length: float) -> np.ndarray:
    """Round positions for about 8 to 16 ticks along `length` quarter notes."""
    step = next(s for s in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096) if length / s <= 16)
    return np.arange(0, length + 1e-9, step)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, anchor: str) -> None:
    """`text` in the default font and the text colour, its `anchor` point at `xy` (rounded to a pixel): the same pixels
    as `draw.text` there, from a mask drawn once per label and anchor."""
    mask, left, top = _label_mask(text, anchor)
    draw.bitmap((round(xy[0]) + left, round(xy[1]) + top), mask, fill=TEXT)


@functools.lru_cache(maxsize=4096)
def _label_mask(text: str, anchor: str) -> tuple[Image.Image, int, int]:
    """`text` drawn without anti-aliasing (as on a palette image) into a 1-bit mask, and the offset of the mask's
    corner from the anchor point."""
    left, top, right, bottom = _font().getbbox(text, mode="1", anchor=anchor)
    mask = Image.new("1", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=1, font=_font(), anchor=anchor)
    return mask, left, top


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font (loaded once)."""
    return ImageFont.load_default()


def _legend(
    draw: ImageDraw.ImageDraw, right: float, baseline: float, prompt: bool, others=(), caption: str | None = None
) -> None:
    piano = "piano " if others else ""
    entries = [(f"{piano}prompt", PROMPT_COLOUR)] if prompt else []
    entries.append((caption or f"{piano}continuation", CONTINUATION_COLOUR))
    entries += [(name, PART_COLOURS.get(name, "#777777")) for name in others]
    x = right
    for label, colour in reversed(entries):
        x -= draw.textlength(label, font=_font())
        _label(draw, (x, baseline), label, anchor="lb")
        x -= 14
        draw.rectangle([(x, baseline - 10), (x + 9, baseline - 1)], fill=colour)
        x -= 12
