"""The NotewiseLSTM model: config validation, shapes, loss, state equivalence, dropouts, tying, cache and generate().

A `ModelTester` (transformers' Mamba test style) holds a tiny config and inputs; every test builds what it needs
from it, so the whole file runs in a few seconds on a CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
from toccata.modeling import NotewiseLSTMCache, NotewiseLSTMConfig, NotewiseLSTMForCausalLM, NotewiseLSTMModel
from toccata.tokenization import NotewiseTokenizer
from transformers import AutoConfig, AutoModelForCausalLM

DROPOUTS = ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_dropout")
NO_DROPOUT = dict.fromkeys(DROPOUTS, 0.0)


class NotewiseLSTMModelTester:
    """A tiny config and random inputs over the default vocabulary layout (228 ids)."""

    def __init__(self, batch_size: int = 3, seq_length: int = 11, embedding_size: int = 16, hidden_size: int = 24,
                 num_hidden_layers: int = 2):  # fmt: skip
        self.batch_size, self.seq_length = batch_size, seq_length
        self.embedding_size, self.hidden_size, self.num_hidden_layers = embedding_size, hidden_size, num_hidden_layers

    def get_config(self, **overrides) -> NotewiseLSTMConfig:
        return NotewiseLSTMConfig(
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            **overrides,
        )

    def model(self, seed: int = 0, **overrides) -> NotewiseLSTMForCausalLM:
        torch.manual_seed(seed)
        return NotewiseLSTMForCausalLM(self.get_config(**overrides)).eval()

    def input_ids(self, seed: int = 1, batch_size: int | None = None, seq_length: int | None = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        shape = (batch_size or self.batch_size, seq_length or self.seq_length)
        return torch.randint(4, 228, shape, generator=generator)


TESTER = NotewiseLSTMModelTester()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices gain nothing from intra-op threads, and on a busy 2-core machine the threads' spinning makes
    one-token steps many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def full_and_stepwise_logits(model, ids: torch.Tensor, prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of one full-sequence pass, and of a `prefix` pass followed by one-token passes carrying the cache."""
    full = model(ids, use_cache=False).logits
    out = model(ids[:, :prefix], use_cache=True)
    pieces, cache = [out.logits], out.cache
    for t in range(prefix, ids.shape[1]):
        out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
        pieces.append(out.logits)
        cache = out.cache
    assert cache.seen_tokens == ids.shape[1]
    return full, torch.cat(pieces, dim=1)


# ------------------------------------------------------------------------------------------------ configuration


def test_default_layout_matches_the_notewise_tokenizer():
    config, tok = NotewiseLSTMConfig(), NotewiseTokenizer()
    assert config.vocab_size == tok.vocab_size == 228
    assert (config.note_on_offset, config.note_off_offset, config.wait_offset) == (
        tok.note_on_offset,
        tok.note_off_offset,
        tok.wait_offset,
    )
    assert (config.num_pitches, config.min_pitch, config.max_wait, config.steps_per_quarter) == (
        tok.num_pitches,
        tok.min_pitch,
        tok.max_wait,
        tok.steps_per_quarter,
    )
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (
        tok.pad_token_id,
        tok.bos_token_id,
        tok.eos_token_id,
    )


@pytest.mark.parametrize(
    "kwargs, name, shown",
    [
        ({"vocab_size": 0}, "vocab_size", "0"),
        ({"embedding_size": -3}, "embedding_size", "-3"),
        ({"hidden_size": 2.5}, "hidden_size", "2.5"),
        ({"hidden_size": True}, "hidden_size", "True"),
        ({"num_hidden_layers": 0}, "num_hidden_layers", "0"),
        ({"num_hidden_layers": 65}, "num_hidden_layers", "65"),
        ({"embedding_dropout": 1.0}, "embedding_dropout", "1.0"),
        ({"input_dropout": -0.1}, "input_dropout", "-0.1"),
        ({"hidden_dropout": "0.2"}, "hidden_dropout", "'0.2'"),
        ({"output_dropout": 1.5}, "output_dropout", "1.5"),
        ({"weight_dropout": True}, "weight_dropout", "True"),
        ({"num_pitches": 129}, "num_pitches", "129"),
        ({"min_pitch": 128}, "min_pitch", "128"),
        ({"max_wait": 0}, "max_wait", "0"),
        ({"steps_per_quarter": 0}, "steps_per_quarter", "0"),
        ({"wait_offset": 200}, "wait_offset", "200"),  # 200 + 48 waits do not fit in 228 ids
        ({"note_on_offset": -1}, "note_on_offset", "-1"),
        ({"vocab_size": 100}, "note_off_offset", "92"),  # the default layout no longer fits
    ],
)
def test_config_errors_name_the_argument_and_the_value(kwargs, name, shown):
    with pytest.raises(ValueError) as err:
        NotewiseLSTMConfig(**kwargs)
    message = str(err.value)
    assert f"`{name}`" in message
    assert f"got {shown}" in message


def test_config_round_trips_through_save_and_load(tmp_path):
    config = TESTER.get_config(weight_dropout=0.1, tie_word_embeddings=False, max_wait=24)
    config.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path)
    assert type(again) is NotewiseLSTMConfig
    for name in ("embedding_size", "hidden_size", "num_hidden_layers", "weight_dropout", "max_wait", "wait_offset"):
        assert getattr(again, name) == getattr(config, name), name
    assert again.tie_word_embeddings is False
    assert again.layer_sizes == config.layer_sizes


def test_layer_sizes_end_in_the_embedding_width_only_when_tied():
    tied = NotewiseLSTMConfig(embedding_size=16, hidden_size=24, num_hidden_layers=3)
    untied = NotewiseLSTMConfig(embedding_size=16, hidden_size=24, num_hidden_layers=3, tie_word_embeddings=False)
    assert tied.layer_sizes == [(16, 24), (24, 24), (24, 16)]
    assert untied.layer_sizes == [(16, 24), (24, 24), (24, 24)]
    assert NotewiseLSTMConfig(embedding_size=16, hidden_size=24, num_hidden_layers=1).layer_sizes == [(16, 16)]


# ------------------------------------------------------------------------------------------------ forward, loss


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_forward_shapes_cache_and_hidden_states(tied):
    model = TESTER.model(tie_word_embeddings=tied)
    ids = TESTER.input_ids()
    batch, time = ids.shape
    out = model(ids, use_cache=True, output_hidden_states=True)
    top = TESTER.embedding_size if tied else TESTER.hidden_size
    assert out.logits.shape == (batch, time, 228)
    assert isinstance(out.cache, NotewiseLSTMCache)
    assert len(out.cache) == TESTER.num_hidden_layers and out.cache.seen_tokens == time
    sizes = [out_size for _, out_size in model.config.layer_sizes]
    for (h, c), size in zip(out.cache.states, sizes):
        assert h.shape == c.shape == (batch, size)
    assert len(out.hidden_states) == TESTER.num_hidden_layers + 1
    assert out.hidden_states[0].shape == (batch, time, TESTER.embedding_size)
    assert out.hidden_states[-1].shape == (batch, time, top)
    # the cache's h is the top layer's output at the last position
    h_top = out.cache.states[-1][0]
    torch.testing.assert_close(h_top, out.hidden_states[-1][:, -1], rtol=0, atol=1e-6)

    base = model.model(ids, use_cache=False)
    assert base.last_hidden_state.shape == (batch, time, top) and base.cache is None
    assert isinstance(model.model, NotewiseLSTMModel)


def test_tuple_output_and_logits_to_keep():
    model = TESTER.model()
    ids = TESTER.input_ids()
    full = model(ids, use_cache=False).logits
    logits, cache = model(ids, use_cache=True, return_dict=False)
    torch.testing.assert_close(logits, full)
    assert isinstance(cache, NotewiseLSTMCache)
    last = model(ids, use_cache=False, logits_to_keep=1).logits
    assert last.shape == (ids.shape[0], 1, 228)
    torch.testing.assert_close(last[:, 0], full[:, -1])


def test_inputs_embeds_equal_input_ids_and_exactly_one_is_required():
    model = TESTER.model()
    ids = TESTER.input_ids()
    embeds = model.get_input_embeddings()(ids)
    torch.testing.assert_close(model(inputs_embeds=embeds).logits, model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="exactly one"):
        model(input_ids=ids, inputs_embeds=embeds)
    with pytest.raises(ValueError, match="exactly one"):
        model()


def test_loss_is_the_shifted_cross_entropy_and_ignores_minus_100():
    model = TESTER.model()
    ids = TESTER.input_ids()
    labels = ids.clone()
    labels[0, 3:6] = -100
    out = model(ids, labels=labels)
    # an independent, plain statement of next-token NLL: position t predicts label t + 1
    log_probs = torch.log_softmax(out.logits, dim=-1)
    terms = [
        -log_probs[b, t, labels[b, t + 1]]
        for b in range(ids.shape[0])
        for t in range(ids.shape[1] - 1)
        if labels[b, t + 1] != -100
    ]
    assert len(terms) == ids.shape[0] * (ids.shape[1] - 1) - 3
    torch.testing.assert_close(out.loss, torch.stack(terms).mean(), rtol=1e-5, atol=1e-5)
    # an untrained model is close to uniform over the 228 ids
    assert abs(out.loss.item() - math.log(228)) < 0.5


def test_num_items_in_batch_makes_accumulated_losses_add_up_to_the_whole_batch_loss():
    """What `Trainer` relies on with gradient accumulation: each part's loss is its sum over the labelled tokens of
    all parts, so the parts' losses (and gradients) add up to the whole batch's mean."""
    model = TESTER.model()
    ids = TESTER.input_ids(batch_size=4)
    labels = ids.clone()
    labels[1, 2:9] = -100  # parts with different numbers of labelled tokens
    whole = model(ids, labels=labels).loss
    items = int((labels[:, 1:] != -100).sum())
    parts = [model(ids[i : i + 2], labels=labels[i : i + 2], num_items_in_batch=items).loss for i in (0, 2)]
    torch.testing.assert_close(parts[0] + parts[1], whole, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(parts[0], model(ids[:2], labels=labels[:2]).loss)  # not the part's own mean


def test_labels_with_logits_to_keep_raise_a_clear_error():
    model = TESTER.model()
    ids = TESTER.input_ids()
    with pytest.raises(ValueError, match="logits_to_keep"):
        model(ids, labels=ids, logits_to_keep=1)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_backward_reaches_every_parameter_in_train_mode(tied):
    model = TESTER.model(tie_word_embeddings=tied).train()
    ids = TESTER.input_ids()
    loss = model(ids, labels=ids).loss
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"


def test_a_few_optimizer_steps_lower_the_loss_on_a_fixed_batch():
    model = TESTER.model(**NO_DROPOUT).train()
    ids = TESTER.input_ids()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = model(ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


# ------------------------------------------------------------------------------------------------ state equivalence


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("prefix", [1, 4, 10])
def test_state_equivalence_eval_mode(tied, prefix):
    """Full-sequence forward == prefix pass + one-token passes carrying the state (eval: the hand-written step)."""
    model = TESTER.model(tie_word_embeddings=tied)
    full, stepwise = full_and_stepwise_logits(model, TESTER.input_ids(), prefix)
    torch.testing.assert_close(stepwise, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_state_equivalence_train_mode_without_dropout(tied):
    """The same in train mode (no dropout), where one-token passes go through `nn.LSTM` instead of the fast step."""
    model = TESTER.model(tie_word_embeddings=tied, **NO_DROPOUT).train()
    full, stepwise = full_and_stepwise_logits(model, TESTER.input_ids(), prefix=3)
    torch.testing.assert_close(stepwise, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_the_decoding_step_gives_the_one_token_forwards_logits_and_state_bit_for_bit(tied):
    """`step()` (what the lean loop and int8 decoding call) is the maths of forward at sequence length 1, to the bit:
    that is why the lean loop draws `generate()`'s tokens."""
    tester = NotewiseLSTMModelTester(num_hidden_layers=3)
    model, ids = tester.model(tie_word_embeddings=tied), tester.input_ids()
    with torch.inference_mode():
        out = model(ids[:, :4], use_cache=True)
        cache, states, weights = out.cache, list(out.cache.states), model.step_weights()
        for t in range(4, ids.shape[1]):
            expected = model(ids[:, t : t + 1], cache=cache, use_cache=True).logits[:, 0]
            assert torch.equal(model.step(ids[:, t], states, weights), expected)
            assert all(torch.equal(a, b) for mine, theirs in zip(states, cache.states) for a, b in zip(mine, theirs))
        with pytest.raises(ValueError, match="eval"):
            model.train().step_weights()


def test_state_equivalence_with_three_layers_and_chunks():
    tester = NotewiseLSTMModelTester(num_hidden_layers=3, seq_length=20)
    model = tester.model()
    ids = tester.input_ids()
    full = model(ids, use_cache=False).logits
    cache, pieces = None, []
    for start, stop in [(0, 7), (7, 8), (8, 15), (15, 20)]:  # chunks of several tokens also carry the state
        out = model(ids[:, start:stop], cache=cache, use_cache=True)
        pieces.append(out.logits)
        cache = out.cache
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ padding


def padded(rows: list[torch.Tensor], length: int, side: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask) of `rows` padded to `length` on the left, on the right, or at random places inside."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for b, row in enumerate(rows):
        n = len(row)
        if side == "left":
            where = torch.arange(length - n, length)
        elif side == "right":
            where = torch.arange(n)
        else:
            where = torch.randperm(length, generator=generator)[:n].sort().values
        ids[b, where], mask[b, where] = row, 1
    return ids, mask


ROWS = [TESTER.input_ids(seed=s, batch_size=1, seq_length=n)[0] for s, n in ((1, 9), (2, 4), (3, 1), (4, 6))]


@pytest.mark.parametrize("side", ["left", "right", "inside"])
def test_a_padded_batch_gives_each_row_the_logits_and_state_it_gets_alone(side):
    model = TESTER.model()
    ids, mask = padded(ROWS, 12, side)
    out = model(ids, attention_mask=mask, use_cache=True)
    for b, row in enumerate(ROWS):
        alone = model(row[None], use_cache=True)
        torch.testing.assert_close(out.logits[b, mask[b].bool()], alone.logits[0], rtol=1e-5, atol=1e-5)
        for (h, c), (h1, c1) in zip(out.cache.states, alone.cache.states):
            torch.testing.assert_close(h[b], h1[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(c[b], c1[0], rtol=1e-5, atol=1e-5)
    if side != "right":  # without the mask, padding before a row's tokens is read as music: the row differs
        unmasked = model(ids).logits
        assert not torch.allclose(unmasked[1, mask[1].bool()], model(ROWS[1][None]).logits[0], atol=1e-3)


def test_padding_steps_leave_a_carried_state_alone():
    """A continuation chunk with padding goes on from the cache exactly as the unpadded chunk does."""
    model = TESTER.model()
    start = TESTER.input_ids(seed=5, batch_size=2, seq_length=4)
    chunk = TESTER.input_ids(seed=6, batch_size=2, seq_length=3)
    plain = model(chunk, cache=model(start, use_cache=True).cache, use_cache=True)
    ids, mask = padded(list(chunk), 6, "inside", seed=1)
    mask = torch.cat([torch.ones(2, 4, dtype=torch.long), mask], dim=1)  # as generate() passes it: the whole mask
    out = model(ids, attention_mask=mask, cache=model(start, use_cache=True).cache, use_cache=True)
    torch.testing.assert_close(out.logits[:, -1], plain.logits[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.cache.states[-1][1], plain.cache.states[-1][1], rtol=1e-5, atol=1e-5)


def test_a_padded_batch_trains_with_every_dropout_on():
    model = TESTER.model().train()
    ids, mask = padded(ROWS, 12, "left")
    labels = ids.masked_fill(mask == 0, -100)
    loss = model(ids, attention_mask=mask, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_an_attention_mask_that_does_not_fit_the_inputs_is_refused():
    model = TESTER.model()
    with pytest.raises(ValueError, match="attention_mask of shape"):
        model(TESTER.input_ids(), attention_mask=torch.ones(TESTER.batch_size, 3))


# ------------------------------------------------------------------------------------------------ dropouts


@pytest.mark.parametrize("name", DROPOUTS)
def test_each_dropout_acts_only_in_train_mode(name):
    model = TESTER.model(**{**NO_DROPOUT, name: 0.5})
    ids = TESTER.input_ids()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.eval()
    torch.manual_seed(10)
    first = model(ids).logits
    torch.manual_seed(11)
    torch.testing.assert_close(model(ids).logits, first, rtol=0, atol=0)

    model.train()
    torch.manual_seed(10)
    a = model(ids, use_cache=False).logits
    torch.manual_seed(11)
    b = model(ids, use_cache=False).logits
    assert not torch.allclose(a, b), f"{name}=0.5 changed nothing in train mode"
    assert not torch.allclose(a, first), f"{name}=0.5 changed nothing in train mode"
    for key, value in model.state_dict().items():  # dropping never writes into the weights
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0, msg=key)
    model.eval()
    torch.testing.assert_close(model(ids).logits, first, rtol=0, atol=0)


def test_without_dropout_train_mode_is_deterministic():
    model = TESTER.model(**NO_DROPOUT).train()
    ids = TESTER.input_ids()
    torch.manual_seed(1)
    a = model(ids).logits
    torch.manual_seed(2)
    torch.testing.assert_close(model(ids).logits, a, rtol=0, atol=0)
    torch.testing.assert_close(model.eval()(ids).logits, a, rtol=0, atol=1e-6)


def test_locked_dropout_uses_one_mask_for_every_time_step():
    """Locked (variational) dropout: a feature dropped at one step is dropped at all steps of that sequence."""
    model = TESTER.model(**{**NO_DROPOUT, "output_dropout": 0.5}).train()
    torch.manual_seed(0)
    x = torch.ones(4, 9, 16)
    y = model.output_dropout(x)
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(y, y[:, :1, :].expand_as(y))


# ------------------------------------------------------------------------------------------------ tying, save/load


def test_tied_head_shares_the_embedding_tensor():
    model = TESTER.model()
    assert model.lm_head.weight is model.model.embeddings.weight
    assert model.lm_head.weight.shape == (228, TESTER.embedding_size)
    with torch.no_grad():
        model.model.embeddings.weight[7] += 1.0
    assert torch.equal(model.lm_head.weight[7], model.model.embeddings.weight[7])


def test_untied_head_has_its_own_weights_of_hidden_width():
    model = TESTER.model(tie_word_embeddings=False)
    assert model.lm_head.weight is not model.model.embeddings.weight
    assert model.lm_head.weight.data_ptr() != model.model.embeddings.weight.data_ptr()
    assert model.lm_head.weight.shape == (228, TESTER.hidden_size)
    assert model.lm_head.weight.abs().max() > 0  # initialised, not left at zero
    torch.testing.assert_close(model.lm_head.bias, torch.zeros(228))


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_save_and_load_give_the_same_model(tmp_path, tied):
    model = TESTER.model(seed=3, tie_word_embeddings=tied, weight_dropout=0.1)
    with torch.no_grad():
        model.lm_head.bias.normal_()  # a non-default value that must survive the trip
    ids = TESTER.input_ids()
    expected = model(ids).logits
    model.save_pretrained(tmp_path)

    for loader in (NotewiseLSTMForCausalLM, AutoModelForCausalLM):
        again = loader.from_pretrained(tmp_path).eval()
        assert type(again) is NotewiseLSTMForCausalLM
        assert again.config.tie_word_embeddings is tied
        assert (again.lm_head.weight is again.model.embeddings.weight) is tied
        assert again.config.weight_dropout == 0.1
        for key, value in model.state_dict().items():
            torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0, msg=key)
        torch.testing.assert_close(again(ids).logits, expected, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ the cache


def _cache_with_rows(rows: int = 4) -> NotewiseLSTMCache:
    """Two layers; in layer i, row r holds h = r + 10 i and c = h + 100 in every feature."""
    cache = NotewiseLSTMCache(2)
    h = [torch.arange(rows, dtype=torch.float).unsqueeze(1).repeat(1, 6) + 10 * i for i in range(2)]
    cache.states = [(layer_h, layer_h + 100) for layer_h in h]
    cache.seen_tokens = 5
    return cache


def _rows(cache: NotewiseLSTMCache, layer: int) -> tuple[list[float], list[float]]:
    h, c = cache.states[layer]
    return h[:, 0].tolist(), c[:, -1].tolist()


def test_cache_bookkeeping():
    cache = NotewiseLSTMCache(3)
    assert len(cache) == 3 and not cache.is_initialized and cache.batch_size == 0
    assert cache.get_seq_length() == 0
    cache = _cache_with_rows(4)
    assert cache.is_initialized and cache.batch_size == 4 and cache.get_seq_length() == 5
    assert "seen_tokens=5" in repr(cache)
    with pytest.raises(NotImplementedError, match="cannot be cropped"):
        cache.crop(1)
    cache.reset()
    assert cache.states == [None, None] and cache.get_seq_length() == 0


def test_cache_reorder_repeat_and_select_move_whole_rows():
    cache = _cache_with_rows(4)
    cache.reorder_cache(torch.tensor([2, 0, 0, 3]))
    assert _rows(cache, 0) == ([2, 0, 0, 3], [102, 100, 100, 103])
    assert _rows(cache, 1) == ([12, 10, 10, 13], [112, 110, 110, 113])
    assert cache.seen_tokens == 5

    cache = _cache_with_rows(2)
    cache.batch_repeat_interleave(3)
    assert _rows(cache, 0) == ([0, 0, 0, 1, 1, 1], [100, 100, 100, 101, 101, 101])
    assert _rows(cache, 1) == ([10, 10, 10, 11, 11, 11], [110, 110, 110, 111, 111, 111])
    assert cache.batch_size == 6

    cache = _cache_with_rows(4)
    cache.batch_select_indices(torch.tensor([3, 1]))
    assert _rows(cache, 1) == ([13, 11], [113, 111])

    empty = NotewiseLSTMCache(2)
    empty.reorder_cache(torch.tensor([0]))  # nothing to move yet: no error
    assert empty.states == [None, None]


def test_reordered_cache_continues_the_reordered_sequences():
    model = TESTER.model()
    ids = TESTER.input_ids(seq_length=12)
    order = torch.tensor([2, 0, 1])
    expected = model(ids[order]).logits[:, 8:]
    cache = model(ids[:, :8], use_cache=True).cache
    cache.reorder_cache(order)
    got = model(ids[order, 8:], cache=cache, use_cache=True).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_repeated_cache_continues_each_copy_independently():
    model = TESTER.model()
    prefix = TESTER.input_ids(batch_size=1, seq_length=6)
    tails = TESTER.input_ids(seed=5, batch_size=3, seq_length=4)
    full = torch.cat([prefix.expand(3, -1), tails], dim=1)
    expected = model(full).logits[:, 6:]
    cache = model(prefix, use_cache=True).cache
    cache.batch_repeat_interleave(3)
    torch.testing.assert_close(model(tails, cache=cache, use_cache=True).logits, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ generate()


def test_generate_feeds_the_prompt_once_then_one_token_per_step():
    model = TESTER.model()
    prompt = TESTER.input_ids(batch_size=2, seq_length=7)
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.append((tuple(ids.shape), kwargs.get("cache")))
        return forward(*args, **kwargs)

    model.forward = spy
    out = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert out.shape == (2, 13)
    assert [shape for shape, _ in seen] == [(2, 7)] + [(2, 1)] * 5
    assert all(isinstance(cache, NotewiseLSTMCache) for _, cache in seen[1:])
    assert seen[-1][1].seen_tokens == 12


def test_generate_with_cache_equals_generate_without():
    """The cached, one-token-per-step loop and the whole-prefix-every-step loop pick the same greedy tokens."""
    model = TESTER.model()
    prompt = TESTER.input_ids(batch_size=2, seq_length=5)
    cached = model.generate(prompt, max_new_tokens=15, do_sample=False, pad_token_id=0)
    uncached = model.generate(prompt, max_new_tokens=15, do_sample=False, pad_token_id=0, use_cache=False)
    assert torch.equal(cached, uncached)
    # and each greedy token is the argmax of a full forward pass over what came before
    logits = model(cached).logits
    assert torch.equal(logits[:, 4:-1].argmax(dim=-1), cached[:, 5:])


@pytest.mark.parametrize("side", ["left", "right"])
def test_generate_on_a_padded_batch_gives_each_prompt_its_own_continuation(side):
    """Prompts of different lengths in one padded batch (`attention_mask`): the tokens each gets alone."""
    model = TESTER.model()
    ids, mask = padded(ROWS[:3], 9, side)
    batch = model.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    for b, row in enumerate(ROWS[:3]):
        alone = model.generate(row[None], max_new_tokens=12, do_sample=False, pad_token_id=0)
        assert batch[b, 9:].tolist() == alone[0, len(row) :].tolist(), b


def test_beam_search_reorders_the_cache():
    """Beam scores equal the log-probability that a full forward pass gives each returned sequence, and the cached
    run equals the run that re-reads the whole prefix: a wrong `reorder_cache` breaks both."""
    model = TESTER.model()
    prompt = TESTER.input_ids(batch_size=1, seq_length=4)
    kwargs = {
        "max_new_tokens": 8,
        "num_beams": 4,
        "num_return_sequences": 3,
        "do_sample": False,
        "length_penalty": 0.0,
        "return_dict_in_generate": True,
        "output_scores": True,
        "pad_token_id": 0,
    }
    cached = model.generate(prompt, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.sequences.shape == (3, 12)
    assert len({tuple(row) for row in cached.sequences.tolist()}) == 3
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, rtol=0, atol=1e-4)

    log_probs = torch.log_softmax(model(cached.sequences).logits, dim=-1)
    new = cached.sequences[:, 4:]
    totals = log_probs[:, 3:-1].gather(2, new.unsqueeze(-1)).squeeze(-1).sum(dim=1)
    torch.testing.assert_close(cached.sequences_scores, totals, rtol=0, atol=1e-4)


def test_generate_from_inputs_embeds_equals_generate_from_input_ids():
    model = TESTER.model()
    prompt = TESTER.input_ids(batch_size=2, seq_length=5)
    from_ids = model.generate(prompt, max_new_tokens=10, do_sample=False, pad_token_id=0)
    embeds = model.get_input_embeddings()(prompt)
    from_embeds = model.generate(inputs_embeds=embeds, max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(from_embeds, from_ids[:, 5:])
