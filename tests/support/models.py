"""A random-weight tiny model over the notewise vocabulary, a strict grammar checker written apart from the guards
it checks, and what `generate()` makes of a decoding job: shared by the modeling tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from toccata.modeling import NotewiseLSTMConfig, NotewiseLSTMForCausalLM, generate_kwargs
from toccata.modeling.decoding import DecodeJob
from toccata.modeling.guards import StopAfterSteps
from toccata.modeling.layout import VocabLayout
from toccata.tokenization import NotewiseTokenizer
from transformers import StoppingCriteriaList

TOK = NotewiseTokenizer()
ON, OFF, WAIT = TOK.note_on_offset, TOK.note_off_offset, TOK.wait_offset
PITCHES, MAX_WAIT = TOK.num_pitches, TOK.max_wait


def tiny_model(seed: int = 0, **overrides) -> NotewiseLSTMForCausalLM:
    """A random-weight model over the default notewise vocabulary (228 ids), in eval mode."""
    torch.manual_seed(seed)
    config = NotewiseLSTMConfig(embedding_size=16, hidden_size=24, num_hidden_layers=2, **overrides)
    return NotewiseLSTMForCausalLM(config).eval()


MODEL = tiny_model()


# ------------------------------------------------------------------------------------------------ a strict checker


def _kind(token: int) -> tuple[str, int]:
    if ON <= token < ON + PITCHES:
        return "on", token - ON
    if OFF <= token < OFF + PITCHES:
        return "off", token - OFF
    if WAIT <= token < WAIT + MAX_WAIT:
        return "wait", token - WAIT + 1
    return "special", token


@dataclass
class Walk:
    """What a walk over one token sequence found."""

    violations: list[str]
    longest_silence: int  # steps in a row without a sounding note (from the start of the sequence)
    note_ons: int  # pN tokens after `start`


def walk(ids: list[int], start: int = 0, max_polyphony: int = 10, max_note_steps: int = 192) -> Walk:
    """Check the tokens from index `start` on (those before only set up the state) against the grammar:
    `endpN` only when N sounds and not in the step it began, `pN` only when N is silent and at most `max_polyphony`
    notes sound, no note lasts more than `max_note_steps`, no special tokens."""
    sounding: dict[int, int] = {}  # pitch -> step it began
    now = silence = longest = note_ons = 0
    bad: list[str] = []
    for index, token in enumerate(ids):
        strict = index >= start
        kind, value = _kind(token)
        where = f"token {index} ({TOK.convert_ids_to_tokens(token)})"
        if kind == "special":
            if strict:
                bad.append(f"{where}: special token")
        elif kind == "on":
            if strict and value in sounding:
                bad.append(f"{where}: note-on of a sounding pitch")
            sounding[value] = now
            if strict and len(sounding) > max_polyphony:
                bad.append(f"{where}: {len(sounding)} notes sound, more than {max_polyphony}")
            silence = 0
            note_ons += strict
        elif kind == "off":
            if value not in sounding:
                if strict:
                    bad.append(f"{where}: note-off of a silent pitch")
            elif strict and sounding[value] == now:
                bad.append(f"{where}: note-off in the step the note began")
            sounding.pop(value, None)
        else:
            for pitch, began in sounding.items():
                if strict and now + value - began > max_note_steps:
                    bad.append(f"{where}: p{pitch + TOK.min_pitch} would last {now + value - began} steps")
            now += value
            if not sounding:
                silence += value
                longest = max(longest, silence)
    return Walk(bad, longest, note_ons)


def rows_of(job: DecodeJob) -> list[list[int]]:
    """Each row's ids, padded as `generate()` pads rows that finished early."""
    width = max(len(row) for row in job.tokens)
    return [row + [TOK.pad_token_id] * (width - len(row)) for row in job.tokens]


def with_generate(model, job: DecodeJob) -> list[list[int]]:
    """What transformers' `generate()` makes of the same job: each row's new ids (guided as the job is)."""
    from toccata.modeling.guidance import ClassifierFreeGuidance

    layout = VocabLayout.from_config(model.config)
    ids = torch.tensor([job.prompt_ids] * job.rows)
    guidance = ClassifierFreeGuidance(model, job.unconditional_ids, job.guidance) if job.guided else None
    criteria = [StopAfterSteps(layout, ids.shape[1], job.target_steps)] if job.target_steps else []
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=job.budget,
        **generate_kwargs(model.config, job.sampler, job.guards, guidance=guidance),
        stopping_criteria=StoppingCriteriaList(criteria),
        pad_token_id=model.config.pad_token_id,
        eos_token_id=model.config.eos_token_id,
    )
    return out[:, ids.shape[1] :].tolist()
