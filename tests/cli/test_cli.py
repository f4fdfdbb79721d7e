"""The `toccata` command: the README's main job and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import symusic

from toccata.tokenization import NotewiseTokenizer, parse_token_text
from toccata.tokenization.midi_io import music21_corpus_midi


def toccata(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toccata", *args], capture_output=True, text=True, cwd=cwd)


def test_tokenize_a_corpus_work_and_detokenize_it_back(tmp_path):
    text_path, midi_path = tmp_path / "bwv66.6.txt", tmp_path / "bwv66.6.mid"
    result = toccata("tokenize", "corpus:bach/bwv66.6", "-o", str(text_path))
    assert result.returncode == 0, result.stderr
    assert str(text_path) in result.stderr
    encoding = parse_token_text(text_path.read_text())
    assert encoding.meta.qpm == 96.0 and len(encoding.tokens) > 300

    result = toccata("detokenize", str(text_path), "-o", str(midi_path))
    assert result.returncode == 0, result.stderr
    assert str(midi_path) in result.stderr
    score = symusic.Score(str(midi_path))
    assert score.tempos[0].qpm == encoding.meta.qpm
    assert NotewiseTokenizer().midi_to_tokens(midi_path) == encoding.tokens


def test_tokenize_prints_to_stdout_without_output(tmp_path):
    path = tmp_path / "x.mid"
    NotewiseTokenizer().save_midi("p60 wait12 endp60", path)
    result = toccata("tokenize", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "p60 wait12 endp60"


def test_bad_file_gives_one_clear_line_and_status_2(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\xff\xff\x01\xe0")
    result = toccata("tokenize", str(bad), "--safe")
    assert result.returncode == 2
    assert "broken.mid" in result.stderr and "tracks" in result.stderr
    assert "Traceback" not in result.stderr
    missing = toccata("tokenize", str(tmp_path / "nope.mid"))
    assert missing.returncode == 2 and "nope.mid" in missing.stderr
    unknown = toccata("tokenize", "corpus:nobody/nothing")
    assert unknown.returncode == 2 and "corpus:nobody/nothing" in unknown.stderr


def test_clara_format_both_ways(tmp_path):
    text_path, midi_path = tmp_path / "her.txt", tmp_path / "her.mid"
    text_path.write_text("p27 p31 wait6 endp27 endp31 wait6 p34 endp34 wait2\n")  # MIDI 60, 64, then 67
    result = toccata("detokenize", str(text_path), "--format", "clara", "--qpm", "90", "-o", str(midi_path))
    assert result.returncode == 0, result.stderr
    score = symusic.Score(str(midi_path))
    assert sorted(n.pitch for n in score.tracks[0].notes) == [60, 64, 67]
    assert round(score.tempos[0].qpm, 3) == 90  # MIDI stores whole microseconds per quarter
    again = toccata("tokenize", str(midi_path), "--format", "clara")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == text_path.read_text().split()


def test_detokenize_refuses_a_tempo_or_time_signature_no_midi_file_can_carry(tmp_path):
    """One line naming the file and exit status 2, and no MIDI file written (it would not read back)."""
    text = tmp_path / "piece.txt"
    out = tmp_path / "piece.mid"
    cases = [
        ("# toccata-notewise qpm=120 time_signature=300/4\np60 wait12 endp60\n", [], "time signature must be N/D"),
        ("# toccata-notewise qpm=0 time_signature=4/4\np60 wait12 endp60\n", [], "tempo must be from 1 to 1200"),
        ("p60 wait12 endp60\n", ["--qpm", "nan"], "tempo must be from 1 to 1200"),
        ("p60 wait12 endp60\n", ["--qpm", "0"], "tempo must be from 1 to 1200"),
        ("p60 wait12 endp60\n", ["--qpm", "-1"], "tempo must be from 1 to 1200"),
    ]
    for body, extra, phrase in cases:
        text.write_text(body)
        result = toccata("detokenize", str(text), *extra, "-o", str(out))
        assert result.returncode == 2, result.stderr
        assert phrase in result.stderr and "piece.txt" in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()
    text.write_text("p60 wait12 endp60\n")
    assert toccata("detokenize", str(text), "--qpm", "1200", "-o", str(out)).returncode == 0
    assert round(symusic.Score(str(out)).tempos[0].qpm) == 1200


def test_detokenize_reads_the_miditok_schemes_tokenize_writes(tmp_path):
    """`tokenize --tokenizer remi` text came back as an empty MIDI file with exit status 0."""
    text, back = tmp_path / "remi.txt", tmp_path / "back.mid"
    assert toccata("tokenize", "corpus:bach/bwv66.6", "--tokenizer", "remi", "-o", str(text)).returncode == 0
    result = toccata("detokenize", str(text), "-o", str(back))
    assert result.returncode == 0, result.stderr
    original = symusic.Score.from_midi(music21_corpus_midi("bach/bwv66.6"))
    assert symusic.Score(str(back)).note_num() == original.note_num() > 100
    text.write_text("# toccata-mystery qpm=120 time_signature=4/4\nA B C\n")
    refused = toccata("detokenize", str(text), "-o", str(back))
    assert refused.returncode == 2 and "'mystery' tokenization: pass --scheme FOLDER" in refused.stderr


def test_detokenize_gives_a_duo_models_text_a_track_per_instrument(tmp_path):
    """`generate --instruments piano,violin --save-tokens` text: the violin's words were dropped on the way back."""
    text, back = tmp_path / "duo.txt", tmp_path / "duo.mid"
    text.write_text("# toccata-notewise qpm=100 time_signature=3/4\np48 v67 wait12 endp48 endv67 c43 wait6 endc43\n")
    result = toccata("detokenize", str(text), "-o", str(back))
    assert result.returncode == 0, result.stderr
    score = symusic.Score(str(back))
    tracks = {(t.name, t.program): [(n.pitch, n.time, n.duration) for n in t.notes] for t in score.tracks}
    tpq = score.ticks_per_quarter
    assert tracks == {
        ("Piano", 0): [(48, 0, tpq)],
        ("Violin", 40): [(67, 0, tpq)],
        ("Cello", 42): [(43, tpq, tpq // 2)],
    }
    # and back: with --instruments the string parts keep their own words (without it they join the piano)
    again = toccata("tokenize", str(back), "--instruments", "piano,violin,cello")
    assert again.returncode == 0, again.stderr
    assert parse_token_text(again.stdout).tokens == "p48 v67 wait12 endp48 endv67 c43 wait6 endc43".split()


def test_empty_results_are_errors_not_silent_successes(tmp_path):
    """A drum-only file tokenized to 0 tokens, and text without notewise words detokenized to 0 notes, both exited 0."""
    from support.midi_files import make_score

    drums = tmp_path / "drums.mid"
    make_score([], drum_track=[(0, 240, 36), (480, 720, 38)]).dump_midi(str(drums))
    for extra in ([], ["--format", "clara"]):  # (miditok's remi keeps drums: it writes their words)
        out = tmp_path / "drums.txt"
        result = toccata("tokenize", str(drums), *extra, "-o", str(out))
        assert result.returncode == 2, (extra, result.stderr)
        assert "drums.mid: no notes to tokenize" in result.stderr and not out.exists()
    words = tmp_path / "hello.txt"
    words.write_text("hello world\n")
    midi = tmp_path / "hello.mid"
    result = toccata("detokenize", str(words), "-o", str(midi))
    assert result.returncode == 2 and "hello.txt: no notes in its words" in result.stderr and not midi.exists()


def test_save_for_hub_writes_an_embedded_checkpoint_with_its_code_and_refuses_bad_folders(tmp_path):
    dest = tmp_path / "critic"
    result = toccata("save", "critic", str(dest), "--for-hub")
    assert result.returncode == 0, result.stderr
    assert f"wrote {dest} with its code (" in result.stderr and "modeling_notewise_lstm.py" in result.stderr
    config = json.loads((dest / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "modeling_notewise_lstm.NotewiseLSTMForSequenceClassification"
    )
    assert {"tokenization_notewise.py", "tokenization_base.py", "midi_io.py"} <= {p.name for p in dest.glob("*.py")}
    plain = toccata("save", str(dest), str(tmp_path / "plain"))  # without --for-hub: a folder without code
    assert plain.returncode == 0, plain.stderr
    assert not list((tmp_path / "plain").glob("*.py")) and (tmp_path / "plain" / "model.safetensors").is_file()
    again = toccata("save", "critic", str(dest), "--for-hub")
    assert again.returncode == 2 and f"{dest} exists and is not empty" in again.stderr
    missing = toccata("save", str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert missing.returncode == 2 and "nowhere: not a checkpoint folder" in missing.stderr
    assert "Traceback" not in again.stderr + missing.stderr
