"""From a trained run to a shipped checkpoint: its default preset (set by hand or searched on validation), the
published folder with its model card, and the chamber checkpoints."""
