"""The Gradio demo: `app.py` (the module-level `demo`), `ui.py` (Blocks and wiring), `engine.py` (compose and render
per request), `form.py` (the form as dataclasses), `prompt.py` (safe uploads, corpus excerpts), `components.py` (the
audio player for its own renders), `background.py` (streaming and cancelling); the "Human or AI?" tab:
`listening_ui.py`, `listening.py`, `listening_data.py` (the shipped real excerpts) and `answers.py` (the SQLite answer
store). Audio and piano rolls come from `toccata.rendering`, as the CLI's do. Nothing else in Toccata imports this
package."""
