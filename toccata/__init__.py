"""Toccata: piano music from an LSTM over notewise tokens.

Subpackages: `toccata.tokenization` (MIDI <-> tokens), `toccata.modeling`, `toccata.dataset_builder`, `toccata.demo`.
"""

from __future__ import annotations

__version__ = "0.1.0"


def default_checkpoint() -> Path | None:  # noqa: F821 - Path is imported inside
    """The folder of the checkpoint embedded in the package, or None while the package ships none.

    Registers the model and tokenizer with the Auto classes, so that `AutoModelForCausalLM.from_pretrained(folder)` and
    `AutoTokenizer.from_pretrained(folder)` load it as it is."""
    from pathlib import Path

    import toccata.modeling  # noqa: F401 - registers NotewiseLSTM with AutoConfig / AutoModelForCausalLM
    import toccata.tokenization  # noqa: F401 - registers NotewiseTokenizer with AutoTokenizer

    folder = Path(__file__).parent / "checkpoints" / "default"
    return folder if (folder / "config.json").is_file() else None
