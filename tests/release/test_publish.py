"""`make default-checkpoint`'s last steps on tiny data: train -> set the preset -> evaluate -> publish. The published
folder loads, generates with the preset, and its card quotes the report measured with that same preset."""

from __future__ import annotations

import json

import pytest
from toccata.modeling.hub import load_checkpoint
from toccata.modeling.presets import preset_from_generation_config
from huggingface_hub import ModelCard
from toccata.release import publish

from toccata.cli import main

TINY = ["--embedding-size", "24", "--hidden-size", "32", "--num-hidden-layers", "1"]


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("publish") / "run"
    args = ["train", "--dataset", str(tiny_dataset), "--out", str(out), "--max-steps", "4", "--eval-steps", "2"]
    assert main([*args, "--batch-size", "4", "--window", "48", *TINY]) == 0
    return out


def _evaluate(run, dataset, out: str = "evaluation") -> None:
    args = [
        "evaluate",
        "--model",
        str(run),
        "--dataset",
        str(dataset),
        "--split",
        "test",
        "--out",
        str(run / out),
    ]
    assert main([*args, "--samples", "2", "--tokens", "100", "--samplers", "top_k,greedy"]) == 0


def test_publish_ships_the_preset_its_report_measured(run, tiny_dataset, tmp_path):
    assert main(["preset", str(run), "temperature=0.8", "calmness=0.5", "max_polyphony=6"]) == 0
    _evaluate(run, tiny_dataset)
    dest = publish.publish(run, tmp_path / "published")

    model, _ = load_checkpoint(dest)
    sampler, guards = preset_from_generation_config(model.generation_config)
    assert (sampler.temperature, guards.calmness, guards.max_polyphony) == (0.8, 0.5, 6)
    report = json.loads((dest / "evaluation" / "report.json").read_text())
    assert report["settings"]["preset_sampler"]["temperature"] == 0.8
    card = (dest / "README.md").read_text()
    bits = next(row["bits_per_token"] for row in report["likelihood"] if row["name"] == "model")
    assert f"{bits:.3f}" in card and "calmness=0.5" in card and "**test** split" in card
    assert sorted(p.name for p in (dest / "evaluation").iterdir()) == sorted(
        p.name for p in (run / "evaluation").iterdir()
    )


def test_the_card_carries_the_unseen_composers_report_and_the_attributions(run, tiny_dataset, tmp_path):
    _evaluate(run, tiny_dataset)
    _evaluate(run, tiny_dataset, out="evaluation-unseen-composers")  # the tiny data hold no composer out: its test
    licence = tmp_path / "collection" / "LICENSE.txt"
    licence.parent.mkdir()
    licence.write_text(
        "A Collection of Scores\nCopyright 2022 Somebody (https://example.org)\n\nYou are free to share.\n"
    )
    args = ["publish", str(run), str(tmp_path / "published"), "--attribution", str(licence)]
    assert main(args) == 0
    dest = tmp_path / "published"
    card = (dest / "README.md").read_text()
    unseen = json.loads((dest / "evaluation-unseen-composers" / "report.json").read_text())
    bits = next(row["bits_per_note"] for row in unseen["likelihood"] if row["name"] == "model")
    assert f"composers it never saw** (the `test` split" in card and f"{bits:.2f} bits per note" in card
    assert "> Copyright 2022 Somebody (https://example.org)" in card and "free to share" not in card
    assert (dest / "evaluation-unseen-composers" / "report.md").is_file()
    assert main(["publish", str(run), str(tmp_path / "again"), "--attribution", str(tmp_path / "nope")]) == 2


def test_publish_refuses_a_report_measured_with_another_preset(run, tiny_dataset, tmp_path, capsys):
    _evaluate(run, tiny_dataset)
    assert main(["preset", str(run), "temperature=1.1"]) == 0  # changed after the evaluation
    assert main(["publish", str(run), str(tmp_path / "published")]) == 2
    assert "another sampler or guard preset" in capsys.readouterr().err
    assert not (tmp_path / "published").exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [(["temp=1"], "not a preset field"), (["temperature=-1"], "temperature"), (["rest_guard=maybe"], "true or false")],
)
def test_bad_preset_values_are_clear_errors(run, values, message, capsys):
    before = (run / "generation_config.json").read_text()
    assert main(["preset", str(run), *values]) == 2
    assert message in capsys.readouterr().err
    assert (run / "generation_config.json").read_text() == before


def test_half_storage_halves_the_weights_and_loads_as_float32(run, tiny_dataset, tmp_path):
    import torch

    _evaluate(run, tiny_dataset)
    full = publish.publish(run, tmp_path / "full")
    half = publish.publish(run, tmp_path / "half", half=True)
    size = lambda folder: (folder / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half) < 0.6 * size(full)
    (model, _), (reference, _) = load_checkpoint(half), load_checkpoint(full)
    assert next(model.parameters()).dtype == torch.float32
    ids = torch.tensor([[1, 40, 200, 130, 50]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=2e-2)


def _chords(continuations: list[list[str]]) -> list[float]:
    """A score for tuning: the share of note-ons among the tokens (any preference will do here)."""
    return [sum(word.startswith("p") for word in words) / len(words) for words in continuations]


def test_a_tuned_run_publishes_with_its_generators_training_and_its_tuning(run, tiny_dataset, tmp_path):
    from toccata.training.tuning import TuneConfig, tune

    _evaluate(run, tiny_dataset)
    published = publish.publish(run, tmp_path / "published", title="Base")  # the shipped default is such a folder
    base_training = publish._card_section(published)
    assert "training pieces" in base_training
    for generator in (run, published):  # tuned from a run, and from a published checkpoint
        tuned = tmp_path / f"tuned-{generator.name}"
        settings = dict(candidates=2, prompts=2, beats=4.0, batch_size=2, epochs=1.0, min_gap=0.0)
        tune(TuneConfig(generator=str(generator), output_dir=str(tuned), **settings), _chords, progress=lambda _: None)
        _evaluate(tuned, tiny_dataset)
        dest = publish.publish(tuned, tmp_path / f"published-{generator.name}")
        card = (dest / "README.md").read_text()
        training = card.split("## Training data", 1)[1]
        assert "training pieces" in training and "### Preference tuning" in training
        assert training.index("training pieces") < training.index("**Preference-tuned** from")
        assert f"`{generator}`" in training
        assert (dest / "evaluation" / "tune_summary.json").is_file() and (dest / "evaluation" / "report.md").is_file()
        assert ModelCard.load(dest / "README.md").data.license == ModelCard.load(published / "README.md").data.license
        assert torch_equal(load_checkpoint(dest)[0], load_checkpoint(tuned)[0])


def torch_equal(model, other) -> bool:
    import torch

    return all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_a_folder_that_is_no_run_is_refused_with_what_it_lacks(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    with pytest.raises(ValueError, match="neither a `toccata train` run"):
        publish.run_training(folder)
