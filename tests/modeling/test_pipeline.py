"""compose(): prompt MIDI + sampler + guards -> pieces. Counts, lengths, seeds, prompts from music21's corpus, endings,
cancellation and the errors a caller sees, all on a random-weight tiny model with the real notewise tokenizer."""

from __future__ import annotations

import threading

import pytest
import symusic
import torch
from support.models import MODEL, TOK, tiny_model, walk  # walk: the strict grammar checker
from toccata.modeling import (
    SAMPLERS,
    GenerationCancelled,
    GenerationRequest,
    GuardSettings,
    NotewiseLSTMConfig,
    NotewiseLSTMForCausalLM,
    SamplerSettings,
    compose,
)
from toccata.modeling.pipeline import EMPTY_PROMPT, describe_prompt
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import music21_corpus_midi

SPQ, MAX_WAIT = TOK.steps_per_quarter, TOK.max_wait


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bach() -> bytes:
    return music21_corpus_midi("bach/bwv66.6")


def steps(tokens: list[str]) -> int:
    return sum(int(t[4:]) for t in tokens if t.startswith("wait"))


def sounding_after(tokens: list[str]) -> set[str]:
    sounding: set[str] = set()
    for token in tokens:
        if token.startswith("endp"):
            sounding.discard(token[4:])
        elif token.startswith("p"):
            sounding.add(token[1:])
    return sounding


def assert_ends_in_sound(tokens: list[str]) -> None:
    """The last token is not a wait taken after every note had ended."""
    assert tokens, "empty piece"
    if tokens[-1].startswith("wait"):
        assert sounding_after(tokens[:-1]), f"ends in silence: ...{tokens[-6:]}"


def score_quarters(score: symusic.Score) -> float:
    return score.end() / score.tpq


# ------------------------------------------------------------------------------------------------ every sampler


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_sampler_gives_num_samples_valid_pieces_of_the_asked_length(sampler):
    beats = 12.0
    request = GenerationRequest(sampler=SamplerSettings(sampler, seed=3), beats=beats, num_samples=3)
    pieces = compose(MODEL, TOK, request)
    assert len(pieces) == 3
    for piece in pieces:
        assert piece.prompt_length == 0 and piece.prompt_quarters == 0
        assert len(piece.score.tracks) == 1 and len(piece.score.tracks[0].notes) > 0
        ids = TOK.convert_tokens_to_ids(piece.tokens)
        assert walk(ids).violations == []
        assert_ends_in_sound(piece.tokens)
        length = steps(piece.tokens) / SPQ
        assert beats - MAX_WAIT / SPQ <= length <= beats  # the asked length, less at most one trimmed rest
        assert score_quarters(piece.score) == pytest.approx(length)
        assert piece.settings["sampler"]["seed"] == 3 and piece.settings["sampler"]["sampler"] == sampler
        assert piece.text.startswith("# toccata-notewise qpm=120") and piece.text.split("\n")[1] == " ".join(
            piece.tokens
        )


@pytest.mark.parametrize("sampler", ["top_n", "weighted", "top_k", "mixed"])
def test_same_request_and_seed_repeat_and_another_seed_differs(sampler):
    def tokens(seed):
        request = GenerationRequest(sampler=SamplerSettings(sampler, seed=seed, p_best=0.6), beats=8, num_samples=2)
        return [piece.tokens for piece in compose(MODEL, TOK, request)]

    first = tokens(11)
    assert tokens(11) == first
    assert tokens(12) != first


def test_each_variation_is_the_piece_its_own_seed_makes_alone():
    """Variation i is seeded with seed + i: `--seed 42 --num-samples 3` printed seed 42 beside every variation, and
    `--seed 42` alone gave none of them (one generator drew for the whole batch)."""
    request = GenerationRequest(sampler=SamplerSettings("top_k", seed=40), beats=8, num_samples=3)
    pieces = compose(MODEL, TOK, request)
    for index, piece in enumerate(pieces):
        assert piece.settings["piece_seed"] == 40 + index and piece.settings["sampler"]["seed"] == 40
        alone = GenerationRequest(sampler=SamplerSettings("top_k", seed=40 + index), beats=8)
        assert compose(MODEL, TOK, alone)[0].tokens == piece.tokens
    assert len({tuple(piece.tokens) for piece in pieces}) == 3


def test_a_request_without_seed_records_the_seed_it_drew_and_that_seed_repeats_it():
    piece = compose(MODEL, TOK, GenerationRequest(sampler=SamplerSettings("top_k"), beats=8))[0]
    seed = piece.settings["sampler"]["seed"]
    assert isinstance(seed, int)
    again = compose(MODEL, TOK, GenerationRequest(sampler=SamplerSettings("top_k", seed=seed), beats=8))[0]
    assert again.tokens == piece.tokens


# ------------------------------------------------------------------------------------------------ prompts


@pytest.mark.parametrize(
    "prompt_from, prompt_beats, bars",
    [("end", 4.0, (9, 9)), ("end", 8.0, (8, 9)), ("start", 8.0, (1, 2)), ("start", 10.0, (1, 2)), ("start", 2.0, (1, 1))],
)
def test_a_corpus_prompt_is_kept_in_whole_bars_and_continued(bach, prompt_from, prompt_beats, bars):
    """The chorale (9 bars of 4/4): its opening or closing bars, as many whole bars as fit (at least one)."""
    beats = 8.0
    request = GenerationRequest(
        sampler=SamplerSettings("top_k", seed=1), beats=beats, prompt_beats=prompt_beats, prompt_from=prompt_from
    )
    piece = compose(MODEL, TOK, request, prompt=bach)[0]
    encoding = TOK.encode_midi(bach)
    kept_quarters = 4.0 * (bars[1] - bars[0] + 1)
    kept = piece.tokens[: piece.prompt_length]
    assert piece.prompt_bars == bars and piece.prompt_quarters == steps(kept) / SPQ == kept_quarters
    # the kept notes are the file's notes of those bars, cut at the bar lines (checked on notes, apart from the code)
    whole, cut_start = TOK.tokens_to_notes(encoding.tokens), (bars[0] - 1) * 4 * SPQ
    cut_stop = bars[1] * 4 * SPQ
    inside = (whole.end > cut_start) & (whole.start < cut_stop)
    expected = {
        (max(int(s), cut_start) - cut_start, min(int(e), cut_stop) - cut_start, int(p))
        for s, e, p in zip(whole.start[inside], whole.end[inside], whole.pitch[inside])
    }
    got = TOK.tokens_to_notes(kept)
    assert {(int(s), int(e), int(p)) for s, e, p in zip(got.start, got.end, got.pitch)} == expected
    if prompt_from == "end":  # the chorale ends on a bar line: its last bars are its last beats
        assert kept == TOK.tail(encoding.tokens, kept_quarters)
    assert walk(TOK.convert_tokens_to_ids(piece.tokens), start=piece.prompt_length).violations == []
    total = steps(piece.tokens) / SPQ
    assert kept_quarters + beats - MAX_WAIT / SPQ <= total <= kept_quarters + beats
    assert_ends_in_sound(piece.tokens)
    assert piece.settings["qpm"] == encoding.meta.qpm  # the prompt's tempo, not the default
    assert piece.score.tempos[0].qpm == pytest.approx(encoding.meta.qpm)
    first, last = bars
    named = f"bars {first}\u2013{last}" if first != last else f"bar {first}"
    assert describe_prompt(piece, "bwv66.6") == (
        f"beats 0\u2013{kept_quarters:g} are the prompt ({named} of bwv66.6); the rest is new"
    )


def test_bars_follow_the_prompts_time_signature_and_an_opening_lasts_to_its_bar_line():
    """3/4: 8 beats keep two bars (6 beats); the second bar's rest is kept, so the continuation starts on a downbeat.
    The last bars of a piece that stops mid-bar start on a bar line too."""
    waltz = TOK.tokens_to_midi("p60 wait36 endp60 p64 wait12 endp64 wait24 p67 wait36 endp67 p72 wait12".split(),
                               time_signature=(3, 4)).dumps_midi()
    request = GenerationRequest(sampler=SamplerSettings("greedy"), beats=3, prompt_beats=8)
    piece = compose(MODEL, TOK, request, prompt=waltz)[0]
    assert piece.prompt_bars == (1, 2) and piece.prompt_quarters == 6.0
    assert piece.tokens[: piece.prompt_length] == "p60 wait36 endp60 p64 wait12 endp64 wait24".split()
    last = compose(MODEL, TOK, GenerationRequest(beats=3, prompt_beats=3, prompt_from="end"), prompt=waltz)[0]
    assert last.prompt_bars == (4, 4) and last.tokens[: last.prompt_length] == "p72 wait12 endp72".split()


def test_a_prompt_without_notes_is_said_to_be_silence_and_no_prompt_says_nothing():
    from support.midi_files import make_score

    drums = make_score([], drum_track=[(0, 240, 36)]).dumps_midi()
    piece = compose(MODEL, TOK, GenerationRequest(sampler=SamplerSettings("top_k", seed=1), beats=2), prompt=drums)[0]
    assert piece.prompt_length == 0 and piece.prompt_bars is None
    assert describe_prompt(piece, "drums.mid") == EMPTY_PROMPT.format(label="drums.mid")
    assert describe_prompt(piece, None) is None


def test_a_token_prompt_and_the_same_midi_prompt_give_the_same_piece(bach):
    request = GenerationRequest(sampler=SamplerSettings("mixed", seed=5), beats=6, prompt_beats=4, qpm=100)
    from_midi = compose(MODEL, TOK, request, prompt=bach)[0]
    from_tokens = compose(MODEL, TOK, request, prompt=TOK.encode_midi(bach).tokens)[0]
    assert from_midi.tokens == from_tokens.tokens


def test_prompt_beats_none_keeps_the_whole_prompt(bach):
    request = GenerationRequest(sampler=SamplerSettings("greedy"), beats=4, prompt_beats=None)
    piece = compose(MODEL, TOK, request, prompt=bach)[0]
    tokens = TOK.encode_midi(bach).tokens
    assert piece.tokens[: piece.prompt_length] == tokens


def test_length_in_seconds_follows_the_tempo():
    request = GenerationRequest(sampler=SamplerSettings("weighted", seed=2), beats=None, seconds=4.0, qpm=90)
    piece = compose(MODEL, TOK, request)[0]
    asked = 4.0 * 90 / 60  # 6 quarters
    assert asked - MAX_WAIT / SPQ <= steps(piece.tokens) / SPQ <= asked
    assert piece.score.tempos[0].qpm == pytest.approx(90)


def test_a_token_budget_alone_bounds_the_new_tokens():
    request = GenerationRequest(sampler=SamplerSettings("top_k", seed=2), beats=None, max_new_tokens=25)
    piece = compose(MODEL, TOK, request)[0]
    assert 0 < len(piece.tokens) <= 25


# ------------------------------------------------------------------------------------------------ endings


def test_no_piece_ends_in_silence_even_from_a_model_that_loves_rests():
    model = tiny_model(seed=3)
    with torch.no_grad():
        model.lm_head.bias[TOK.wait_offset : TOK.wait_offset + MAX_WAIT] += 6.0
    prompt = ["p60", "p64", "wait12", "endp60", "endp64"]
    request = GenerationRequest(
        sampler=SamplerSettings("weighted", seed=4), guards=GuardSettings(rest_guard=False), beats=40, num_samples=8
    )
    pieces = compose(model, TOK, request, prompt=prompt)
    for piece in pieces:
        assert piece.tokens[:5] == prompt
        assert_ends_in_sound(piece.tokens)
        assert score_quarters(piece.score) == pytest.approx(steps(piece.tokens) / SPQ)
    assert any(steps(p.tokens) < (1 + 40) * SPQ - MAX_WAIT for p in pieces)  # some had a long silent end to trim


def test_piece_saves_as_midi_with_its_notes(tmp_path):
    piece = compose(MODEL, TOK, GenerationRequest(sampler=SamplerSettings("top_k", seed=9), beats=8))[0]
    path = piece.save(tmp_path / "sub" / "piece.mid")
    again = symusic.Score(str(path))
    notes = sum(len(track.notes) for track in again.tracks)
    assert notes == len(piece.score.tracks[0].notes) == sum(t.startswith("p") for t in piece.tokens)
    assert path.read_bytes() == piece.midi_bytes


# ------------------------------------------------------------------------------------------------ progress, cancel


def test_progress_reports_each_step_and_cancel_stops_generation():
    calls: list[tuple[int, int]] = []
    cancel = threading.Event()

    def progress(done: int, budget: int) -> None:
        calls.append((done, budget))
        if done >= 5:
            cancel.set()

    model = tiny_model().train()
    request = GenerationRequest(sampler=SamplerSettings("weighted", seed=1), beats=64)
    with pytest.raises(GenerationCancelled):
        compose(model, TOK, request, progress=progress, cancel=cancel)
    assert [done for done, _ in calls] == [1, 2, 3, 4, 5]
    assert {budget for _, budget in calls} == {64 * SPQ * (2 * request.guards.max_polyphony + 1) + 64}
    assert model.training  # the caller's mode is restored


def test_an_unset_cancel_event_changes_nothing():
    request = GenerationRequest(sampler=SamplerSettings("top_k", seed=6), beats=8)
    calls = []
    plain = compose(MODEL, TOK, request)[0]
    watched = compose(MODEL, TOK, request, progress=lambda d, b: calls.append(d), cancel=threading.Event())[0]
    assert watched.tokens == plain.tokens
    assert calls == list(range(1, len(calls) + 1)) and len(calls) >= 1


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "make, shown",
    [
        (lambda: SamplerSettings("nope"), "'nope'"),
        (lambda: SamplerSettings("weighted", temperature=0), "got 0"),
        (lambda: SamplerSettings("top_n", n=1), "got 1"),
        (lambda: GenerationRequest(beats=-1), "got -1"),
        (lambda: GenerationRequest(qpm=0), "got 0"),
        (lambda: GenerationRequest(qpm=1e9), "qpm must be from 1 to 1200, got 1000000000"),
        (lambda: GenerationRequest(prompt_beats=-2.5), "got -2.5"),
        (lambda: GenerationRequest(num_samples=0), "got 0"),
        (lambda: GenerationRequest(num_samples=65), "got 65"),
        (lambda: GenerationRequest(max_new_tokens=0), "got 0"),
        (lambda: GenerationRequest(beats=None), "give a length"),
    ],
)
def test_bad_settings_raise_value_errors_naming_the_value(make, shown):
    with pytest.raises(ValueError, match=shown):
        make()


def test_a_model_and_tokenizer_with_different_vocabularies_are_refused():
    big = NotewiseLSTMForCausalLM(NotewiseLSTMConfig(vocab_size=300, embedding_size=8, hidden_size=8,
                                                     num_hidden_layers=1))  # fmt: skip
    with pytest.raises(ValueError, match="vocab_size: model 300 vs tokenizer 228"):
        compose(big, TOK, GenerationRequest(beats=4))
    short_waits = NotewiseTokenizer(max_wait=24)
    with pytest.raises(ValueError, match="max_wait: model 48 vs tokenizer 24") as err:
        compose(MODEL, short_waits, GenerationRequest(beats=4))
    assert "one checkpoint" in str(err.value)
