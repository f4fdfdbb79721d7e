"""int8 weights for decoding on a CPU: the LSTM cells and the head as dynamically quantized linear layers.

Dynamic quantization keeps int8 weights and quantizes each step's activations on the fly (torch's fbgemm kernels),
reading a quarter of the float32 bytes per step. Measured on the default checkpoint (benchmarks/precision.py): bits
per note on the piano test split within 0.1% of float32, decoding faster at batch 1 and 8. The tokens differ from
float32 decoding (different arithmetic), so `compose()` uses it only when asked (`int8=True`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn


class Int8Cells:
    """`(ids, states) -> logits` like `DecodeBatch`'s float32 step: each layer's gates from one int8 matrix on
    [input, h] (W_ih and W_hh side by side), the head in int8; the embedding stays float32 (it is only indexed)."""

    def __init__(self, model):
        qlinear = torch.ao.nn.quantized.dynamic.Linear
        qconfig = torch.ao.quantization.default_dynamic_qconfig
        self.embedding = model.get_input_embeddings().weight.detach().float()
        self.cells = []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notices: the kernels are what we want
            for layer in model.model.layers:
                lstm = layer.lstm
                both = nn.Linear(lstm.input_size + lstm.hidden_size, 4 * lstm.hidden_size)
                both.weight.copy_(torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1).float())
                both.bias.copy_((lstm.bias_ih_l0 + lstm.bias_hh_l0).float())
                both.qconfig = qconfig
                self.cells.append((qlinear.from_float(both), lstm.hidden_size))
            head = nn.Linear(model.lm_head.in_features, model.lm_head.out_features)
            head.weight.copy_(model.lm_head.weight.float())
            head.bias.copy_(model.lm_head.bias.float())
            head.qconfig = qconfig
            self.head = qlinear.from_float(head)

    def __call__(self, ids: torch.Tensor, states: list) -> torch.Tensor:
        x = F.embedding(ids, self.embedding)
        for index, (linear, size) in enumerate(self.cells):
            h, c = states[index]
            gates = linear(torch.cat([x, h], dim=1))
            i, f, _, o = gates.sigmoid().chunk(4, dim=1)
            c = torch.addcmul(f * c, i, gates[:, 2 * size : 3 * size].tanh())
            x = h = o * c.tanh()
            states[index] = (h, c)
        return self.head(x)


__all__ = ["Int8Cells"]
