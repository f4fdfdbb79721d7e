"""The Toccata demo as a module-level Gradio app: `toccata demo`, `python -m toccata.demo`, or a Hugging Face Space
(`python app.py`; see README.md beside this file and docs/demo.md)."""

from toccata.demo.ui import build_demo, serve

demo = build_demo()

if __name__ == "__main__":
    serve(demo)
