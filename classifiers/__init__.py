"""Sequence classifiers on the generator's encoder (the critic, P(human) of an excerpt; the composer): their data,
fine-tuning, tasks and model cards. A room of its own: a model family with its own checkpoints, which both the
evaluation (best-of-N) and generation (`compose(..., critic=...)`) use, built on training's data."""
