"""The seed's samplers and the guards against her model's failure modes, as transformers `LogitsProcessor`s.

Samplers (pick one by name; temperature and seed apply to all):
  greedy    the model's best guess;
  top_n     the best guess with probability `p_best`, otherwise a uniform pick among the next `n - 1` guesses;
  weighted  a draw from the whole distribution;
  top_k     a draw from the distribution truncated to the `k` most likely tokens;
  mixed     the seed author's scheme: with probability `random_freq` a weighted draw from the top `trunc`,
            otherwise the best guess.
Every sampler's rule is a processor that turns scores into the log-probabilities of its rule, and has a `sample` that
draws by it (among the few ids it keeps, where it keeps few). A sampler reaches `generate()` as one `SeededDraw`:
the temperature, then the rule's draw with its own `torch.Generator`, so the same seed and settings give the same
music in any thread; `generate()` itself runs greedy decoding (`do_sample=False`) over the drawn token, and
`compose()`'s loop calls the same `SeededDraw.choose`.

Guards (each switchable): the grammar (note-offs only for sounding notes, note-ons only for silent ones, bounded
polyphony and note length, so every sequence decodes without repair) and the rest guard (bounded silence: the seed's
model "panicked" into endless rests), both in `GuardRows` and applied by `GuardMask`, and `Calmness` (shifts mass
from notes to waits, and to longer waits). `compose()`'s own loop uses the same `GuardRows`. They read the
vocabulary layout from the model config, never from the tokenizer.
"""

from __future__ import annotations

import bisect
import itertools
import math
import secrets
from dataclasses import asdict, dataclass

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria

SAMPLERS = ("greedy", "top_n", "weighted", "top_k", "mixed")
# The settings that change what each sampler does (temperature does nothing to greedy or to top_n's ranking).
SAMPLER_PARAMETERS: dict[str, tuple[str, ...]] = {
    "greedy": (),
    "top_n": ("p_best", "n"),
    "weighted": ("temperature",),
    "top_k": ("temperature", "k"),
    "mixed": ("temperature", "random_freq", "trunc"),
}
BOWED_POLYPHONY = 2  # notes a violin or cello part may sound at once (double stops); the piano has no such limit
NEG_INF = float("-inf")


@dataclass(frozen=True)
class VocabLayout:
    """Where the notewise words sit among the token ids (copied from the model config)."""

    note_on_offset: int = 4
    note_off_offset: int = 92
    wait_offset: int = 180
    num_pitches: int = 88
    max_wait: int = 48
    steps_per_quarter: int = 12
    vocab_size: int = 228

    parts: tuple[tuple[str, int, int, int], ...] = (("piano", 4, 92, 88),)  # (name, note-on, note-off, pitches)

    @classmethod
    def from_config(cls, config) -> VocabLayout:
        """The layout recorded in a `NotewiseLSTMConfig`, or of a `NotewiseTokenizer` (same attribute names).

        `parts` come from `instrument_layout` (violin, cello beside the piano); without one, the piano part alone."""
        fields = {name: getattr(config, name) for name in cls.__dataclass_fields__ if name != "parts"}
        parts = getattr(config, "instrument_layout", None) or {
            "piano": {k: fields[k] for k in ("note_on_offset", "note_off_offset", "num_pitches")}
        }
        spec = tuple(
            (str(name), int(p["note_on_offset"]), int(p["note_off_offset"]), int(p["num_pitches"]))
            for name, p in sorted(parts.items(), key=lambda item: int(item[1]["note_on_offset"]))
        )  # in id order: a config saved as JSON has its keys sorted
        return cls(**fields, parts=spec)

    @property
    def num_keys(self) -> int:
        """Keys of all parts together (88 for the piano alone): the width of the guards' state."""
        return sum(part[3] for part in self.parts)

    def key_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(on_key, off_key, key_part): for each id, the key (across all parts) it starts or ends, else -1; and for
        each key, the index of its part. Piano alone: key = pitch index, as before."""
        on_key = np.full(self.vocab_size, -1, dtype=np.int64)
        off_key = np.full(self.vocab_size, -1, dtype=np.int64)
        key_part = np.zeros(self.num_keys, dtype=np.int64)
        start = 0
        for index, (_, on, off, size) in enumerate(self.parts):
            on_key[on : on + size] = np.arange(start, start + size)
            off_key[off : off + size] = np.arange(start, start + size)
            key_part[start : start + size] = index
            start += size
        return on_key, off_key, key_part

    def part_slices(self) -> list[tuple[str, int, int, int, int]]:
        """(name, note-on id, note-off id, first key, pitches) of each part, in part order."""
        out, start = [], 0
        for name, on, off, size in self.parts:
            out.append((name, on, off, start, size))
            start += size
        return out

    def wait_lengths(self, device: torch.device | None = None) -> torch.Tensor:
        """Steps of wait1..wait{max_wait}, in id order."""
        return torch.arange(1, self.max_wait + 1, device=device)


@dataclass
class SamplerSettings:
    """One sampler and its parameters; `seed=None` draws a fresh seed (recorded in `resolved()`)."""

    sampler: str = "top_k"
    temperature: float = 1.0
    p_best: float = 0.95  # top_n: probability of the best guess
    n: int = 3  # top_n: the best guess and n - 1 runners-up
    k: int = 5  # top_k
    random_freq: float = 0.5  # mixed: probability of a weighted draw instead of the best guess
    trunc: int = 5  # mixed: the weighted draw is truncated to this many tokens
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        if not (isinstance(self.temperature, (int, float)) and 0.0 < self.temperature <= 100.0):
            raise ValueError(f"temperature must be > 0 and <= 100, got {self.temperature!r}")
        if not 0.0 <= self.p_best <= 1.0:
            raise ValueError(f"p_best must be in [0, 1], got {self.p_best!r}")
        if not 0.0 <= self.random_freq <= 1.0:
            raise ValueError(f"random_freq must be in [0, 1], got {self.random_freq!r}")
        for name in ("n", "k", "trunc"):
            value = getattr(self, name)
            low = 2 if name == "n" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    def resolved(self) -> SamplerSettings:
        """The same settings with a concrete seed, so that a piece can be reproduced."""
        if self.seed is not None:
            return self
        return SamplerSettings(**{**asdict(self), "seed": secrets.randbelow(2**31)})


MAX_GUARD_BEATS = 10_000  # a note or a silence longer than this is no limit at all (and its steps overflow)


@dataclass
class GuardSettings:
    """Switches and bounds of the guards; the defaults do no harm to music that resembles the training data."""

    grammar: bool = True
    max_polyphony: int = 10  # notes sounding at once, all parts together
    max_note_beats: float = 16.0  # a held note is ended after this many beats
    rest_guard: bool = True
    max_silence_beats: float = 4.0  # beats in a row without a sounding note
    calmness: float = 0.0  # > 0: fewer notes and longer waits; < 0: busier

    def __post_init__(self) -> None:
        if not isinstance(self.max_polyphony, int) or self.max_polyphony < 1:
            raise ValueError(f"max_polyphony must be an integer >= 1, got {self.max_polyphony!r}")
        for name in ("max_note_beats", "max_silence_beats"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value <= MAX_GUARD_BEATS:
                raise ValueError(f"{name} must be a number of beats > 0 and at most {MAX_GUARD_BEATS:,}, got {value!r}")
        if not -10.0 <= self.calmness <= 10.0:
            raise ValueError(f"calmness must be in [-10, 10], got {self.calmness!r}")


class GuardRows:
    """What sounds in each batch row and the grammar and rest guards' limits per row (rows of different requests may
    differ), and the ids they forbid: the one implementation of those rules, used by `GuardMask` (`generate()`) and by
    `compose()`'s loop (`decoding.py`). Masks are computed for all rows at once; the state is updated row by row from
    plain ints, which at these sizes costs less than vectorised numpy calls.

    Grammar: `endpN` only for a sounding note (not in the step it began), `pN` only for a silent key, at most
    `max_polyphony` notes in all and `BOWED_POLYPHONY` in a violin or cello part, waits only while no note would pass
    `max_note_steps`, never special ids. Rest guard: no wait that leaves the row silent for more than
    `max_silence_steps`. Calmness (`calm_bias`) is the same bias as `Calmness`, for the lean loop.
    """

    LATE = np.iinfo(np.int64).max // 2  # the onset of a silent key, so that the oldest sounding note is a plain min

    def __init__(self, layout: VocabLayout, vocab_size: int):
        self.layout, self.vocab_size = layout, vocab_size
        self.wait_lengths = np.arange(1, layout.max_wait + 1)
        self.calm_shape = calm_shape(layout)
        self.parts = layout.part_slices()  # (name, note-on id, note-off id, first key, pitches); keys side by side
        self.table = self._token_table(layout, vocab_size)
        p, ints, n_parts = layout.num_keys, np.int64, len(self.parts)
        self.arrays = {  # name -> (empty value, dtype)
            "sounding": np.zeros((0, p), dtype=bool),
            "onset": np.zeros((0, p), dtype=ints),  # step each sounding key began; LATE when silent
            "polyphony": np.zeros(0, dtype=ints),
            "part_polyphony": np.zeros((0, n_parts), dtype=ints),
            "max_part_polyphony": np.zeros(0, dtype=ints),
            "now": np.zeros(0, dtype=ints),  # elapsed steps
            "silent_since": np.zeros(0, dtype=ints),
            "grammar": np.zeros(0, dtype=bool),
            "rest": np.zeros(0, dtype=bool),
            "max_polyphony": np.zeros(0, dtype=ints),
            "max_note_steps": np.zeros(0, dtype=ints),
            "max_silence_steps": np.zeros(0, dtype=ints),
        }
        for name, value in self.arrays.items():
            setattr(self, name, value)
        self.calm_bias = torch.zeros(0, layout.max_wait)
        self.any_calm = False
        self._flags()

    @staticmethod
    def _token_table(layout: VocabLayout, vocab_size: int) -> list[tuple[int, int, int]]:
        """Per id: (kind, key or wait length, part): kind 1 note-on, 2 note-off, 3 wait, 0 anything else."""
        table = [(0, 0, 0)] * vocab_size
        for index, (_, on, off, start, size) in enumerate(layout.part_slices()):
            for i in range(size):
                table[on + i], table[off + i] = (1, start + i, index), (2, start + i, index)
        for i in range(layout.max_wait):
            table[layout.wait_offset + i] = (3, i + 1, 0)
        return table

    def _flags(self) -> None:
        """After rows change: the per-batch flags, and a new mask buffer at the next `forbidden()`."""
        self.all_grammar, self.any_grammar = bool(self.grammar.all()), bool(self.grammar.any())
        self.all_rest, self.any_rest = bool(self.rest.all()), bool(self.rest.any())
        self._mask = None

    def append(self, guards: GuardSettings, prompt: list[int], rows: int) -> None:
        """Rows of a new job: its limits, and the state after its prompt."""
        steps, p = self.layout.steps_per_quarter, self.layout.num_keys
        new = {
            "sounding": np.zeros((rows, p), dtype=bool),
            "onset": np.full((rows, p), self.LATE, dtype=np.int64),
            "polyphony": np.zeros(rows, dtype=np.int64),
            "part_polyphony": np.zeros((rows, len(self.parts)), dtype=np.int64),
            "max_part_polyphony": np.full(rows, BOWED_POLYPHONY),  # a setting per row, should it become one
            "now": np.zeros(rows, dtype=np.int64),
            "silent_since": np.zeros(rows, dtype=np.int64),
            "grammar": np.full(rows, guards.grammar),
            "rest": np.full(rows, guards.rest_guard),
            "max_polyphony": np.full(rows, guards.max_polyphony),
            "max_note_steps": np.full(rows, max(1, round(guards.max_note_beats * steps))),
            "max_silence_steps": np.full(rows, max(1, round(guards.max_silence_beats * steps))),
        }
        first = self.now.shape[0]
        for name, value in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))
        for token in prompt:
            self.consume([token] * rows, first)
        bias = guards.calmness * self.calm_shape if guards.calmness else torch.zeros_like(self.calm_shape)
        self.calm_bias = torch.cat([self.calm_bias, bias.expand(rows, -1)])
        self.any_calm = bool(self.calm_bias.abs().sum() > 0)
        self._flags()

    def keep(self, index: np.ndarray) -> None:
        """Keep rows `index`, in that order (rows that left the batch, or beam search's reordering)."""
        for name in self.arrays:
            setattr(self, name, getattr(self, name)[index])
        self.calm_bias = self.calm_bias[torch.from_numpy(index)]
        self.any_calm = bool(self.calm_bias.abs().sum() > 0)
        self._flags()

    def consume(self, tokens: list[int], first: int = 0) -> None:
        """Update rows `first`, `first + 1`, ... with one id each."""
        table, size, other = self.table, self.vocab_size, (0, 0, 0)
        sounding, onset, polyphony, now = self.sounding, self.onset, self.polyphony, self.now
        part_polyphony = self.part_polyphony
        for row, token in enumerate(tokens, start=first):
            kind, key, part = table[token] if 0 <= token < size else other
            if kind == 1:
                if not sounding[row, key]:
                    sounding[row, key] = True
                    polyphony[row] += 1
                    part_polyphony[row, part] += 1
                onset[row, key] = now[row]
            elif kind == 2:
                if sounding[row, key]:
                    sounding[row, key] = False
                    onset[row, key] = self.LATE
                    polyphony[row] -= 1
                    part_polyphony[row, part] -= 1
                    if polyphony[row] == 0:
                        self.silent_since[row] = now[row]
            elif kind == 3:
                now[row] += key

    def _new_mask(self) -> None:
        """The buffer `forbidden()` refills at every step, and views of it and of the state per part (allocating and
        slicing them once per change of rows saves a third of the step's numpy calls)."""
        lay = self.layout
        self._mask = np.zeros((self.now.shape[0], self.vocab_size), dtype=bool)
        self._mask[self.grammar] = True  # special ids: never written below, so they stay forbidden
        self._sections = []
        for index, (name, on, off, start, p) in enumerate(self.parts):
            keys = slice(start, start + p)
            on_view, off_view = self._mask[:, on : on + p], self._mask[:, off : off + p]
            self._sections.append((index, name != "piano", self.sounding[:, keys], self.onset[:, keys], on_view, off_view))
        self._waits = self._mask[:, lay.wait_offset : lay.wait_offset + lay.max_wait]

    def forbidden(self) -> np.ndarray:
        """(rows, vocab) True where a guard forbids the id. The array is reused: it holds until the next call or
        change of rows (few numpy calls: this runs at every step)."""
        if self._mask is None:
            self._new_mask()
        forbidden, w = self._mask, self.layout.max_wait
        waits_up_to = None
        if self.any_grammar:
            full = (self.polyphony >= self.max_polyphony)[:, None]  # all parts together
            now = self.now[:, None]
            for index, bowed, sounding, onset, on_view, off_view in self._sections:
                part_full = full
                if bowed:  # a violin or cello: at most a double stop
                    part_full = full | (self.part_polyphony[:, index] >= self.max_part_polyphony)[:, None]
                np.logical_or(sounding, part_full, out=on_view)
                np.greater_equal(onset, now, out=off_view)  # silent or begun now
            oldest = np.minimum.reduce(self.onset, axis=1)  # onset.min(axis=1) without its Python wrapper
            waits_up_to = self.max_note_steps - np.maximum(self.now - oldest, 0)
            if not self.all_grammar:
                forbidden[~self.grammar] = False
                waits_up_to = np.where(self.grammar, waits_up_to, w)
        if self.any_rest:
            silence = np.where(self.polyphony > 0, 0, self.now - self.silent_since)
            quiet_room = self.max_silence_steps - silence
            if not self.all_rest:
                quiet_room = np.where(self.rest, quiet_room, w)
            waits_up_to = quiet_room if waits_up_to is None else np.minimum(waits_up_to, quiet_room)
        if waits_up_to is not None:
            np.greater(self.wait_lengths, waits_up_to[:, None], out=self._waits)
        return forbidden


class GuardMask(LogitsProcessor):
    """The grammar and rest guards for `generate()`: a `GuardRows` kept in step with the ids each call hands it
    (new columns are read; beam search's reordered rows are followed; an unrelated batch starts afresh)."""

    def __init__(self, layout: VocabLayout, guards: GuardSettings):
        self.layout, self.guards = layout, guards
        self.rows = GuardRows(layout, layout.vocab_size)
        self.ids = np.zeros((0, 0), dtype=np.int64)  # the ids read so far

    def _realign(self, ids: np.ndarray) -> None:
        """Make the state describe the prefixes of `ids`: same rows, reordered rows, or a fresh start."""
        read = self.ids.shape[1]
        if ids.shape[0] == self.ids.shape[0] and ids.shape[1] >= read and np.array_equal(ids[:, :read], self.ids):
            return
        if 0 < read <= ids.shape[1]:
            matches = (ids[:, None, :read] == self.ids[None, :, :]).all(axis=2)  # new row x old row
            if matches.any(axis=1).all():
                order = matches.argmax(axis=1)
                self.rows.keep(order)
                self.ids = self.ids[order]
                return
        self.rows = GuardRows(self.layout, self.layout.vocab_size)
        self.rows.append(self.guards, [], ids.shape[0])
        self.ids = np.zeros((ids.shape[0], 0), dtype=np.int64)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ids = input_ids.detach().cpu().numpy()
        self._realign(ids)
        for column in ids[:, self.ids.shape[1] :].T:
            self.rows.consume(column.tolist())
        self.ids = ids.copy()
        return scores.masked_fill(torch.from_numpy(self.rows.forbidden()).to(scores.device), NEG_INF)


def calm_shape(layout: VocabLayout) -> torch.Tensor:
    """`1 + log2(n) / log2(steps_per_quarter)` for wait1..wait{max_wait}: calmness times this is added to waits."""
    return 1.0 + torch.log2(layout.wait_lengths().float()) / math.log2(max(layout.steps_per_quarter, 2))


class Calmness(LogitsProcessor):
    """Add `calmness * (1 + log2(n) / log2(steps_per_quarter))` to the score of `waitN`.

    Positive values move probability from note tokens to waits, and most to long waits: fewer notes per beat.
    Negative values do the opposite. The effect on note density is measured in docs/generation.md.
    """

    def __init__(self, layout: VocabLayout, calmness: float):
        self.bias = calmness * calm_shape(layout)
        self.layout = layout

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        lay = self.layout
        scores = scores.clone()
        scores[:, lay.wait_offset : lay.wait_offset + lay.max_wait] += self.bias.to(scores.device, scores.dtype)
        return scores


class Rule(LogitsProcessor):
    """A sampler's rule: as a processor, the log-probabilities it draws from; `sample` draws one id per row.

    `sample` is what decoding calls: a rule that keeps a few tokens (top-k, top-n, mixed) draws among them alone,
    without a distribution over the whole vocabulary (less than half the microseconds per step)."""

    def sample(self, scores: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
        """One id per row of `scores` (on the generator's device), drawn with `generator`."""
        return draw(self(None, scores), generator)


class TopK(Rule):
    """Log-probabilities renormalised over the `k` best tokens; the rest -inf."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.k, scores.shape[-1])
        if scores.is_cpu and scores.dtype == torch.float32:  # numpy: the same values, fewer microseconds per step
            values, kth = scores.numpy(), scores.shape[-1] - k
            threshold = np.partition(values, kth, axis=-1)[:, kth : kth + 1]  # the k-th best: the top k's minimum
            kept = torch.from_numpy(np.where(values < threshold, np.float32(NEG_INF), values))
            return torch.log_softmax(kept, dim=-1)
        threshold = scores.topk(k, dim=-1).values[:, -1:]
        return torch.log_softmax(scores.masked_fill(scores < threshold, NEG_INF), dim=-1)

    def sample(self, scores: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
        values, indices = scores.topk(min(self.k, scores.shape[-1]), dim=-1)
        return draw_among(indices, _softmax(values), generator)


class Weighted(Rule):
    """Log-probabilities of the whole distribution."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return torch.log_softmax(scores, dim=-1)

    def sample(self, scores: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
        return draw(scores, generator)  # softmax(log_softmax(x)) is softmax(x): one pass fewer


class TopN(Rule):
    """The best token with probability `p_best`; the remaining mass shared equally by the next `n - 1` allowed."""

    def __init__(self, n: int = 3, p_best: float = 0.95):
        self.n, self.p_best = n, p_best

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = min(self.n, scores.shape[-1])
        top = scores.topk(n, dim=-1)
        runners = torch.isfinite(top.values[:, 1:])
        count = runners.sum(dim=-1, keepdim=True)
        share = torch.where(
            count > 0, (1.0 - self.p_best) / count.clamp(min=1), torch.zeros_like(count, dtype=scores.dtype)
        )
        probs = torch.zeros_like(scores)
        probs.scatter_(1, top.indices[:, 1:], torch.where(runners, share, torch.zeros_like(share)))
        best = torch.where(count > 0, torch.full_like(share, self.p_best), torch.ones_like(share))
        probs.scatter_(1, top.indices[:, :1], best)
        return torch.log(probs)

    def sample(self, scores: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
        values, indices = scores.topk(min(self.n, scores.shape[-1]), dim=-1)
        weights = []
        for row in values.tolist():
            count = sum(1 for x in row[1:] if math.isfinite(x))
            share = (1.0 - self.p_best) / count if count else 0.0
            weights.append([self.p_best if count else 1.0] + [share if math.isfinite(x) else 0.0 for x in row[1:]])
        return draw_among(indices, weights, generator)


class Mixed(Rule):
    """The seed author's scheme: the best token with probability 1 - `random_freq`, else a draw from the top `trunc`."""

    def __init__(self, random_freq: float = 0.5, trunc: int = 5):
        self.random_freq, self.top = random_freq, TopK(trunc)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = self.random_freq * self.top(input_ids, scores).exp()
        best = scores.argmax(dim=-1, keepdim=True)
        probs.scatter_add_(1, best, torch.full_like(best, 1.0 - self.random_freq, dtype=probs.dtype))
        return torch.log(probs)

    def sample(self, scores: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
        values, indices = scores.topk(min(self.top.k, scores.shape[-1]), dim=-1)  # the best first
        weights = []
        for row in _softmax(values):
            total = sum(row)
            weights.append([self.random_freq * x / total for x in row])
            weights[-1][0] += 1.0 - self.random_freq
        return draw_among(indices, weights, generator)


class SeededDraw(LogitsProcessor):
    """Draw one token per row with a private generator; returns 0 there, -inf elsewhere.

    With a `rule` (and a `temperature`, applied first), the draw follows the rule; without one, the scores are taken
    as log-probabilities. `choose` gives the ids themselves: `compose()`'s loop calls it, `generate()` calls the
    processor, so both draw the same tokens."""

    def __init__(
        self, seed: int, device: torch.device | str = "cpu", rule: Rule | None = None, temperature: float = 1.0
    ):
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.rule, self.temperature = rule, temperature
        self.device = self.generator.device

    def choose(self, scores: torch.Tensor) -> torch.LongTensor:
        """One id per row of `scores`, on their device."""
        if self.temperature != 1.0:
            scores = scores / self.temperature
        home = scores.device
        if home != self.device:
            scores = scores.to(self.device)
        choice = draw(scores, self.generator) if self.rule is None else self.rule.sample(scores, self.generator)
        return choice if choice.device == home else choice.to(home)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        drawn = torch.full_like(scores, NEG_INF)
        return drawn.scatter_(1, self.choose(scores)[:, None], 0.0)


def draw(scores: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
    """One id per row, drawn from softmax(`scores`) by inverse transform: one uniform number per row.

    `torch.multinomial` draws one exponential per vocabulary entry, three times the cost at batch 8; this reads the
    cumulative distribution once. Never picks an id of probability 0: the float32 uniform is below 1 and its product
    with the total mass is exact in float64, so the threshold stays below the total. `scores` must be on the
    generator's device (`SeededDraw` moves them).
    """
    cdf = torch.softmax(scores.float(), dim=-1).cumsum_(dim=-1)
    uniform = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device)
    if cdf.is_cpu:  # the same comparison in numpy (float32 against float64, as torch promotes): fewer microseconds
        values = cdf.numpy()
        if values.shape[0] == 1:  # one row: the count of cdf values <= threshold is where it sorts (cdf ascends)
            threshold = np.float64(uniform.item()) * np.float64(values[0, -1])
            return torch.from_numpy(values[0].searchsorted(threshold[None], side="right"))
        threshold = uniform.numpy().astype(np.float64) * values[:, -1:].astype(np.float64)
        return torch.from_numpy((values <= threshold).sum(axis=-1))
    return (cdf <= uniform.double().mul_(cdf[:, -1:].double())).sum(dim=-1)


def _softmax(values: torch.Tensor) -> list[list[float]]:
    """Unnormalised softmax weights of a few scores per row, the best first (as `topk` gives them)."""
    return [[math.exp(x - row[0]) for x in row] for row in values.tolist()]


def draw_among(indices: torch.Tensor, weights: list[list[float]], generator: torch.Generator) -> torch.LongTensor:
    """One of `indices` per row, with probability proportional to `weights` (rows x m, >= 0): `draw`'s inverse
    transform over a few candidates, one uniform number per row, in plain floats (fewer microseconds than numpy at
    these sizes). A weight of 0 is never drawn: the threshold is below the total, and `bisect_right` counts the
    cumulative weights at or below it, so it stops before trailing zeros and after leading zeros."""
    uniform = torch.rand(len(weights), generator=generator, device=generator.device).tolist()
    chosen = []
    for row, ids, u in zip(weights, indices.tolist(), uniform):
        cdf = list(itertools.accumulate(row))
        chosen.append(ids[bisect.bisect_right(cdf, u * cdf[-1])])
    chosen = torch.from_numpy(np.array(chosen, dtype=np.int64))  # faster than torch.tensor(list)
    return chosen if indices.is_cpu else chosen.to(indices.device)


def sampler_processors(settings: SamplerSettings, device: torch.device | str = "cpu") -> list[LogitsProcessor]:
    """The processors of one sampler: a seeded draw by the sampler's rule (none for greedy)."""
    settings = settings.resolved()
    if settings.sampler == "greedy":
        return []
    rule = {
        "top_n": lambda: TopN(settings.n, settings.p_best),
        "weighted": Weighted,
        "top_k": lambda: TopK(settings.k),
        "mixed": lambda: Mixed(settings.random_freq, settings.trunc),
    }[settings.sampler]()
    temperature = 1.0 if settings.sampler == "top_n" else settings.temperature  # top_n's ranking ignores it
    return [SeededDraw(settings.seed, device, rule, temperature)]


def guard_processors(guards: GuardSettings, layout: VocabLayout) -> list[LogitsProcessor]:
    """The enabled guards, in the order they must run: the masks (grammar, rest guard), then the calmness bias."""
    processors: list[LogitsProcessor] = []
    if guards.grammar or guards.rest_guard:
        processors.append(GuardMask(layout, guards))
    if guards.calmness:
        processors.append(Calmness(layout, guards.calmness))
    return processors


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
) -> dict:
    """Keyword arguments for `model.generate()` that apply a sampler and the guards.

    Example:
        >>> out = model.generate(ids, max_new_tokens=500, **generate_kwargs(model.config, SamplerSettings("top_k", k=5, seed=1)))
    """
    layout = VocabLayout.from_config(config)
    sampler = (sampler or SamplerSettings()).resolved()
    processors = guard_processors(guards or GuardSettings(), layout) + sampler_processors(sampler, device)
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


class StopAfterSteps(StoppingCriteria):
    """Stop each row once the tokens generated after `prompt_length` advance time by `target_steps`."""

    def __init__(self, layout: VocabLayout, prompt_length: int, target_steps: int):
        self.layout, self.prompt_length, self.target_steps = layout, prompt_length, target_steps

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_length :]
        wait = new - self.layout.wait_offset + 1
        steps = torch.where((wait >= 1) & (wait <= self.layout.max_wait), wait, torch.zeros_like(wait)).sum(dim=1)
        return steps >= self.target_steps


__all__ = [
    "BOWED_POLYPHONY",
    "SAMPLERS",
    "SAMPLER_PARAMETERS",
    "Calmness",
    "GuardMask",
    "GuardRows",
    "GuardSettings",
    "Mixed",
    "ProcessorChain",
    "Rule",
    "SamplerSettings",
    "SeededDraw",
    "StopAfterSteps",
    "TopK",
    "TopN",
    "VocabLayout",
    "Weighted",
    "calm_shape",
    "default_generation_config",
    "draw",
    "draw_among",
    "generate_kwargs",
    "guard_processors",
    "preset_from_generation_config",
    "sampler_processors",
    "transformers_sampling",
]
