"""The Gradio demo: `app.py` (the module-level `demo`), `ui.py` (Blocks and wiring), `engine.py` (compose and render
per request), `form.py` (the form as dataclasses), `prompt.py` (safe uploads, corpus excerpts), `render.py` (audio and
piano roll), `background.py` (streaming and cancelling). Nothing else in Toccata imports this package."""
