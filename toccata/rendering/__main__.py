"""A render worker process (`RenderWorkers` starts `python -m toccata.rendering`): FluidSynth renders requested on
stdin, one JSON line each, answered on stdout. Internal, not a user-facing command."""

from toccata.rendering.audio import serve_renders

serve_renders()
