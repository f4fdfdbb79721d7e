"""Checkpoint folders and the Hub pull path, offline: the embedded checkpoint saved for the Hub (with its code) and
laid out as the Hugging Face cache does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import toccata.modeling  # noqa: F401 - registers the model with the Auto classes
from toccata.modeling import GenerationRequest, GuardSettings, SamplerSettings, compose
from toccata.modeling.hub import CardInfo, copy_checkpoint, load_checkpoint, random_model, save_checkpoint
from toccata.tokenization import NotewiseTokenizer

import toccata

TINY = {"embedding_size": 16, "hidden_size": 24, "num_hidden_layers": 2}
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A saved checkpoint of a tiny random model with a card that carries made-up-for-the-test metrics."""
    torch.manual_seed(0)
    tokenizer = NotewiseTokenizer()
    folder = tmp_path_factory.mktemp("ckpt")
    card = CardInfo(datasets=["toccata/music21-keyboard"], metrics={"bits_per_token": 3.25}, evaluation="test card")
    save_checkpoint(folder, random_model(tokenizer, **TINY), tokenizer, card=card)
    return folder


@pytest.fixture(scope="module")
def for_hub(tmp_path_factory) -> Path:
    """The embedded default checkpoint saved for the Hub (`toccata save default DEST --for-hub`)."""
    return copy_checkpoint(toccata.default_checkpoint(), tmp_path_factory.mktemp("hub") / "default", for_hub=True)


@pytest.fixture(scope="module")
def hub_cache(for_hub, tmp_path_factory) -> Path:
    """`for_hub` laid out as huggingface_hub's cache: models--org--name/{refs/main, snapshots/<rev>/...}."""
    cache = tmp_path_factory.mktemp("hf_cache")
    repo = cache / "models--toccata-test--tiny-lstm"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(for_hub, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return cache


CODE = {  # the modules and, through their relative imports, the modules they need
    "configuration_notewise_lstm.py",
    "modeling_notewise_lstm.py",
    "tokenization_notewise.py",
    "tokenization_base.py",
    "midi_io.py",
    "midi_events.py",
}


def test_checkpoint_folder_has_every_file_a_package_user_needs_and_no_code(checkpoint):
    names = {p.name for p in checkpoint.iterdir()}
    expected = {"config.json", "model.safetensors", "generation_config.json", "tokenizer_config.json", "vocab.json"}
    assert expected | {"README.md"} <= names
    assert not any(name.endswith((".py", ".bin", ".pt", ".pth", ".pkl")) for name in names), names
    for name in ("config.json", "tokenizer_config.json"):  # no auto_map pointing at files that are not there
        assert "auto_map" not in json.loads((checkpoint / name).read_text()), name
    generation = json.loads((checkpoint / "generation_config.json").read_text())
    assert generation["toccata_sampler"]["sampler"] == "top_k"


def test_a_folder_saved_for_the_hub_has_the_code_and_the_auto_map_and_the_rest_as_it_was(for_hub):
    source = toccata.default_checkpoint()
    assert {p.name for p in for_hub.glob("*.py")} == CODE
    for module in CODE:  # transformers copied the package's own files
        package = toccata.modeling if "lstm" in module else toccata.tokenization
        assert (for_hub / module).read_bytes() == (Path(package.__file__).parent / module).read_bytes(), module
    config = json.loads((for_hub / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_notewise_lstm.NotewiseLSTMConfig",
        "AutoModelForCausalLM": "modeling_notewise_lstm.NotewiseLSTMForCausalLM",
    }
    tokenizer_config = json.loads((for_hub / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"] == {"AutoTokenizer": ["tokenization_notewise.NotewiseTokenizer", None]}
    for kept in ("README.md", "evaluation/report.json", "vocab.json"):
        assert (for_hub / kept).read_bytes() == (source / kept).read_bytes(), kept
    for cls in (toccata.modeling.NotewiseLSTMForCausalLM, toccata.modeling.NotewiseLSTMConfig, NotewiseTokenizer):
        assert cls._auto_class is None, cls  # the registration ends with the save: other folders stay code-free


def test_a_plain_copy_and_the_save_of_a_model_loaded_from_the_hub_folder_hold_no_code(for_hub, tmp_path):
    plain = copy_checkpoint(for_hub, tmp_path / "plain")  # the code and auto_map of the source do not come along
    assert not list(plain.glob("*.py"))
    assert "auto_map" not in json.loads((plain / "config.json").read_text())
    assert "auto_map" not in json.loads((plain / "tokenizer_config.json").read_text())
    model, tokenizer = load_checkpoint(for_hub)
    saved = save_checkpoint(tmp_path / "saved", model, tokenizer)
    assert not list(saved.glob("*.py"))
    assert "auto_map" not in json.loads((saved / "config.json").read_text())
    assert "auto_map" not in json.loads((saved / "tokenizer_config.json").read_text())


def test_copy_checkpoint_refuses_a_folder_that_is_not_one_and_a_destination_in_use(for_hub, tmp_path):
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        copy_checkpoint(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="exists and is not empty"):
        copy_checkpoint(toccata.default_checkpoint(), for_hub, for_hub=True)


def test_model_card_has_yaml_metadata_and_the_metrics_given(checkpoint):
    from huggingface_hub import ModelCard

    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.library_name == "transformers"
    assert "music" in card.data.tags and "toccata" in card.data.tags
    assert card.data.license == "mit"
    assert card.data.datasets == ["toccata/music21-keyboard"]
    assert card.data.metrics == ["bits_per_token"]
    assert "| bits_per_token | 3.25 |" in card.text


def test_save_and_load_give_the_same_logits_and_tied_weights(checkpoint):
    model, tokenizer = load_checkpoint(checkpoint)
    again, _ = load_checkpoint(checkpoint)
    ids = torch.tensor([tokenizer.convert_tokens_to_ids("<bos> p60 p64 wait12 endp60 endp64".split())])
    assert torch.equal(model(ids).logits, again(ids).logits)
    assert model.lm_head.weight.data_ptr() == model.model.embeddings.weight.data_ptr()


def test_loaded_checkpoint_composes(checkpoint):
    model, tokenizer = load_checkpoint(checkpoint)
    piece = compose(model, tokenizer, GenerationRequest(sampler=SamplerSettings("top_k", seed=3), beats=8))[0]
    assert piece.score.note_num() > 0


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a Toccata checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def _run_offline(script: str, cache: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(cache),
        HF_HOME=str(tmp_path / "hf_home"),
        HF_MODULES_CACHE=str(tmp_path / "modules"),
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env, cwd=tmp_path
    )


IDS = "<bos> p60 p64 wait12 endp60 endp64 p67 wait6"


def test_pull_from_hub_cache_without_the_package_needs_trust_remote_code(hub_cache, tmp_path):
    """A user without toccata: the code in the repository runs, only with trust_remote_code=True, and gives the
    embedded checkpoint's logits and greedy tokens as the package does."""
    result = _run_offline(
        f"""
        import json, sys
        sys.modules["toccata"] = None  # `import toccata` must fail: only the files in the repo may be used
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        try:
            AutoModelForCausalLM.from_pretrained("toccata-test/tiny-lstm", trust_remote_code=False)
        except ValueError as err:
            print("refused:", "trust_remote_code" in str(err))
        model = AutoModelForCausalLM.from_pretrained("toccata-test/tiny-lstm", trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained("toccata-test/tiny-lstm", trust_remote_code=True)
        assert not type(model).__module__.startswith("toccata"), type(model).__module__
        ids = torch.tensor([tok.convert_tokens_to_ids({IDS.split()!r})])
        with torch.no_grad():
            logits = model(ids).logits
            out = model.generate(ids, max_new_tokens=12, do_sample=False)
        print(type(model).__name__, type(tok).__name__)
        print(json.dumps({{"ids": tok("p60 wait12")["input_ids"], "logits": logits.tolist(), "tokens": out[0].tolist()}}))
        """,
        hub_cache,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().split("\n")
    assert "refused: True" in lines
    assert "NotewiseLSTMForCausalLM NotewiseTokenizer" in lines
    remote = json.loads(lines[-1])
    model, tokenizer = toccata.load_checkpoint()  # the package's path, on the embedded folder
    ids = torch.tensor([tokenizer.convert_tokens_to_ids(IDS.split())])
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(remote["logits"]), model(ids).logits)
        expected = model.generate(ids, max_new_tokens=12, do_sample=False)[0].tolist()
    assert remote["tokens"] == expected
    assert remote["ids"] == tokenizer("p60 wait12")["input_ids"]


def test_pull_from_hub_cache_with_the_package_needs_no_remote_code(hub_cache, tmp_path):
    result = _run_offline(
        """
        import toccata.modeling, toccata.tokenization
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained("toccata-test/tiny-lstm")
        tok = AutoTokenizer.from_pretrained("toccata-test/tiny-lstm")
        print(type(model).__module__, type(tok).__module__)
        """,
        hub_cache,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    model_module, tokenizer_module = result.stdout.split()
    assert model_module.startswith("toccata.modeling"), model_module
    assert tokenizer_module.startswith("toccata.tokenization"), tokenizer_module


def test_auto_classes_load_a_local_folder_in_process(checkpoint):
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert type(model) is toccata.modeling.NotewiseLSTMForCausalLM
    assert type(tokenizer) is NotewiseTokenizer


def test_modeling_files_that_travel_import_only_torch_and_transformers():
    from transformers.dynamic_module_utils import get_imports

    folder = Path(toccata.modeling.__file__).parent
    allowed = set(sys.stdlib_module_names) | {"__future__", "torch", "transformers"}
    for module in ["configuration_notewise_lstm.py", "modeling_notewise_lstm.py"]:
        assert set(get_imports(str(folder / module))) <= allowed, module


def test_transformers_pipeline_music_generation_matches_compose(checkpoint):
    from transformers import pipeline

    pipe = pipeline("music-generation", model=str(checkpoint))
    assert type(pipe) is toccata.modeling.MusicGenerationPipeline
    pieces = pipe(None, sampler="mixed", seed=4, beats=8, num_samples=2, calmness=0.5)
    model, tokenizer = load_checkpoint(checkpoint)
    request = GenerationRequest(
        sampler=SamplerSettings("mixed", seed=4), guards=GuardSettings(calmness=0.5), beats=8, num_samples=2
    )
    expected = compose(model, tokenizer, request)
    assert [p.tokens for p in pieces] == [p.tokens for p in expected]
    with pytest.raises(ValueError, match="unknown arguments"):
        pipe(None, loudness=3)


def test_the_pipeline_takes_a_prompt_of_tokens_as_a_list_or_text_and_a_list_of_prompts_as_a_batch(checkpoint, tmp_path):
    """transformers batches lists: a list of vocabulary words is one prompt, not a batch of file names."""
    from transformers import pipeline

    pipe = pipeline("music-generation", model=str(checkpoint))
    words = "p60 p64 wait12 endp60 endp64 p62 wait6 endp62".split()
    settings = {"sampler": "top_k", "seed": 2, "beats": 4, "prompt_beats": None}
    model, tokenizer = load_checkpoint(checkpoint)
    sampler, guards = toccata.modeling.presets.preset_from_generation_config(model.generation_config)
    request = GenerationRequest(sampler=replace(sampler, sampler="top_k", seed=2), guards=guards, beats=4)
    (expected,) = compose(model, tokenizer, request, prompt=words)
    assert expected.tokens[: len(words)] == words
    for prompt in (words, " ".join(words)):
        (piece,) = pipe(prompt, **settings)
        assert piece.tokens == expected.tokens
    midi = tmp_path / "prompt.mid"
    midi.write_bytes(tokenizer.tokens_to_midi(words).dumps_midi())
    batch = pipe([words, str(midi)], **settings)  # a batch: one result (a list of pieces) per prompt
    assert [pieces[0].tokens for pieces in batch] == [expected.tokens, expected.tokens]


def _closed_port() -> int:
    """A local TCP port nothing listens on (connections are refused at once)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _load_in_child(name: str, cache: Path, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """`toccata.load_checkpoint(name)` in a fresh process with the Hugging Face cache `cache` and `env` set."""
    script = f"""
        import toccata
        try:
            model, tokenizer = toccata.load_checkpoint({name!r})
            print("loaded", type(model).__name__)
        except ValueError as err:
            print("refused:", err)
        """
    environ = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    environ.update(HF_HUB_CACHE=str(cache), HF_HOME=str(tmp_path / "hf_home"), **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=environ, cwd=tmp_path
    )


def test_a_hub_id_offline_and_not_cached_is_refused_at_once_naming_hf_hub_offline(tmp_path):
    result = _load_in_child("nobody/nothing", tmp_path / "empty_cache", tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: nobody/nothing: not a Toccata checkpoint folder"), result.stdout
    assert "HF_HUB_OFFLINE is set" in result.stdout


def test_a_hub_id_the_hub_cannot_serve_is_refused_after_one_try_not_25_s_of_retries(tmp_path):
    """The Hub's address refuses connections (as with no network): one probe, then a message that says so, instead
    of huggingface_hub's retries with back-off (28.6 s measured) and transformers' generic error."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = _load_in_child("nobody/nothing", tmp_path / "empty_cache", tmp_path, HF_ENDPOINT=endpoint)
    assert result.returncode == 0, result.stderr
    assert f"the Hugging Face Hub ({endpoint}) cannot be reached" in result.stdout, result.stdout
    assert "Retry" not in result.stderr, result.stderr[-2000:]


def test_a_cached_hub_id_loads_from_the_cache_when_the_hub_cannot_be_reached(hub_cache, tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = _load_in_child("toccata-test/tiny-lstm", hub_cache, tmp_path, HF_ENDPOINT=endpoint)
    assert result.stdout.strip() == "loaded NotewiseLSTMForCausalLM", result.stdout + result.stderr[-2000:]
    assert "Retry" not in result.stderr, result.stderr[-2000:]
