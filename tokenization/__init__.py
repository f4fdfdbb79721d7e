"""MIDI <-> tokens. `NotewiseTokenizer` is the main vocabulary; `ChordwiseTokenizer` is the seed's earlier one;
`toccata.tokenization.clara` reads and writes the seed author's own notewise text. `load_scheme(name_or_folder)` is
the one front door to all of them (and miditok's): `available_schemes()` lists the names."""

from transformers.models.auto import tokenization_auto

from .midi_io import MidiError, MidiLimits, ScoreMeta, load_score
from .schemes import Scheme, TokenScheme, available_schemes, load_scheme, scheme_of_text
from .tokenization_base import TokenEncoding, parse_token_text
from .tokenization_chordwise import ChordwiseTokenizer
from .tokenization_miditok import NotewiseMidiTok, notewise_config
from .tokenization_notewise import NotewiseTokenizer


def _register_with_auto_tokenizer() -> None:
    """Let `AutoTokenizer.from_pretrained(folder)` find our classes by the name in tokenizer_config.json.

    `AutoTokenizer.register` needs a model config class, which `toccata.modeling` provides; a tokenizer folder saved
    on its own has none, so the classes are also put in the by-name registry that `register` fills.
    """
    registry = getattr(tokenization_auto, "REGISTERED_TOKENIZER_CLASSES", None)
    if isinstance(registry, dict):
        for tokenizer_class in (NotewiseTokenizer, ChordwiseTokenizer):
            registry.setdefault(tokenizer_class.__name__, tokenizer_class)


_register_with_auto_tokenizer()

__all__ = [
    "ChordwiseTokenizer",
    "MidiError",
    "MidiLimits",
    "NotewiseMidiTok",
    "NotewiseTokenizer",
    "Scheme",
    "ScoreMeta",
    "TokenEncoding",
    "TokenScheme",
    "available_schemes",
    "load_scheme",
    "load_score",
    "notewise_config",
    "parse_token_text",
    "scheme_of_text",
]
