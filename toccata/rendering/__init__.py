"""Rendering, the one module the CLI and the demo draw and play music with: MIDI to audio (`Synth`: FluidSynth with a
General MIDI soundfont, to WAV or FLAC) and notes to a piano roll (`piano_roll`, `piano_rolls`: PNG, drawn with
Pillow). `toccata generate --audio`, `toccata roll`, `toccata look` and the demo all render here.

Two files behind it: `audio.py` (FluidSynth's engines: its library in process, render worker processes, the command)
and `roll.py` (the drawing). `python -m toccata.rendering` is a render worker (`RenderWorkers` starts it), not a
user-facing command.
"""

from .audio import FILE_TYPES, INSTALL_HINT, SYNTH_MISSING, FluidSynthLibrary, RenderWorkers, Synth, file_type
from .roll import CONTINUATION_COLOUR, PART_COLOURS, PROMPT_COLOUR, piano_roll, piano_rolls, roll_image, roll_notes

__all__ = [
    "CONTINUATION_COLOUR",
    "FILE_TYPES",
    "FluidSynthLibrary",
    "INSTALL_HINT",
    "PART_COLOURS",
    "PROMPT_COLOUR",
    "RenderWorkers",
    "SYNTH_MISSING",
    "Synth",
    "file_type",
    "piano_roll",
    "piano_rolls",
    "roll_image",
    "roll_notes",
]
