"""The lean decoding loop and continuous batching: the same tokens as `model.generate()` for the same seed and
settings, and the same music for a request alone or sharing a batch with others that join and leave."""

from __future__ import annotations

import itertools
import threading

import pytest
import torch
from support.models import TOK, rows_of, tiny_model, walk, with_generate
from toccata.modeling import GuardSettings, SamplerSettings
from toccata.modeling.batching import ContinuousBatcher
from toccata.modeling.decoding import DecodeBatch, DecodeJob, decode
from toccata.tokenization.midi_io import music21_corpus_midi

import toccata

GUARDS = {
    "default": GuardSettings(),
    "tight, calm": GuardSettings(
        max_polyphony=3, max_note_beats=2.0, max_silence_beats=1.0, calmness=0.8, repeat_penalty=1.5
    ),
    "busy": GuardSettings(calmness=-0.5, rest_guard=False, repeat_penalty=0.7),
    "off": GuardSettings(grammar=False, rest_guard=False),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    """The embedded checkpoint: peaked distributions, where a wrong mask or draw shows at once."""
    model, _ = toccata.load_checkpoint(toccata.default_checkpoint())
    return model.eval()


@pytest.fixture(scope="module")
def prompt_ids() -> list[int]:
    tokens = TOK.tail(TOK.midi_to_tokens(music21_corpus_midi("bach/bwv66.6")), 8)
    return [TOK.bos_token_id, *TOK.convert_tokens_to_ids(tokens)]


def job(prompt: list[int], sampler="top_k", guards="default", seed=0, rows=3, steps=96, budget=300, **kw) -> DecodeJob:
    settings = SamplerSettings(sampler, seed=seed, **kw)
    return DecodeJob(list(prompt), rows, settings, GUARDS[guards], budget, steps)


@pytest.mark.parametrize("sampler,guards", list(itertools.product(["greedy", "top_n", "top_k", "mixed"], GUARDS)))
def test_the_lean_loop_gives_generates_tokens_with_a_trained_model(trained, prompt_ids, sampler, guards):
    alone = decode(trained, job(prompt_ids, sampler, guards, temperature=1.2, seed=5))
    assert not alone.cancelled and len(alone.tokens) == 3
    assert rows_of(alone) == with_generate(trained, job(prompt_ids, sampler, guards, temperature=1.2, seed=5))
    assert len({tuple(row) for row in alone.tokens}) > 1 or sampler == "greedy"  # rows really differ


@pytest.mark.parametrize("sampler", ["weighted", "top_k"])
def test_the_lean_loop_matches_generate_from_bos_on_a_random_model_with_eos_allowed(sampler):
    """Grammar off lets the model draw EOS (made likely here): a row ends there and is padded, as in generate()."""
    model = tiny_model(3)
    with torch.no_grad():
        model.lm_head.bias[model.config.eos_token_id] += 2.5

    def make() -> DecodeJob:
        return job([model.config.bos_token_id], sampler, "off", seed=11, rows=6, steps=None, budget=60, temperature=0.9)

    made = decode(model, make())
    eos = model.config.eos_token_id
    assert len({row.index(eos) for row in made.tokens if eos in row}) > 1  # rows end at different steps
    assert rows_of(made) == with_generate(model, make())


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_a_request_gives_the_same_music_alone_and_in_a_batch_that_others_join_and_leave(trained, prompt_ids, int8):
    """int8 too: its activations' range is pinned, so a row is quantized the same way whoever shares its batch."""
    specs = [  # (join at step, job arguments)
        (0, {"sampler": "top_k", "guards": "default", "seed": 1, "rows": 2, "steps": 60}),
        (0, {"sampler": "greedy", "guards": "off", "seed": 0, "rows": 1, "steps": 30}),
        (3, {"sampler": "mixed", "guards": "tight, calm", "seed": 2, "rows": 3, "steps": 120}),
        (10, {"sampler": "top_n", "guards": "busy", "seed": 3, "rows": 1, "steps": 48, "temperature": 0.7}),
        (10, {"sampler": "weighted", "guards": "default", "seed": 4, "rows": 2, "steps": 200, "temperature": 1.5}),
        (40, {"sampler": "top_k", "guards": "tight, calm", "seed": 1, "rows": 4, "steps": 24, "k": 9}),
    ]
    prompts = [prompt_ids, [TOK.bos_token_id], prompt_ids[:40], prompt_ids, [TOK.bos_token_id], prompt_ids[:9]]
    alone = [decode(trained, job(p, **spec), int8=int8).tokens for p, (_, spec) in zip(prompts, specs)]

    batch, together, step = DecodeBatch(trained, int8=int8), [], 0
    while step < 40 or len(batch):
        for (at, spec), prompt in zip(specs, prompts):
            if at == step:
                together.append(job(prompt, **spec))
                batch.add(together[-1])
        batch.step()
        step += 1
    assert [j.tokens for j in together] == alone
    assert step > max(len(row) for rows in alone for row in rows)  # the batch really ran them side by side


def test_the_batcher_serves_threads_at_once_each_as_if_alone_and_cancels_one_without_the_others(trained, prompt_ids):
    batcher = ContinuousBatcher(trained, max_rows=8)
    specs = [
        {"seed": s, "rows": 1 + s % 3, "steps": 72, "sampler": ("top_k", "mixed", "top_n")[s % 3]} for s in range(6)
    ]
    expected = [decode(trained, job(prompt_ids, **spec)).tokens for spec in specs]
    results: dict[int, list] = {}
    cancel = threading.Event()

    def client(index: int) -> None:
        made = job(prompt_ids, **specs[index])
        if index == 5:
            made.cancel = cancel
            made.progress = lambda done, total: cancel.set() if done >= 5 else None
        results[index] = batcher.run(made)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [results[i].tokens for i in range(5)] == expected[:5]
    assert results[5].cancelled and len(results[5].tokens[0]) <= 6
    assert 1 < batcher.peak_rows <= 8


def test_a_repeated_prompt_is_read_once_and_gives_the_same_music_as_a_fresh_read(trained, prompt_ids):
    """The batch keeps a prompt's state after reading it: later jobs with the same prompt and rows skip the pass,
    and decode exactly what a fresh batch decodes (the kept logits are not masked in place by the first job)."""
    passes = []
    hook = trained.register_forward_pre_hook(lambda module, args: passes.append(1))
    try:
        batch = DecodeBatch(trained)
        made = [job(prompt_ids, seed=seed, rows=2, steps=48) for seed in (1, 1, 2)]
        for one in made:
            batch.add(one)
            while not one.finished.is_set():
                batch.step()
        assert len(passes) == 1
        batch.add(job(prompt_ids, seed=1, rows=1, steps=48))  # other rows: another key, another pass
        assert len(passes) == 2
    finally:
        hook.remove()
    with torch.inference_mode():
        fresh = trained(input_ids=torch.tensor([prompt_ids] * 2), logits_to_keep=1).logits[:, -1]
    assert torch.equal(batch.prompt_cache[(tuple(prompt_ids), 2)][1], fresh)  # kept as read, never masked
    assert made[0].tokens == made[1].tokens == decode(trained, job(prompt_ids, seed=1, rows=2, steps=48)).tokens
    assert made[2].tokens == decode(trained, job(prompt_ids, seed=2, rows=2, steps=48)).tokens != made[0].tokens


def test_a_bad_prompt_fails_its_own_request_only(trained, prompt_ids):
    batcher = ContinuousBatcher(trained)
    with pytest.raises(IndexError):
        batcher.run(job([TOK.bos_token_id, 10_000], rows=1))
    assert (
        batcher.run(job(prompt_ids, rows=1, steps=24)).tokens
        == decode(trained, job(prompt_ids, rows=1, steps=24)).tokens
    )


def test_a_request_larger_than_the_batch_is_refused_with_advice(trained):
    with pytest.raises(ValueError, match="ask for fewer"):
        ContinuousBatcher(trained, max_rows=4).run(job([TOK.bos_token_id], rows=5))


def test_int8_decoding_keeps_the_guards_and_scores_a_real_piece_like_float32(trained, prompt_ids):
    from toccata.modeling.quantized import Int8Cells

    made = decode(trained, job(prompt_ids, rows=4, steps=240, budget=1000), int8=True)
    for row in made.tokens:  # rows that ended early are padded, as generate() pads them
        assert walk(prompt_ids + [i for i in row if i != TOK.pad_token_id], start=1).violations == []
    assert made.tokens != decode(trained, job(prompt_ids, rows=4, steps=240, budget=1000)).tokens  # other arithmetic

    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        exact = torch.log_softmax(trained(input_ids=ids).logits[0, :-1].float(), dim=-1)
        cells = Int8Cells(trained)
        states = [(torch.zeros(1, s), torch.zeros(1, s)) for s in cells.state_sizes]
        rows = [torch.log_softmax(trained.step(ids[:, t], states, cells), dim=-1)[0] for t in range(ids.shape[1] - 1)]
    targets = ids[0, 1:, None]
    exact_nats = -exact.gather(1, targets).mean().item()
    difference = torch.stack(rows).gather(1, targets) - exact.gather(1, targets)
    # What changes the likelihood is a bias, the rule for adopting int8 being "within 1%"; each token's own
    # rounding noise is larger but mostly cancels (broken arithmetic gives tenths of a nat and more).
    bias, noise = difference.mean().item(), difference.abs().mean().item()
    assert abs(bias) < 0.01 * exact_nats, f"int8 scores this piece {bias:+.4f} nats per token off ({exact_nats:.3f})"
    assert noise < 0.03, f"int8 log-probabilities differ by {noise:.4f} nats per token on average"
