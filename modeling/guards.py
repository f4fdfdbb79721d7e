"""The guards against the seed model's failure modes, and the stop rule: one implementation (`GuardRows`) that the
lean loop behind `compose()` calls at every step and that `generate()` reaches through `GuardMask` and
`StopAfterSteps`.

The grammar (note-offs only for sounding notes, note-ons only for silent ones, bounded polyphony and note length, so
every sequence decodes without repair) and the rest guard (bounded silence: the seed's model "panicked" into endless
rests) forbid ids; calmness shifts mass from notes to waits, and to longer waits; the repeat penalty lowers the score
of re-striking the previous onset's top note (samples repeat it far more often than real music, issue 30); the stop
rule ends a row once its new tokens advance time by the length asked. With a violin or cello beside the piano, the
part-entry guard makes a part that has been silent too long likelier to enter (a duo whose violin never plays is a
piano solo, issue 32). They read the vocabulary layout from the model
config, never from the tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor, StoppingCriteria

from .layout import VocabLayout

BOWED_POLYPHONY = 2  # notes a violin or cello part may sound at once (double stops); the piano has no such limit
NEG_INF = float("-inf")


MAX_GUARD_BEATS = 10_000  # a note or a silence longer than this is no limit at all (and its steps overflow)
MAX_REPEAT_PENALTY = 20.0  # a logit penalty of 20 already makes a repeat e^20 (5e8) times less likely
PART_ENTRY_PUSH = 2.0  # part-entry guard: logit added to a silent part's note-ons per beat past its limit


@dataclass
class GuardSettings:
    """Switches and bounds of the guards; the defaults do no harm to music that resembles the training data."""

    grammar: bool = True
    max_polyphony: int = 10  # notes sounding at once, all parts together
    max_note_beats: float = 16.0  # a held note is ended after this many beats
    rest_guard: bool = True
    max_silence_beats: float = 4.0  # beats in a row without a sounding note
    calmness: float = 0.0  # > 0: fewer notes and longer waits; < 0: busier
    repeat_penalty: float = 0.0  # > 0: subtracted from the score of re-striking each part's previous top note
    part_entry: bool = True  # with several parts: a part silent for `max_part_rest_beats` is pushed to enter
    max_part_rest_beats: float = 16.0  # beats a part may rest before the push begins (4 bars of 4/4)

    def __post_init__(self) -> None:
        if not isinstance(self.max_polyphony, int) or self.max_polyphony < 1:
            raise ValueError(f"max_polyphony must be an integer >= 1, got {self.max_polyphony!r}")
        for name in ("max_note_beats", "max_silence_beats", "max_part_rest_beats"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value <= MAX_GUARD_BEATS:
                raise ValueError(f"{name} must be a number of beats > 0 and at most {MAX_GUARD_BEATS:,}, got {value!r}")
        if not -10.0 <= self.calmness <= 10.0:
            raise ValueError(f"calmness must be in [-10, 10], got {self.calmness!r}")
        if not isinstance(self.repeat_penalty, (int, float)) or not 0.0 <= self.repeat_penalty <= MAX_REPEAT_PENALTY:
            raise ValueError(
                f"repeat_penalty must be a number in [0, {MAX_REPEAT_PENALTY:g}] (0: off), got {self.repeat_penalty!r}"
            )


class GuardRows:
    """What sounds in each batch row and the grammar and rest guards' limits per row (rows of different requests may
    differ), and the ids they forbid: the one implementation of those rules, used by `GuardMask` (`generate()`) and by
    `compose()`'s loop (`decoding.py`), which both call `apply`. Masks are computed for all rows at once; the state is
    updated row by row from plain ints, which at these sizes costs less than vectorised numpy calls.

    Grammar: `endpN` only for a sounding note (not in the step it began), `pN` only for a silent key, at most
    `max_polyphony` notes in all and `BOWED_POLYPHONY` in a violin or cello part, waits only while no note would pass
    `max_note_steps`, never special ids. Rest guard: no wait that leaves the row silent for more than
    `max_silence_steps`. Calmness: `calmness * calm_shape` added to the waits' scores (`calm_bias`, per row). Repeat
    penalty: `repeat_penalty` subtracted from the note-on score of each part's top note (highest key) at its latest
    onset step before now (`repeat_targets`), per row: re-striking it is what the melody repeats with. Part entry
    (several parts only): once a part has sounded no note for more than `max_part_rest_steps`, its note-ons' scores
    rise by `PART_ENTRY_PUSH` per beat past that (`entry_push`), so it enters within a few beats. The stop rule: a
    row is done once the tokens after its prompt advance time by its `target_steps` (`out_of_time`).
    """

    LATE = np.iinfo(np.int64).max // 2  # the onset of a silent key, so that the oldest sounding note is a plain min

    def __init__(self, layout: VocabLayout, vocab_size: int):
        self.layout, self.vocab_size = layout, vocab_size
        self.wait_lengths = np.arange(1, layout.max_wait + 1)
        self.calm_shape = calm_shape(layout)
        self.parts = layout.part_slices()  # (name, note-on id, note-off id, first key, pitches); keys side by side
        self.table = self._token_table(layout, vocab_size)
        self.note_on_id = np.asarray([on + i for _, on, _, _, size in self.parts for i in range(size)], dtype=np.int64)
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
            "stop_at": np.zeros(0, dtype=ints),  # elapsed steps at which the row is done (LATE: never)
            "repeat_penalty": np.zeros(0, dtype=np.float32),  # float32 as the scores: the same sum on every path
            "top": np.zeros((0, n_parts), dtype=ints),  # per part: highest key struck at its latest onset step; -1
            "top_step": np.zeros((0, n_parts), dtype=ints),  # the step of that onset; -1: none yet
            "previous_top": np.zeros((0, n_parts), dtype=ints),  # highest key of the onset before it; -1: none
            "part_silent_since": np.zeros((0, n_parts), dtype=ints),  # step the part's last note ended (0: start)
            "max_part_rest_steps": np.zeros(0, dtype=ints),  # LATE: the part-entry guard is off for the row
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
        self.any_repeat = bool((self.repeat_penalty > 0).any())
        self.any_entry = bool((self.max_part_rest_steps < self.LATE).any())
        self._mask = None

    def append(self, guards: GuardSettings, prompt: list[int], rows: int, target_steps: int | None = None) -> None:
        """Rows of a new job: its limits, the state after its prompt, and where it stops (None: never by time)."""
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
            "stop_at": np.full(rows, self.LATE, dtype=np.int64),
            "repeat_penalty": np.full(rows, guards.repeat_penalty, dtype=np.float32),
            "top": np.full((rows, len(self.parts)), -1, dtype=np.int64),
            "top_step": np.full((rows, len(self.parts)), -1, dtype=np.int64),
            "previous_top": np.full((rows, len(self.parts)), -1, dtype=np.int64),
            "part_silent_since": np.zeros((rows, len(self.parts)), dtype=np.int64),
            "max_part_rest_steps": np.full(rows, self._part_rest_steps(guards), dtype=np.int64),
        }
        first = self.now.shape[0]
        for name, value in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))
        for token in prompt:
            self.consume([token] * rows, first)
        if target_steps is not None:
            self.stop_after(target_steps, first)
        bias = guards.calmness * self.calm_shape if guards.calmness else torch.zeros_like(self.calm_shape)
        self.calm_bias = torch.cat([self.calm_bias, bias.expand(rows, -1)])
        self.any_calm = bool(self.calm_bias.abs().sum() > 0)
        self._flags()

    def _part_rest_steps(self, guards: GuardSettings) -> int:
        """The part-entry limit in steps for rows with `guards`; LATE (off) when switched off or with one part."""
        if not guards.part_entry or len(self.parts) < 2:
            return self.LATE
        return max(1, round(guards.max_part_rest_beats * self.layout.steps_per_quarter))

    def stop_after(self, target_steps: int, first: int = 0) -> None:
        """Rows `first`, `first + 1`, ... are done once they advance time by `target_steps` from now."""
        self.stop_at[first:] = self.now[first:] + target_steps

    def out_of_time(self) -> np.ndarray:
        """(rows,) True where the row's new tokens have reached its `target_steps`: the stop rule."""
        return self.now >= self.stop_at

    def apply(self, scores: torch.Tensor) -> torch.Tensor:
        """The guards on (rows, vocab) float32 scores, in place: -inf where `forbidden()`, then the calmness bias on
        the waits, the repeat penalty and the part-entry push. Every decoding path calls this; returns `scores`."""
        forbidden = self.forbidden()
        if scores.is_cpu:
            np.copyto(scores.numpy(), NEG_INF, where=forbidden)  # in place, as masked_fill_, without a torch call
        else:
            scores.masked_fill_(torch.from_numpy(forbidden).to(scores.device), NEG_INF)
        if self.any_calm:
            lay = self.layout
            scores[:, lay.wait_offset : lay.wait_offset + lay.max_wait] += self.calm_bias.to(scores.device)
        if self.any_repeat:
            rows, ids = self.repeat_targets()
            penalty = self.repeat_penalty[rows]
            if scores.is_cpu:
                view = scores.numpy()
                view[rows, ids] -= penalty  # (row, id) pairs are distinct: one per part
            else:
                rows_t, ids_t = torch.from_numpy(rows).to(scores.device), torch.from_numpy(ids).to(scores.device)
                scores[rows_t, ids_t] -= torch.from_numpy(penalty).to(scores.device)
        if self.any_entry:
            push = self.entry_push()
            for index, (_, on, _, _, size) in enumerate(self.parts):
                rows = np.flatnonzero(push[:, index] > 0)
                if rows.size:
                    bias = torch.from_numpy(push[rows, index][:, None]).to(scores.device)
                    scores[torch.from_numpy(rows).to(scores.device), on : on + size] += bias
        return scores

    def entry_push(self) -> np.ndarray:
        """(rows, parts) float32: what the part-entry guard adds to each part's note-on scores, 0 for a part that
        sounds or has rested no longer than its row's limit."""
        resting = np.where(self.part_polyphony > 0, 0, self.now[:, None] - self.part_silent_since)
        past = np.maximum(resting - self.max_part_rest_steps[:, None], 0)
        return (past * (PART_ENTRY_PUSH / self.layout.steps_per_quarter)).astype(np.float32)

    def repeat_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, note-on ids) that the repeat penalty lowers: in each row with a penalty, each part's top note at
        its latest onset step before now (the onset of this step is still being written, so its own top does not
        count yet)."""
        target = np.where(self.top_step < self.now[:, None], self.top, self.previous_top)
        rows, parts = np.nonzero((target >= 0) & (self.repeat_penalty > 0)[:, None])
        return rows, self.note_on_id[target[rows, parts]]

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
        part_polyphony, top, top_step = self.part_polyphony, self.top, self.top_step
        for row, token in enumerate(tokens, start=first):
            kind, key, part = table[token] if 0 <= token < size else other
            if kind == 1:
                if not sounding[row, key]:
                    sounding[row, key] = True
                    polyphony[row] += 1
                    part_polyphony[row, part] += 1
                onset[row, key] = now[row]
                if top_step[row, part] != now[row]:  # the part's first note of a new onset
                    self.previous_top[row, part] = top[row, part]
                    top[row, part], top_step[row, part] = key, now[row]
                elif key > top[row, part]:
                    top[row, part] = key
            elif kind == 2:
                if sounding[row, key]:
                    sounding[row, key] = False
                    onset[row, key] = self.LATE
                    polyphony[row] -= 1
                    part_polyphony[row, part] -= 1
                    if part_polyphony[row, part] == 0:
                        self.part_silent_since[row, part] = now[row]
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
            self._sections.append(
                (index, name != "piano", self.sounding[:, keys], self.onset[:, keys], on_view, off_view)
            )
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


class _Follower:
    """A `GuardRows` kept in step with the ids `generate()` hands each call: new columns are read; beam search's
    reordered rows are followed; an unrelated batch starts afresh (`_start`)."""

    def __init__(self, layout: VocabLayout, guards: GuardSettings):
        self.layout, self.guards = layout, guards
        self.rows = GuardRows(layout, layout.vocab_size)
        self.ids = np.zeros((0, 0), dtype=np.int64)  # the ids read so far

    def _start(self, ids: np.ndarray) -> None:
        """A fresh state for the rows of `ids`, nothing read yet."""
        self.rows = GuardRows(self.layout, self.layout.vocab_size)
        self.rows.append(self.guards, [], ids.shape[0])
        self.ids = np.zeros((ids.shape[0], 0), dtype=np.int64)

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
        self._start(ids)

    def _read(self, input_ids: torch.LongTensor) -> None:
        """Bring the state up to `input_ids` (batch, length)."""
        ids = input_ids.detach().cpu().numpy()
        self._realign(ids)
        for column in ids[:, self.ids.shape[1] :].T:
            self.rows.consume(column.tolist())
        self.ids = ids.copy()


class GuardMask(_Follower, LogitsProcessor):
    """The guards for `generate()`: `GuardRows.apply` (grammar and rest guard masks, calmness, repeat penalty) on each
    call's scores."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._read(input_ids)
        return self.rows.apply(scores.clone())  # a copy: generate() keeps the raw logits it passes


def calm_shape(layout: VocabLayout) -> torch.Tensor:
    """`1 + log2(n) / log2(steps_per_quarter)` for wait1..wait{max_wait}: calmness times this is added to waits."""
    return 1.0 + torch.log2(layout.wait_lengths().float()) / math.log2(max(layout.steps_per_quarter, 2))


def guard_processors(guards: GuardSettings, layout: VocabLayout) -> list[LogitsProcessor]:
    """The enabled guards as `generate()`'s processors (none when all are off)."""
    enabled = guards.grammar or guards.rest_guard or guards.calmness or guards.repeat_penalty
    enabled = enabled or (guards.part_entry and len(layout.part_slices()) > 1)
    return [GuardMask(layout, guards)] if enabled else []


class StopAfterSteps(_Follower, StoppingCriteria):
    """The stop rule for `generate()`: each row stops once the tokens after `prompt_length` advance time by
    `target_steps` (`GuardRows.out_of_time`, as in the lean loop)."""

    def __init__(self, layout: VocabLayout, prompt_length: int, target_steps: int):
        super().__init__(layout, GuardSettings())
        self.prompt_length, self.target_steps = prompt_length, target_steps

    def _start(self, ids: np.ndarray) -> None:
        """Read the prompt, then start counting."""
        super()._start(ids)
        prompt = ids[:, : self.prompt_length]
        for column in prompt.T:
            self.rows.consume(column.tolist())
        self.ids = prompt.copy()
        self.rows.stop_after(self.target_steps)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self._read(input_ids)
        return torch.from_numpy(self.rows.out_of_time()).to(input_ids.device)


__all__ = [
    "BOWED_POLYPHONY",
    "MAX_GUARD_BEATS",
    "MAX_REPEAT_PENALTY",
    "PART_ENTRY_PUSH",
    "GuardMask",
    "GuardRows",
    "GuardSettings",
    "StopAfterSteps",
    "calm_shape",
    "guard_processors",
]
