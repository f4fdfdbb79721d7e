"""The lean decoding loop behind `compose()`: the model's one-token `step()`, with the guards and samplers applied to
the logits in place, vectorised over a batch whose rows may belong to different requests.

`model.generate()` with `generate_kwargs()` gives the same tokens for the same seed and settings (tested); this loop
only drops what a recurrent model does not need at every step: a growing `input_ids` tensor that processors re-read,
per-step output objects, signature inspection and stopping criteria that re-sum the whole sequence.

A `DecodeJob` is one request: a prompt, a number of rows (variations), its sampler with its own seeded generator,
its guards, its length, and optionally a second prompt to guide against (classifier-free guidance: the rows'
logits are pushed away from what the model predicts after `unconditional_ids`). A `DecodeBatch` runs any number of
jobs side by side: a job joins between two steps (its prompt is read in one pass, as `generate()` reads it) and
leaves when all its rows are done, so the same job gives the same music alone or in company. `decode()` runs one
job; `ContinuousBatcher` (in `batching.py`) feeds a batch from many threads.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .guards import GuardRows, GuardSettings
from .layout import VocabLayout
from .quantized import Int8Cells, int8_available
from .sampling import SamplerSettings, sampler_processors

ProgressCallback = Callable[[int, int], None]  # (tokens generated so far, token budget)
PROMPT_CACHE_SIZE = 32  # prompts (with their row counts) whose state after reading a batch keeps


@dataclass(eq=False)
class DecodeJob:
    """One request: `rows` continuations of `prompt_ids` (which start with the BOS id), and what came of it.

    `target_steps`: a row is done once its new tokens advance time by this many steps (None: budget only);
    `budget`: the most tokens per row. `unconditional_ids` and `guidance` g: classifier-free guidance, the logits
    u + g (c - u) where c follows `prompt_ids` and u the same tokens after `unconditional_ids` (g = 1: c alone; the
    pipeline's composer label is what the two prompts differ by). After `finished` is set, `tokens` holds each row's
    new ids (up to and including the one that ended it), `cancelled` says whether `cancel` stopped it, `error` any
    exception.
    """

    prompt_ids: list[int]
    rows: int
    sampler: SamplerSettings
    guards: GuardSettings
    budget: int
    target_steps: int | None = None
    progress: ProgressCallback | None = None
    cancel: threading.Event | None = None
    tokens: list[list[int]] = field(default_factory=list)
    cancelled: bool = False
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    unconditional_ids: list[int] | None = None
    guidance: float = 1.0

    def __post_init__(self) -> None:
        self.sampler = self.sampler.resolved()
        if self.rows < 1 or self.budget < 1 or not self.prompt_ids:
            raise ValueError(f"a decoding job needs rows >= 1, budget >= 1 and a BOS id; got {self!r}")
        if self.guidance != 1.0 and not self.unconditional_ids:
            raise ValueError(f"guidance {self.guidance} needs unconditional_ids, the prompt to guide against")

    @property
    def guided(self) -> bool:
        """Whether its logits are pushed away from the unconditional prompt's (guidance other than 1)."""
        return self.guidance != 1.0 and bool(self.unconditional_ids)


class _Rule:
    """A job's sampler over its rows: its seeded draw (temperature, the rule, its own generator); None for greedy."""

    def __init__(self, settings: SamplerSettings, device: torch.device):
        processors = sampler_processors(settings, device)
        self.draw = processors[-1] if processors else None  # a SeededDraw, as generate() gets it

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        """One id per row of `scores` (already guarded), as `generate()` with the same processors picks it."""
        if self.draw is None:
            return scores.argmax(dim=-1)  # what generate() does with do_sample=False
        return self.draw.choose(scores)


@dataclass(eq=False)
class _Running:
    """A job inside the batch: its rule, where its new tokens go, and how far it has got."""

    job: DecodeJob
    rule: _Rule
    out: np.ndarray  # (rows, budget) new ids
    steps: int = 0


class DecodeBatch:
    """Rows of several jobs decoded together, one token per row per `step()`; jobs join with `add` between steps.

    A job's rows stay together and in the batch until all of them are done (a finished row is fed padding, as in
    `generate()`), so its generator draws exactly as it would alone.
    """

    def __init__(self, model, int8: bool = False):
        self.model = model
        config = model.config
        self.layout = VocabLayout.from_config(config)
        self.pad_id, self.eos_id = config.pad_token_id, config.eos_token_id
        self.device = next(model.parameters()).device
        if int8:  # int8 weights for the steps (the prompt pass stays float32): faster, not generate()'s tokens
            if not int8_available(self.device):
                raise ValueError(
                    f"int8 decoding needs a CPU with torch's quantized kernels (the model is on {self.device}): "
                    "decode in float32"
                )
            self.weights = Int8Cells(model)
        else:  # what `model.step` multiplies at every step: the model's float weights, bound once
            with torch.inference_mode():
                self.weights = model.step_weights()
        self.prompt_cache: OrderedDict[tuple, tuple[list, torch.Tensor]] = OrderedDict()  # see `_read_prompt`
        self._clear()

    def _clear(self) -> None:
        """No rows, no jobs."""
        self.states: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer (h, c), each (rows, hidden)
        self.next_input = torch.zeros(0, dtype=torch.long, device=self.device)  # each row's last id, not yet read
        self.guards = GuardRows(self.layout, self.model.config.vocab_size)
        self.done = np.zeros(0, dtype=bool)  # rows that have ended (they wait for the rest of their job)
        self.done_count = 0  # how many of them: one numpy call per step instead of an any() and an all() per job
        self.running: list[_Running] = []
        self.pending_logits: torch.Tensor | None = None  # logits of rows that joined since the last step
        # classifier-free guidance: which rows are guided, their scale, and the unconditional prompts' states (the
        # guided rows only, in batch order) with the logits of those that joined since the last step
        self.guided = np.zeros(0, dtype=bool)
        self.guidance = torch.ones(0, dtype=torch.float32, device=self.device)
        self.plain_states: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.plain_pending: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return self.done.shape[0]

    def __len__(self) -> int:
        return len(self.running)

    @torch.inference_mode()
    def add(self, job: DecodeJob) -> None:
        """Read the job's prompt (one pass, like `generate()`), then decode its rows with the others from now on."""
        states, logits = self._read_prompt(job.prompt_ids, job.rows)
        self.states = _cat_states(self.states, states)
        self.guards.append(job.guards, job.prompt_ids, job.rows, job.target_steps)
        if job.guided:
            plain_states, plain_logits = self._read_prompt(job.unconditional_ids, job.rows)
            self.plain_states = _cat_states(self.plain_states, plain_states)
            self.plain_pending = _cat(self.plain_pending, plain_logits)
        self.guided = np.concatenate([self.guided, np.full(job.rows, job.guided)])
        scale = torch.full((job.rows,), float(job.guidance), dtype=torch.float32, device=self.device)
        self.guidance = torch.cat([self.guidance, scale])
        self.done = np.concatenate([self.done, np.zeros(job.rows, dtype=bool)])
        placeholder = torch.full((job.rows,), self.pad_id, dtype=torch.long, device=self.device)
        self.next_input = torch.cat([self.next_input, placeholder])
        self.pending_logits = _cat(self.pending_logits, logits)
        out_ids = np.zeros((job.rows, job.budget), dtype=np.int64)
        self.running.append(_Running(job, _Rule(job.sampler, self.device), out_ids))

    def _read_prompt(self, prompt_ids: list[int], rows: int) -> tuple[list, torch.Tensor]:
        """(per-layer (h, c), next-token logits) after reading `prompt_ids` in `rows` rows: one pass of the model,
        or a copy of the same pass's result kept from an earlier job with the same prompt and rows (the demo's corpus
        excerpts repeat; the key holds the rows because a batch of another size may round differently)."""
        key = (tuple(prompt_ids), rows)
        kept = self.prompt_cache.get(key)
        if kept is None:
            ids = torch.tensor([prompt_ids] * rows, dtype=torch.long, device=self.device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, return_dict=True)
            kept = (list(out.cache.states), out.logits[:, -1, :].to(dtype=torch.float32))
            self.prompt_cache[key] = kept
            if len(self.prompt_cache) > PROMPT_CACHE_SIZE:
                self.prompt_cache.popitem(last=False)  # the least recently used
        else:
            self.prompt_cache.move_to_end(key)
        states, logits = kept
        return [(h.clone(), c.clone()) for h, c in states], logits.clone()  # the step masks logits in place

    def _logits(self) -> torch.Tensor:
        """Next-token logits of every row: one LSTM step for rows that have run, the prompt pass for new ones."""
        logits, self.states, self.pending_logits = self._step_rows(self.next_input, self.states, self.pending_logits)
        return logits

    def _step_rows(self, inputs: torch.Tensor, states: list, pending: torch.Tensor | None) -> tuple:
        """(logits, states, None): one step of `inputs` from `states` for the rows that have run, `pending` (the
        prompt pass's logits) for the rows at the end that joined since the last step."""
        if pending is None:
            return self.model.step(inputs, states, self.weights), states, None
        old = inputs.shape[0] - pending.shape[0]
        if not old:
            return pending, states, None
        ran = [(h[:old], c[:old]) for h, c in states]
        logits = self.model.step(inputs[:old], ran, self.weights)
        states = [(torch.cat([h, hs[old:]]), torch.cat([c, cs[old:]])) for (h, c), (hs, cs) in zip(ran, states)]
        return torch.cat([logits, pending]), states, None

    def _guide(self, scores: torch.Tensor) -> None:
        """Classifier-free guidance in place: each guided row's logits c become u + g (c - u), u from its
        unconditional prompt's state (stepped with the same tokens)."""
        rows = torch.from_numpy(np.flatnonzero(self.guided)).to(self.device)
        plain, self.plain_states, self.plain_pending = self._step_rows(
            self.next_input[rows], self.plain_states, self.plain_pending
        )
        self._mix(scores, plain, rows)

    def _logits_guided(self) -> torch.Tensor:
        """`_logits()` then `_guide()` as one LSTM step over the rows and the guided rows' unconditional states
        stacked below them: at small batches a step costs what reading the weights costs, so the second stream is
        nearly free (each row's numbers are the same as in separate steps: tested against `generate()`)."""
        rows = torch.from_numpy(np.flatnonzero(self.guided)).to(self.device)
        states = _cat_states(self.states, self.plain_states)
        logits = self.model.step(torch.cat([self.next_input, self.next_input[rows]]), states, self.weights)
        count = self.rows
        self.states = [(h[:count], c[:count]) for h, c in states]
        self.plain_states = [(h[count:], c[count:]) for h, c in states]
        scores = logits[:count]
        self._mix(scores, logits[count:], rows)
        return scores

    def _mix(self, scores: torch.Tensor, plain: torch.Tensor, rows: torch.Tensor) -> None:
        """The guided `rows` of `scores` (c) become u + g (c - u), `plain` holding their unconditional logits u."""
        scores[rows] = torch.lerp(plain, scores[rows], self.guidance[rows].unsqueeze(1))

    def step(self) -> list[DecodeJob]:
        """Decode one token for every row; returns the jobs that finished (they have left the batch)."""
        if not torch.is_inference_mode_enabled():  # entering it costs more than a check, at every step
            with torch.inference_mode():
                return self.step()
        if not self.running:
            return []
        if self.plain_states and self.pending_logits is None and self.plain_pending is None:
            scores = self._logits_guided()  # both streams in one step: the weights are read once
        else:
            scores = self._logits()
            if self.plain_states:
                self._guide(scores)
        self.guards.apply(scores)
        if len(self.running) == 1:
            chosen = self.running[0].rule.choose(scores)
        else:
            chosen, start = torch.empty(scores.shape[0], dtype=torch.long, device=self.device), 0
            for run in self.running:
                end = start + run.job.rows
                chosen[start:end] = run.rule.choose(scores[start:end])
                start = end
        return self._advance(chosen.cpu().numpy())

    def _advance(self, drawn: np.ndarray) -> list[DecodeJob]:
        """Record the drawn ids, update the guard state, finish rows and jobs, feed the ids to the next step."""
        fed = np.where(self.done, self.pad_id, drawn) if self.done_count else drawn  # as generate() pads
        self.guards.consume(fed.tolist())
        self.done |= (fed == self.eos_id) | self.guards.out_of_time()
        self.done_count = np.count_nonzero(self.done)
        alone = len(self.running) == 1
        finished: list[_Running] = []
        start = 0
        for run in self.running:
            job = run.job
            end = start + job.rows
            run.out[:, run.steps] = fed if alone else fed[start:end]
            run.steps += 1
            if job.progress is not None:
                job.progress(run.steps, job.budget)
            job.cancelled = job.cancel is not None and job.cancel.is_set()
            all_done = self.done_count == self.rows if alone else self.done[start:end].all()
            if run.steps >= job.budget or job.cancelled or all_done:
                finished.append(run)
            start = end
        fed = torch.from_numpy(fed)
        self.next_input = fed if self.device.type == "cpu" else fed.to(self.device)
        if finished:
            self._remove(finished)
        return [run.job for run in finished]

    def _remove(self, finished: list[_Running]) -> None:
        keep, start = [], 0
        for run in self.running:
            end = start + run.job.rows
            if run in finished:
                run.job.tokens = [row[: run.steps].tolist() for row in run.out]
                run.job.finished.set()
            else:
                keep.extend(range(start, end))
            start = end
        index = np.asarray(keep, dtype=np.int64)
        rows = torch.from_numpy(index).to(self.device)
        self.states = [(h[rows], c[rows]) for h, c in self.states]
        self.next_input = self.next_input[rows]
        self.guards.keep(index)
        if self.plain_states:  # the guided rows kept, as positions among the guided rows
            plain = torch.from_numpy((np.cumsum(self.guided) - 1)[index[self.guided[index]]]).to(self.device)
            self.plain_states = [(h[plain], c[plain]) for h, c in self.plain_states] if len(plain) else []
        self.guided = self.guided[index]
        self.guidance = self.guidance[rows]
        self.done = self.done[index]
        self.done_count = np.count_nonzero(self.done)
        self.running = [run for run in self.running if run not in finished]

    def fail(self, error: BaseException) -> None:
        """End every job with `error` (the loop hit something it cannot recover from)."""
        for run in self.running:
            run.job.error = error
            run.job.finished.set()
        self._clear()


def _cat(first: torch.Tensor | None, then: torch.Tensor) -> torch.Tensor:
    return then if first is None else torch.cat([first, then])


def _cat_states(first: list, then: list) -> list:
    """Per-layer (h, c) of `first`'s rows, then `then`'s."""
    if not first:
        return then
    return [(torch.cat([h, nh]), torch.cat([c, nc])) for (h, c), (nh, nc) in zip(first, then)]


def set_decoding_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (process-wide) for decoding and return the number: `threads`, else
    $OMP_NUM_THREADS when set, else 1. A step multiplies a few small matrices, where extra threads gain nothing and,
    with another process busy on a core, spin against it (`toccata generate --int8` took 8x longer; issue 35)."""
    if threads is None:
        value = os.environ.get("OMP_NUM_THREADS") or "1"
        if not value.strip().isdigit():
            raise ValueError(f"OMP_NUM_THREADS={value!r}: give a whole number of threads, e.g. OMP_NUM_THREADS=1")
        threads = int(value)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def decode(model, job: DecodeJob, *more: DecodeJob, int8: bool = False) -> DecodeJob:
    """Run `job` (and `more` jobs beside it, in one batch) to the end in this thread; returns `job` with its tokens
    (or `cancelled` set); the others are done too. `int8`: decode with int8 weights (`quantized.Int8Cells`)."""
    batch = DecodeBatch(model, int8=int8)
    jobs = (job, *more)
    with torch.inference_mode():  # once, not at every step
        for each in jobs:
            batch.add(each)
        while not all(each.finished.is_set() for each in jobs):
            batch.step()
    return job


__all__ = ["DecodeBatch", "DecodeJob", "ProgressCallback", "decode", "set_decoding_threads"]
