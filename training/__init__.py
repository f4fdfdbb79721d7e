"""Training Toccata models: windows of a built dataset, the transformers Trainer set-up, warm starts."""

DEFAULT_WINDOW = 256  # tokens per training window: ~26 quarter notes (6 bars of 4/4) at the corpus's ~10 per quarter
