"""Classifier-free guidance of a composer label: `compose()`'s loop and `generate()` with `ClassifierFreeGuidance`
give the same tokens, a guided request gives the same music alone or in a shared batch, and guidance 0 is the
unlabelled model exactly (so the unconditional stream is fed the right tokens)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support.models import TOK, rows_of, with_generate
from toccata.modeling import GenerationRequest, GuardSettings, SamplerSettings, compose
from toccata.modeling.decoding import DecodeBatch, DecodeJob, decode

import toccata

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def labelled():
    """The embedded default: trained with composer labels, dropped from a fifth of its windows."""
    model, tokenizer = toccata.load_checkpoint(toccata.default_checkpoint())
    assert len(tokenizer.composers) > 2, "the embedded default should carry composer labels"
    return model.eval(), tokenizer


def _job(tokenizer, composer: str | None, guidance: float, seed: int = 3, rows: int = 2, steps: int = 96, **kw):
    plain = [TOK.bos_token_id, *TOK.convert_tokens_to_ids(["p60", "p64", "wait12", "endp60", "endp64"])]
    prompt = [tokenizer.composer_token_id(composer), *plain] if composer else plain
    return DecodeJob(
        prompt, rows, SamplerSettings(kw.pop("sampler", "weighted"), seed=seed, **kw), GuardSettings(), 400, steps,
        unconditional_ids=plain if guidance != 1.0 else None, guidance=guidance,
    )  # fmt: skip


@pytest.mark.parametrize("sampler,guidance", [("weighted", 3.0), ("top_k", 2.0), ("greedy", 5.0), ("top_n", 0.5)])
def test_the_loop_and_generate_guide_alike(labelled, sampler, guidance):
    model, tokenizer = labelled
    name = tokenizer.composers[0]
    made = decode(model, _job(tokenizer, name, guidance, sampler=sampler))
    assert rows_of(made) == with_generate(model, _job(tokenizer, name, guidance, sampler=sampler))
    unguided = decode(model, _job(tokenizer, name, 1.0, sampler=sampler))
    if sampler in ("weighted", "top_k"):  # draws from the whole (or a wide) distribution: guidance shows
        assert made.tokens != unguided.tokens


def test_guidance_zero_is_the_unlabelled_model_and_one_the_label_alone(labelled):
    model, tokenizer = labelled
    name = tokenizer.composers[1]
    zero = decode(model, _job(tokenizer, name, 0.0)).tokens
    assert zero == decode(model, _job(tokenizer, None, 1.0)).tokens
    one = DecodeJob(**{**_job(tokenizer, name, 1.0).__dict__, "unconditional_ids": [TOK.bos_token_id]})
    assert not one.guided and decode(model, one).tokens == decode(model, _job(tokenizer, name, 1.0)).tokens


def test_a_guided_request_gives_the_same_music_in_a_batch_that_others_join_and_leave(labelled):
    model, tokenizer = labelled
    names = tokenizer.composers
    specs = [  # (join at step, composer, guidance, seed, steps)
        (0, names[0], 3.0, 1, 60),
        (0, None, 1.0, 2, 30),
        (4, names[1], 2.0, 3, 120),
        (9, names[2], 1.0, 4, 48),
        (9, names[0], 4.0, 5, 24),
    ]
    alone = [decode(model, _job(tokenizer, c, g, seed=s, steps=n)).tokens for _, c, g, s, n in specs]
    batch, together, step = DecodeBatch(model), [], 0
    while step < 10 or len(batch):
        for at, composer, guidance, seed, steps in specs:
            if at == step:
                together.append(_job(tokenizer, composer, guidance, seed=seed, steps=steps))
                batch.add(together[-1])
        batch.step()
        step += 1
    assert [j.tokens for j in together] == alone


def test_compose_guides_the_composer_label_and_validates_the_strength(labelled):
    model, tokenizer = labelled
    name = tokenizer.composers[0]
    base = GenerationRequest(
        sampler=SamplerSettings("weighted", seed=7), beats=16, composer=name, num_samples=2, composer_guidance=1.0
    )
    plain, guided = compose(model, tokenizer, base), compose(model, tokenizer, replace(base, composer_guidance=3.0))
    assert [p.tokens for p in plain] != [p.tokens for p in guided]
    assert all(p.new_notes > 0 and p.settings["composer_guidance"] == 3.0 for p in guided)
    alone = compose(model, tokenizer, replace(base, composer_guidance=3.0, num_samples=1))[0]
    assert alone.tokens == guided[0].tokens  # variation 0 is the piece its seed makes alone
    unlabelled = replace(base, composer=None)
    assert [p.tokens for p in compose(model, tokenizer, replace(unlabelled, composer_guidance=3.0))] == [
        p.tokens for p in compose(model, tokenizer, unlabelled)
    ]  # no label: nothing to guide by
    with pytest.raises(ValueError, match="composer_guidance must be a number from 0 to 10"):
        GenerationRequest(composer_guidance=11)
    with pytest.raises(ValueError, match="needs unconditional_ids"):
        DecodeJob([1], 1, SamplerSettings(seed=0), GuardSettings(), 10, guidance=2.0)
