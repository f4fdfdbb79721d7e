"""`toccata generate` end to end: real processes, real files, real MIDI parsing of what they wrote."""

from __future__ import annotations

import subprocess
import sys

import pytest
import symusic

from toccata.modeling.hub import random_model, save_checkpoint
from toccata.tokenization import NotewiseTokenizer


def toccata(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toccata", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tokenizer = NotewiseTokenizer()
    folder = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(folder, random_model(tokenizer, embedding_size=16, hidden_size=24), tokenizer)


def test_generate_from_a_checkpoint_writes_variations_and_tokens(checkpoint, tmp_path):
    out = tmp_path / "piece.mid"
    args = ["generate", "--model", str(checkpoint), "--beats", "8", "--seed", "5", "--num-samples", "2"]
    result = toccata(*args, "--save-tokens", "--sampler", "top_n", "--n", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    for index in (1, 2):
        score = symusic.Score(str(tmp_path / f"piece-{index}.mid"))
        assert score.note_num() > 0
        text = (tmp_path / f"piece-{index}.txt").read_text()
        assert text.startswith("# toccata-notewise")
    assert "seed 5" in result.stderr


def test_same_seed_gives_the_same_file(checkpoint, tmp_path):
    for name in ("a.mid", "b.mid"):
        result = toccata("generate", "--model", str(checkpoint), "--seconds", "4", "--seed", "9", "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


def test_generate_continues_a_corpus_prompt_with_random_weights(tmp_path):
    out = tmp_path / "cont.mid"
    result = toccata(
        "generate", "--random-weights", "--prompt", "corpus:bach/bwv66.6", "--prompt-beats", "4", "--beats", "4",
        "--sampler", "greedy", "-o", str(out),
    )
    assert result.returncode == 0, result.stderr
    assert symusic.Score(str(out)).note_num() > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--random-weights", "--sampler", "loud"], "sampler must be one of"),
        (["--random-weights", "--temperature", "0"], "temperature must be > 0"),
        (["--model", "/nonexistent/checkpoint"], "not a Toccata checkpoint"),
        (["--random-weights", "--prompt", "/nonexistent.mid"], "nonexistent.mid"),
    ],
)
def test_bad_arguments_give_one_clear_line(args, message, tmp_path):
    result = toccata("generate", *args, "-o", str(tmp_path / "x.mid"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_int8_decoding_is_reproducible_and_differs_from_float32(checkpoint, tmp_path):
    made = []
    for name, extra in (("a", ["--int8"]), ("b", ["--int8"]), ("c", [])):
        out = tmp_path / f"{name}.mid"
        done = toccata("generate", "--model", str(checkpoint), "--seed", "4", "--beats", "16", *extra, "-o", str(out))
        assert done.returncode == 0, done.stderr
        made.append(out.read_bytes())
    assert made[0] == made[1] and made[0] != made[2]
    assert symusic.Score.from_midi(made[0]).note_num() > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--beats", "0"], "beats must be a positive number, got 0"),  # was: 64 beats, silently
        (["--beats", "inf"], "beats must be a positive number, got inf"),
        (["--beats", "1e9"], "beats is at most 50,000"),
        (["--seconds", "1e300"], "beats; at most 50,000"),
        (["--tokens", "1000000000"], "max_new_tokens is at most 1,000,000"),
        (["--beats", "4", "--prompt-beats", "inf"], "prompt_beats must be a positive number"),
        (["--beats", "4", "--max-silence-beats", "inf"], "max_silence_beats must be a number of beats > 0"),
        (["--beats", "4", "--qpm", "1e9"], "qpm must be from 1 to 1200"),
        (["--beats", "4", "--repeat-penalty", "-1"], "repeat_penalty must be a number in [0, 20]"),
    ],
)
def test_lengths_and_limits_that_cannot_be_met_give_one_clear_line(args, message, tmp_path, capsys):
    """In-process (`toccata.cli.main`): each was a traceback, a silent default or an endless run before."""
    from toccata.cli import main

    out = tmp_path / "x.mid"
    assert main(["generate", "--random-weights", "--no-audio", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


def test_outputs_that_cannot_be_written_are_refused_before_composing(tmp_path, capsys):
    from toccata.cli import main

    folder, plain = tmp_path / "folder", tmp_path / "plain"
    folder.mkdir()
    plain.write_text("not a folder")
    cases = [
        (folder, "is a folder: give the MIDI file a file name"),
        (plain / "x.mid", "plain is a file, not a folder"),
        (tmp_path / "clash.txt", "name the MIDI file (.mid)"),  # its tokens would have overwritten it
        (tmp_path / "clash.wav", "name the MIDI file (.mid)"),
    ]
    for output, message in cases:
        assert main(["generate", "--random-weights", "--no-audio", "--beats", "4", "-o", str(output)]) == 2
        assert message in capsys.readouterr().err
    assert plain.read_text() == "not a folder" and not any(folder.iterdir())


@pytest.mark.parametrize(
    "env, args, expected",
    [({}, [], 1), ({"OMP_NUM_THREADS": "2"}, [], 2), ({"OMP_NUM_THREADS": "2"}, ["--threads", "1"], 1)],
    ids=["default-one", "env", "flag-over-env"],
)
def test_generate_decodes_on_one_torch_thread_unless_told(env, args, expected, tmp_path, monkeypatch):
    """torch's default (a thread per core) made batch-1 decoding 8x slower beside one busy core (issue 35)."""
    import torch
    from toccata.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # torch's default on a 3-core machine: what the command left alone
    try:
        out = tmp_path / "x.mid"
        command = ["generate", "--random-weights", "--no-audio", "--beats", "1", "--seed", "1", *args, "-o", str(out)]
        assert main(command) == 0
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_each_variation_prints_the_command_that_writes_it_again(checkpoint, tmp_path):
    """`--num-samples 2 --seed 42` printed "seed 42" beside both, and `--seed 42` alone gave neither of them."""
    import shlex

    out = tmp_path / "piece.mid"
    done = toccata("generate", "--model", str(checkpoint), "--beats", "8", "--seed", "42", "--num-samples", "2",
                   "--repeat-penalty", "1.5", "--no-audio", "-o", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    second = tmp_path / "piece-2.mid"
    assert f"wrote {second} (" in done.stderr and "seed 43)" in done.stderr
    again = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if line.startswith("  this piece again: ")]
    assert len(again) == 2 and again[1].endswith(f"-o {second}") and "--num-samples" not in again[1]
    assert "--repeat-penalty 1.5" in again[1]
    written = second.read_bytes()
    second.unlink()
    rerun = toccata(*shlex.split(again[1])[1:], "--no-audio")
    assert rerun.returncode == 0, rerun.stderr
    assert second.read_bytes() == written


@pytest.mark.parametrize("where, bars", [("start", "bars 1\u20132"), ("end", "bars 8\u20139")])
def test_the_prompt_keeps_whole_bars_from_its_start_or_end_and_the_output_says_which(where, bars, tmp_path):
    out = tmp_path / "cont.mid"
    done = toccata("generate", "--random-weights", "--prompt", "corpus:bach/bwv66.6", "--prompt-beats", "9",
                   "--prompt-from", where, "--beats", "2", "--seed", "0", "--no-audio", "-o", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"beats 0\u20138 are the prompt ({bars} of corpus:bach/bwv66.6); the rest is new" in done.stderr


def test_a_drum_prompt_is_said_to_give_silence_and_an_empty_piece_is_not_written(checkpoint, tmp_path):
    """Both passed as success without a word: composing from silence for `--prompt drums.mid`, and writing a piece
    without notes for `--calmness 10 --no-rest-guard`."""
    from support.midi_files import make_score

    drums = tmp_path / "drums.mid"
    make_score([], drum_track=[(0, 240, 36), (480, 720, 38)]).dump_midi(str(drums))
    out = tmp_path / "a.mid"
    done = toccata("generate", "--model", str(checkpoint), "--prompt", str(drums), "--beats", "4", "--seed", "1",
                   "--no-audio", "-o", str(out))  # fmt: skip
    assert done.returncode == 0 and out.exists(), done.stderr
    assert "warning: the prompt" in done.stderr and "this was composed from silence" in done.stderr
    empty = tmp_path / "empty.mid"
    done = toccata("generate", "--model", str(checkpoint), "--calmness", "10", "--no-rest-guard", "--beats", "4",
                   "--seed", "1", "--no-audio", "-o", str(empty))  # fmt: skip
    assert done.returncode == 2 and not empty.exists()
    assert f"error: {empty}: no new notes" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("switch", [["--max-part-rest-beats", "6"], ["--no-part-entry"]])
def test_the_part_entry_switches_reach_a_duo_and_its_command_again(switch, tmp_path):
    import shlex

    duo = NotewiseTokenizer(instruments=("piano", "violin"))
    folder = save_checkpoint(tmp_path / "duo", random_model(duo, embedding_size=16, hidden_size=24), duo)
    out = tmp_path / "duo.mid"
    done = toccata("generate", "--model", str(folder), "--beats", "16", "--seed", "3", "--num-samples", "2",
                   "--no-audio", *switch, "-o", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if line.startswith("  this piece again: ")][1]
    assert " ".join(switch) in again
    out = tmp_path / "duo-2.mid"
    written = out.read_bytes()
    out.unlink()
    rerun = toccata(*shlex.split(again)[1:], "--no-audio")
    assert rerun.returncode == 0, rerun.stderr
    assert out.read_bytes() == written
    assert sorted(track.name for track in symusic.Score(str(out)).tracks) in (["Piano", "Violin"], ["Piano"])
