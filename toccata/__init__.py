"""Toccata: piano music from an LSTM over notewise tokens.

Subpackages: `toccata.tokenization` (MIDI <-> tokens), `toccata.modeling`, `toccata.dataset_builder`, `toccata.demo`.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    """Register NotewiseLSTM (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification) and
    NotewiseTokenizer (AutoTokenizer)."""
    import toccata.modeling
    import toccata.tokenization  # noqa: F401


def default_checkpoint() -> Path | None:  # noqa: F821 - Path is imported inside
    """The folder of the checkpoint embedded in the package, or None while the package ships none.

    Registers the model and tokenizer with the Auto classes, so that `AutoModelForCausalLM.from_pretrained(folder)` and
    `AutoTokenizer.from_pretrained(folder)` load it as it is."""
    from pathlib import Path

    _register_auto_classes()
    folder = Path(__file__).parent / "checkpoints" / "default"
    return folder if (folder / "config.json").is_file() else None


def _embedded(name: str):
    from pathlib import Path

    _register_auto_classes()
    folder = Path(__file__).parent / "checkpoints" / name
    return folder if (folder / "config.json").is_file() else None


def default_critic() -> Path | None:  # noqa: F821 - Path is imported inside
    """The folder of the embedded critic of the default checkpoint (P(human) of an excerpt), or None if absent.

    Load it with `toccata.training.classifier.load_classifier(folder)` and score with `critic_scores`."""
    return _embedded("critic")


def default_composer() -> Path | None:  # noqa: F821 - Path is imported inside
    """The folder of the embedded composer classifier, or None if the package ships none."""
    return _embedded("composer")


def load_checkpoint(source: str | None = None, trust_remote_code: bool = False):
    """(model, tokenizer) of a checkpoint folder or Hub id, in eval mode; None: the embedded default checkpoint.

    Unlike `toccata.modeling.hub.load_checkpoint` (modeling never imports tokenization), this registers the tokenizer
    too, so any Toccata checkpoint loads without `trust_remote_code`."""
    from toccata.modeling.hub import load_checkpoint as load

    _register_auto_classes()
    source = source or default_checkpoint()
    if source is None:
        raise ValueError("no embedded default checkpoint in this install: pass a checkpoint folder or Hub id")
    return load(source, trust_remote_code=trust_remote_code)
