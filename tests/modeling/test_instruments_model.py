"""The model side of violin and cello beside the piano: the warm start from a piano checkpoint, the guards per part
(range, double stops, grammar) in `generate()` and in the lean loop (the same tokens), training and generating."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import symusic
import torch
from support.models import with_generate
from toccata.modeling import GenerationRequest, GuardSettings, SamplerSettings, compose
from toccata.modeling.configuration_notewise_lstm import NotewiseLSTMConfig
from toccata.modeling.decoding import DecodeJob, decode
from toccata.modeling.hub import random_model, save_checkpoint, saving_code
from toccata.modeling.layout import VocabLayout
from toccata.modeling.modeling_notewise_lstm import NotewiseLSTMForCausalLM
from toccata.tokenization import NotewiseTokenizer
from toccata.evaluation.parts import part_checks
from toccata.training.warm_start import warm_start

import toccata
from toccata.cli import main

PIANO = NotewiseTokenizer()
DUO = NotewiseTokenizer(instruments=("piano", "violin"))
TRIO = NotewiseTokenizer(instruments=("piano", "violin", "cello"))
TINY = {"embedding_size": 16, "hidden_size": 24, "num_hidden_layers": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def piano_model(seed: int = 0, **overrides) -> NotewiseLSTMForCausalLM:
    torch.manual_seed(seed)
    return NotewiseLSTMForCausalLM(NotewiseLSTMConfig(**{**TINY, **overrides})).eval()


def string_heavy(tokenizer, seed: int = 0) -> NotewiseLSTMForCausalLM:
    """A random instrumented model pushed towards violin and cello note-ons: unguarded, it would pile them up."""
    torch.manual_seed(seed)
    model = random_model(tokenizer, **TINY)
    with torch.no_grad():
        for name, spec in tokenizer.instrument_layout.items():
            if name != "piano":
                model.lm_head.bias[spec["note_on_offset"] : spec["note_on_offset"] + spec["num_pitches"]] += 3.0
    return model.eval()


@pytest.mark.parametrize("tied", [True, False])
def test_warm_start_copies_each_new_word_from_the_piano_word_of_the_same_pitch(tied):
    model = piano_model(tie_word_embeddings=tied)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    grown, tok = warm_start(model, PIANO, ("piano", "violin", "cello"))
    assert tok.vocab_size == TRIO.vocab_size == grown.config.vocab_size == 432
    assert grown.config.instrument_layout == TRIO.instrument_layout
    emb, head = grown.get_input_embeddings().weight, grown.get_output_embeddings()
    old_emb = before["model.embeddings.weight"]
    assert torch.equal(emb[:228], old_emb)  # every piano id keeps its weights
    for word, source in [("v55", "p55"), ("endv103", "endp103"), ("c36", "p36"), ("endc88", "endp88"), ("v67", "p67")]:
        new, old = tok.convert_tokens_to_ids(word), PIANO.convert_tokens_to_ids(source)
        assert torch.equal(emb[new], old_emb[old]), word
        assert torch.equal(head.bias[new], before["lm_head.bias"][old])
        if not tied:
            assert torch.equal(head.weight[new], before["lm_head.weight"][old])
    assert torch.equal(head.bias[:228], before["lm_head.bias"])
    if not tied:
        assert torch.equal(head.weight[:228], before["lm_head.weight"])
    else:
        assert head.weight.data_ptr() == emb.data_ptr()
    for name, param in grown.named_parameters():  # the LSTM layers are untouched
        if "layers" in name:
            assert torch.equal(param, before[name])
    ids = torch.tensor([PIANO.convert_tokens_to_ids(["p60", "p64", "wait12", "endp60", "endp64", "p62"])])
    with torch.no_grad():  # piano music gives the same logits on the piano ids as before
        old_logits = piano_model(tie_word_embeddings=tied)(ids).logits
        new_logits = grown(ids).logits
    assert torch.allclose(new_logits[..., :228], old_logits, atol=1e-6)


@pytest.mark.parametrize("tokenizer", [DUO, TRIO], ids=["violin", "violin+cello"])
@pytest.mark.parametrize("sampler", ["weighted", "top_k"])
def test_the_guards_keep_every_part_in_range_within_double_stops_and_grammatical(tokenizer, sampler):
    model = string_heavy(tokenizer, seed=1)
    guards = GuardSettings(max_polyphony=6, repeat_penalty=1.0)  # per part: lean loop and generate() alike
    job = DecodeJob([tokenizer.bos_token_id], 8, SamplerSettings(sampler, seed=3, k=20), guards, 400, None)
    made = decode(model, job)
    assert made.tokens == with_generate(model, DecodeJob([tokenizer.bos_token_id], 8, job.sampler, guards, 400, None))
    layout = tokenizer.instrument_layout
    notes = {name: 0 for name in layout}
    for row in made.tokens:
        tokens = tokenizer.convert_ids_to_tokens(row)
        assert not any(t.startswith("<") for t in tokens)
        checks = part_checks(tokens, layout)
        for name, counts in checks["parts"].items():
            assert counts["range"] == counts["double_stop"] == counts["grammar"] == 0, (name, counts)
            notes[name] += counts["notes"]
        polyphony = max_polyphony(tokens)
        assert polyphony["all"] <= 6 and all(polyphony[n] <= 2 for n in layout if n != "piano")
    assert all(notes[name] > 20 for name in layout)  # every part really played


def max_polyphony(tokens: list[str]) -> dict[str, int]:
    prefixes = {"p": "piano", "v": "violin", "c": "cello"}
    sounding: dict[str, set] = {name: set() for name in prefixes.values()}
    most = {name: 0 for name in [*prefixes.values(), "all"]}
    for token in tokens:
        if token.startswith("wait"):
            continue
        off = token.startswith("end")
        word = token[3:] if off else token
        part = prefixes[word[0]]
        (sounding[part].discard if off else sounding[part].add)(word)
        most[part] = max(most[part], len(sounding[part]))
        most["all"] = max(most["all"], sum(len(s) for s in sounding.values()))
    return most


def test_layouts_come_from_the_config_and_piano_only_layouts_are_unchanged():
    model = string_heavy(DUO, seed=2)
    assert VocabLayout.from_config(piano_model().config) == VocabLayout.from_config(PIANO) == VocabLayout()
    assert VocabLayout.from_config(model.config) == VocabLayout.from_config(DUO)
    assert [part[0] for part in VocabLayout.from_config(TRIO).parts] == ["piano", "violin", "cello"]
    assert piano_model().config.to_diff_dict().get("instrument_layout") is None  # piano configs do not change


def test_compose_equals_generate_for_an_instrumented_model_and_writes_one_track_per_part():
    from toccata.modeling.pipeline import _cut_at_steps, _trim_trailing_silence

    model = string_heavy(TRIO, seed=4)
    request = GenerationRequest(sampler=SamplerSettings("top_k", k=8, seed=7), beats=16, num_samples=3)
    pieces = compose(model, TRIO, request)
    target = 16 * 12
    expected = []
    for index in range(3):  # variation i is what generate() makes with seed + i alone
        sampler = SamplerSettings("top_k", k=8, seed=7 + index)
        job = DecodeJob([TRIO.bos_token_id], 1, sampler, request.guards, target * 4 + 64, target)
        (row,) = with_generate(model, job)
        tokens = TRIO.convert_ids_to_tokens([i for i in row if i >= TRIO.note_on_offset])
        expected.append(_trim_trailing_silence(_cut_at_steps(tokens, target)))
    assert [p.tokens for p in pieces] == expected
    programs = sorted((t.name, t.program) for t in pieces[0].score.tracks)
    assert programs == [("Cello", 42), ("Piano", 0), ("Violin", 40)]


def test_trailing_silence_is_trimmed_after_the_last_note_of_any_part():
    from toccata.modeling.pipeline import _trim_trailing_silence

    tokens = ["p60", "v67", "wait6", "endp60", "wait6", "endv67", "wait12", "wait12"]
    assert _trim_trailing_silence(tokens) == tokens[:6]
    assert _trim_trailing_silence(["p60", "wait6", "endp60", "wait12"]) == ["p60", "wait6", "endp60"]


def _write_split(folder: Path, split: str, pieces: list[str]) -> None:
    rows = {
        "id": [f"{split}-{i}" for i in range(len(pieces))],
        "piece_id": [f"{split}-{i}" for i in range(len(pieces))],
        "transposition": [0] * len(pieces),
        "notewise": pieces,
        "qpm": [100.0] * len(pieces),
        "time_signature": ["4/4"] * len(pieces),
    }
    pq.write_table(pa.table(rows), folder / f"toccata-{split}.parquet")


def tiny_duo_dataset(folder: Path, seed: int = 0) -> Path:
    """Parquet splits of made-up piano + violin pieces: a violin line over piano chords."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)

    def piece() -> str:
        words = []
        for _ in range(24):
            root, top = rng.choice([48, 53, 55, 57]), rng.choice(range(67, 84))
            chord = [f"p{root}", f"p{root + 4}", f"p{root + 7}"]
            words += chord + [f"v{top}", "wait6", f"endv{top}", f"v{top + 2}", "wait6"]
            words += [f"end{w}" for w in chord] + [f"endv{top + 2}"]
        return " ".join(words)

    for split, count in (("train", 6), ("validation", 2), ("test", 2)):
        _write_split(folder, split, [piece() for _ in range(count)])
    return folder


def test_train_init_from_a_piano_checkpoint_with_instruments(tmp_path):
    piano = save_checkpoint(tmp_path / "piano", piano_model(), PIANO)
    data = tiny_duo_dataset(tmp_path / "duo-data")
    out = tmp_path / "duo"
    args = ["train", "--dataset", str(data), "--out", str(out), "--init-from", str(piano), "--instruments",
            "piano,violin", "--window", "48", "--batch-size", "4", "--max-steps", "6", "--eval-steps", "3",
            "--max-transpose", "3", "--learning-rate", "1e-2", "--logging-steps", "1"]  # fmt: skip
    assert main(args) == 0
    model, tok = toccata.load_checkpoint(str(out), instruments="piano,violin")
    assert tok.instruments == ("piano", "violin") and model.config.vocab_size == 326
    assert model.config.instrument_layout == DUO.instrument_layout
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["train_tokens"] > 0
    with pytest.raises(ValueError, match="its parts are piano,violin, not piano,cello"):
        toccata.load_checkpoint(str(out), instruments="piano,cello")


def test_generate_instruments_writes_a_track_per_part_with_the_right_programs(tmp_path, capsys):
    folder = save_checkpoint(tmp_path / "cello", string_heavy(NotewiseTokenizer(instruments=("piano", "cello"))),
                             NotewiseTokenizer(instruments=("piano", "cello")))  # fmt: skip
    out = tmp_path / "duo.mid"
    argv = ["generate", "--model", str(folder), "--instruments", "piano,cello", "--beats", "16", "--seed", "1",
            "--no-audio", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    score = symusic.Score(str(out))
    assert sorted((t.name, t.program) for t in score.tracks) == [("Cello", 42), ("Piano", 0)]
    assert all(t.note_num() > 0 for t in score.tracks)
    assert main([*argv[:4], "piano,violin", *argv[5:]]) == 2
    assert "its parts are piano,cello, not piano,violin" in capsys.readouterr().err


def test_default_checkpoint_names_what_is_available():
    with pytest.raises(ValueError, match="available: piano, piano,violin, piano,cello"):
        toccata.default_checkpoint("piano,viola")
    assert toccata.default_checkpoint() == toccata.default_checkpoint("piano")


def test_evaluate_reports_each_part_and_counts_notes_of_every_part(tmp_path):
    from toccata.evaluation.evaluation import evaluate
    from toccata.evaluation.report import render_markdown

    data = tiny_duo_dataset(tmp_path / "duo-data")
    model = string_heavy(DUO, seed=5)
    report = evaluate(model, DUO, str(data), split="test", samples=6, tokens=150, samplers=["top_k"], batch_size=6)
    violin = report.reference_parts["violin"]
    assert violin["double_stop"] == violin["range"] == violin["grammar"] == 0
    assert 0.9 < violin["sounding_share"] <= 1.0  # the made-up violin plays all the time
    run = report.samplers[0].parts
    assert all(run[name][key] == 0 for name in run for key in ("range", "double_stop", "grammar"))
    test_notes = sum(len([w for w in row.split() if not w.startswith(("end", "wait"))]) for row in
                     pq.read_table(data / "toccata-test.parquet").column("notewise").to_pylist())  # fmt: skip
    assert report.result("model").notes == test_notes  # violin notes count as notes
    assert "## Instruments" in render_markdown(report)


@pytest.mark.parametrize("parts", [("violin",), ("cello",), ("violin", "cello")], ids=["violin", "cello", "trio"])
def test_the_embedded_chamber_checkpoints_are_small_carry_their_card_and_compose_duos(parts, tmp_path):
    folder = toccata.default_checkpoint(instruments=("piano", *parts))
    assert folder is not None and folder.name == ("piano-trio" if len(parts) > 1 else f"piano-{parts[0]}")
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 15 * 2**20, f"{size / 2**20:.1f} MB"
    assert not list(folder.glob("*.py"))  # it loads through the package; `toccata save --for-hub` adds the code
    report = json.loads((folder / "evaluation" / "report.json").read_text())
    model_row = next(row for row in report["likelihood"] if row["name"] == "model")
    card = (folder / "README.md").read_text()
    assert f"{model_row['bits_per_token']:.4g}" in card and "CC BY-NC-SA 4.0" in card
    assert all(row[key] == 0 for run in report["samplers"] for row in run["parts"].values()
               for key in ("range", "double_stop", "grammar"))  # fmt: skip
    assert all(row["long_rest_pieces"] == 0 for run in report["samplers"] for row in run["parts"].values())
    model, tok = toccata.load_checkpoint(instruments=",".join(["piano", *parts]))
    assert tok.instruments == ("piano", *parts)
    piece = compose(model, tok, GenerationRequest(sampler=SamplerSettings("top_k", k=8, seed=0), beats=32))[0]
    assert {t.name for t in piece.score.tracks} == {"Piano", *(part.capitalize() for part in parts)}


def test_chamber_publish_writes_a_folder_without_code_whose_config_returns_the_state(tmp_path):
    """The winning run's folder may hold code and `use_cache: false` (as `Trainer` saves it): the published folder has
    neither the code nor an auto_map naming it, and use_cache on (the edited config was never written back)."""
    from toccata.release.chamber import publish

    tokenizer = NotewiseTokenizer()
    model = random_model(tokenizer, **TINY)
    model.config.use_cache = False
    run = tmp_path / "run"
    with saving_code(model, tokenizer):
        model.save_pretrained(run)
        tokenizer.save_pretrained(run)
    assert list(run.glob("*.py")) and "auto_map" in json.loads((run / "config.json").read_text())
    dest = publish({"runs": {"warm": {"folder": str(run)}}, "winner": "warm"}, tmp_path / "piano-violin")
    assert not list(dest.glob("*.py"))
    config = json.loads((dest / "config.json").read_text())
    assert config["use_cache"] is True and "auto_map" not in config
    loaded, _ = toccata.load_checkpoint(str(dest))
    assert loaded.config.use_cache and loaded.generation_config.toccata_guards["max_polyphony"] == 8
    from safetensors import safe_open

    with safe_open(str(dest / "model.safetensors"), "pt") as stored:  # stored in half, computed in float32
        assert {str(stored.get_tensor(name).dtype) for name in stored.keys()} == {"torch.float16"}
    assert {str(p.dtype) for p in loaded.parameters()} == {"torch.float32"}


def test_transposition_moves_every_part_together_and_keeps_each_in_its_range():
    from toccata.training.data import Piece, WindowDataset

    layout = VocabLayout.from_config(DUO)
    assert layout.parts[1:] == (("violin", 228, 277, 49),) and len(VocabLayout.from_config(PIANO).parts) == 1
    words = ["p40", "v100", "wait12", "endp40", "endv100"]  # the violin 3 semitones below its top (G7 = 103)
    ids = np.asarray(DUO.convert_tokens_to_ids(words))
    data = WindowDataset([Piece("a", "a", ids)], 16, layout, bos_id=1, eos_id=2, pad_id=0, max_transpose=6, seed=1)
    shifts = set()
    for epoch in range(40):
        moved = DUO.convert_ids_to_tokens(data[epoch * len(data)]["input_ids"][1:6].tolist())
        shift = int(moved[1][1:]) - 100
        assert moved == [f"p{40 + shift}", f"v{100 + shift}", "wait12", f"endp{40 + shift}", f"endv{100 + shift}"]
        shifts.add(shift)
    assert max(shifts) == 3 and min(shifts) == -6  # up to the violin's top, down the whole ±6


def test_fluidsynth_renders_the_violin_and_cello_tracks_as_bowed_strings(tmp_path):
    """A held note: the piano's sound decays, a bowed string's does not (programs 40 and 42 reach the synth)."""
    import wave

    from toccata.rendering import Synth

    synth = Synth.find()
    if synth is None:
        pytest.skip("FluidSynth or a GM soundfont is not installed")

    def late_over_early(word: str) -> float:
        midi = tmp_path / f"{word}.mid"
        TRIO.save_midi([word, "wait48", f"end{word}"], midi)
        with wave.open(str(synth.render(midi, midi.with_suffix(".wav")))) as f:
            rate, channels = f.getframerate(), f.getnchannels()
            x = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).reshape(-1, channels)[:, 0].astype(float)
        rms = [np.sqrt(np.mean(x[int(t * rate) : int((t + 0.2) * rate)] ** 2)) for t in (0.1, 1.6)]
        return rms[1] / rms[0]

    assert late_over_early("p67") < 0.3
    assert late_over_early("v67") > 0.8 and late_over_early("c48") > 0.8


def violin_shy(seed: int = 0) -> NotewiseLSTMForCausalLM:
    """A random duo model pushed away from the violin's note-ons: left alone, its violin hardly ever plays."""
    torch.manual_seed(seed)
    model = random_model(DUO, **TINY)
    spec = DUO.instrument_layout["violin"]
    with torch.no_grad():
        model.lm_head.bias[spec["note_on_offset"] : spec["note_on_offset"] + spec["num_pitches"]] -= 8.0
    return model.eval()


def test_the_part_entry_guard_brings_a_resting_part_in_on_both_decoding_paths():
    model, bars = violin_shy(seed=3), 16
    longest = {}
    for part_entry in (False, True):
        guards = GuardSettings(max_polyphony=6, part_entry=part_entry, max_part_rest_beats=8.0)
        job = DecodeJob([DUO.bos_token_id], 6, SamplerSettings("weighted", seed=5), guards, 4000, bars * 48)
        made = decode(model, job)
        assert made.tokens == with_generate(model, job)  # one implementation: compose() and generate() agree
        checks = [part_checks(DUO.convert_ids_to_tokens(row), DUO.instrument_layout) for row in made.tokens]
        assert all(c["steps"] >= bars * 48 for c in checks)
        longest[part_entry] = [c["parts"]["violin"]["longest_rest"] for c in checks]
    assert max(longest[False]) > 8 * 48  # unguarded, the violin rests for more than 8 bars
    assert max(longest[True]) <= 24 * 12  # guarded, it enters soon after its 8-beat limit (a wait may jump 4)


def test_the_part_entry_guard_leaves_a_piano_model_and_a_playing_part_alone():
    piano = piano_model(seed=2)
    runs = []
    for part_entry in (False, True):
        guards = GuardSettings(part_entry=part_entry, max_part_rest_beats=1.0)
        job = DecodeJob([PIANO.bos_token_id], 2, SamplerSettings("weighted", seed=1), guards, 300, None)
        runs.append(decode(piano, job).tokens)
    assert runs[0] == runs[1]
    from toccata.modeling.guards import PART_ENTRY_PUSH, GuardRows

    rows = GuardRows(VocabLayout.from_config(DUO), DUO.vocab_size)
    rows.append(GuardSettings(max_part_rest_beats=1.0), DUO.convert_tokens_to_ids(["p60", "v67", "wait24"]), 1)
    assert not rows.entry_push().any()  # both parts sound: no push
    rows.consume(DUO.convert_tokens_to_ids(["endv67"]))
    rows.consume(DUO.convert_tokens_to_ids(["wait24"]))  # the violin has rested 2 beats, 1 past its limit
    assert rows.entry_push().tolist() == [[0.0, PART_ENTRY_PUSH]]


def test_part_checks_measure_each_parts_longest_rest_and_note_share():
    from toccata.evaluation.parts import summarise

    layout = DUO.instrument_layout
    plays = ["p60", "v67", "wait12", "endv67", "wait48", "wait48", "v69", "wait12", "endp60", "endv69"]
    rests = ["p60", "wait48"] * 20 + ["endp60"]  # the violin never plays: 20 bars of piano
    checks = [part_checks(plays, layout), part_checks(rests, layout)]
    assert checks[0]["parts"]["violin"]["longest_rest"] == 96
    assert checks[0]["parts"]["piano"]["longest_rest"] == 0
    assert checks[1]["parts"]["violin"]["longest_rest"] == 960
    summary = summarise(checks)
    assert summary["violin"]["silent_pieces"] == 1 and summary["violin"]["long_rest_pieces"] == 1
    assert summary["violin"]["note_share"] == pytest.approx(2 / 23)
    assert summary["piano"]["long_rest_pieces"] == 0 and summary["violin"]["pieces"] == 2
    assert summarise(checks, long_rest_bars=1)["violin"]["long_rest_pieces"] == 2


def test_a_labelled_piano_checkpoint_warm_starts_without_its_composer_words():
    labelled = NotewiseTokenizer(composers=("Fryderyk Chopin", "Józef Stefani"))
    model = random_model(labelled, **TINY)
    grown, tok = warm_start(model, labelled, ("piano", "violin"))
    assert tok.composers == () and tok.vocab_size == grown.config.vocab_size == DUO.vocab_size
    emb = grown.get_input_embeddings().weight
    for word, source in [("v55", "p55"), ("v56", "p56"), ("endv103", "endp103")]:  # v55, v56: the composers' old ids
        assert torch.equal(emb[tok.convert_tokens_to_ids(word)], emb[tok.convert_tokens_to_ids(source)]), word


def test_look_draws_each_part_of_a_duo_in_its_own_colour(tmp_path):
    from PIL import Image, ImageColor
    from toccata.look import look
    from toccata.rendering import PART_COLOURS, roll_notes

    parts = roll_notes(DUO, ["p60", "v76", "wait12", "endp60", "endv76"])
    assert sorted(parts) == ["piano", "violin"] and parts["violin"].tolist() == [[0.0, 1.0, 76.0]]
    data = tmp_path / "duo"
    data.mkdir()
    _write_split(data, "test", ["p48 v72 wait24 endp48 endv72 p50 v74 wait24 endp50 endv74"])
    look(string_heavy(DUO, seed=2), DUO, "duo", str(data), "test", tmp_path / "look", samples=1, beats=8)
    green = ImageColor.getrgb(PART_COLOURS["violin"])
    for name in ("sample-0", "heldout-0"):
        pixels = list(Image.open(tmp_path / "look" / f"{name}.png").convert("RGB").get_flattened_data())
        assert sum(pixel == green for pixel in pixels) > 20, name  # the violin's notes, in the violin's colour
