"""The demo in-process: the app builds, each sampler gives MIDI + audio + piano roll, the stream cancels, settings
reproduce a piece with the CLI. Real FluidSynth, real matplotlib, real model (random weights unless a default
checkpoint is installed)."""

from __future__ import annotations

import dataclasses
import html
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import symusic
from support.demo import require_fluidsynth, audio_peak
from matplotlib.image import imread
from toccata.demo import ui
from toccata.demo.background import WORKER_NAME, Finished, Progress, run_in_background
from toccata.demo.engine import load_engine
from toccata.demo.form import (
    ALL_SAMPLER_PARAMETERS,
    SAMPLER_PARAMETERS,
    DemoSettings,
    PromptChoice,
    default_values,
    settings_from_values,
)
from toccata.modeling import SAMPLERS, GuardSettings, SamplerSettings
from toccata.modeling.hub import random_model, save_checkpoint
from toccata.tokenization import NotewiseTokenizer

import toccata
from toccata.rendering import CONTINUATION_COLOUR, PROMPT_COLOUR, SYNTH_MISSING, Synth

CHORALE = PromptChoice(source="corpus", work="bach/bwv66.6", beats=8)


@pytest.fixture(scope="module")
def engine():
    return load_engine()


def values(engine, **changes) -> dict:
    """The form's values as the UI sends them, with `changes`."""
    return {**default_values(*engine.presets()), **changes}


def small_engine(folder: Path, tokenizer: NotewiseTokenizer | None = None):
    """(checkpoint folder, engine) of a small random model saved in `folder`: a folder the CLI can load too."""
    tokenizer = tokenizer or NotewiseTokenizer()
    folder = save_checkpoint(folder, random_model(tokenizer, embedding_size=16, hidden_size=24), tokenizer)
    return folder, load_engine(str(folder))


def assert_the_cli_makes_the_same_midi(command: str, midi: Path, tmp_path: Path) -> None:
    """`command`, a `toccata generate` line the demo printed, run as a real process, writes `midi`'s bytes."""
    out = tmp_path / "again.mid"
    done = subprocess.run(
        [sys.executable, "-m", "toccata", *command.split()[1:], "-o", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == midi.read_bytes()


def has_colour(png, hex_colour: str) -> bool:
    """Whether the image has pixels of `hex_colour` (within rounding)."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return bool((np.abs(imread(png)[..., :3] - rgb).max(axis=-1) < 0.02).any())


def test_the_app_module_builds_a_queued_blocks_with_a_named_api():
    from toccata.demo.app import demo

    assert isinstance(demo, gr.Blocks)
    api = demo.get_api_info()["named_endpoints"]
    assert list(api) == ["/generate"], "only generation is public; the UI toggles are private"
    names = [parameter["parameter_name"] for parameter in api["/generate"]["parameters"]]
    assert {"sampler", "k", "seed", "length", "length_unit", "prompt_file", "variations", "calmness"} <= set(names)
    assert demo._queue.max_size == ui.QUEUE_SIZE and demo._queue.default_concurrency_limit == ui.CONCURRENCY


def test_the_page_says_when_the_model_is_untrained(engine):
    if toccata.default_checkpoint() is None:
        assert not engine.trained and "Untrained model: random weights" in engine.notice()
    else:
        assert engine.trained and "default checkpoint" in engine.notice()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_sampler_gives_midi_audio_and_a_two_colour_piano_roll(engine, sampler, tmp_path):
    require_fluidsynth()
    settings = DemoSettings(SamplerSettings(sampler, seed=3), length=4, length_unit="bars", prompt=CHORALE)
    result = engine.run(settings, tmp_path)
    (piece,) = result.pieces
    score = symusic.Score(str(piece.midi))
    assert score.note_num() == piece.notes > 0 and result.settings["prompt"] == "corpus:bach/bwv66.6"
    assert audio_peak(piece.audio) > 0.01, "the rendered audio is silent"
    assert has_colour(piece.roll, PROMPT_COLOUR) and has_colour(piece.roll, CONTINUATION_COLOUR)
    assert result.settings["sampler"]["sampler"] == sampler and result.settings["sampler"]["seed"] == 3
    assert result.settings["beats"] == 16.0, "4 bars of the chorale's 4/4"
    assert piece.text.startswith("# toccata-notewise") and not result.notices


@pytest.mark.parametrize("anchor", ["rm", "mt", "mb", "lb"])
def test_the_piano_rolls_stamped_labels_are_the_pixels_pillow_draws(anchor):
    from PIL import Image, ImageDraw, ImageFont

    from toccata.rendering.roll import TEXT, _label

    labels = [("C4", (40, 120)), ("quarter notes", (500, 336)), ("piano continuation", (700, 336)), ("128", (9, 9))]
    for text, xy in labels:
        drawn, stamped = (Image.new("P", (1000, 340), "white") for _ in range(2))
        ImageDraw.Draw(drawn).text(xy, text, fill=TEXT, font=ImageFont.load_default(), anchor=anchor)
        _label(ImageDraw.Draw(stamped), xy, text, anchor)  # twice: the second comes from the cache
        _label(ImageDraw.Draw(stamped), xy, text, anchor)
        assert drawn.getbbox() is not None, "Pillow drew nothing to compare with"  # white is palette index 0
        assert np.array_equal(np.asarray(drawn.convert("RGB")), np.asarray(stamped.convert("RGB"))), (text, anchor)


def test_without_a_synthesizer_the_app_says_so_and_still_gives_midi(engine, tmp_path):
    silent = dataclasses.replace(engine, synth=None)
    result = silent.run(DemoSettings(SamplerSettings("greedy"), length=2), tmp_path)
    assert result.pieces[0].audio is None and symusic.Score(str(result.pieces[0].midi)).note_num() > 0
    assert result.notices == (SYNTH_MISSING,)


def test_a_prompt_with_no_notes_the_model_reads_is_said_to_compose_from_silence(engine, tmp_path):
    """A drum-only upload: drums are dropped, so the piece starts from nothing; the page says so."""
    drums = symusic.Score(480)
    kit = symusic.Track("drums", program=0, is_drum=True)
    kit.notes.extend(symusic.Note(480 * i, 120, 36 + i % 3, 100) for i in range(16))
    drums.tracks.append(kit)
    upload = tmp_path / "drums.mid"
    drums.dump_midi(upload)
    prompt = PromptChoice(source="upload", upload=str(upload))
    result = engine.run(DemoSettings(SamplerSettings("greedy"), length=2, prompt=prompt), tmp_path)
    assert any("drums.mid has no notes the model reads" in notice for notice in result.notices), result.notices
    assert symusic.Score(str(result.pieces[0].midi)).note_num() > 0
    chorale = engine.run(DemoSettings(SamplerSettings("greedy"), length=2, prompt=CHORALE), tmp_path / "c")
    assert not any("no notes the model reads" in notice for notice in chorale.notices)

def test_variations_share_a_seed_and_differ(engine, tmp_path):
    settings = DemoSettings(SamplerSettings("weighted", seed=11), length=8, variations=3)
    result = engine.run(settings, tmp_path)
    assert len(result.pieces) == 3
    assert len({piece.midi.read_bytes() for piece in result.pieces}) == 3


def test_variations_render_their_audio_side_by_side_each_to_its_own_file(engine, tmp_path):
    require_fluidsynth()
    spans: list[tuple[str, float, float]] = []

    class TimedSynth(Synth):  # the real renders, with when each began and ended
        def render(self, midi, audio):
            began = time.monotonic()
            done = super().render(midi, audio)
            spans.append((Path(audio).stem, began, time.monotonic()))
            return done

    timed = dataclasses.replace(engine, synth=TimedSynth(**dataclasses.asdict(engine.synth)))
    settings = DemoSettings(SamplerSettings("top_k", seed=5), length=2, length_unit="bars", variations=3)
    result = timed.run(settings, tmp_path)
    stems = [piece.audio.stem for piece in result.pieces]
    assert stems == [piece.midi.stem for piece in result.pieces] == [f"toccata-5-{i}" for i in (1, 2, 3)]
    assert all(audio_peak(piece.audio) > 0.01 for piece in result.pieces)
    assert len({piece.audio.read_bytes() for piece in result.pieces}) == 3
    assert max(began for _, began, _ in spans) < min(ended for _, _, ended in spans), "the renders ran one by one"


def test_sampler_controls_are_shown_only_where_they_matter():
    for sampler, relevant in SAMPLER_PARAMETERS.items():
        shown = {
            name for name, update in zip(ALL_SAMPLER_PARAMETERS, ui._sampler_visibility(sampler)) if update["visible"]
        }
        assert shown == set(relevant), sampler
    assert [u["visible"] for u in ui._prompt_visibility("upload")] == [False, True, True, True]


def test_form_values_become_dataclasses(engine):
    settings = settings_from_values(values(engine, sampler="top_n", n=4.0, seed=7.0, calmness=1.5), *engine.presets())
    assert settings.sampler == dataclasses.replace(engine.presets()[0], sampler="top_n", n=4, seed=7)
    assert settings.guards.calmness == 1.5 and isinstance(settings.guards, GuardSettings)
    request = settings.request(prompt_qpm=90.0, time_signature=(3, 4))
    assert request.qpm == 90.0 and request.seconds == 30.0
    bars = dataclasses.replace(settings, length=2, length_unit="bars", prompt_tempo=False)
    assert bars.request(90.0, (3, 4)).beats == 6.0 and bars.request(90.0, (3, 4)).qpm == 120.0


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"prompt_source": "upload", "prompt_file": None}, "no file uploaded"),
        ({"n": 2.5}, "n must be a whole number"),
        ({"sampler": "beam"}, "sampler must be one of"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"best_of": 9}, "best of must be a whole number from 1 to 8"),
        ({"best_of": 2.5}, "best_of must be a whole number"),
    ],
)
def test_bad_settings_are_a_gradio_error_that_names_the_field(engine, changes, message):
    with pytest.raises(gr.Error) as caught:
        next(ui._generate(engine, None, values(engine, **changes)))
    assert message in html.unescape(caught.value.message), "messages are HTML-escaped, then shown as they were"


def test_the_handler_streams_progress_then_files(engine):
    require_fluidsynth()
    slots = [[object() for _ in range(4)] for _ in range(2)]
    outputs = ui.Outputs(object(), *slots, object(), object(), object(), object())
    form = values(engine, calmness=-5.0, length=240, prompt_source="none")  # busy music: thousands of tokens
    updates = list(ui._generate(engine, outputs, form))
    statuses = [update[outputs.status] for update in updates]
    assert any(status.startswith("Composing…") for status in statuses[:-1]), statuses
    final = updates[-1]
    assert final[outputs.status].startswith("**Done**") and len(final[outputs.files]) == 1
    assert final[outputs.audios[0]].endswith(".flac") and final[outputs.rolls[0]].endswith(".png")
    assert final[outputs.audios[1]] is None
    assert "--seed 1" in final[outputs.command]


def _workers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == WORKER_NAME]


def test_closing_the_stream_cancels_the_generation(engine, tmp_path):
    settings = DemoSettings(SamplerSettings(seed=1), GuardSettings(calmness=-5), length=240, variations=4)
    stream = run_in_background(lambda progress, cancel: engine.run(settings, tmp_path, progress, cancel))
    for event in stream:
        assert not isinstance(event, Finished), "the job should take seconds, not finish at once"
        if isinstance(event, Progress) and event.done > 100:
            break
    stream.close()  # what Gradio does on Stop or when the browser goes away
    closed = time.monotonic()
    while _workers() and time.monotonic() - closed < 30:
        time.sleep(0.05)
    assert not _workers() and time.monotonic() - closed < 1.0, "the worker kept generating after the stream closed"
    assert not list(tmp_path.glob("*.mid")), "a cancelled job must not render"


def test_the_settings_command_reproduces_the_piece_with_the_cli(tmp_path):
    folder, engine = small_engine(tmp_path / "ckpt")
    settings = DemoSettings(SamplerSettings("top_k", k=4, seed=21), length=6, prompt=CHORALE)
    result = engine.run(settings, tmp_path)
    words = result.command.split()
    assert words[:4] == ["toccata", "generate", "--model", str(folder)]
    assert engine.int8 and "--int8" in words and result.settings["int8"]  # the demo decodes in int8, and says so
    assert_the_cli_makes_the_same_midi(result.command, result.pieces[0].midi, tmp_path)


def test_best_of_n_keeps_the_candidates_the_critic_rates_most_human(engine, tmp_path):
    settings = settings_from_values(values(engine, best_of=3.0, variations=2, seed=4), *engine.presets())
    assert settings.best_of == 3 and settings.request().best_of == 3
    settings = dataclasses.replace(settings, length=2, length_unit="bars", prompt=PromptChoice())
    result = dataclasses.replace(engine, synth=None).run(settings, tmp_path)
    candidates = result.settings["candidates"]
    assert [c["index"] for c in candidates] == list(range(6)) and all(
        0 <= c["human_probability"] <= 1 for c in candidates
    )
    best_two = sorted(candidates, key=lambda c: -c["human_probability"])[:2]
    assert result.settings["chosen"] == [c["index"] for c in best_two] and result.settings["best_of"] == 3
    assert [piece.human_probability for piece in result.pieces] == [c["human_probability"] for c in best_two]
    assert "--best-of 3" in result.command and "--num-samples 2" in result.command
    outputs = ui.Outputs(object(), *[[object() for _ in range(4)] for _ in range(2)], *(object() for _ in range(4)))
    status = ui._result_updates(result, outputs)[outputs.status]
    assert status.count("best of 3: the critic's P(human)") == 2
    plain = settings_from_values(values(engine), *engine.presets())
    assert plain.best_of == 1 and "--best-of" not in engine.run(dataclasses.replace(plain, length=1), tmp_path).command


def test_the_best_of_command_reproduces_the_piece_with_the_cli(tmp_path):
    _, engine = small_engine(tmp_path / "ckpt")
    settings = DemoSettings(SamplerSettings("top_k", k=4, seed=9), length=4, best_of=4)
    result = dataclasses.replace(engine, synth=None).run(settings, tmp_path)
    assert "--best-of 4" in result.command and result.settings["chosen"] in range(4)
    assert_the_cli_makes_the_same_midi(result.command, result.pieces[0].midi, tmp_path)


def test_concurrent_requests_share_the_batcher_and_each_gets_the_music_it_gets_alone(engine, tmp_path):
    """The engine's batcher decodes requests side by side; seeds and settings still decide each piece alone."""
    assert engine.batcher is not None
    asks = [
        DemoSettings(SamplerSettings("top_k", seed=seed, k=4 + seed), length=3, length_unit="bars", prompt=prompt)
        for seed, prompt in enumerate([CHORALE, PromptChoice(), CHORALE, PromptChoice()] * 2)
    ]
    solo = dataclasses.replace(engine, batcher=None, synth=None)
    alone = [solo.run(ask, tmp_path / f"alone-{i}").pieces[0].text for i, ask in enumerate(asks)]
    quiet = dataclasses.replace(engine, synth=None)
    together: dict[int, str] = {}

    def ask(index: int) -> None:
        together[index] = quiet.run(asks[index], tmp_path / f"together-{index}").pieces[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [together[i] for i in range(len(asks))] == alone
    assert engine.batcher.peak_rows > 1, "the requests never shared a step"


@pytest.mark.skipif("piano,violin" not in toccata.available_instruments(), reason="no embedded piano-violin model")
def test_piano_and_violin_continue_an_uploaded_duo_with_two_tracks_and_a_three_colour_roll(engine, tmp_path):
    """The instrument choice: its own model, MIDI with the violin on GM 40, the violin drawn in its own colour, and
    an uploaded chamber MIDI (a violin track over a piano track) continued with both parts."""
    from toccata.rendering import PART_COLOURS

    duo = symusic.Score(480)
    for name, program, pitches in (("Piano", 0, [48, 55, 60]), ("Violin", 40, [72, 74, 76, 77])):
        track = symusic.Track(name=name, program=program)
        for bar in range(8):
            for index, pitch in enumerate(pitches):
                start = bar * 1920 + index * 480
                track.notes.append(symusic.Note(start, 480, pitch, 80))
        duo.tracks.append(track)
    upload = tmp_path / "duo.mid"
    duo.dump_midi(str(upload))
    settings = DemoSettings(
        SamplerSettings("top_k", seed=5),
        length=8,
        length_unit="bars",
        prompt=PromptChoice(source="upload", upload=str(upload), beats=16),
        instruments="piano,violin",
    )
    result = dataclasses.replace(engine, synth=None).run(settings, tmp_path)
    (piece,) = result.pieces
    tracks = {track.program: track for track in symusic.Score(str(piece.midi)).tracks}
    assert set(tracks) == {0, 40} and tracks[40].note_num() > 0 and tracks[0].note_num() > 0
    assert [n.pitch for n in tracks[40].notes][:4] == [72, 74, 76, 77], "the prompt's violin stays the violin"
    assert any(t.startswith("v") for t in piece.text.split()[len(piece.text.split()) // 2 :]), "the violin plays on"
    assert has_colour(piece.roll, PART_COLOURS["violin"]) and has_colour(piece.roll, CONTINUATION_COLOUR)
    assert "--instruments piano,violin" in result.command and "piano + violin" in result.settings["model"]
    with pytest.raises(ValueError, match="instruments must be one of"):
        DemoSettings(instruments="piano,tuba")


def test_rendered_audio_is_served_without_a_probe_process_where_ffmpeg_is_installed(engine, tmp_path, monkeypatch):
    """Where FFmpeg is installed (Hugging Face Spaces), `gr.Audio` runs `ffprobe` on every output file; the demo's
    players serve their own renders as they are. FFmpeg is not installed here, so two scripts named ffmpeg and ffprobe
    stand in for it on PATH (ffprobe's answer: a FLAC stream) and record each run."""
    require_fluidsynth()
    from toccata.demo.components import RenderedAudio

    runs = tmp_path / "runs.log"
    tools = tmp_path / "bin"
    tools.mkdir()
    answer = '{"streams": [{"codec_name": "flac"}], "format": {}}'
    for name, output in (("ffmpeg", ""), ("ffprobe", answer)):
        script = tools / name
        script.write_text(f"#!/bin/sh\necho {name} >> {runs}\necho '{output}'\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    result = engine.run(DemoSettings(SamplerSettings("greedy", seed=1), length=2), tmp_path)
    flac = str(result.pieces[0].audio)

    served = RenderedAudio(type="filepath", interactive=False).postprocess(flac)
    assert served.path == flac and not runs.exists(), "the demo's own FLAC went through ffprobe"
    assert gr.Audio(type="filepath", interactive=False).postprocess(flac).path == flac
    assert runs.read_text().split() == ["ffprobe"], "plain gr.Audio probes it (what the demo avoids)"
    assert RenderedAudio(type="filepath").get_block_name() == "audio"  # the page's own player draws it
    demo = ui.build_demo(engine, answers=tmp_path / "answers.sqlite")
    players = [block for block in demo.blocks.values() if isinstance(block, gr.Audio)]
    assert players and all(isinstance(block, RenderedAudio) for block in players)


def test_the_style_choice_lists_the_models_composers_and_the_piece_is_labelled(engine, tmp_path):
    def style_choice(demo: gr.Blocks) -> gr.Dropdown:
        return next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "composer")

    plain = style_choice(ui.build_demo(engine, answers=tmp_path / "plain.sqlite"))
    assert not plain.visible or engine.composers(), "a model without composer labels shows no style choice"
    _, labelled = small_engine(tmp_path / "ckpt", NotewiseTokenizer(composers=["Chopin", "Szymanowska"]))
    choice = style_choice(ui.build_demo(labelled, answers=tmp_path / "labelled.sqlite"))
    assert choice.visible and [value for _, value in choice.choices] == ["", "Chopin", "Szymanowska"]
    form = values(labelled, composer="Szymanowska", length=4, length_unit="bars", prompt_source="none")
    settings = settings_from_values(form, *labelled.presets())
    result = labelled.run(settings, tmp_path)
    assert result.settings["composer"] == "Szymanowska"
    words = result.command.split()
    assert words[words.index("--composer") + 1] == "Szymanowska"
    unlabelled = labelled.run(dataclasses.replace(settings, composer=""), tmp_path / "any")
    assert "--composer" not in unlabelled.command and unlabelled.pieces[0].text != result.pieces[0].text
    with pytest.raises(ValueError, match="Chopin, Szymanowska"):
        labelled.run(dataclasses.replace(settings, composer="Mozart"), tmp_path / "unknown")
