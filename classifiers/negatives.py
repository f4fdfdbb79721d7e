"""What "not human" means to the critic: its negatives, beyond the generator's own samples.

A critic trained only on real excerpts against the generator's samples learns "does not sound like our generator",
not "sounds like music" (it rated real pieces with scrambled pitches as more human than the originals). So its
negative class mixes, in shares the task sets (`--negatives generator=0.4,corrupted=0.4,weaker=0.2`):

- `generator`: the generator's own samples (a spread of samplers, cached by `tasks.generated_samples`);
- `corrupted`: real training excerpts spoilt in a way a listener hears (`corruptions.CORRUPTIONS`, in turn), made
  on the fly per batch: a span of twice the excerpt length is read as notes, spoilt, written back as tokens, and an
  excerpt is cut from it like from any piece (so its edges look like a real excerpt's, not like a whole piece's);
- `weaker`: samples of weaker composers (`WEAKER_MODELS`: the generator at a high temperature, an untrained model
  of its size, a Kneser-Ney 5-gram of the training pieces; and any `others`, say a model preference-tuned against an
  earlier critic, whose traits the next critic must not reward), cached like the generator's.

Validation and test draw every kind with seeds never used in training (`SEED_BASE`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from toccata.evaluation.ngram import KneserNeyModel
from toccata.modeling import GenerationRequest, compose
from toccata.modeling.hub import random_model
from toccata.modeling.presets import preset_from_generation_config
from toccata.modeling.sampling import SamplerSettings

from .corruptions import CORRUPTIONS, corrupt
from .data import SAMPLER_SPREAD, ExcerptSampler, Labelled, windows

NEGATIVE_KINDS = ("generator", "corrupted", "weaker")
DEFAULT_NEGATIVES = "generator=0.4,corrupted=0.4,weaker=0.2"
WEAKER_MODELS = ("hot", "untrained", "ngram")  # one per cached batch, in turn
SEED_BASE = {"train": 0, "validation": 100_000, "test": 200_000}  # sample seeds never shared between splits
SAMPLE_BATCH = 16
NGRAM_ORDER = 5
UNTRAINED_BEATS = 4  # an untrained model writes long waits: 4 x the beats for as many tokens as the others
NGRAM_TOKENS = 1200  # tokens per n-gram sample (before the round trip through notes)
NGRAM_FIT_TOKENS = 400_000  # the n-gram reads the first training pieces up to this many tokens (a weak model anyway)


def negative_shares(text: str) -> dict[str, float]:
    """`kind=share,...` (kinds of `NEGATIVE_KINDS`, shares >= 0, not all 0) as shares that sum to 1."""
    shares = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if kind not in NEGATIVE_KINDS:
            raise ValueError(f"negatives: unknown kind {kind!r} in {text!r}; known: {', '.join(NEGATIVE_KINDS)}")
        try:
            share = float(value) if sep else float("nan")
        except ValueError:
            share = float("nan")
        if not share >= 0:
            raise ValueError(f"negatives: {kind} needs a share >= 0 like {kind}=0.4, got {part!r}")
        shares[kind] = share
    total = sum(shares.values())
    if total <= 0:
        raise ValueError(f"negatives: give at least one kind a share > 0 (like {DEFAULT_NEGATIVES}), got {text!r}")
    return {kind: share / total for kind, share in shares.items() if share > 0}


def cached_batches(
    folder: Path,
    prefix: str,
    count: int,
    make: Callable[[int, int], dict],
    log=print,
    model_of: Callable[[int], str] | None = None,
) -> list[dict]:
    """`count` samples as records {"tokens": [...], ...}, made `SAMPLE_BATCH` at a time by `make(batch, size)` (a
    dict with "samples" (texts) and what made them) and cached as FOLDER/PREFIX-NNN.json, written atomically, so a
    rerun or a resumed run makes only what is missing. `model_of(batch)`: the model a batch must be of; a cached batch
    of another (a cache made with another list of models) is made again, not reused."""
    folder.mkdir(parents=True, exist_ok=True)
    out, batch = [], 0
    while len(out) < count:
        path = folder / f"{prefix}-{batch:03d}.json"
        if path.is_file() and model_of is not None:
            made = json.loads(path.read_text(encoding="utf-8")).get("model", "generator")
            if made != model_of(batch):
                log(f"{path.name}: holds samples of {made}, not of {model_of(batch)} (another list of models): "
                    "made again")  # fmt: skip
                path.unlink()
        if not path.is_file():
            size = min(SAMPLE_BATCH, count - len(out))
            record = make(batch, size)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
            tmp.replace(path)
            log(f"made {path.name}: {len(record['samples'])} samples ({record.get('model', 'generator')})")
        record = json.loads(path.read_text(encoding="utf-8"))
        out += [{"tokens": text.split(), "model": record.get("model", "generator")} for text in record["samples"]]
        out = out[:count]
        batch += 1
    return out


def generated_samples(generator, tokenizer, folder: Path, split: str, count: int, beats: float, log=print) -> list:
    """`count` samples of the generator (lists of words), batch by batch over `SAMPLER_SPREAD`; each batch is cached
    as OUT/samples/SPLIT-NNN.json, so a rerun (or a resumed run) generates only what is missing."""
    preset, guards = preset_from_generation_config(generator.generation_config)

    def make(batch: int, size: int) -> dict:
        overrides = SAMPLER_SPREAD[batch % len(SAMPLER_SPREAD)]
        sampler = SamplerSettings(**{**asdict(preset), **overrides, "seed": SEED_BASE[split] + batch})
        request = GenerationRequest(sampler=sampler, guards=guards, beats=beats, num_samples=size)
        pieces = compose(generator, tokenizer, request)
        return {"sampler": asdict(sampler), "samples": [" ".join(p.tokens) for p in pieces]}

    return [record["tokens"] for record in cached_batches(folder, split, count, make, log)]


def corrupt_ids(ids: np.ndarray, tokenizer, kind: str | None, rng: np.random.Generator) -> np.ndarray:
    """Token ids spoilt by corruption `kind`: read as notes, spoilt, written back as the tokenizer writes (`kind`
    None: read and written back only, the spoilt span's real twin)."""
    return spoil_ids(ids, tokenizer, kind, rng)[0]


def spoil_ids(
    ids: np.ndarray, tokenizer, kind: str | None, rng: np.random.Generator, twin: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """(spoilt, twin) of token ids read as notes once: `corrupt_ids`'s result and, with `twin`, the same span read
    and written back unspoilt (what a paired critic batch puts beside it; None without `twin`)."""
    notes = tokenizer.tokens_to_notes(tokenizer.convert_ids_to_tokens([int(i) for i in ids]))
    spoilt = notes if kind is None else corrupt(notes, kind, rng)
    real = np.asarray(tokenizer.notes_to_ids(notes), dtype=np.int64) if twin else None
    return np.asarray(tokenizer.notes_to_ids(spoilt), dtype=np.int64), real


def corrupted_excerpts(
    real: list[Labelled], tokenizer, length: int, per_piece: int, split: str, label: int
) -> list[Labelled]:
    """Fixed spoilt excerpts for validation or test: up to `per_piece` spans of 2 x `length` tokens per piece, each
    spoilt by the next corruption in turn (seeds of `split`), and the middle `length` tokens of the result kept."""
    names, out = list(CORRUPTIONS), []
    for seq in real:
        for window in windows(seq.ids, 2 * length, per_piece):
            kind = names[len(out) % len(names)]
            spoilt = corrupt_ids(window, tokenizer, kind, np.random.default_rng([SEED_BASE[split], len(out)]))
            start = max(0, (len(spoilt) - length) // 2)
            group = f"corrupted:{kind}:{split}:{len(out)}"
            out.append(Labelled(spoilt[start : start + length], label, group))
    return [s for s in out if len(s.ids)]


def _ngram(train: list[Labelled], tokenizer) -> KneserNeyModel:
    sequences, total = [], 0
    for seq in train:
        if total >= NGRAM_FIT_TOKENS:
            break
        sequences.append(np.r_[tokenizer.bos_token_id, seq.ids, tokenizer.eos_token_id])
        total += len(seq.ids)
    return KneserNeyModel(len(tokenizer), NGRAM_ORDER, tokenizer.bos_token_id).fit(sequences)


def weaker_samples(
    generator,
    tokenizer,
    train: list[Labelled],
    folder: Path,
    split: str,
    count: int,
    beats: float,
    temperature: float,
    log=print,
    others: dict | None = None,
) -> list[dict]:
    """`count` samples of weaker composers, batch by batch in turn over `WEAKER_MODELS` and then `others` (name ->
    generator, sampled with its own preset; seeds of `split`), cached as FOLDER/weaker-SPLIT-NNN.json. Each record:
    {"tokens": words, "model": name}."""
    preset, guards = preset_from_generation_config(generator.generation_config)
    first = int(generator.config.note_on_offset)
    others = dict(others or {})
    clash = sorted(set(others) & set(WEAKER_MODELS))
    if clash:
        raise ValueError(f"weaker models named {clash} clash with the built-in ones ({', '.join(WEAKER_MODELS)})")
    names = (*WEAKER_MODELS, *others)
    ngram = None

    def make(batch: int, size: int) -> dict:
        nonlocal ngram
        name, seed = names[batch % len(names)], SEED_BASE[split] + batch
        if name in others:  # another generator with its own preset and guards
            own, own_guards = preset_from_generation_config(others[name].generation_config)
            settings = SamplerSettings(**{**asdict(own), "seed": seed})
            request = GenerationRequest(sampler=settings, guards=own_guards, beats=beats, num_samples=size)
            pieces = compose(others[name], tokenizer, request)
            return {"model": name, "sampler": asdict(settings), "samples": [" ".join(p.tokens) for p in pieces]}
        if name == "ngram":
            ngram = ngram or _ngram(train, tokenizer)
            allowed = np.arange(len(tokenizer)) >= first  # notes and waits only
            rng = np.random.default_rng(seed)
            texts = []
            for _ in range(size):
                ids = ngram.sample(rng, NGRAM_TOKENS, tokenizer.eos_token_id, allowed)
                notes = tokenizer.tokens_to_notes(tokenizer.convert_ids_to_tokens(ids.tolist()))
                texts.append(" ".join(tokenizer.notes_to_tokens(notes)))  # the grammar the tokenizer writes
            return {"model": name, "seed": seed, "order": NGRAM_ORDER, "samples": texts}
        if name == "hot":
            model, sampler = generator, {**asdict(preset), "sampler": "weighted", "temperature": temperature}
        else:
            torch.manual_seed(seed)
            model, sampler = random_model(tokenizer, **_sizes(generator.config)), asdict(preset)
        settings = SamplerSettings(**{**sampler, "seed": seed})
        length = beats * (UNTRAINED_BEATS if name == "untrained" else 1)
        request = GenerationRequest(sampler=settings, guards=guards, beats=length, num_samples=size)
        pieces = compose(model, tokenizer, request)
        return {"model": name, "sampler": asdict(settings), "samples": [" ".join(p.tokens) for p in pieces]}

    return cached_batches(folder, f"weaker-{split}", count, make, log, model_of=lambda batch: names[batch % len(names)])


def _sizes(config) -> dict:
    keys = ("embedding_size", "hidden_size", "num_hidden_layers", "tie_word_embeddings")
    return {key: getattr(config, key) for key in keys}


class CriticSampler(ExcerptSampler):
    """Batches for the critic: half real excerpts, half negatives whose kind is drawn by `shares`; corrupted ones
    are made on the fly from the real sequences, the corruptions in turn. Pure function of (seed, step).

    With `paired`, each corrupted excerpt comes with its twin in the same batch: the same span of the same piece,
    read and written back but not spoilt, cut at the same place and transposed alike. Only the corruption tells the
    two apart, not the piece, so the subtle ones (bars reordered, time reversed) stand out from the spread between
    pieces. Fewer independent real excerpts are drawn then, so that real and spoilt excerpts still weigh half each."""

    def __init__(
        self,
        sequences: list[Labelled],
        length: int,
        layout,
        pad_id: int,
        tokenizer,
        shares: dict[str, float],
        max_transpose: int = 6,
        seed: int = 0,
        paired: bool = False,
    ) -> None:
        super().__init__(sequences, length, layout, pad_id, max_transpose, balance_labels=True, seed=seed)
        self.tokenizer, self.turn, self.paired = tokenizer, 0, paired
        self.real = [s for s in sequences if s.group.startswith("piece:")]
        pools = {
            "generator": [s for s in sequences if s.group.startswith("sample:")],
            "weaker": [s for s in sequences if s.group.startswith("weaker:")],
            "corrupted": self.real,
        }
        missing = [kind for kind in shares if not pools[kind]]
        if missing or not self.real:
            raise ValueError(f"critic sampler: no sequences for {missing or ['real pieces']}")
        self.pools, self.kinds = pools, list(shares)
        self.shares = np.asarray([shares[k] for k in self.kinds])
        # P(a draw is real), so that reals are half the rows: q + (1 - q) c = (1 - q) (1 + c) / 2 with twins
        spoilt = shares.get("corrupted", 0.0) if paired else 0.0
        self.real_share = (1 - spoilt) / (2 - spoilt)

    def batch(self, step: int, size: int) -> dict[str, torch.Tensor]:
        self.turn = step * size  # the corruptions' turn depends on the step only
        return super().batch(step, size)

    def _rows(self, rng: np.random.Generator, size: int) -> list[tuple[np.ndarray, int]]:
        if not self.paired:
            return super()._rows(rng, size)
        rows = []
        while len(rows) < size:
            seq, twin = self._draw(rng)
            window, label, where = self._excerpt(seq, rng)
            rows.append((window, label))
            if twin is not None:  # the spoilt span's real original, cut at the same place, transposed alike
                rows.append(self._excerpt(twin, rng, where)[:2])
        return rows[:size]

    def _pick(self, rng: np.random.Generator) -> Labelled:
        """The unpaired draw (`ExcerptSampler._rows`): `_draw`'s sequence without its twin."""
        return self._draw(rng)[0]

    def _draw(self, rng: np.random.Generator) -> tuple[Labelled, Labelled | None]:
        """A sequence of a kind drawn by the shares, and for a corrupted one its unspoilt twin (None otherwise)."""
        if rng.random() < self.real_share:
            return self.real[int(rng.integers(len(self.real)))], None
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.shares))]
        pool = self.pools[kind]
        seq = pool[int(rng.integers(len(pool)))]
        if kind != "corrupted":
            return seq, None
        name = list(CORRUPTIONS)[self.turn % len(CORRUPTIONS)]
        self.turn += 1
        span = 2 * self.length
        start = int(rng.integers(0, max(len(seq.ids) - span, 0) + 1))
        spoilt, twin = spoil_ids(seq.ids[start : start + span], self.tokenizer, name, rng, self.paired)
        if not len(spoilt):  # a span without notes: draw again
            return self._draw(rng)
        return Labelled(spoilt, 1 - seq.label, f"corrupted:{name}"), (
            None if twin is None else Labelled(twin, seq.label, seq.group)
        )


__all__ = [
    "DEFAULT_NEGATIVES",
    "NEGATIVE_KINDS",
    "SEED_BASE",
    "WEAKER_MODELS",
    "CriticSampler",
    "cached_batches",
    "corrupt_ids",
    "corrupted_excerpts",
    "generated_samples",
    "negative_shares",
    "spoil_ids",
    "weaker_samples",
]
