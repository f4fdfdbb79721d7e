"""int8 weights for decoding on a CPU: the LSTM cells and the head as dynamically quantized linear layers.

Dynamic quantization keeps int8 weights and quantizes each step's activations on the fly (torch's fbgemm kernels),
reading a quarter of the float32 bytes per step. Two things make it fit decoding:
- **A row's music does not depend on its neighbours.** Dynamic quantization picks one scale for the whole batch from
  its smallest and largest values, so normally a request's arithmetic would change with whoever shares its batch.
  Every quantized input here is an LSTM output h = o * tanh(c), which lies in (-1, 1); two constant columns, +1 and
  -1 (with zero weights), pin the range to [-1, 1] in every batch, so each row is quantized and multiplied (in exact
  integer arithmetic) the same way alone or beside others (tested bit for bit).
- **The first layer reads no quantized input.** Its input is a token's embedding, so its input gates are a float32
  table, one row per token (computed once); only its recurrent h goes through int8.
Measured on the default checkpoint (benchmarks/precision.py, docs/generation.md): bits per note on the piano test
split within 0.1% of float32. The tokens differ from float32 decoding (other arithmetic), so `compose()` uses it only
when asked (`int8=True`); the demo asks.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

PINS = (1.0, -1.0)  # appended to every quantized input: its range is then [-1, 1] whatever the batch holds
# What `torch.ao.nn.quantized.dynamic.Linear.forward` calls for int8 weights, called directly (resolved once): the
# module's own call costs ~6 us more per layer and step.
_LINEAR_DYNAMIC = torch.ops.quantized.linear_dynamic.default


def int8_available(device: torch.device | str = "cpu") -> bool:
    """Whether int8 decoding runs here: a CPU with one of torch's quantized engines (fbgemm/x86, qnnpack)."""
    return torch.device(device).type == "cpu" and any(
        engine != "none" for engine in torch.backends.quantized.supported_engines
    )


def _pinned_linear(weight: torch.Tensor, bias: torch.Tensor | None):
    """A dynamically quantized linear layer over [x, *PINS] (`weight`'s columns, then zero weights for the pins), as
    the packed weights its kernel takes."""
    linear = nn.Linear(weight.shape[1] + len(PINS), weight.shape[0])
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:, : weight.shape[1]] = weight.float()
        linear.bias.copy_(bias.float() if bias is not None else torch.zeros(weight.shape[0]))
    linear.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices: the kernels are what we want
        module = torch.ao.nn.quantized.dynamic.Linear.from_float(linear)
    return module._packed_params._packed_params


class Int8Cells:
    """The matrix products of `NotewiseLSTMForCausalLM.step` in int8, in place of its float32 `StepWeights`: the first
    layer's input gates from a float32 table (`input` looks them up) and its h through int8; each later layer's gates
    from one int8 matrix on [x, h, pins] (W_ih and W_hh side by side); the head in int8. The cell itself is the
    model's (`lstm_cell`). `state_sizes`: each layer's hidden size."""

    def __init__(self, model):
        with torch.no_grad():
            layers = [layer.step_weights() for layer in model.model.layers]  # (W_ih^T, W_hh^T, bias) per layer
            (w_ih, w_hh, bias), later = layers[0], layers[1:]
            embedding = model.get_input_embeddings().weight.detach().float()
            self.input_gates = F.linear(embedding, w_ih.t().float(), bias.float())
            self.first = _pinned_linear(w_hh.t(), None)
            self.later = [_pinned_linear(torch.cat([w_ih.t(), w_hh.t()], dim=1), bias) for w_ih, w_hh, bias in later]
            head = model.get_output_embeddings()
            self.head_weights = _pinned_linear(head.weight, head.bias)
        self.state_sizes = [w_hh.shape[0] for _, w_hh, _ in layers]
        self._pins: dict[int, torch.Tensor] = {}

    def pins(self, rows: int) -> torch.Tensor:
        """The (rows, 2) block of pins (kept per batch size: a step makes none)."""
        block = self._pins.get(rows)
        if block is None:
            block = self._pins[rows] = torch.tensor([PINS]).expand(rows, len(PINS))
        return block

    def input(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """(batch,) ids -> the first layer's input gates (batch, 4 * hidden), from the float32 table."""
        return self.input_gates[input_ids]

    def gates(self, index: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Layer `index`'s gate pre-activations: the first adds its h's int8 product to the table's input gates `x`."""
        pins = self.pins(h.shape[0])
        if index == 0:
            return _LINEAR_DYNAMIC(torch.cat([h, pins], dim=1), self.first, True).add_(x)
        return _LINEAR_DYNAMIC(torch.cat([x, h, pins], dim=1), self.later[index - 1], True)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 logits of the top layer's h."""
        return _LINEAR_DYNAMIC(torch.cat([x, self.pins(x.shape[0])], dim=1), self.head_weights, True)  # reduce_range


__all__ = ["Int8Cells", "int8_available"]
