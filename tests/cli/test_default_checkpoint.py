"""The checkpoint embedded in the package: it loads the standard ways, offline, composes, and is a trained model whose
card carries the numbers its evaluation measured (not a random or stale one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
import symusic
import torch
from support.demo import require_fluidsynth, audio_peak
from toccata.modeling.guards import GuardSettings
from toccata.modeling.presets import preset_from_generation_config
from toccata.tokenization.midi_io import music21_corpus_midi

import toccata

FOLDER = toccata.default_checkpoint()
MAX_MEGABYTES = 15  # the repository carries it: keep it small


@pytest.fixture(scope="module")
def loaded():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert FOLDER is not None, "toccata/checkpoints/default is missing: run `make default-checkpoint`"
    return AutoModelForCausalLM.from_pretrained(FOLDER).eval(), AutoTokenizer.from_pretrained(FOLDER)


def test_is_small_and_ships_its_card_and_evaluation(loaded):
    size = sum(path.stat().st_size for path in FOLDER.rglob("*") if path.is_file())
    assert size < MAX_MEGABYTES * 2**20, f"{size / 2**20:.1f} MB"
    card = (FOLDER / "README.md").read_text()
    report = json.loads((FOLDER / "evaluation" / "report.json").read_text())
    model_row = next(row for row in report["likelihood"] if row["name"] == "model")
    assert f"{model_row['bits_per_token']:.3f}" in card  # the card quotes the evaluation it ships with
    assert (FOLDER / "evaluation" / "report.md").is_file()
    sampler, guards = preset_from_generation_config(loaded[0].generation_config)  # the card measured what ships
    assert report["settings"]["preset_sampler"] == asdict(sampler)
    # a guard added after the report was measured is absent there, and must be off (its default) in what ships
    assert {**asdict(GuardSettings()), **report["settings"]["preset_guards"]} == asdict(guards)
    goals = {goal["name"]: goal for goal in report["goals"]}
    for goal in goals.values():  # the card shows every goal with its measured status, met or not
        status = "not measured" if goal["met"] is None else ("**met**" if goal["met"] else "**not met**")
        assert f"| {goal['name']} | {goal['target']} |" in card and status in card
    # what README claims as met: the likelihood goal, no copies, and every overlap with held-out piano music
    claimed = ("bits per note vs n-gram", "copy share", "density overlap", "pitch class overlap")
    assert all(goals[name]["met"] for name in (*claimed, "inter-onset overlap", "polyphony overlap")), goals


def test_no_embedded_checkpoint_holds_code_or_an_auto_map():
    """The package's registration loads them; code travels only in a folder saved for the Hub (`toccata save
    --for-hub`), so the repository keeps one copy of every module."""
    folders = sorted(p for p in (FOLDER.parent).iterdir() if (p / "config.json").is_file())
    assert {p.name for p in folders} >= {"default", "critic", "composer", "piano-violin", "piano-cello"}
    for folder in folders:
        assert not list(folder.rglob("*.py")), folder
        for name in ("config.json", "tokenizer_config.json"):
            assert "auto_map" not in json.loads((folder / name).read_text()), folder / name


def test_is_trained_far_below_the_unigram_on_piano_music_it_never_saw(loaded):
    model, tokenizer = loaded
    # Clara Schumann's polonaise op. 1 no. 1 (music21's corpus): piano music, and not in the kernScores training data
    midi = music21_corpus_midi("schumann_clara/polonaise_op1n1")
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer.midi_to_ids(midi)[:600]]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    # random weights score ~5.4 nats/token (log 228) and the piano unigram ~4.5; a trained model is far below
    assert loss < 2.0, loss


def test_a_forward_pass_returns_the_state_to_go_on_from(loaded):
    """As transformers users expect in eval mode (`use_cache` defaults to on, though `Trainer` saves it off):
    `model(ids)` returns the recurrent state, and going on from it equals one pass over the whole sequence."""
    model, tokenizer = loaded
    assert model.config.use_cache
    ids = torch.tensor([tokenizer.convert_tokens_to_ids("p60 wait12 endp60 p64 wait6 endp64 p67 wait12".split())])
    with torch.no_grad():
        first = model(ids[:, :5])
        assert first.cache is not None
        going_on = model(ids[:, 5:], cache=first.cache).logits
        whole = model(ids).logits
    torch.testing.assert_close(going_on, whole[:, 5:], rtol=1e-4, atol=1e-4)

def test_a_plain_generate_samples_with_the_preset(loaded):
    """A transformers user's `model.generate(ids)` (no Toccata arguments) draws like the preset: two seeds give two
    pieces, and neither loops on one figure (with `do_sample: false` it repeated `p55 p67 wait6 endp55 endp67`)."""
    model, tokenizer = loaded
    ids = torch.tensor([[tokenizer.bos_token_id]])
    made = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        made.append(model.generate(ids, max_new_tokens=120)[0, 1:].tolist())
    assert made[0] != made[1]
    for row in made:
        tail = row[-60:]
        repeats = [period for period in range(1, 13) if tail[period:] == tail[:-period]]
        assert not repeats, f"the last 60 tokens repeat every {repeats[0]}: {tokenizer.convert_ids_to_tokens(tail)}"


def test_pipeline_without_a_model_uses_it():
    from transformers import pipeline

    composer = pipeline("music-generation")
    assert composer.model.name_or_path == str(FOLDER)
    (piece,) = composer(beats=8, sampler="top_k", seed=3)
    assert piece.score.note_num() > 0


def test_make_run_composes_midi_and_audio_with_it(tmp_path):
    """What README's first command runs: `toccata generate` on the default checkpoint, seeded."""
    require_fluidsynth()
    out = tmp_path / "piece.mid"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "toccata", "generate", "--seed", "0", "--beats", "16", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    score = symusic.Score(str(out))
    assert score.note_num() > 8
    assert str(out.with_suffix(".wav")) in done.stderr and audio_peak(out.with_suffix(".wav")) > 0.01
    again = tmp_path / "again.mid"
    command[-1] = str(again)
    subprocess.run(command + ["--no-audio"], capture_output=True, env=env, check=True)
    assert again.read_bytes() == out.read_bytes()  # same seed, same piece
    assert not again.with_suffix(".wav").exists()


@pytest.mark.parametrize("guards", [{"calmness": -10.0}, {"max_note_beats": 0.25}], ids=["busiest", "short-notes"])
def test_busy_music_still_lasts_as_long_as_asked(loaded, guards):
    """The token budget was 4 a step: the busiest settings stopped at 3.2 of 8 beats, without a word."""
    from dataclasses import replace

    from toccata.modeling import GenerationRequest, compose
    from toccata.modeling.presets import preset_from_generation_config

    model, tokenizer = loaded
    sampler, preset = preset_from_generation_config(model.generation_config)
    request = GenerationRequest(sampler=replace(sampler, seed=2), guards=replace(preset, **guards), beats=8)
    (piece,) = compose(model, tokenizer, request)
    assert piece.score.end() / piece.score.ticks_per_quarter == 8.0
