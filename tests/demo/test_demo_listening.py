"""The "Human or AI?" tab without a browser: the shipped excerpts, the SQLite answer store (threads writing at once,
the Wilson interval by hand, answers with their settings) and a round with the real model: two files with neutral
names, the truth only in the store, answers checked against it."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sqlite3
import threading

import pytest
import symusic
from support.demo import require_fluidsynth, audio_peak
from toccata.demo import listening_ui
from toccata.demo.answers import AnswerStore, Summary, default_answers_path, wilson_interval
from toccata.demo.engine import load_engine
from toccata.demo.listening import NO_AUDIO, ListeningTest, Round
from toccata.demo.listening_data import FOLDER, MANIFEST, load_excerpts, opening, read_tokens
from toccata.tokenization import NotewiseTokenizer

SETTINGS = {"sampler": {"sampler": "top_k", "seed": 5, "k": 8}, "beats": 32.0, "model": "test"}


@pytest.fixture(scope="module")
def engine():
    return load_engine()


@pytest.fixture
def store(tmp_path) -> AnswerStore:
    return AnswerStore(tmp_path / "nested" / "answers.sqlite")


# ------------------------------------------------------------------------------------------ the shipped excerpts


def test_the_excerpts_ship_with_attribution_and_stay_small():
    excerpts = load_excerpts()
    assert 24 <= len(excerpts) <= 40 and len({e.id for e in excerpts}) == len(excerpts)
    size = sum(path.stat().st_size for path in FOLDER.iterdir())
    assert size < 300 * 1024, f"the excerpts take {size} bytes"
    manifest = json.loads((FOLDER / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["split"] == "test" and "CC BY-NC-SA 4.0" in manifest["license"]
    tokenizer = NotewiseTokenizer()
    for excerpt in excerpts:
        assert excerpt.composer and excerpt.title and excerpt.source and "CC BY-NC-SA 4.0" in excerpt.license
        assert (
            8 <= excerpt.bars <= 16
            and excerpt.quarters == excerpt.bars * 4 * excerpt.time_signature[0] / (excerpt.time_signature[1])
        )
        notes = tokenizer.tokens_to_notes(read_tokens(excerpt))
        assert len(notes) == excerpt.notes > 20, excerpt.id
        assert notes.start.min() == 0, "an excerpt starts at its first note"
        assert notes.end.max() <= excerpt.quarters * notes.tpq, "and ends within its bars"


def test_an_opening_starts_at_the_first_note_and_cuts_notes_at_the_end():
    tokenizer = NotewiseTokenizer()
    tokens = ["wait24", "p60", "wait12", "p64", "wait24", "endp60", "endp64", "p67", "wait48", "endp67"]
    assert opening(tokenizer, tokens, 2.0) == ["p60", "wait12", "p64", "wait12", "endp60", "endp64"]
    assert opening(tokenizer, [], 4.0) == []


# ------------------------------------------------------------------------------------------ the answer store


def test_the_wilson_interval_matches_a_hand_computation():
    # 7 of 10 at z = 1.96: p = 0.7, z^2/n = 0.38416, centre = (0.7 + 0.19208) / 1.38416 = 0.644492,
    # half = 1.96 / 1.38416 * sqrt(0.7 * 0.3 / 10 + 3.8416 / 400) = 1.416021 * 0.174940 = 0.247719: 0.396773 to 0.892211
    low, high = wilson_interval(7, 10, z=1.96)
    assert low == pytest.approx(0.396773, abs=1e-5) and high == pytest.approx(0.892211, abs=1e-5)
    # all correct: the lower end is n / (n + z^2) = 10 / 13.8416, the upper end 1
    assert wilson_interval(10, 10, z=1.96) == pytest.approx((10 / 13.8416, 1.0), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)  # the default z is the exact 97.5 % quantile
    assert (low + high) / 2 == pytest.approx(0.5) and high - low == pytest.approx(2 * 0.0961, abs=2e-4)


def test_an_answer_is_recorded_once_with_the_round_settings(store):
    assert store.summary() == Summary(0, 0, 0.0, 1.0) and not store.path.exists(), "reading creates nothing"
    store.open_round("r1", "cbc044d649592e94", "B", SETTINGS, "test")
    answer = store.answer("r1", "A")
    assert not answer.correct and answer.human == "B" and answer.answer == "A"
    (row,) = store.answers()
    assert row.settings == SETTINGS and row.excerpt_id == "cbc044d649592e94" and row.model == "test"
    assert row.time.endswith("+00:00") and row.round_id == "r1" and not row.correct
    with pytest.raises(ValueError, match="already answered"):
        store.answer("r1", "B")
    with pytest.raises(ValueError, match="no such round"):
        store.answer("never-opened", "A")
    with pytest.raises(ValueError, match="must be A or B"):
        store.answer("r1", "human")
    store.open_round("r2", "x", "A", SETTINGS, "other model")
    assert store.answer("r2", "A").correct
    assert store.summary().answers == 2 and store.summary(model="test") == Summary(1, 0, *wilson_interval(0, 1))
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 0, "answered rounds leave the open table"


def test_threads_writing_at_once_lose_nothing(store):
    threads, per_thread, errors = 8, 25, []

    def listener(index: int) -> None:
        try:
            for n in range(per_thread):
                round_id = f"t{index}-{n}"
                store.open_round(round_id, f"excerpt-{n}", "AB"[n % 2], {**SETTINGS, "n": n}, "test")
                store.answer(round_id, "A")  # right on even rounds
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    workers = [threading.Thread(target=listener, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors[:3]
    summary = store.summary()
    assert summary.answers == threads * per_thread and summary.correct == threads * ((per_thread + 1) // 2)
    assert len({a.round_id for a in store.answers()}) == threads * per_thread


def test_a_round_answered_from_many_threads_at_once_counts_once(store):
    store.open_round("race", "x", "A", SETTINGS, "test")
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def race() -> None:
        barrier.wait()
        try:
            store.answer("race", "A")
            outcomes.append("recorded")
        except ValueError as err:
            outcomes.append(str(err))

    workers = [threading.Thread(target=race) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert outcomes.count("recorded") == 1 and len(outcomes) == 6
    assert store.summary().answers == 1


def test_the_default_path_is_the_environment_or_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TOCCATA_ANSWERS", str(tmp_path / "mine.sqlite"))
    assert default_answers_path() == tmp_path / "mine.sqlite"
    monkeypatch.delenv("TOCCATA_ANSWERS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_answers_path() == tmp_path / "cache" / "toccata" / "answers.sqlite"


def test_toccata_demo_takes_the_answers_path():
    from toccata.cli import build_parser

    assert build_parser().parse_args(["demo", "--answers", "votes.sqlite"]).answers == "votes.sqlite"
    assert build_parser().parse_args(["demo"]).answers is None, "None: $TOCCATA_ANSWERS or the user's cache"


def test_toccata_listening_data_writes_openings_that_load(tiny_dataset, tmp_path, capsys):
    """The maintainers' command that rebuilds the shipped excerpts (it was `python -m toccata.demo.listening_data`)."""
    from toccata.cli import main

    out = tmp_path / "listening"
    assert main(["listening-data", "--dataset", str(tiny_dataset), "--split", "test", "--out", str(out)]) == 0
    excerpts = load_excerpts(out)
    assert excerpts and f"wrote {len(excerpts)} excerpts" in capsys.readouterr().out
    assert all(read_tokens(e, out) for e in excerpts)


# ------------------------------------------------------------------------------------------ rounds with the model


def truth_of(store: AnswerStore, round_id: str) -> str:
    """Which side of an open round is human, read from the store's file (the page never gets it)."""
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT human FROM rounds WHERE round_id = ?", (round_id,)).fetchone()[0]


def open_round_row(store: AnswerStore, round_id: str) -> tuple[str, dict]:
    """(excerpt id, generator settings) of an open round."""
    with sqlite3.connect(store.path) as db:
        row = db.execute("SELECT excerpt_id, settings FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
    return row[0], json.loads(row[1])


def test_a_round_plays_a_real_and_a_generated_excerpt_and_keeps_the_truth_on_the_server(engine, store, tmp_path):
    require_fluidsynth()
    game = ListeningTest(engine, store, rng=random.Random(3))
    heard = game.new_round(tmp_path / "round")
    assert {f.name for f in dataclasses.fields(Round)} == {"id", "midi", "audio", "rolls", "seconds", "notices"}
    assert [p.name for p in heard.midi] == ["A.mid", "B.mid"] and [p.name for p in heard.audio] == ["A.wav", "B.wav"]
    assert all(audio_peak(path) > 0.01 for path in heard.audio) and not heard.notices
    human = truth_of(store, heard.id)
    tokenizer = engine.tokenizer
    heard_tokens = {side: tokenizer.midi_to_tokens(path) for side, path in zip("AB", heard.midi)}
    excerpt_id, row = open_round_row(store, heard.id)
    excerpt = next(e for e in game.excerpts if e.id == excerpt_id)
    assert heard_tokens[human] == read_tokens(excerpt), "the human side is the shipped excerpt, note for note"
    other = "B" if human == "A" else "A"
    assert heard_tokens[other] != heard_tokens[human] and len(heard_tokens[other]) > 10
    generated = tokenizer.tokens_to_notes(heard_tokens[other])
    assert generated.start.min() == 0 and generated.end.max() <= excerpt.quarters * generated.tpq
    for path in heard.midi:  # the same tempo and time signature on both sides: nothing in the file tells them apart
        score = symusic.Score(str(path))
        assert round(score.tempos[0].qpm) == round(excerpt.qpm)
        assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == excerpt.time_signature
    assert row["sampler"]["seed"] is not None and row["model"] == engine.model_label and row["qpm"] == excerpt.qpm
    assert row["kept_quarters"] == excerpt.quarters and row["prompt_beats"] is None

    reveal = game.answer(heard.id, human)
    assert reveal.answer.correct and reveal.excerpt == excerpt and reveal.summary.answers == 1
    assert excerpt.composer in reveal.markdown() and "Right" in reveal.markdown()
    wrong = game.new_round(tmp_path / "again")
    missed = "B" if truth_of(store, wrong.id) == "A" else "A"
    assert not game.answer(wrong.id, missed).answer.correct
    (first, second) = store.answers()
    assert first.settings["sampler"] == row["sampler"] and second.answer == missed
    assert game.summary() == Summary(2, 1, *wilson_interval(1, 2))


def test_rounds_put_the_human_excerpt_on_both_sides(engine, store, tmp_path):
    quiet = dataclasses.replace(engine, synth=None)
    game = ListeningTest(quiet, store, rng=random.Random(0))
    sides = {truth_of(store, game.new_round(tmp_path / str(i)).id) for i in range(6)}
    assert sides == {"A", "B"}


def test_without_a_synthesizer_a_round_offers_piano_rolls_and_midi(engine, store, tmp_path):
    game = ListeningTest(dataclasses.replace(engine, synth=None), store, rng=random.Random(1))
    heard = game.new_round(tmp_path)
    assert heard.audio is None and heard.notices == (NO_AUDIO,)
    assert [p.name for p in heard.rolls] == ["A.png", "B.png"] and all(p.is_file() for p in heard.midi)


def test_an_excerpt_heard_again_comes_in_new_bytes(engine, store, tmp_path):
    """Gradio names a served file's folder by the hash of its bytes: a repeated excerpt must not repeat its URL."""
    from PIL import Image

    excerpt = load_excerpts()[0]
    game = ListeningTest(dataclasses.replace(engine, synth=None), store, excerpts=[excerpt], rng=random.Random(4))
    real_files = []
    for index in range(2):
        heard = game.new_round(tmp_path / str(index))
        side = "AB".index(truth_of(store, heard.id))
        real_files.append((heard.midi[side], heard.rolls[side]))
        assert engine.tokenizer.midi_to_tokens(heard.midi[side]) == read_tokens(excerpt), "still the same music"
        assert Image.open(heard.rolls[side]).size == (1000, 340), "and a readable picture"
    (midi_1, roll_1), (midi_2, roll_2) = real_files
    assert midi_1.read_bytes() != midi_2.read_bytes() and roll_1.read_bytes() != roll_2.read_bytes()


def test_the_tab_handlers_never_send_the_truth_and_check_the_answer_on_the_server(engine, store):
    game = ListeningTest(dataclasses.replace(engine, synth=None), store, rng=random.Random(2))
    stand_ins = [object() for _ in range(13)]  # the handlers only use components as dict keys
    pairs = (stand_ins[3], stand_ins[4]), (stand_ins[5], stand_ins[6]), (stand_ins[8], stand_ins[9])
    view = listening_ui.ListeningView(*stand_ins[:3], pairs[0], pairs[1], stand_ins[7], pairs[2], *stand_ins[10:])
    updates = list(listening_ui.new_round(game, view))
    round_id = updates[-1][view.round_id]
    shown = json.dumps([{str(i): str(v) for i, v in enumerate(u.values())} for u in updates])
    excerpt_id, _ = open_round_row(store, round_id)
    excerpt = next(e for e in game.excerpts if e.id == excerpt_id)
    assert excerpt_id not in shown and excerpt.composer not in shown and excerpt.title not in shown
    assert "human" not in updates[-1][view.files][0].lower() and updates[-1][view.files][0].endswith("A.mid")
    human = truth_of(store, round_id)
    result = listening_ui.answer(game, view, round_id, human)
    assert result[view.round_id] is None and "Right" in result[view.reveal] and "1 answer" in result[view.results]
    assert result[view.settings]["value"]["model"] == engine.model_label
    with pytest.raises(Exception, match="already answered"):
        listening_ui.answer(game, view, round_id, human)
    with pytest.raises(Exception, match="press New round"):
        listening_ui.answer(game, view, None, "A")
    assert math.isclose(store.summary().low, wilson_interval(1, 1)[0])
