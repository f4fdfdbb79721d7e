"""The checkpoints embedded in the package (the piano default, the chamber ones, the critic and the composer): their
folders, loading them with the model and tokenizer registered, and the embedded critic as a scorer. `toccata`
re-exports these (`toccata.default_checkpoint()`, `toccata.load_checkpoint()`, ...).

Torch and transformers are imported inside the functions that need them: `import toccata` runs before every
`toccata.*` import and `toccata --help`, which must stay quick.
"""

from __future__ import annotations

import threading
from pathlib import Path


def _register_auto_classes() -> None:
    """Register NotewiseLSTM (AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification), NotewiseTokenizer
    (AutoTokenizer), and the embedded checkpoint and critic as the "music-generation" pipeline's defaults.

    Imported here, not at the top: `import toccata` (and so every `toccata.*` import, and `toccata --help`) stays
    quick without torch and transformers."""
    import toccata.tokenization  # noqa: F401  start-up: see the docstring; registers NotewiseTokenizer (AutoTokenizer)
    from toccata.modeling.pipeline import register_pipeline  # start-up: as above

    folder = Path(__file__).parent / "checkpoints" / "default"
    register_pipeline(folder if (folder / "config.json").is_file() else None, critic=default_critic_scorer)


CHAMBER_CHECKPOINTS = {
    ("piano", "violin"): "piano-violin",
    ("piano", "cello"): "piano-cello",
    ("piano", "violin", "cello"): "piano-trio",
}


def instrument_names(instruments) -> tuple[str, ...]:
    """("piano", "violin") from "piano,violin", a sequence, or None (the piano alone)."""
    if instruments is None:
        return ("piano",)
    names = instruments.split(",") if isinstance(instruments, str) else list(instruments)
    return tuple(name.strip().lower() for name in names if name.strip())


def available_instruments() -> list[str]:
    """The instrument sets with an embedded checkpoint in this install, e.g. ["piano", "piano,violin"]."""
    folders = {("piano",): "default", **CHAMBER_CHECKPOINTS}
    root = Path(__file__).parent / "checkpoints"
    return [",".join(names) for names, name in folders.items() if (root / name / "config.json").is_file()]


def default_checkpoint(instruments=None) -> Path | None:
    """The folder of the checkpoint embedded in the package for `instruments` (None or "piano": the piano default;
    "piano,violin" or ("piano", "cello"): a chamber checkpoint), or None while the package ships none.
    Instruments without an embedded checkpoint raise a ValueError naming the available ones.

    Registers the model and tokenizer with the Auto classes, so that `AutoModelForCausalLM.from_pretrained(folder)` and
    `AutoTokenizer.from_pretrained(folder)` load it as it is."""
    _register_auto_classes()
    names = instrument_names(instruments)
    if names == ("piano",):
        name = "default"
    elif names in CHAMBER_CHECKPOINTS:
        name = CHAMBER_CHECKPOINTS[names]
    else:
        known = ["piano", *(",".join(k) for k in CHAMBER_CHECKPOINTS)]
        raise ValueError(f"no embedded checkpoint for instruments {','.join(names)}; available: {', '.join(known)}")
    folder = Path(__file__).parent / "checkpoints" / name
    return folder if (folder / "config.json").is_file() else None


def embedded_checkpoint(name: str) -> Path | None:
    """The folder of the checkpoint shipped under `name` ("default", "critic", "composer", "piano-violin",
    "piano-cello", "piano-trio"), or None if this install has none by that name."""
    _register_auto_classes()
    folder = Path(__file__).parent / "checkpoints" / name
    return folder if (folder / "config.json").is_file() else None


def default_critic() -> Path | None:
    """The folder of the embedded critic of the default checkpoint (P(human) of an excerpt), or None if absent.

    Load it with `toccata.classifiers.model.load_classifier(folder)` and score with `critic_scores`."""
    return embedded_checkpoint("critic")


_CRITICS: dict = {}


def default_critic_scorer(folder=None):
    """A function token lists -> P(human) each, from the embedded critic (or the critic `folder`), loaded once.

    What `compose(..., critic=...)` takes for best-of-N generation."""
    from toccata.classifiers.model import critic_scores, load_classifier  # start-up: torch (module docstring)

    folder = folder or default_critic()
    if folder is None:
        raise ValueError("no embedded critic in this install: pass a critic folder (toccata critic train makes one)")
    key = str(folder)
    if key not in _CRITICS:
        model, tokenizer = load_classifier(folder)
        lock = threading.Lock()  # one model, many threads (the demo): score one request at a time

        def score(token_lists) -> list[float]:
            with lock:
                return critic_scores(model, tokenizer, token_lists)

        _CRITICS[key] = score
    return _CRITICS[key]


def default_composer() -> Path | None:
    """The folder of the embedded composer classifier, or None if the package ships none."""
    return embedded_checkpoint("composer")


def load_checkpoint(source: str | None = None, trust_remote_code: bool = False, instruments=None):
    """(model, tokenizer) of a checkpoint folder or Hub id, in eval mode; None: the embedded checkpoint for
    `instruments` (None: the piano default; "piano,violin", "piano,cello": the chamber ones).

    Unlike `toccata.modeling.hub.load_checkpoint` (modeling never imports tokenization), this registers the tokenizer
    too, so any Toccata checkpoint loads without `trust_remote_code`. With both `source` and `instruments`, the
    checkpoint must have exactly those parts (a ValueError says which it has)."""
    from toccata.modeling.hub import load_checkpoint as load  # start-up: torch (module docstring)

    _register_auto_classes()
    wanted = instrument_names(instruments)
    if source is None:
        source = default_checkpoint(instruments)
        if source is None:
            raise ValueError(
                f"no embedded checkpoint for {','.join(wanted)} in this install: pass a checkpoint folder or Hub id"
            )
    model, tokenizer = load(source, trust_remote_code=trust_remote_code)
    has = tuple(getattr(tokenizer, "instruments", None) or ("piano",))
    if instruments is not None and has != wanted:
        raise ValueError(f"{source}: its parts are {','.join(has)}, not {','.join(wanted)}")
    return model, tokenizer
