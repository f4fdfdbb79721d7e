"""NotewiseLSTM: an AWD-LSTM style language model over notewise tokens, as a transformers `PreTrainedModel`.

Embedding -> stacked LSTM layers with locked dropouts and weight drop -> linear head (tied to the embedding by
default). The recurrent state (h, c) of every layer travels in a `NotewiseLSTMCache` (a transformers `Cache`), which
`generate()` hands back at each step, so it feeds one token per step and never the whole prefix again.
`NotewiseLSTMForSequenceClassification` puts a pooled classification head on the same encoder (critic, composer).

At sequence length 1 in eval mode (every decoding step) the layers skip `nn.LSTM` and run the cell by hand with two
`addmm`s on the same weights: on a CPU that is several times faster than `nn.LSTM`'s per-call overhead. `lstm_cell`
is that cell, written once; `NotewiseLSTMForCausalLM.step` is one token through every layer and the head, which the
lean decoding loop calls with these weights (`step_weights()`) and int8 decoding with its quantized ones.
This file imports only torch, transformers and its configuration module, so it travels to the Hub with the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.utils import ModelOutput

from .configuration_notewise_lstm import NotewiseLSTMConfig

# transformers renamed `past_key_values` to `cache` in 5.24; older 5.x versions pass and read the old name.
_OLD_CACHE_NAME = tuple(int(part) for part in transformers.__version__.split(".")[:2]) < (5, 24)


LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (batch, layer size)


class NotewiseLSTMCache(Cache):
    """The recurrent state (h, c) of every layer, plus the number of tokens read.

    A transformers `Cache` with no key/value layers: `generate()` only passes it along, reorders it for beam search
    and expands it for several return sequences, which the methods below do on the state tensors.
    """

    def __init__(self, num_layers: int):
        super().__init__(layers=[])
        self.states: list[LSTMState | None] = [None] * num_layers
        self.seen_tokens = 0

    def __len__(self) -> int:
        return len(self.states)

    def __repr__(self) -> str:
        return f"NotewiseLSTMCache(layers={len(self.states)}, seen_tokens={self.seen_tokens})"

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return -1

    @property
    def is_linear(self) -> list[bool]:
        return [True] * len(self.states)

    @property
    def is_sliding(self) -> list[bool]:
        return [False] * len(self.states)

    @property
    def is_dummy(self) -> list[bool]:
        return [False] * len(self.states)

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_croppable(self) -> bool:
        return False

    @property
    def is_initialized(self) -> bool:
        return self.states[0] is not None

    @property
    def batch_size(self) -> int:
        return 0 if self.states[0] is None else self.states[0][0].shape[0]

    def _map(self, fn) -> None:
        self.states = [None if s is None else (fn(s[0]), fn(s[1])) for s in self.states]

    def reset(self) -> None:
        self.states = [None] * len(self.states)
        self.seen_tokens = 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map(lambda s: s.index_select(0, beam_idx.to(s.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map(lambda s: s.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map(lambda s: s[indices, ...])

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("NotewiseLSTMCache cannot be cropped: an LSTM state cannot forget tokens")


@dataclass
class NotewiseLSTMOutput(ModelOutput):
    """Output of [`NotewiseLSTMModel`]: the top layer's output at every position and the recurrent state."""

    last_hidden_state: torch.Tensor | None = None  # (batch, time, top layer size)
    cache: Cache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class NotewiseLSTMCausalLMOutput(ModelOutput):
    """Output of [`NotewiseLSTMForCausalLM`]: next-token loss (when labels are given), logits and recurrent state."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (batch, time, vocab)
    cache: Cache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class NotewiseLSTMSequenceClassifierOutput(ModelOutput):
    """Output of [`NotewiseLSTMForSequenceClassification`]: loss (when labels are given) and one row of logits per
    sequence."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (batch, num_labels)
    hidden_states: tuple[torch.Tensor, ...] | None = None


class LockedDropout(nn.Module):
    """Variational dropout: one mask per sequence, shared by every time step (AWD-LSTM)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, time, features)
        if not self.training or self.p == 0.0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * mask


class NotewiseLSTMLayer(nn.Module):
    """One LSTM layer with DropConnect on its hidden-to-hidden weights; its state is (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, weight_dropout: float):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_dropout = weight_dropout
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(
        self, x: torch.Tensor, state: LSTMState | None, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        """x: (batch, time, input); state: (h, c), each (batch, hidden), or None for zeros; keep: (batch, time) bool,
        False at padding, or None for none. Returns (output, state)."""
        if keep is not None:
            return self._masked(x, state, keep)
        if state is not None and x.shape[1] == 1 and not self.training:
            return self._step(x, state)
        hx = None if state is None else (state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous())
        out, (h_n, c_n) = self._run(x, hx)
        return out, (h_n[0], c_n[0])

    def _run(self, x: torch.Tensor | PackedSequence, hx: LSTMState | None):
        """`nn.LSTM` on x, its hidden-to-hidden weights dropped (DropConnect) in training."""
        if self.training and self.weight_dropout > 0.0:
            dropped = F.dropout(self.lstm.weight_hh_l0, self.weight_dropout, training=True)
            return functional_call(self.lstm, {"weight_hh_l0": dropped}, (x, hx))
        return self.lstm(x, hx)

    def _masked(self, x: torch.Tensor, state: LSTMState | None, keep: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        """Padding skipped, on either side or inside: each row reads only its kept steps, as it would alone, and a
        padding step outputs the row's latest h (its state before the first kept step). One packed `nn.LSTM` call:
        each row's kept steps are moved to its front, run, and put back."""
        batch, time, _ = x.shape
        h0, c0 = state if state is not None else (x.new_zeros(batch, self.hidden_size),) * 2
        lengths = keep.sum(dim=1)
        front = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept steps first, in their order
        compact = x.gather(1, front.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        packed = pack_padded_sequence(compact, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = self._run(packed, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=time)
        read = keep.long().cumsum(dim=1)  # kept steps read so far, at every step
        out = out.gather(1, (read - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, self.hidden_size))
        out = torch.where((read > 0).unsqueeze(-1), out, h0.unsqueeze(1))
        empty = (lengths == 0).unsqueeze(-1)  # all padding: the state stays as it was
        return out, (torch.where(empty, h0, h_n[0]), torch.where(empty, c0, c_n[0]))

    def step_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih^T, W_hh^T, b_ih + b_hh): what one inference step multiplies (weight drop acts in training only)."""
        lstm = self.lstm
        return lstm.weight_ih_l0.t(), lstm.weight_hh_l0.t(), lstm.bias_ih_l0 + lstm.bias_hh_l0

    def _step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, LSTMState]:
        """One time step by hand, same maths and weights as `nn.LSTM`, fewest kernel calls."""
        w_ih, w_hh, bias = self.step_weights()
        h, c = lstm_cell(torch.addmm(bias, x[:, 0], w_ih).addmm_(state[0], w_hh), state[1])
        return h.unsqueeze(1), (h, c)


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> LSTMState:
    """(h, c) from the gates' pre-activations (batch, 4 * hidden), in `nn.LSTM`'s order i, f, g, o, and the previous
    c (batch, hidden): the cell's maths, written once for every one-token path (forward, lean loop, int8)."""
    size = c.shape[1]
    i, f, _, o = gates.sigmoid().chunk(4, dim=1)
    c = torch.addcmul(f * c, i, gates[:, 2 * size : 3 * size].tanh())
    return o * c.tanh(), c


class StepWeights:
    """The matrix products of one decoding step in the model's float weights, bound once (no per-step attribute
    walk): the embedding lookup, each layer's gates (two `addmm`s, as `NotewiseLSTMLayer._step`), the head.
    `NotewiseLSTMForCausalLM.step` calls these three; int8 decoding (`quantized.Int8Cells`) supplies its own."""

    def __init__(self, model: NotewiseLSTMForCausalLM):
        if model.training:
            raise ValueError("NotewiseLSTMForCausalLM.step is an inference step: call model.eval() first")
        self.embedding = model.get_input_embeddings().weight
        self.layers = [layer.step_weights() for layer in model.model.layers]
        self.head_weight, self.head_bias = model.lm_head.weight, model.lm_head.bias

    def input(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(batch,) ids -> (batch, embedding size)."""
        return self.embedding[input_ids]

    def gates(self, index: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Layer `index`'s gate pre-activations (batch, 4 * hidden) from its input x and previous h."""
        w_ih, w_hh, bias = self.layers[index]
        return torch.addmm(bias, x, w_ih).addmm_(h, w_hh)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 logits (batch, vocab) of the top layer's h (what `lm_head` computes, without its module call)."""
        logits = F.linear(x, self.head_weight, self.head_bias)
        return logits if logits.dtype == torch.float32 else logits.float()


class NotewiseLSTMPreTrainedModel(PreTrainedModel):
    """Weight initialisation and the transformers plumbing shared by the notewise LSTM models."""

    config: NotewiseLSTMConfig
    config_class = NotewiseLSTMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _is_stateful = True
    _no_split_modules = ["NotewiseLSTMLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        """Uniform embeddings (AWD-LSTM), PyTorch's LSTM init with forget-gate bias 1, zero head bias."""
        r = self.config.initializer_range
        if isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -r, r)
        elif isinstance(module, nn.LSTM):
            bound = 1.0 / math.sqrt(module.hidden_size)
            for name, param in module.named_parameters():
                if name.startswith("weight"):
                    init.uniform_(param, -bound, bound)
                else:  # biases: the forget gate (second quarter of bias_ih) starts at 1 so memory lasts early on
                    bias = torch.zeros_like(param)
                    if name.startswith("bias_ih"):
                        bias[module.hidden_size : 2 * module.hidden_size] = 1.0
                    init.copy_(param, bias)
        elif isinstance(module, nn.Linear):
            if not self.config.tie_word_embeddings:
                init.uniform_(module.weight, -r, r)
            if module.bias is not None:
                init.zeros_(module.bias)


class NotewiseLSTMModel(NotewiseLSTMPreTrainedModel):
    """Embedding and stacked LSTM layers; returns the top layer's output and the recurrent state."""

    def __init__(self, config: NotewiseLSTMConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.layers = nn.ModuleList(
            NotewiseLSTMLayer(inp, out, config.weight_dropout) for inp, out in config.layer_sizes
        )
        self.input_dropout = LockedDropout(config.input_dropout)
        self.hidden_dropout = LockedDropout(config.hidden_dropout)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def _embed(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Embedding lookup; in training, whole word types are dropped (embedding dropout, AWD-LSTM)."""
        weight = self.embeddings.weight
        p = self.config.embedding_dropout
        if self.training and p > 0.0:
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1.0 - p) / (1.0 - p)
            weight = weight * keep
        return F.embedding(input_ids, weight)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> NotewiseLSTMOutput | tuple:
        """input_ids: (batch, time). `cache` carries (h, c) of every layer from the previous call. `attention_mask`
        (0 at padding; its last `time` columns are these inputs', as `generate()` passes it): padded steps leave the
        state alone, so a padded row gives the outputs and state it gives alone, left, right or inside padding."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("NotewiseLSTMModel.forward: pass exactly one of `input_ids` or `inputs_embeds`")
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        output_hidden_states = bool(output_hidden_states)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if cache is not None and not isinstance(cache, NotewiseLSTMCache):
            cache = None  # the empty DynamicCache that generate() creates for every model: ours replaces it
        if use_cache and cache is None:
            cache = NotewiseLSTMCache(len(self.layers))

        hidden = self._embed(input_ids) if inputs_embeds is None else inputs_embeds
        keep = _padding_to_skip(attention_mask, hidden.shape[:2])
        if self.training:
            hidden = self.input_dropout(hidden)
        all_hidden = (hidden,) if output_hidden_states else None
        for index, layer in enumerate(self.layers):
            state = cache.states[index] if cache is not None else None
            hidden, new_state = layer(hidden, state, keep)
            if cache is not None:
                cache.states[index] = new_state
            if self.training and index < len(self.layers) - 1:
                hidden = self.hidden_dropout(hidden)
            if output_hidden_states:
                all_hidden += (hidden,)

        if cache is not None:
            cache.seen_tokens += hidden.shape[1]
        if not return_dict:
            return tuple(v for v in (hidden, cache, all_hidden) if v is not None)
        return NotewiseLSTMOutput(last_hidden_state=hidden, cache=cache, hidden_states=all_hidden)


def _padding_to_skip(attention_mask: torch.Tensor | None, shape: torch.Size) -> torch.Tensor | None:
    """The mask's last `time` columns as bool (False = padding) where any is 0; None where there is no padding."""
    if attention_mask is None:
        return None
    batch, time = shape
    if attention_mask.dim() != 2 or attention_mask.shape[0] != batch or attention_mask.shape[1] < time:
        raise ValueError(
            f"attention_mask of shape {tuple(attention_mask.shape)} does not cover inputs of shape ({batch}, {time}): "
            "pass a (batch, time) mask, 1 for tokens and 0 for padding"
        )
    keep = attention_mask[:, attention_mask.shape[1] - time :].to(torch.bool)
    return None if bool(keep.all()) else keep


class NotewiseLSTMForCausalLM(NotewiseLSTMPreTrainedModel, GenerationMixin):
    """The notewise LSTM with a next-token head: `forward(input_ids, labels=..., cache=...)` and `generate()`."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}

    def __init__(self, config: NotewiseLSTMConfig):
        super().__init__(config)
        self.model = NotewiseLSTMModel(config)
        self.output_dropout = LockedDropout(config.output_dropout)
        self.lm_head = nn.Linear(config.layer_sizes[-1][1], config.vocab_size, bias=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def step_weights(self) -> StepWeights:
        """The weights `step()` multiplies, bound once for a decoding loop (the model in eval mode)."""
        return StepWeights(self)

    def step(
        self, input_ids: torch.LongTensor, states: list[LSTMState], weights: StepWeights | None = None
    ) -> torch.Tensor:
        """One token per row through every layer and the head: (batch,) ids -> float32 logits (batch, vocab).

        `states` holds each layer's (h, c), each (batch, hidden), and is updated in place. The maths of `forward` at
        sequence length 1 in eval mode (the same tokens from `generate()`; tested), without its cache and output
        objects: the lean decoding loop calls it at every step with `weights` from `step_weights()`, int8 decoding
        with its quantized `Int8Cells`. Without `weights`, the model's own (bound at each call)."""
        weights = weights if weights is not None else StepWeights(self)
        x = weights.input(input_ids)
        for index, (h, c) in enumerate(states):
            x, c = lstm_cell(weights.gates(index, x, h), c)
            states[index] = (x, c)
        return weights.head(x)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | None = None,
        next_sequence_length: int | None = None,
        **kwargs,
    ) -> dict:
        """Only the tokens the recurrent state has not read yet: the prompt first, then one token per step.

        Leaner than the generic version, which inspects signatures and builds attention masks for every step; the
        prompt's 2-D `attention_mask` goes along, for the padding to skip.
        """
        cache = cache if cache is not None else kwargs.get("past_key_values")  # transformers < 5.24 calls it so
        seen = cache.seen_tokens if isinstance(cache, NotewiseLSTMCache) else 0
        inputs: dict = {"cache": cache, "use_cache": use_cache}
        if seen == 0 and inputs_embeds is not None:
            inputs["inputs_embeds"] = inputs_embeds
        elif input_ids.shape[1] > seen:
            inputs["input_ids"] = input_ids[:, seen:]
        else:  # generation that began from inputs_embeds: input_ids holds the generated tokens only
            inputs["input_ids"] = input_ids[:, -(next_sequence_length or 1) :]
        mask, width = kwargs.get("attention_mask"), (inputs.get("input_ids", inputs_embeds)).shape[1]
        if mask is not None and width > 1:  # the prompt: padding to skip; a step's single new token is never padding
            inputs["attention_mask"] = mask[:, mask.shape[1] - width :]
        if logits_to_keep is not None:
            inputs["logits_to_keep"] = logits_to_keep
        return inputs

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> NotewiseLSTMCausalLMOutput | tuple:
        """Logits for every position (or the last `logits_to_keep`); `labels` are shifted inside (-100 = ignore). The
        loss is the mean over labelled tokens, or their sum over `num_items_in_batch` where `Trainer` passes it (as
        transformers' causal LMs do), so gradient accumulation gives the loss of one large batch.

        `attention_mask` (0 at padding, on either side): padded steps leave the recurrent state alone, so prompts of
        different lengths padded into one batch give each the logits, state and `generate()` tokens it gets alone.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        cache = cache if cache is not None else kwargs.get("past_key_values")  # transformers < 5.24 calls it so
        outputs = self.model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=False,
            attention_mask=attention_mask,
        )
        cache = outputs[1] if len(outputs) > 1 and isinstance(outputs[1], Cache) else None
        all_hidden = outputs[-1] if output_hidden_states else None
        hidden = self.output_dropout(outputs[0]) if self.training else outputs[0]
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])

        loss = None
        if labels is not None:
            shifted = logits[:, :-1, :] if logits.shape[1] == labels.shape[1] else None
            if shifted is None:
                raise ValueError(
                    f"NotewiseLSTMForCausalLM: labels of length {labels.shape[1]} need logits for every position; "
                    f"got {logits.shape[1]} (do not pass logits_to_keep with labels)"
                )
            num_items = kwargs.get("num_items_in_batch")  # `Trainer` with gradient accumulation: labels in all batches
            loss = F.cross_entropy(
                shifted.reshape(-1, shifted.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
                reduction="mean" if num_items is None else "sum",
            )
            if num_items is not None:
                loss = loss / torch.as_tensor(num_items, device=loss.device)

        if not return_dict:
            return tuple(v for v in (loss, logits, cache, all_hidden) if v is not None)
        output = NotewiseLSTMCausalLMOutput(loss=loss, logits=logits, cache=cache, hidden_states=all_hidden)
        if _OLD_CACHE_NAME and cache is not None:
            output["past_key_values"] = cache  # where transformers < 5.24 looks for it between generation steps
        return output


class NotewiseLSTMForSequenceClassification(NotewiseLSTMPreTrainedModel):
    """The notewise LSTM encoder with a classification head over concat pooling (ULMFiT): the top layer's output
    at the last real token, its maximum and its mean over the real tokens, then dropout and a linear layer.

    The encoder sits under `model.` as in [`NotewiseLSTMForCausalLM`], so `from_pretrained(generator, num_labels=...)`
    loads a generator's embedding and LSTM layers and initialises only the head (its `lm_head` is dropped).
    `config.classifier_dropout` (default 0.1) is the dropout before the head.
    """

    accepts_loss_kwargs = False  # the loss is a mean over the batch: `Trainer` divides it by accumulation steps itself

    def __init__(self, config: NotewiseLSTMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = NotewiseLSTMModel(config)
        top = config.layer_sizes[-1][1]
        self.head_dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(3 * top, config.num_labels, bias=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings = value

    def _init_weights(self, module: nn.Module) -> None:
        """As the causal model; the head is a small uniform linear layer (the tied-embedding rule does not apply)."""
        if module is getattr(self, "classifier", None):
            bound = 1.0 / math.sqrt(module.in_features)
            init.uniform_(module.weight, -bound, bound)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, time, size) -> (batch, 3 * size): [last real step, max, mean] over the unmasked (right-padded) steps."""
        if attention_mask is None:
            return torch.cat([hidden[:, -1], hidden.amax(dim=1), hidden.mean(dim=1)], dim=-1)
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (batch, time, 1)
        lengths = mask.sum(dim=1).clamp(min=1.0)  # (batch, 1)
        last_index = (lengths.long() - 1).view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])
        last = hidden.gather(1, last_index).squeeze(1)
        largest = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(dim=1)
        mean = (hidden * mask).sum(dim=1) / lengths
        return torch.cat([last, largest, mean], dim=-1)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> NotewiseLSTMSequenceClassifierOutput | tuple:
        """input_ids: (batch, time), right-padded where `attention_mask` (batch, time) is 0. labels: (batch,) class
        ids (cross-entropy), or floats when `num_labels == 1` (mean squared error)."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = self.pool(outputs.last_hidden_state, attention_mask)
        logits = self.classifier(self.head_dropout(pooled))  # (batch, num_labels)
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1).long())
        if not return_dict:
            return tuple(v for v in (loss, logits, outputs.hidden_states) if v is not None)
        return NotewiseLSTMSequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = [
    "NotewiseLSTMCache",
    "NotewiseLSTMCausalLMOutput",
    "NotewiseLSTMForCausalLM",
    "NotewiseLSTMForSequenceClassification",
    "NotewiseLSTMModel",
    "NotewiseLSTMOutput",
    "NotewiseLSTMPreTrainedModel",
    "NotewiseLSTMSequenceClassifierOutput",
    "StepWeights",
    "lstm_cell",
]
