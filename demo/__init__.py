"""The Gradio demo (see the demo issue). Nothing imports this package."""
