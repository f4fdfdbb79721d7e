"""Toccata: piano music from an LSTM over notewise tokens.

Subpackages: `toccata.tokenization` (MIDI <-> tokens), `toccata.modeling`, `toccata.dataset_builder`,
`toccata.training`, `toccata.evaluation`, `toccata.classifiers`, `toccata.release`, `toccata.demo`. This module only
re-exports the embedded checkpoints' functions (`toccata.embedded`).
"""

from __future__ import annotations

from pkgutil import extend_path

__version__ = "0.1.0"

# Run from the repository root, Python finds this folder (the app layer alone) before the installed package, whose
# `toccata/` holds the other folders too (modeling, tokenization ... under their installed names): look there as well.
__path__ = extend_path(__path__, __name__)

from toccata.embedded import (  # noqa: E402  after __path__, which finds the installed folders
    CHAMBER_CHECKPOINTS,
    available_instruments,
    default_checkpoint,
    default_composer,
    default_critic,
    default_critic_scorer,
    embedded_checkpoint,
    instrument_names,
    load_checkpoint,
)

__all__ = [
    "CHAMBER_CHECKPOINTS",
    "available_instruments",
    "default_checkpoint",
    "default_composer",
    "default_critic",
    "default_critic_scorer",
    "embedded_checkpoint",
    "instrument_names",
    "load_checkpoint",
]
