"""FluidSynth rendering: in this process through libfluidsynth, the same WAV and FLAC bytes as the `fluidsynth` command,
and clear errors. Real FluidSynth and the real GM soundfont (skipped on a machine without them, failing under CI=true)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support.demo import audio_peak, audio_samples, require, require_fluidsynth
from toccata.tokenization import NotewiseTokenizer

from toccata.rendering import FluidSynthLibrary, RenderWorkers, Synth

PIANO = NotewiseTokenizer()
DUO = NotewiseTokenizer(instruments=("piano", "violin"))


def synth_or_skip() -> Synth:
    require_fluidsynth()
    require(FluidSynthLibrary.shared() is not None, "libfluidsynth (installed with FluidSynth)")
    synth = Synth.find()
    require(synth.binary is not None, "the fluidsynth command")
    return synth


def in_threads(work: Callable[[int], None], count: int) -> None:
    """`work(0)` ... `work(count - 1)` at once, each in its own thread; the first failure is raised here."""
    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(work, index) for index in range(count)]:
            future.result()


def piano_midi(path: Path) -> Path:
    """A few bars with chords, a trill and a held bass: reverb tails and overlapping voices."""
    words = ["p36", "p60", "p64", "wait12", "endp60", "endp64"]
    for _ in range(6):
        words += ["p72", "wait2", "endp72", "p74", "wait2", "endp74"]
    words += ["p67", "p71", "wait24", "endp67", "endp71", "endp36"]
    PIANO.save_midi(words, path)
    return path


def test_in_process_render_writes_the_commands_wav_byte_for_byte(tmp_path):
    synth = synth_or_skip()
    command = replace(synth, engine="command")
    duo = tmp_path / "duo.mid"
    DUO.save_midi(["p48", "v67", "wait24", "endv67", "v69", "wait24", "endv69", "endp48"], duo)
    for midi in (piano_midi(tmp_path / "piano.mid"), duo):
        ours = synth.render(midi, tmp_path / f"{midi.stem}-lib.wav").read_bytes()
        theirs = command.render(midi, tmp_path / f"{midi.stem}-cmd.wav").read_bytes()
        assert ours == theirs, f"{midi.name}: in-process audio differs from the fluidsynth command's"
        assert audio_peak(tmp_path / f"{midi.stem}-lib.wav") > 0.01
    # FLAC (by the suffix): the command's bytes too, and the WAV's samples.
    flac = synth.render(tmp_path / "piano.mid", tmp_path / "piano-lib.flac")
    assert flac.read_bytes() == command.render(tmp_path / "piano.mid", tmp_path / "piano-cmd.flac").read_bytes()
    assert flac.read_bytes()[:4] == b"fLaC" and flac.stat().st_size < 0.7 * (tmp_path / "piano-lib.wav").stat().st_size
    rate, samples = audio_samples(flac)
    assert rate == synth.sample_rate and samples.shape[1] == 2
    wav = audio_samples(tmp_path / "piano-lib.wav")[1]
    # The same synthesis: FluidSynth dithers its 16-bit WAV samples, libsndfile rounds the FLAC's, so at most 1 apart.
    assert samples.shape == wav.shape and np.abs(samples.astype(int) - wav).max() <= 1
    # A second render of the same file in the same process starts from a fresh synthesizer: same bytes again.
    again = synth.render(tmp_path / "piano.mid", tmp_path / "again.wav").read_bytes()
    assert again == (tmp_path / "piano-cmd.wav").read_bytes()


@pytest.mark.parametrize("lanes", [1, 3])
def test_renders_from_several_threads_share_the_lanes_and_stay_exact(tmp_path, lanes):
    synth = synth_or_skip()
    library = FluidSynthLibrary(FluidSynthLibrary.shared().lib, lanes=lanes)  # 3 lanes: 3 renders at once
    midi = piano_midi(tmp_path / "piano.mid")
    expected = replace(synth, engine="command").render(midi, tmp_path / "command.wav").read_bytes()

    def render(index: int) -> None:
        for repeat in range(2):
            wav = tmp_path / f"t{index}-{repeat}.wav"
            library.render(synth, midi, wav)
            assert wav.read_bytes() == expected, f"thread {index}: audio differs from the command's"

    in_threads(render, 6)
    assert library.lanes.qsize() == lanes  # every lane came back
    assert sum(bool(fonts) for fonts in list(library.lanes.queue)) >= 1


@pytest.mark.parametrize("engine", ["library", "workers"])
def test_render_errors_name_the_file(tmp_path, engine):
    synth = replace(synth_or_skip(), engine=engine)
    with pytest.raises(RuntimeError, match="missing.mid: no such file"):
        synth.render(tmp_path / "missing.mid", tmp_path / "out.wav")
    midi = piano_midi(tmp_path / "piano.mid")
    with pytest.raises(RuntimeError, match="could not write"):
        synth.render(midi, tmp_path / "no-such-folder" / "out.wav")
    with pytest.raises(ValueError, match=r"out.mp3: name it .wav or .flac"):
        synth.render(midi, tmp_path / "out.mp3")
    missing_font = replace(synth, soundfont=str(tmp_path / "none.sf2"))
    with pytest.raises(RuntimeError, match="could not load the soundfont"):
        missing_font.render(midi, tmp_path / "out.wav")
    # the process's synthesizer still works after the failures
    assert audio_peak(synth.render(midi, tmp_path / "ok.wav")) > 0.01


def test_without_the_library_the_command_renders(tmp_path):
    """TOCCATA_FLUIDSYNTH_LIBRARY=none: no libfluidsynth, so `Synth.find()` relies on the command and still renders."""
    synth_or_skip()
    midi = piano_midi(tmp_path / "piano.mid")
    code = (
        "import sys; from pathlib import Path; from toccata.rendering import FluidSynthLibrary, RenderWorkers, Synth\n"
        "assert FluidSynthLibrary.shared() is None\n"
        "print(Synth.find().render(Path(sys.argv[1]), Path(sys.argv[2])))\n"
    )
    env = {"TOCCATA_FLUIDSYNTH_LIBRARY": "none"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(midi), str(tmp_path / "cmd.wav")],
        env={**os.environ, **env},
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert audio_peak(tmp_path / "cmd.wav") > 0.01


def test_render_workers_write_the_commands_bytes_in_parallel_and_survive_a_crash(tmp_path):
    synth = replace(synth_or_skip(), engine="workers")
    workers = RenderWorkers(2)
    midi = piano_midi(tmp_path / "piano.mid")
    expected = replace(synth, engine="command").render(midi, tmp_path / "command.wav").read_bytes()

    def render(index: int) -> None:
        workers.render(synth, midi, tmp_path / f"w{index}.wav")
        assert (tmp_path / f"w{index}.wav").read_bytes() == expected, f"render {index} differs from the command's"

    in_threads(render, 4)
    processes = [worker for worker in list(workers.idle.queue) if worker is not None]
    assert len(processes) == 2 and all(worker.poll() is None for worker in processes)  # two stayed up
    # A worker killed between renders is replaced: the next render still succeeds, in a fresh process.
    for worker in processes:
        worker.kill()
        worker.wait()
    workers.render(synth, midi, tmp_path / "after.wav")
    assert (tmp_path / "after.wav").read_bytes() == expected
    # The engine the demo uses goes through the process's shared workers, and writes FLAC as the command does.
    synth.render(midi, tmp_path / "shared.wav")
    assert (tmp_path / "shared.wav").read_bytes() == expected
    flac = replace(synth, engine="command").render(midi, tmp_path / "command.flac").read_bytes()
    assert synth.render(midi, tmp_path / "shared.flac").read_bytes() == flac
    for worker in list(workers.idle.queue):
        if worker is not None:
            worker.stdin.close()
            worker.wait(10)


def test_a_render_worker_that_cannot_start_is_a_clear_error(tmp_path, monkeypatch):
    synth = replace(synth_or_skip(), engine="workers")
    midi = piano_midi(tmp_path / "piano.mid")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(RuntimeError, match="render worker could not start .* for piano.mid"):
        RenderWorkers(1).render(synth, midi, tmp_path / "out.wav")
