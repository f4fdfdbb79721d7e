"""Classifier-free guidance for `model.generate()`: the logits c that follow the prompt (a composer label first) are
pushed away from those u that follow the same tokens without it, u + g (c - u), as `compose()`'s loop does.

A label-conditioned checkpoint was trained with the label dropped from a share of its windows, so one network
predicts both: g = 1 is the label alone (as trained), g > 1 steers harder towards what the label changes (MusicGen
and text-to-image models guide so), 0 < g < 1 weaker. `compose()` does the same in `decoding.DecodeBatch._guide`.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

MAX_GUIDANCE = 10.0  # guidance is checked to lie in [0, MAX_GUIDANCE] wherever a user sets it


class ClassifierFreeGuidance(LogitsProcessor):
    """A logits processor holding the unconditional prompt's LSTM state; it must come before the guards and the
    sampler (`generate_kwargs(..., guidance=...)` puts it first). One instance per `generate()` call."""

    def __init__(self, model, unconditional_ids: list[int], guidance: float):
        if not unconditional_ids:
            raise ValueError("classifier-free guidance needs the unconditional prompt (at least the BOS id)")
        if not 0.0 <= guidance <= MAX_GUIDANCE:
            raise ValueError(f"guidance must be from 0 to {MAX_GUIDANCE:g}, got {guidance!r}")
        self.model, self.unconditional_ids, self.guidance = model, list(unconditional_ids), float(guidance)
        self.states: list | None = None

    @torch.inference_mode()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.states is None:  # the first step: read the unconditional prompt, one row per sequence
            ids = torch.tensor([self.unconditional_ids] * input_ids.shape[0], device=input_ids.device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, return_dict=True)
            self.states = list(out.cache.states)
            plain = out.logits[:, -1, :].to(torch.float32)
        else:  # later steps: the token generate() chose last
            plain = self.model.step(input_ids[:, -1], self.states)
        return torch.lerp(plain, scores.to(torch.float32), self.guidance).to(scores.dtype)


__all__ = ["MAX_GUIDANCE", "ClassifierFreeGuidance"]
