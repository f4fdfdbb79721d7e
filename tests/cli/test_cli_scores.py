"""Scores where users have them, and piano rolls of any piece: every command that takes a MIDI file takes a score
(read by the dataset builder's safe score reader), and `toccata roll` and `toccata look` draw with the demo's roll."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import symusic
from PIL import Image, ImageDraw
from toccata.tokenization import NotewiseTokenizer, parse_token_text
from toccata.tokenization.score_io import read_score_file

from toccata.cli import main
from toccata.rendering.roll import CONTINUATION_COLOUR, MARGIN_RIGHT, PART_COLOURS, SIZE, _legend

TOK = NotewiseTokenizer()


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict[str, Path]:
    """Scores of music21's corpus as a user has them: the chorale's own .mxl, the same exported as .musicxml, a
    Palestrina **kern file and an ABC reel."""
    from music21 import corpus

    folder = tmp_path_factory.mktemp("scores")
    found = {
        "mxl": shutil.copy(corpus.getWork("bach/bwv66.6"), folder / "chorale.mxl"),
        "krn": shutil.copy(corpus.getWork("palestrina/Credo_67_c"), folder / "credo.krn"),
        "abc": shutil.copy(corpus.getWork("ryansMammoth/PaddyMilesFricasseeReel"), folder / "reel.abc"),
    }
    found["musicxml"] = Path(corpus.parse("bach/bwv66.6").write("musicxml", fp=folder / "chorale.musicxml"))
    return {kind: Path(path) for kind, path in found.items()}


def has_colour(png: Path, hex_colour: str) -> bool:
    """Whether the image has pixels of exactly `hex_colour`."""
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return bool((np.asarray(Image.open(png).convert("RGB")) == rgb).all(axis=-1).any())


def legend_reads(png: Path, caption: str, others: tuple[str, ...] = (), row: int = 0) -> bool:
    """Whether the legend of the roll (the `row`-th of a stacked image) is the one `caption` and `others` draw."""
    expected = Image.new("P", SIZE, "white")
    _legend(ImageDraw.Draw(expected), SIZE[0] - MARGIN_RIGHT, SIZE[1] - 4, prompt=False, others=others, caption=caption)
    box = expected.getbbox()
    drawn = Image.open(png).convert("RGB").crop((box[0], box[1] + row * SIZE[1], box[2], box[3] + row * SIZE[1]))
    return np.array_equal(np.asarray(drawn), np.asarray(expected.convert("RGB").crop(box)))


@pytest.mark.parametrize("kind", ["musicxml", "mxl", "krn", "abc"])
def test_tokenize_reads_a_score_as_the_dataset_builder_does(scores, kind, tmp_path, capsys):
    """`toccata tokenize piece.krn` refused with "not a Standard MIDI File"."""
    out = tmp_path / "piece.txt"
    assert main(["tokenize", str(scores[kind]), "-o", str(out)]) == 0, capsys.readouterr().err
    tokens = parse_token_text(out.read_text()).tokens
    assert tokens == TOK.midi_to_tokens(read_score_file(scores[kind]).midi) and len(tokens) > 50


def test_generate_continues_a_score_and_the_critic_scores_one(scores, tmp_path, capsys):
    out = tmp_path / "continued.mid"
    args = ["generate", "--random-weights", "--seed", "3", "--beats", "4", "--no-audio", "--save-tokens"]
    assert main([*args, "--prompt", str(scores["musicxml"]), "--prompt-beats", "4", "-o", str(out)]) == 0
    prompt = TOK.excerpt(TOK.midi_to_tokens(read_score_file(scores["musicxml"]).midi), 0, 4)  # its first 4/4 bar
    assert parse_token_text(out.with_suffix(".txt").read_text()).tokens[: len(prompt)] == prompt
    capsys.readouterr()
    assert main(["critic", "score", str(scores["krn"])]) == 0
    name, said = capsys.readouterr().out.strip().split("\t")  # "FILE<TAB>P(human) 0.412, the mean over ..."
    probability = said.removeprefix("P(human) ").split(",")[0]
    assert 0.0 <= float(probability) <= 1.0 and name == str(scores["krn"])


def test_a_bad_score_is_one_line_naming_the_file(tmp_path, capsys):
    broken = tmp_path / "broken.musicxml"
    broken.write_text("<score-partwise><part id='P1'><measure")
    assert main(["tokenize", str(broken)]) == 2
    assert f"toccata tokenize: error: {broken}: music21 cannot parse this score" in capsys.readouterr().err


def duo(path: Path) -> Path:
    """A piano track and a violin track (GM 40), two bars."""
    score = symusic.Score(480)
    for name, program, pitches in (("Piano", 0, [48, 55, 60]), ("Violin", 40, [72, 74, 76, 77])):
        track = symusic.Track(name=name, program=program)
        track.notes.extend(symusic.Note(480 * i, 480, pitch, 80) for i, pitch in enumerate(pitches * 2))
        score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_roll_draws_any_piece_with_its_parts_in_their_colours(scores, tmp_path, capsys):
    roll = tmp_path / "roll.png"
    assert main(["roll", str(duo(tmp_path / "duo.mid")), "-o", str(roll)]) == 0, capsys.readouterr().err
    assert Image.open(roll).size == SIZE
    assert has_colour(roll, CONTINUATION_COLOUR) and has_colour(roll, PART_COLOURS["violin"])
    assert legend_reads(roll, "piano", others=("violin",))
    compared = tmp_path / "compared.png"
    assert main(["roll", str(tmp_path / "duo.mid"), "--compare", str(scores["krn"]), "-o", str(compared)]) == 0
    assert Image.open(compared).size == (SIZE[0], 2 * SIZE[1])  # one roll above the other
    lower = tmp_path / "lower.png"
    Image.open(compared).crop((0, SIZE[1], SIZE[0], 2 * SIZE[1])).save(lower)
    assert has_colour(lower, CONTINUATION_COLOUR) and not has_colour(lower, PART_COLOURS["violin"])
    assert legend_reads(compared, "piano", others=("violin",)) and legend_reads(compared, "piano", row=1)
    capsys.readouterr()
    assert main(["roll", str(tmp_path / "duo.mid"), "-o", str(tmp_path / "roll.jpg")]) == 2
    assert "a piano roll is a PNG image" in capsys.readouterr().err


def test_the_cli_says_in_one_line_how_many_notes_a_file_never_switched_off(tmp_path, capsys):
    score = symusic.Score(480)
    track = symusic.Track("Piano", program=0)
    track.notes.append(symusic.Note(0, 480, 60, 80))
    score.tracks.append(track)
    data = bytearray(score.dumps_midi())
    off = data.rindex(bytes([0x80, 60]))  # the note-off of C4 (symusic writes explicit note-offs)
    data[off : off + 2] = bytes([0xB0, 1])  # becomes a modulation wheel message: C4 is never switched off
    path = tmp_path / "held.mid"
    path.write_bytes(bytes(data))
    assert main(["tokenize", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"toccata tokenize: warning: {path}: 1 note(s) never switched off, held to the end of their track" in err


def test_look_labels_held_out_pieces_as_such_not_as_a_continuation(tiny_dataset, tmp_path):
    from toccata.modeling.hub import random_model, save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "ckpt", random_model(TOK, hidden_size=16, embedding_size=8), TOK)
    out = tmp_path / "look"
    args = [str(checkpoint), "--dataset", str(tiny_dataset), "--samples", "1", "--beats", "4", "--out", str(out)]
    assert main(["look", *args]) == 0
    assert legend_reads(out / "heldout-0.png", "test piece")
    assert legend_reads(out / "sample-0.png", "generated")
