"""Checkpoint folders: save (weights, config, generation presets, tokenizer, model card), load and push.

A checkpoint folder holds no code: `AutoModelForCausalLM.from_pretrained(folder_or_repo)` and
`AutoTokenizer.from_pretrained(folder_or_repo)` load it through the classes that importing toccata registers.
A folder for the Hub (`copy_checkpoint(..., for_hub=True)`, `push_checkpoint`, `toccata save --for-hub`) also gets
the modeling and tokenizer modules, copied by transformers at save time (`register_for_auto_class`), so that
`trust_remote_code=True` loads it where toccata is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, ModelCardData, constants, get_session, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .configuration_notewise_lstm import NotewiseLSTMConfig
from .guards import GuardSettings
from .layout import VocabLayout
from .modeling_notewise_lstm import NotewiseLSTMForCausalLM, NotewiseLSTMForSequenceClassification
from .presets import default_generation_config
from .sampling import SamplerSettings

MODEL_TAGS = ["music", "midi", "music-generation", "piano", "lstm", "notewise", "toccata"]
MODEL_AUTO_CLASSES = {  # the transformers Auto class each of our model classes loads through (config.json's auto_map)
    NotewiseLSTMForCausalLM: "AutoModelForCausalLM",
    NotewiseLSTMForSequenceClassification: "AutoModelForSequenceClassification",
}


@dataclass
class CardInfo:
    """What a model card says beyond the config: data, licence, and measured numbers (never invented ones)."""

    title: str = "Toccata NotewiseLSTM"
    license: str = "mit"
    datasets: list[str] = field(default_factory=list)
    training_data: str = "Not trained: random weights."
    metrics: dict[str, float] = field(default_factory=dict)  # name -> value measured by `toccata evaluate`
    evaluation: str = ""  # markdown: how the metrics were measured (command, split, machine)
    notes: str = ""


def _card_text(model: NotewiseLSTMForCausalLM, info: CardInfo) -> str:
    config = model.config
    data = ModelCardData(
        library_name="transformers",
        license=info.license,
        tags=MODEL_TAGS,
        datasets=info.datasets or None,
        metrics=sorted(info.metrics) or None,
        pipeline_tag="text-generation",
    )
    params = sum(p.numel() for p in model.parameters())
    sizes = " → ".join(str(out) for _, out in config.layer_sizes)
    metric_rows = "\n".join(f"| {name} | {value:.4g} |" for name, value in info.metrics.items())
    head = "tied" if config.tie_word_embeddings else "untied"
    metrics = f"| metric | value |\n|---|---|\n{metric_rows}\n\n{info.evaluation}" if info.metrics else "Not evaluated."
    body = f"""
# {info.title}

An LSTM language model over *notewise* piano tokens (`p60` note-on, `endp60` note-off, `waitN` = N steps of a
twelfth of a quarter note), made with [Toccata](https://github.com/toccata-music/toccata).

- Architecture: embedding {config.embedding_size} → LSTM layers {sizes}, {head} head; {params:,} parameters.
- Vocabulary: {config.vocab_size} tokens, {config.steps_per_quarter} steps per quarter note.
- Dropouts: embedding {config.embedding_dropout}, input {config.input_dropout}, hidden {config.hidden_dropout},
  output {config.output_dropout}, weight drop {config.weight_dropout}.

## Use

```python
import toccata.modeling, toccata.tokenization  # or pass trust_remote_code=True without the package
from transformers import AutoModelForCausalLM, AutoTokenizer
from toccata.modeling import GenerationRequest, SamplerSettings, compose

model = AutoModelForCausalLM.from_pretrained("REPO_OR_FOLDER")
tokenizer = AutoTokenizer.from_pretrained("REPO_OR_FOLDER")
piece = compose(model, tokenizer, GenerationRequest(sampler=SamplerSettings("top_k", k=5, seed=1)))[0]
piece.save("piece.mid")
```

or `toccata generate --model REPO_OR_FOLDER --sampler top_k --k 5 --seconds 30 -o piece.mid`.

## Training data

{info.training_data}

## Evaluation

{metrics}

{info.notes}
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def save_checkpoint(
    folder: str | os.PathLike,
    model: NotewiseLSTMForCausalLM,
    tokenizer,
    card: CardInfo | None = None,
    sampler: SamplerSettings | None = None,
    guards: GuardSettings | None = None,
) -> Path:
    """Write a complete checkpoint folder: safetensors weights, config, generation presets, tokenizer, card (no code:
    it loads through the package; `copy_checkpoint(folder, dest, for_hub=True)` makes the Hub's copy)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.generation_config = default_generation_config(model.config, sampler, guards)
    model.config.use_cache = True  # `Trainer` turns it off for training; a user's `model(ids)` should return the state
    forget_code(model, tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    ModelCard(_card_text(model, card or CardInfo())).save(folder / "README.md")
    return folder


def forget_code(model, tokenizer) -> None:
    """Drop the `auto_map` that a model or tokenizer loaded from a folder with code carries: a folder saved without
    the code must not point `trust_remote_code` at files it does not hold."""
    if getattr(model.config, "auto_map", None) is not None:
        del model.config.auto_map
    getattr(tokenizer, "init_kwargs", {}).pop("auto_map", None)  # a token scheme (REMI, ...) has none


def _auto_class(obj) -> str:
    """The transformers Auto class that loads `obj` (a config, one of our models, or a tokenizer)."""
    if isinstance(obj, PreTrainedConfig):
        return "AutoConfig"
    if isinstance(obj, PreTrainedTokenizerBase):
        return "AutoTokenizer"
    if type(obj) in MODEL_AUTO_CLASSES:
        return MODEL_AUTO_CLASSES[type(obj)]
    raise ValueError(f"{type(obj).__name__} is not a Toccata config, model or tokenizer: no code of ours to save")


@contextmanager
def saving_code(*objects) -> Iterator[None]:
    """Within the block, `save_pretrained` and `push_to_hub` of `objects` (models, their configs, tokenizers) also
    write the modules that define them and the modules those import, with an `auto_map` naming them: transformers'
    `register_for_auto_class`, undone afterwards so that every other folder stays free of code.

        with saving_code(model, tokenizer):
            model.push_to_hub("org/name"); tokenizer.push_to_hub("org/name")
    """
    registered = {}
    for obj in objects:
        if isinstance(obj, PreTrainedModel):
            registered[type(obj.config)] = "AutoConfig"
        registered[type(obj)] = _auto_class(obj)
    before = {cls: cls.__dict__.get("_auto_class") for cls in registered}
    try:
        for cls, auto_class in registered.items():
            cls.register_for_auto_class(auto_class)
        yield
    finally:
        for cls, value in before.items():
            if value is None:
                del cls._auto_class  # back to the class transformers' base defines (None)
            else:
                cls._auto_class = value


def copy_checkpoint(source: str | os.PathLike, dest: str | os.PathLike, for_hub: bool = False) -> Path:
    """Save checkpoint folder `source` again as `dest`: model, config, generation presets and tokenizer through
    `save_pretrained`, every other file (card, report, task files) as it is, no code from `source`.

    `for_hub`: `dest` also gets the package's modeling and tokenizer modules (`saving_code`), so it loads with
    `trust_remote_code=True` without toccata: the folder to upload. Needs the tokenizer registered (import toccata)."""
    source, dest = Path(source), Path(dest)
    if not (source / "config.json").is_file():
        raise ValueError(f"{source}: not a checkpoint folder (no config.json)")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} exists and is not empty: give a new folder")
    architecture = (AutoConfig.from_pretrained(source).architectures or ["NotewiseLSTMForCausalLM"])[0]
    model_class = next((cls for cls in MODEL_AUTO_CLASSES if cls.__name__ == architecture), None)
    if model_class is None:
        known = ", ".join(cls.__name__ for cls in MODEL_AUTO_CLASSES)
        raise ValueError(f"{source}: its model is a {architecture}, not one of Toccata's ({known})")
    model = model_class.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    forget_code(model, tokenizer)
    dest.mkdir(parents=True, exist_ok=True)
    with saving_code(model, tokenizer) if for_hub else nullcontext():
        model.save_pretrained(dest, safe_serialization=True)
        tokenizer.save_pretrained(dest)
    for path in sorted(source.rglob("*")):
        target = dest / path.relative_to(source)
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return dest


def random_model(tokenizer=None, **config_kwargs) -> NotewiseLSTMForCausalLM:
    """A randomly initialised model whose vocabulary layout matches `tokenizer` (default notewise layout if None)."""
    if tokenizer is not None:
        layout = asdict(VocabLayout.from_config(tokenizer))  # the tokenizer has the same attributes
        layout.pop("parts")
        parts = getattr(tokenizer, "instrument_layout", None)
        if parts and len(parts) > 1:  # violin or cello beside the piano: the guards need every part's ids
            layout["instrument_layout"] = parts
        config_kwargs = {**layout, **config_kwargs}
    model = NotewiseLSTMForCausalLM(NotewiseLSTMConfig(**config_kwargs))
    model.generation_config = default_generation_config(model.config)
    return model.eval()


HUB_PROBE_TIMEOUT_S = 5.0  # one request to the Hub's address: does it answer at all?


def hub_load_options(name: str, kind: str = "checkpoint") -> dict[str, bool]:
    """The `from_pretrained` options for `name`: none for a folder or a Hub id the Hub can serve;
    `local_files_only` for a Hub id in the local cache while the Hub cannot be reached (or HF_HUB_OFFLINE is set);
    otherwise a ValueError at once, where transformers spent ~25 s retrying before it failed."""
    if Path(name).is_dir():
        return {}
    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except HFValidationError:  # "runs/x/y", "./model": a path, not an org/name id
        raise ValueError(f"{name}: not a Toccata {kind} folder (no such folder) nor a Hub id (org/name)") from None
    if constants.HF_HUB_OFFLINE:
        if cached:
            return {"local_files_only": True}
        raise ValueError(
            f"{name}: not a Toccata {kind} folder (no such folder), and HF_HUB_OFFLINE is set while the Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}) does not hold it: give a folder, or download it with the network on"
        )
    problem = _hub_unreachable(constants.ENDPOINT)
    if problem is None:
        return {}
    if cached:
        return {"local_files_only": True}
    raise ValueError(
        f"{name}: not a Toccata {kind} folder (no such folder), and the Hugging Face Hub ({constants.ENDPOINT}) "
        f"cannot be reached ({problem}): check the network, or give a checkpoint folder"
    )


def _hub_unreachable(endpoint: str) -> str | None:
    """None when `endpoint` answers one request (any HTTP status), else what went wrong; no retries."""
    try:
        get_session().head(endpoint, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - DNS, refused, timeout, TLS, proxy: all mean "not reachable now"
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no answer'}"
    return None


def load_checkpoint(name_or_path: str | os.PathLike, device: str | None = None, trust_remote_code: bool = False):
    """(model, tokenizer) of a checkpoint folder or Hub id, in eval mode; a clear error if it is not one, at once
    when the Hub cannot be reached."""
    name = str(name_or_path)
    scheme_file = Path(name) / "token_scheme.json"
    if scheme_file.is_file() and json.loads(scheme_file.read_text()).get("scheme") != "notewise":
        scheme = json.loads(scheme_file.read_text())["scheme"]
        raise ValueError(
            f"{name} was trained on the {scheme} tokenization; Toccata's generator, guards and demo speak notewise. "
            "Load its tokens with toccata.tokenization.schemes.load_scheme(folder) and the model with "
            "AutoModelForCausalLM.from_pretrained(folder)"
        )
    options = {"trust_remote_code": trust_remote_code, **hub_load_options(name)}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **options)
        tokenizer = AutoTokenizer.from_pretrained(name, **options)
    except OSError as err:
        raise ValueError(
            f"{name}: not a Toccata checkpoint folder or reachable Hub model ({str(err).splitlines()[0]})"
        ) from None
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def push_checkpoint(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a saved checkpoint folder to the Hub, our model card included and with the code that
    `trust_remote_code` runs (`copy_checkpoint(..., for_hub=True)` into a temporary folder); returns the commit URL.

    `model.push_to_hub(repo_id)` (transformers' own mixin) also works, inside `saving_code(model)` for the code, but
    replaces the card with a generic one.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: not a checkpoint folder (no config.json); write one with save_checkpoint")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as staging:
        upload = copy_checkpoint(folder, Path(staging) / "upload", for_hub=True)
        api.create_repo(repo_id, private=private, exist_ok=True)
        return str(api.upload_folder(repo_id=repo_id, folder_path=upload, commit_message="Upload Toccata checkpoint"))


__all__ = [
    "CardInfo",
    "copy_checkpoint",
    "forget_code",
    "hub_load_options",
    "load_checkpoint",
    "push_checkpoint",
    "random_model",
    "save_checkpoint",
    "saving_code",
]
