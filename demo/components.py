"""Gradio components adapted to what the demo serves.

`RenderedAudio` is `gr.Audio` (the same player in the page: a Gradio template of it) for files the demo rendered
itself. Where FFmpeg is installed, as on Hugging Face Spaces, `gr.Audio` runs `ffprobe` on every output file to check
that a browser can play it: a new process for every audio of every request. FluidSynth's FLAC and WAV always play,
so they are served as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from toccata.rendering import FILE_TYPES  # the suffixes `Synth` writes: FLAC, and WAV of 16-bit PCM


class RenderedAudio(gr.Audio):
    """`gr.Audio` that serves the demo's own renders without probing them; anything else as `gr.Audio` does."""

    is_template = True  # the page draws it with gr.Audio's own component

    def postprocess(self, value: Any) -> FileData | bytes | None:
        if isinstance(value, (str, Path)) and Path(value).suffix.lower() in FILE_TYPES and Path(value).is_file():
            return FileData(path=str(value), orig_name=Path(value).name)
        return super().postprocess(value)


__all__ = ["RenderedAudio"]
