"""What the demo shows of a piece: audio rendered by FluidSynth with a General MIDI soundfont, and a piano roll with
the prompt and the continuation in two colours (matplotlib, no pyplot: safe to call from several threads)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOUNDFONTS = (  # Debian/Ubuntu fluid-soundfont-gm, then other common places
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
SYNTH_MISSING = (
    "No synthesizer here, so no audio: install FluidSynth and a General MIDI soundfont "
    "(Debian/Ubuntu: `apt-get install fluidsynth fluid-soundfont-gm`). The MIDI files are below."
)
PROMPT_COLOUR, CONTINUATION_COLOUR = "#4c72b0", "#dd8452"


@dataclass(frozen=True)
class Synth:
    """FluidSynth rendering MIDI to WAV offline with one soundfont."""

    binary: str
    soundfont: str
    sample_rate: int = 32_000
    gain: float = 0.6
    timeout_s: float = 60.0

    @classmethod
    def find(cls) -> Synth | None:
        """FluidSynth and a GM soundfont ($TOCCATA_SOUNDFONT first), or None where either is missing."""
        binary = shutil.which(os.environ.get("TOCCATA_FLUIDSYNTH", "fluidsynth"))
        candidates = [os.environ.get("TOCCATA_SOUNDFONT", ""), *SOUNDFONTS]
        soundfont = next((path for path in candidates if path and Path(path).is_file()), None)
        return cls(binary, soundfont) if binary and soundfont else None

    def render(self, midi: Path, wav: Path) -> Path:
        """Write `wav` from `midi`; a RuntimeError with FluidSynth's own words if it fails."""
        command = [self.binary, "-ni", "-q", "-g", str(self.gain), "-r", str(self.sample_rate)]
        command += ["-F", str(wav), "-T", "wav", self.soundfont, str(midi)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"FluidSynth took more than {self.timeout_s:g} s to render {midi.name}") from None
        if done.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise RuntimeError(f"FluidSynth could not render {midi.name}: {detail[0]}")
        return wav


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
