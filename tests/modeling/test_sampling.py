"""Samplers and guards: settings validation, each sampler's statistics, seeded determinism, and the guards checked on
thousands of tokens from random-weight models by a strict grammar checker written apart from the code under test
(`walk` in tests/support/models.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support.models import MAX_WAIT, MODEL, OFF, ON, PITCHES, TOK, WAIT, tiny_model, walk
from toccata.evaluation.giveaways import giveaway_values
from toccata.modeling import (
    SAMPLERS,
    GuardSettings,
    NotewiseLSTMForCausalLM,
    SamplerSettings,
    default_generation_config,
    generate_kwargs,
)
from toccata.modeling.guards import MAX_REPEAT_PENALTY, GuardMask, StopAfterSteps
from toccata.modeling.layout import VocabLayout
from toccata.modeling.presets import preset_from_generation_config
from toccata.modeling.sampling import Mixed, SeededDraw, TopK, TopN, Weighted, sampler_processors

SPQ = TOK.steps_per_quarter
NO_GUARDS = GuardSettings(grammar=False, rest_guard=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bos(rows: int = 1) -> torch.Tensor:
    return torch.full((rows, 1), TOK.bos_token_id, dtype=torch.long)


def generate(model, prompt, max_new_tokens, sampler, guards=None, **extra) -> torch.Tensor:
    kwargs = {**generate_kwargs(model.config, sampler, guards), **extra}
    return model.generate(prompt, max_new_tokens=max_new_tokens, pad_token_id=TOK.pad_token_id, **kwargs)


def test_the_checker_catches_each_kind_of_violation():
    ids = TOK.convert_tokens_to_ids
    assert walk(ids(["p60", "p64", "wait3", "endp60", "p60", "wait1", "endp60", "endp64"])).violations == []
    assert walk([TOK.eos_token_id]).violations == ["token 0 (<eos>): special token"]
    assert "note-on of a sounding pitch" in walk(ids(["p60", "wait1", "p60"])).violations[0]
    assert "note-off of a silent pitch" in walk(ids(["endp60"])).violations[0]
    assert "in the step the note began" in walk(ids(["p60", "endp60"])).violations[0]
    assert "more than 2" in walk(ids(["p60", "p61", "p62"]), max_polyphony=2).violations[0]
    assert "would last 13 steps" in walk(ids(["p60", "wait12", "wait1"]), max_note_steps=12).violations[0]
    assert walk(ids(["wait5", "p60", "wait2", "endp60", "wait7", "wait2"])).longest_silence == 9
    assert walk(ids(["endp60", "p60", "wait1", "endp60"]), start=1).violations == []


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "kwargs, name, shown",
    [
        ({"sampler": "nope"}, "sampler", "'nope'"),
        ({"temperature": 0}, "temperature", "0"),
        ({"temperature": -1.0}, "temperature", "-1.0"),
        ({"temperature": 101}, "temperature", "101"),
        ({"temperature": "hot"}, "temperature", "'hot'"),
        ({"p_best": 1.5}, "p_best", "1.5"),
        ({"random_freq": -0.1}, "random_freq", "-0.1"),
        ({"sampler": "top_n", "n": 1}, "n", "1"),
        ({"n": 2.5}, "n", "2.5"),
        ({"k": 0}, "k", "0"),
        ({"k": True}, "k", "True"),
        ({"trunc": 0}, "trunc", "0"),
    ],
)
def test_sampler_settings_errors_name_the_value(kwargs, name, shown):
    with pytest.raises(ValueError) as err:
        SamplerSettings(**kwargs)
    message = str(err.value)
    assert message.startswith(name) and message.endswith(f"got {shown}")


@pytest.mark.parametrize(
    "kwargs, name, shown",
    [
        ({"max_polyphony": 0}, "max_polyphony", "0"),
        ({"max_polyphony": 2.0}, "max_polyphony", "2.0"),
        ({"max_note_beats": 0}, "max_note_beats", "0"),
        ({"max_silence_beats": -1}, "max_silence_beats", "-1"),
        ({"calmness": 11}, "calmness", "11"),
        ({"repeat_penalty": -1}, "repeat_penalty", "-1"),
        ({"repeat_penalty": 21.0}, "repeat_penalty", "21.0"),
    ],
)
def test_guard_settings_errors_name_the_value(kwargs, name, shown):
    with pytest.raises(ValueError) as err:
        GuardSettings(**kwargs)
    message = str(err.value)
    assert message.startswith(name) and message.endswith(f"got {shown}")


def test_resolved_settings_keep_a_given_seed_and_draw_a_missing_one():
    fixed = SamplerSettings("mixed", seed=7)
    assert fixed.resolved() is fixed
    drawn = SamplerSettings("mixed", random_freq=0.3).resolved()
    assert isinstance(drawn.seed, int) and drawn.random_freq == 0.3 and drawn.sampler == "mixed"


def test_generation_config_preset_round_trips(tmp_path):
    sampler = SamplerSettings("top_n", n=4, p_best=0.7, seed=3)
    guards = GuardSettings(max_polyphony=6, calmness=1.5, rest_guard=False, repeat_penalty=1.5)
    config = default_generation_config(MODEL.config, sampler, guards)
    assert config.bos_token_id == TOK.bos_token_id
    # a plain generate() samples: top_n becomes transformers' nearest, a top-k draw among its n best guesses
    assert (config.do_sample, config.top_k, config.temperature) == (True, 4, 1.0)
    config.save_pretrained(tmp_path)
    again = type(config).from_pretrained(tmp_path)
    assert preset_from_generation_config(again) == (sampler, guards)
    assert preset_from_generation_config(object()) == (SamplerSettings(), GuardSettings())


@pytest.mark.parametrize(
    "sampler, expected",
    [
        (SamplerSettings("top_k", k=8, temperature=0.9), (True, 8, 0.9)),
        (SamplerSettings("weighted", temperature=1.2), (True, 0, 1.2)),  # top_k 0: the whole distribution
        (SamplerSettings("mixed", trunc=6), (True, 6, 1.0)),
        (SamplerSettings("greedy"), (False, None, None)),
    ],
)
def test_generation_config_carries_transformers_sampling_of_the_preset(sampler, expected):
    config = default_generation_config(MODEL.config, sampler)
    assert (config.do_sample, config.top_k, config.temperature) == expected


# ------------------------------------------------------------------------------------------------ draws on fixed scores

SCORES = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5])
DRAWS = 4000


def draw(settings: SamplerSettings, scores: torch.Tensor = SCORES, rows: int = DRAWS) -> torch.Tensor:
    """Token drawn for each of `rows` copies of `scores` by the sampler's processors (and generate's argmax)."""
    batch = scores.expand(rows, -1).clone()
    ids = torch.zeros(rows, 1, dtype=torch.long)
    for processor in sampler_processors(settings):
        batch = processor(ids, batch)
    return batch.argmax(dim=-1)


def frequencies(choices: torch.Tensor, size: int = len(SCORES)) -> torch.Tensor:
    return torch.bincount(choices, minlength=size).float() / len(choices)


def test_greedy_adds_no_processor_and_picks_the_argmax():
    assert sampler_processors(SamplerSettings("greedy", temperature=3.0, seed=1)) == []
    scores = torch.randn(50, 30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draw(SamplerSettings("greedy"), scores, rows=50), scores.argmax(dim=-1))


def test_greedy_generation_is_the_argmax_of_each_step():
    prompt = bos(2)
    out = generate(MODEL, prompt, 25, SamplerSettings("greedy", temperature=4.0, seed=1), NO_GUARDS)
    logits = MODEL(out).logits
    assert torch.equal(logits[:, :-1].argmax(dim=-1), out[:, 1:])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_weighted_follows_the_softmax(temperature):
    freq = frequencies(draw(SamplerSettings("weighted", temperature=temperature, seed=1)))
    expected = torch.softmax(SCORES / temperature, dim=-1)
    assert (freq - expected).abs().max() < 0.03


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_top_k_never_leaves_the_top_k_and_follows_their_softmax(temperature):
    freq = frequencies(draw(SamplerSettings("top_k", k=4, temperature=temperature, seed=2)))
    assert freq[4:].sum() == 0
    expected = torch.softmax(SCORES[:4] / temperature, dim=-1)
    assert (freq[:4] - expected).abs().max() < 0.03
    assert (freq[:4] > 0).all()


def test_top_k_on_random_rows_stays_inside_each_rows_top_k():
    scores = torch.randn(3000, 228, generator=torch.Generator().manual_seed(3))
    choices = draw(SamplerSettings("top_k", k=5, seed=4), scores, rows=3000)
    top5 = scores.topk(5, dim=-1).indices
    assert (top5 == choices.unsqueeze(1)).any(dim=1).all()
    assert len(set(choices.tolist())) > 100  # and it does draw, rather than always taking the best


def test_top_k_with_fewer_allowed_tokens_than_k_draws_only_allowed_ones():
    scores = torch.full((10,), float("-inf"))
    scores[[2, 7]] = torch.tensor([0.0, 1.0])
    freq = frequencies(draw(SamplerSettings("top_k", k=5, seed=5), scores))
    assert set(freq.nonzero().flatten().tolist()) == {2, 7}


def test_top_n_picks_the_best_p_best_of_the_time_and_shares_the_rest():
    freq = frequencies(draw(SamplerSettings("top_n", n=3, p_best=0.8, seed=6)))
    assert 0.75 <= freq[0] <= 0.85
    assert 0.07 <= freq[1] <= 0.13 and 0.07 <= freq[2] <= 0.13
    assert freq[3:].sum() == 0


def test_top_n_ignores_temperature():
    plain = draw(SamplerSettings("top_n", n=3, p_best=0.6, seed=8))
    hot = draw(SamplerSettings("top_n", n=3, p_best=0.6, seed=8, temperature=5.0))
    assert torch.equal(plain, hot)


def test_top_n_shares_only_among_allowed_runners_up():
    scores = torch.full((10,), float("-inf"))
    scores[[4, 1]] = torch.tensor([2.0, 1.0])
    freq = frequencies(draw(SamplerSettings("top_n", n=4, p_best=0.7, seed=9), scores))
    assert 0.65 <= freq[4] <= 0.75 and 0.25 <= freq[1] <= 0.35
    assert freq[4] + freq[1] == 1
    only = torch.full((10,), float("-inf"))
    only[6] = 0.0
    assert (draw(SamplerSettings("top_n", n=3, p_best=0.5, seed=9), only) == 6).all()


@pytest.mark.parametrize("random_freq, trunc, temperature", [(0.3, 4, 1.0), (0.6, 3, 2.0)])
def test_mixed_is_argmax_or_a_truncated_weighted_draw(random_freq, trunc, temperature):
    settings = SamplerSettings("mixed", random_freq=random_freq, trunc=trunc, temperature=temperature, seed=10)
    freq = frequencies(draw(settings))
    top = torch.softmax(SCORES[:trunc] / temperature, dim=-1)
    expected = random_freq * top
    expected[0] += 1.0 - random_freq
    assert freq[trunc:].sum() == 0
    assert (freq[:trunc] - expected).abs().max() < 0.03


def test_mixed_extremes():
    assert (draw(SamplerSettings("mixed", random_freq=0.0, seed=1)) == 0).all()
    always_draw = frequencies(draw(SamplerSettings("mixed", random_freq=1.0, trunc=3, seed=1)))
    assert (always_draw[:3] - torch.softmax(SCORES[:3], dim=-1)).abs().max() < 0.03


def test_processors_alone_give_the_rule_probabilities():
    """TopN / Mixed / TopK as log-probabilities, before any draw: exact values, not statistics."""
    scores = SCORES.unsqueeze(0)
    ids = torch.zeros(1, 1, dtype=torch.long)
    top_n = TopN(3, 0.9)(ids, scores).exp()[0]
    torch.testing.assert_close(top_n[:3], torch.tensor([0.9, 0.05, 0.05]))
    assert top_n[3:].sum() == 0
    top_k = TopK(2)(ids, scores).exp()[0]
    torch.testing.assert_close(top_k[:2], torch.softmax(SCORES[:2], dim=-1))
    mixed = Mixed(0.5, 2)(ids, scores).exp()[0]
    torch.testing.assert_close(mixed[:2], 0.5 * torch.softmax(SCORES[:2], dim=-1) + torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(mixed.sum(), torch.tensor(1.0))


RULES = {"top_k": TopK(4), "top_n": TopN(3, 0.7), "top_n_0": TopN(4, 0.0), "mixed": Mixed(0.4, 3), "weighted": Weighted()}


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_a_rules_own_draw_follows_its_probabilities_and_never_a_forbidden_id(rule):
    """`sample` (what decoding calls: a draw among the few kept ids) against the rule's log-probabilities over the
    whole vocabulary, on scores with forbidden ids; a weight of 0 (p_best = 0) is never drawn either."""
    scores = torch.randn(1, 40, generator=torch.Generator().manual_seed(1)) * 2
    scores[0, ::3] = float("-inf")
    expected = rule(None, scores).exp()[0]
    generator = torch.Generator().manual_seed(2)
    picked = rule.sample(scores.expand(DRAWS, -1).contiguous(), generator)
    freq = frequencies(picked, size=40)
    assert freq[expected == 0].sum() == 0
    assert (freq - expected).abs().max() < 0.03
    alone = rule.sample(scores, torch.Generator().manual_seed(2))
    assert alone.item() == picked[0].item()  # one row alone draws what the first of many draws


# ------------------------------------------------------------------------------------------------ seeded draws


def test_seeded_draw_same_seed_same_choices_different_seed_different():
    scores = torch.zeros(500, 228)

    def choices(seed):
        return SeededDraw(seed)(None, scores).argmax(dim=-1)

    assert torch.equal(choices(1), choices(1))
    assert not torch.equal(choices(1), choices(2))
    out = SeededDraw(3)(None, scores)
    assert ((out == 0).sum(dim=-1) == 1).all() and torch.isinf(out).sum() == 500 * 227


def test_seeded_draw_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SeededDraw(5)(None, torch.zeros(20, 50))
    assert torch.equal(torch.rand(3), expected)


def test_seeded_draw_never_picks_a_forbidden_token():
    scores = torch.randn(2000, 50, generator=torch.Generator().manual_seed(0))
    scores[:, ::2] = float("-inf")
    picked = SeededDraw(11)(None, scores).argmax(dim=-1)
    assert (picked % 2 == 1).all()


# ------------------------------------------------------------------------------------------------ generate() per sampler


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_generate_length_and_determinism_per_sampler(sampler):
    prompt = torch.tensor([[TOK.bos_token_id] + TOK.convert_tokens_to_ids(["p60", "p64", "wait6", "endp60"])] * 2)
    first = generate(MODEL, prompt, 40, SamplerSettings(sampler, seed=1, p_best=0.6))
    again = generate(MODEL, prompt, 40, SamplerSettings(sampler, seed=1, p_best=0.6))
    other = generate(MODEL, prompt, 40, SamplerSettings(sampler, seed=2, p_best=0.6))
    assert first.shape == (2, 45)  # the grammar guard forbids <eos>, so every row runs to the budget
    assert torch.equal(first[:, :5], prompt)
    assert torch.equal(first, again)
    if sampler == "greedy":
        assert torch.equal(first, other)
        assert torch.equal(first[0], first[1])
    else:
        assert not torch.equal(first, other)
        assert not torch.equal(first[0], first[1])  # one generator, so each row draws differently


def test_num_return_sequences_with_sampling_equals_a_repeated_batch():
    """generate() expands the prompt (and so the cache it later builds) for several return sequences."""
    prompt = bos(1)
    sampler = SamplerSettings("weighted", seed=4)
    expanded = generate(MODEL, prompt, 30, sampler, num_return_sequences=3, do_sample=True)
    repeated = generate(MODEL, bos(3), 30, sampler)
    assert expanded.shape == (3, 31)
    assert torch.equal(expanded, repeated)


# ------------------------------------------------------------------------------------------------ the grammar guard

GRAMMAR_SAMPLERS = [
    SamplerSettings("greedy"),
    SamplerSettings("top_n", n=4, p_best=0.5, seed=1),
    SamplerSettings("weighted", seed=2),
    SamplerSettings("weighted", temperature=2.0, seed=3),
    SamplerSettings("top_k", k=20, seed=4),
    SamplerSettings("mixed", random_freq=0.8, trunc=30, seed=5),
]


@pytest.mark.parametrize(
    "guards", [GuardSettings(), GuardSettings(max_polyphony=3, max_note_beats=1.0)], ids=["default", "tight"]
)
def test_grammar_guard_makes_every_sequence_valid(guards):
    """Random weights, every sampler (weighted at temperature 2 too): 4 rows x 250 tokens each, all valid."""
    total = 0
    for index, sampler in enumerate(GRAMMAR_SAMPLERS):
        model = tiny_model(seed=index)
        out = generate(model, bos(4), 250, sampler, guards)
        for row in out.tolist():
            result = walk(row, start=1, max_polyphony=guards.max_polyphony,
                          max_note_steps=round(guards.max_note_beats * SPQ))  # fmt: skip
            assert result.violations == [], f"{sampler}: {result.violations[:5]}"
            assert len(TOK.tokens_to_notes(row[1:])) == result.note_ons
            total += len(row) - 1
    assert total >= 6000


def test_without_the_grammar_guard_random_weights_break_the_grammar():
    """The counterpart: the checker above would catch a guard that did nothing."""
    out = generate(MODEL, bos(8), 400, SamplerSettings("weighted", seed=2), GuardSettings(grammar=False))
    results = [walk(row, start=1) for row in out.tolist()]
    assert all(r.violations for r in results)
    assert any(len(TOK.tokens_to_notes(row[1:])) != r.note_ons for row, r in zip(out.tolist(), results))


def test_grammar_guard_holds_when_the_prompt_leaves_notes_sounding():
    prompt_tokens = ["p60", "p64", "p67", "wait12", "endp64", "p72"]
    prompt = torch.tensor([[TOK.bos_token_id] + TOK.convert_tokens_to_ids(prompt_tokens)] * 3)
    out = generate(MODEL, prompt, 200, SamplerSettings("weighted", seed=6), GuardSettings(max_polyphony=4))
    for row in out.tolist():
        assert walk(row, start=prompt.shape[1], max_polyphony=4).violations == []


def test_grammar_guard_holds_under_beam_search():
    out = generate(MODEL, bos(1), 60, SamplerSettings("greedy"), num_beams=4, num_return_sequences=4)
    for row in out.tolist():
        assert walk(row, start=1).violations == []


def test_a_tiny_max_note_length_still_leaves_a_legal_token():
    guards = GuardSettings(max_polyphony=1, max_note_beats=0.01)
    out = generate(MODEL, bos(2), 20, SamplerSettings("weighted", seed=1), guards)
    for row in out.tolist():
        assert walk(row, start=1, max_polyphony=1, max_note_steps=1).violations == []


def test_guards_from_one_generate_kwargs_can_serve_two_calls():
    kwargs = generate_kwargs(MODEL.config, SamplerSettings("weighted", seed=1), GuardSettings())
    MODEL.generate(bos(2), max_new_tokens=5, pad_token_id=0, **kwargs)
    prompt_tokens = ["p60", "wait1", "p62", "wait1", "p64", "wait1", "p65", "wait1", "p67", "wait1"]
    prompt = torch.tensor([[TOK.bos_token_id] + TOK.convert_tokens_to_ids(prompt_tokens)] * 2)
    out = MODEL.generate(prompt, max_new_tokens=100, pad_token_id=0, **kwargs)
    for row in out.tolist():
        assert walk(row, start=prompt.shape[1]).violations == []


# ------------------------------------------------------------------------------------------------ rest guard, calmness


def wait_biased_model(bias: float = 6.0) -> NotewiseLSTMForCausalLM:
    model = tiny_model(seed=3)
    with torch.no_grad():
        model.lm_head.bias[WAIT : WAIT + MAX_WAIT] += bias
    return model


@pytest.mark.parametrize("grammar", [True, False], ids=["with_grammar", "alone"])
@pytest.mark.parametrize("max_silence_beats", [1.0, 4.0])
def test_rest_guard_bounds_silence_and_without_it_silence_runs_on(max_silence_beats, grammar):
    model = wait_biased_model()
    limit = round(max_silence_beats * SPQ)
    sampler = SamplerSettings("weighted", seed=7)
    on = GuardSettings(grammar=grammar, max_silence_beats=max_silence_beats)
    off = GuardSettings(grammar=grammar, rest_guard=False, max_silence_beats=max_silence_beats)
    guarded = [walk(row, start=1) for row in generate(model, bos(4), 200, sampler, on).tolist()]
    free = [walk(row, start=1) for row in generate(model, bos(4), 200, sampler, off).tolist()]
    assert max(w.longest_silence for w in guarded) <= limit
    assert max(w.longest_silence for w in guarded) >= limit // 2  # the bias does push toward silence
    assert all(w.longest_silence > limit for w in free)
    if grammar:
        assert all(w.violations == [] for w in guarded)


def notes_per_quarter(out: torch.Tensor) -> float:
    new = out[:, 1:]
    notes = ((new >= ON) & (new < ON + PITCHES)).sum().item()
    waits = new - WAIT + 1
    steps = torch.where((waits >= 1) & (waits <= MAX_WAIT), waits, torch.zeros_like(waits)).sum().item()
    return notes / (steps / SPQ)


@pytest.mark.parametrize("sampler", ["weighted", "top_k", "mixed"])
def test_calmness_lowers_note_density_and_negative_calmness_raises_it(sampler):
    settings = SamplerSettings(sampler, seed=7)
    density = {
        calmness: notes_per_quarter(generate(MODEL, bos(4), 250, settings, GuardSettings(calmness=calmness)))
        for calmness in (-1.0, 0.0, 1.0)
    }
    assert density[1.0] < 0.9 * density[0.0] < 0.9 * density[-1.0]


def test_calmness_moves_score_to_waits_and_most_to_long_waits():
    layout, read = VocabLayout.from_config(MODEL.config), torch.ones(2, 1, dtype=torch.long)  # <bos> read so far

    def calmness(value: float) -> GuardMask:  # the guards' processor with calmness alone
        return GuardMask(layout, GuardSettings(grammar=False, rest_guard=False, calmness=value))

    scores = torch.zeros(2, 228)
    calm = calmness(1.5)(read, scores)
    assert torch.equal(calm[:, :WAIT], scores[:, :WAIT])
    bias = calm[0, WAIT : WAIT + MAX_WAIT]
    assert (bias > 0).all() and (bias.diff() > 0).all()
    torch.testing.assert_close(bias[0], torch.tensor(1.5))  # wait1: log2(1) = 0, so just the calmness
    torch.testing.assert_close(bias[SPQ - 1], torch.tensor(3.0))  # wait12 (a quarter): twice the calmness
    assert (calmness(-1.0)(read, scores)[0, WAIT:] < 0).all()
    assert torch.equal(scores, torch.zeros(2, 228))  # the input is not modified


def test_repeat_penalty_lowers_only_the_previous_onsets_top_note_in_each_row():
    """The top note of the latest onset before now: not a lower note of it, not this step's notes, not older ones."""
    layout = VocabLayout.from_config(MODEL.config)
    ids = TOK.convert_tokens_to_ids
    read = torch.tensor(
        [
            [1, *ids(["p55", "wait3", "endp55", "p60", "p67", "wait3", "endp67", "endp60", "p48", "p50"])],  # top 67
            [1, *ids(["p55", "wait3", "endp55", "p60", "p64", "wait3", "endp64", "wait2", "endp60", "wait1"])],
        ]
    )
    scores = torch.zeros(2, 228)
    out = GuardMask(layout, GuardSettings(grammar=False, rest_guard=False, repeat_penalty=2.5))(read, scores)
    assert torch.nonzero(out).tolist() == [[0, ON + 67 - 21], [1, ON + 64 - 21]]
    assert out[0, ON + 67 - 21] == -2.5 and torch.equal(scores, torch.zeros(2, 228))
    off = GuardMask(layout, GuardSettings(grammar=False, rest_guard=False))(read, scores)
    assert torch.equal(off, scores)


def repeated_top_notes(out: torch.Tensor) -> float:
    """The evaluation's measure (`evaluation.giveaways`): share of melodic steps that repeat the top note."""
    layout = VocabLayout.from_config(MODEL.config)
    return float(np.mean([giveaway_values(row[1:], layout)["repeated top notes"] for row in out.tolist()]))


@pytest.mark.parametrize("sampler", ["weighted", "top_k"])
def test_a_large_repeat_penalty_all_but_ends_re_striking_the_previous_top_note(sampler):
    """A random model made to love one key (p60 and endp60 likelier) re-strikes it at onset after onset; with the
    penalty it almost never re-strikes the previous onset's top note, and still plays as many notes."""
    model = tiny_model(seed=5)
    with torch.no_grad():
        model.lm_head.bias[ON + 60 - 21] += 6.0
        model.lm_head.bias[OFF + 60 - 21] += 6.0
    settings = SamplerSettings(sampler, k=8, seed=3)
    free = generate(model, bos(4), 300, settings, GuardSettings())
    guarded = generate(model, bos(4), 300, settings, GuardSettings(repeat_penalty=MAX_REPEAT_PENALTY))
    assert repeated_top_notes(free) > 0.2
    assert repeated_top_notes(guarded) < 0.01
    assert notes_per_quarter(guarded) > 0.5 * notes_per_quarter(free)
    for row in guarded.tolist():
        assert walk(row, start=1).violations == []


def test_stop_after_steps_counts_only_the_new_waits():
    layout = VocabLayout.from_config(MODEL.config)
    stop = StopAfterSteps(layout, prompt_length=2, target_steps=12)
    ids = torch.tensor(
        [
            [1, WAIT + 47, WAIT + 5, ON, WAIT + 5],  # prompt wait48 ignored; 6 + 6 = 12 new steps
            [1, WAIT + 47, WAIT + 5, ON, WAIT + 4],  # 6 + 5 = 11
        ]
    )
    assert stop(ids, None).tolist() == [True, False]


def test_guards_are_deterministic_for_a_seed():
    guards = GuardSettings(calmness=0.5, max_polyphony=4)
    a = generate(MODEL, bos(3), 100, SamplerSettings("top_k", k=8, seed=42), guards)
    b = generate(MODEL, bos(3), 100, SamplerSettings("top_k", k=8, seed=42), guards)
    assert torch.equal(a, b)
    assert math.isfinite(notes_per_quarter(a))
