"""The seed's samplers: their settings and their rules, as transformers `LogitsProcessor`s with a seeded draw.

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
`compose()`'s loop calls the same `SeededDraw.choose`. The guards are in `guards.py`, the presets in `presets.py`.
"""

from __future__ import annotations

import bisect
import itertools
import math
import secrets
from dataclasses import asdict, dataclass

import numpy as np
import torch
from transformers import LogitsProcessor

SAMPLERS = ("greedy", "top_n", "weighted", "top_k", "mixed")
# The settings that change what each sampler does (temperature does nothing to greedy or to top_n's ranking).
SAMPLER_PARAMETERS: dict[str, tuple[str, ...]] = {
    "greedy": (),
    "top_n": ("p_best", "n"),
    "weighted": ("temperature",),
    "top_k": ("temperature", "k"),
    "mixed": ("temperature", "random_freq", "trunc"),
}
NEG_INF = float("-inf")


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


__all__ = [
    "SAMPLERS",
    "SAMPLER_PARAMETERS",
    "Mixed",
    "Rule",
    "SamplerSettings",
    "SeededDraw",
    "TopK",
    "TopN",
    "Weighted",
    "draw",
    "draw_among",
    "sampler_processors",
]
