"""A checkpoint's sampler and guard settings as transformers sees them: the preset stored in its `GenerationConfig`
(read by the pipeline, the CLI and the demo), and the keyword arguments that make `model.generate()` sample and
guard as `compose()` does.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from .guards import GuardSettings, guard_processors
from .layout import VocabLayout
from .sampling import SamplerSettings, sampler_processors


class ProcessorChain(LogitsProcessor):
    """Several processors as one: transformers inspects every processor's signature at every step, so one is cheaper."""

    def __init__(self, processors: list[LogitsProcessor]):
        self.processors = list(processors)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for processor in self.processors:
            scores = processor(input_ids, scores)
        return scores


def generate_kwargs(
    config,
    sampler: SamplerSettings | None = None,
    guards: GuardSettings | None = None,
    device: torch.device | str = "cpu",
    guidance: LogitsProcessor | None = None,
) -> dict:
    """Keyword arguments for `model.generate()` that apply a sampler and the guards; `guidance` (a
    `ClassifierFreeGuidance` for this call) first, as `compose()` guides before it guards.

    Example:
        >>> out = model.generate(ids, max_new_tokens=500, **generate_kwargs(model.config, SamplerSettings("top_k", k=5, seed=1)))
    """
    layout = VocabLayout.from_config(config)
    sampler = (sampler or SamplerSettings()).resolved()
    processors = guard_processors(guards or GuardSettings(), layout) + sampler_processors(sampler, device)
    if guidance is not None:
        processors.insert(0, guidance)
    return {"logits_processor": LogitsProcessorList([ProcessorChain(processors)]), "do_sample": False}


def transformers_sampling(sampler: SamplerSettings) -> dict:
    """transformers' own sampling fields (`do_sample`, `top_k`, `temperature`) nearest to `sampler`, so that a plain
    `model.generate(ids)` samples like the preset instead of looping greedily on one figure (issue 35). `top_n` and
    `mixed` have no exact equivalent: they become a top-k draw among their `n` or `trunc` best guesses. Our own
    decoding never reads these fields: `compose()` and `generate_kwargs()` draw with the preset's `SeededDraw`."""
    if sampler.sampler == "greedy":
        return {"do_sample": False, "top_k": None, "temperature": None}
    top_k = {"top_k": sampler.k, "weighted": 0, "top_n": sampler.n, "mixed": sampler.trunc}[sampler.sampler]
    temperature = 1.0 if sampler.sampler == "top_n" else float(sampler.temperature)
    return {"do_sample": True, "top_k": top_k, "temperature": temperature}


def default_generation_config(config, sampler: SamplerSettings | None = None, guards: GuardSettings | None = None):
    """A `GenerationConfig` for a checkpoint: the special ids, transformers' sampling nearest to the preset (for a
    plain `generate()`), and the sampler and guard settings as a preset (`toccata_sampler`, `toccata_guards`) that
    the pipeline, the CLI and the demo read."""
    sampler = sampler or SamplerSettings()
    return GenerationConfig(
        **transformers_sampling(sampler),
        max_new_tokens=1000,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        toccata_sampler=asdict(sampler),
        toccata_guards=asdict(guards or GuardSettings()),
    )


def preset_from_generation_config(generation_config) -> tuple[SamplerSettings, GuardSettings]:
    """The sampler and guard settings stored by `default_generation_config` (defaults where absent)."""
    sampler = getattr(generation_config, "toccata_sampler", None) or {}
    guards = getattr(generation_config, "toccata_guards", None) or {}
    return SamplerSettings(**sampler), GuardSettings(**guards)


__all__ = [
    "ProcessorChain",
    "default_generation_config",
    "generate_kwargs",
    "preset_from_generation_config",
    "transformers_sampling",
]
