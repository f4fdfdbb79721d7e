"""Toccata: piano music from an LSTM over notewise tokens.

Subpackages: `toccata.tokenization` (MIDI <-> tokens), `toccata.modeling`, `toccata.dataset_builder`, `toccata.demo`.
"""

__version__ = "0.1.0"
