"""Preference tuning of a generator by a scorer, in rounds: sample N candidates per prompt with the generator's preset
through `compose()` (the loop users run), rank them with `score` (token lists -> numbers, higher preferred; the CLI
passes the LSTM critic's P(human)), pair each prompt's best with its worst, and fine-tune the policy with DPO (or IPO,
`preference.py`) against a frozen copy of the generator. Later rounds sample from the round before's policy; the
reference stays the original generator, so every round is anchored to it.

    summary = tune(TuneConfig(generator="toccata/checkpoints/default", output_dir="runs/tuned", rounds=2), score)

    OUTPUT/                      the tuned model as an ordinary checkpoint folder (card, the generator's preset)
    OUTPUT/tune_summary.json     per round: candidates' scores, pairs, loss, reward accuracy, timings; before/after
    OUTPUT/rounds/round-K/       pairs.json, metrics.jsonl, round.json and model/: the policy after round K
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import ModelCard
from toccata.modeling import GenerationRequest, compose
from toccata.modeling.hub import CardInfo, load_checkpoint, save_checkpoint
from toccata.modeling.pipeline import GeneratedPiece
from toccata.modeling.presets import preset_from_generation_config

from .data import read_rows
from .preference import (
    MAX_ROWS,
    Pair,
    RealWindows,
    Score,
    TuneConfig,
    fit_pairs,
    frozen_copy,
    reference_logprobs,
)

SUMMARY = "tune_summary.json"
ROUND_FILE = "round.json"
# What a resumed run must share with the run it continues; rounds (to add more), device and logging may change.
RESUME_MUST_MATCH = (
    "generator", "critic", "candidates", "prompts", "beats", "prompt_from", "dataset", "split", "prompt_beats",
    "loss", "beta", "min_gap", "epochs", "batch_size", "learning_rate", "max_grad_norm", "warmup", "seed", "anchor",
    "anchor_window", "max_copy_quarters",
)  # fmt: skip


def load_generator(source: str):
    """(model, tokenizer) of a generator checkpoint; a clear error for a folder that holds something else (a critic
    loads as a causal LM without complaint, its head dropped, so its config is read first)."""
    config_file = Path(source) / "config.json"
    if Path(source).is_dir() and not config_file.is_file():
        raise ValueError(
            f"{source}: not a Toccata checkpoint folder (no config.json): give a folder written by `toccata train` "
            "(or the embedded default)"
        )
    if config_file.is_file():
        architectures = json.loads(config_file.read_text()).get("architectures") or []
        if architectures and not any(name.endswith("ForCausalLM") for name in architectures):
            raise ValueError(
                f"{source}: a {architectures[0]} (a critic or classifier), not a generator: give a checkpoint folder "
                "written by `toccata train` (or the embedded default)"
            )
    return load_checkpoint(source)


def dataset_openings(dataset: str, split: str) -> list[list[str]]:
    """The notewise words of every original-key piece of `split` (compose keeps the opening bars)."""
    rows = read_rows(dataset, split, ("id", "transposition", "notewise"))
    pieces = [row["notewise"].split() for row in rows if not row["transposition"] and row["notewise"]]
    if not pieces:
        raise ValueError(f"{dataset}: split {split!r} has no piece in its original key to take openings from")
    return pieces


def round_prompts(config: TuneConfig, openings: list[list[str]], round_index: int) -> list[list[str]]:
    """The prompts of one round: empty (compose from `<bos>`) and/or openings of pieces drawn by (seed, round);
    the `<bos>` prompts come first, so they share decoding batches."""
    from_dataset = {"bos": 0, "dataset": config.prompts, "both": config.prompts // 2}[config.prompt_from]
    prompts: list[list[str]] = [[] for _ in range(config.prompts - from_dataset)]
    if from_dataset:
        rng = np.random.default_rng([config.seed, round_index])
        picked = rng.choice(len(openings), size=from_dataset, replace=from_dataset > len(openings))
        prompts += [openings[i] for i in picked]
    return prompts


def sample_candidates(
    model, tokenizer, prompts: list[list[str]], config: TuneConfig, seed: int
) -> list[list[GeneratedPiece]]:
    """`config.candidates` pieces per prompt, composed with the model's preset; prompt i's candidates have the seeds
    seed + i * N + 0..N-1 (as `compose` seeds rows), so a candidate can be composed again by itself."""
    sampler, guards = preset_from_generation_config(model.generation_config)
    n, per_call = config.candidates, max(1, MAX_ROWS // config.candidates)
    groups: list[list[GeneratedPiece]] = []
    index = 0
    while index < len(prompts):
        chunk = 1
        while not prompts[index] and chunk < per_call and index + chunk < len(prompts) and not prompts[index + chunk]:
            chunk += 1  # `<bos>` prompts are one prompt: decode several groups of them in one batch
        request = GenerationRequest(
            replace(sampler, seed=seed + index * n), guards, beats=config.beats, prompt_beats=config.prompt_beats,
            num_samples=chunk * n,
        )  # fmt: skip
        pieces = compose(model, tokenizer, request, prompt=prompts[index] or None)
        groups += [pieces[g * n : (g + 1) * n] for g in range(chunk)]
        index += chunk
    return groups


def score_groups(groups: list[list[GeneratedPiece]], score: Score) -> list[list[float | None]]:
    """Each candidate's score of its continuation (None for a continuation without tokens: nothing to judge)."""
    continuations = [piece.tokens[piece.prompt_length :] for group in groups for piece in group]
    judged = [tokens for tokens in continuations if tokens]
    values = iter([float(v) for v in score(judged)] if judged else [])
    flat = [next(values) if tokens else None for tokens in continuations]
    out, start = [], 0
    for group in groups:
        out.append(flat[start : start + len(group)])
        start += len(group)
    return out


def preference_pairs(groups, scores, tokenizer, bos_id: int, min_gap: float) -> list[Pair]:
    """Per prompt, its best-scored candidate against its worst, when their scores differ by `min_gap` or more and
    their continuations differ."""
    pairs = []
    for group, values in zip(groups, scores):
        ranked = sorted((v, i) for i, v in enumerate(values) if v is not None)
        if len(ranked) < 2 or ranked[-1][0] - ranked[0][0] < min_gap:
            continue
        best, worst = group[ranked[-1][1]], group[ranked[0][1]]
        chosen = tokenizer.convert_tokens_to_ids(best.tokens[best.prompt_length :])
        rejected = tokenizer.convert_tokens_to_ids(worst.tokens[worst.prompt_length :])
        if chosen == rejected:
            continue
        prompt = [bos_id] + tokenizer.convert_tokens_to_ids(best.tokens[: best.prompt_length])
        pairs.append(Pair(prompt, chosen, rejected, ranked[-1][0], ranked[0][0]))
    return pairs


def _check_output(config: TuneConfig, out: Path, resume: bool) -> None:
    """A new or empty output folder, or with `resume` one whose saved settings match."""
    saved_file = out / "tune_config.json"
    if not resume:
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"{out} exists and is not empty: give a new folder, or --resume to continue its rounds")
        return
    if not saved_file.is_file():
        return
    saved, now = json.loads(saved_file.read_text()), json.loads(json.dumps(asdict(config)))
    defaults = {f.name: f.default for f in fields(TuneConfig) if f.default is not MISSING}
    saved = {**defaults, **saved}  # a key added since the run was made: it ran with the field's default
    changed = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in RESUME_MUST_MATCH if k in saved and saved[k] != now[k]]
    if changed:
        raise ValueError(
            f"--resume continues the run in {out} with its settings, but these differ: {'; '.join(changed)}. Give "
            "the same settings (more --rounds is fine), or a new --out"
        )


def _done_rounds(out: Path, rounds: int) -> list[dict]:
    """The rows of the rounds already finished in `out` (each wrote its round.json last), up to `rounds`."""
    done = []
    for index in range(1, rounds + 1):
        path = out / "rounds" / f"round-{index}" / ROUND_FILE
        if not path.is_file():
            break
        done.append(json.loads(path.read_text()))
    return done


def _mean(values) -> float | None:
    kept = [v for group in values for v in group if v is not None]
    return float(np.mean(kept)) if kept else None


def tune(config: TuneConfig, score: Score, resume: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Preference-tune `config.generator` by `score` and write the tuned checkpoint to `config.output_dir`; returns
    the summary (also in tune_summary.json). `resume`: continue after the last finished round in that folder."""
    out = Path(config.output_dir)
    _check_output(config, out, resume)
    generator, tokenizer = load_generator(config.generator)
    needs_pieces = config.prompt_from != "bos" or config.anchor > 0
    openings = dataset_openings(config.dataset, config.split) if needs_pieces else []
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    device = torch.device("cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu")
    reference = frozen_copy(generator).to(device)
    rows = _done_rounds(out, config.rounds) if resume else []
    policy = generator
    if rows:
        policy, _ = load_checkpoint(out / "rounds" / f"round-{len(rows)}" / "model")
        progress(f"resuming after round {len(rows)} of {config.rounds}")
    policy.to(device)
    preset = preset_from_generation_config(generator.generation_config)  # the tuned model keeps it
    for index in range(len(rows) + 1, config.rounds + 1):
        rows.append(_round(index, policy, reference, tokenizer, preset, score, config, openings, progress))
    return _finish(config, policy, tokenizer, preset, score, openings, rows, progress)


def _round(
    index: int, policy, reference, tokenizer, preset, score: Score, config: TuneConfig, openings, progress
) -> dict:
    """One round: sample, score, pair, fine-tune `policy` in place, save it in rounds/round-`index`; its row."""
    folder, label = Path(config.output_dir) / "rounds" / f"round-{index}", f"round {index}/{config.rounds}"
    clock = time.perf_counter()
    groups = sample_candidates(policy, tokenizer, round_prompts(config, openings, index), config, _seed(config, index))
    sampled = time.perf_counter()
    scores = score_groups(groups, score)
    scored = time.perf_counter()
    pairs = preference_pairs(groups, scores, tokenizer, policy.config.bos_token_id, config.min_gap)
    if not pairs:
        raise ValueError(
            f"{label}: no prompt's best and worst candidates differ by min_gap {config.min_gap:g} or more; lower "
            "--min-gap, or give more --candidates"
        )
    chosen, rejected = np.mean([p.chosen_score for p in pairs]), np.mean([p.rejected_score for p in pairs])
    progress(
        f"{label}: {sum(map(len, groups))} candidates for {len(groups)} prompts, mean score {_mean(scores):.4f}; "
        f"{len(pairs)} pairs (chosen {chosen:.4f}, rejected {rejected:.4f})"
    )
    reference_values = reference_logprobs(reference, pairs, config.batch_size, policy.config.pad_token_id)
    windows = real_windows(config, openings, tokenizer, index) if config.anchor > 0 else None
    fitted = fit_pairs(policy, pairs, reference_values, config, folder, progress, label, windows)
    save_checkpoint(folder / "model", policy.eval(), tokenizer, sampler=preset[0], guards=preset[1])
    (folder / "pairs.json").write_text(json.dumps([asdict(p) for p in pairs]) + "\n")
    row = {
        "round": index,
        "prompts": len(groups),
        "candidates": sum(map(len, groups)),
        "mean_score": _mean(scores),
        "pairs": len(pairs),
        "mean_chosen_score": float(chosen),
        "mean_rejected_score": float(rejected),
        **fitted,
        "sample_seconds": round(sampled - clock, 1),
        "score_seconds": round(scored - sampled, 1),
    }
    (folder / ROUND_FILE).write_text(json.dumps(row, indent=2) + "\n")  # last: the round is complete
    return row


def real_windows(config: TuneConfig, pieces: list[list[str]], tokenizer, round_index: int) -> RealWindows:
    """The anchor's real music: the split's original-key pieces as ids framed by `<bos>` and `<eos>`, windows drawn
    by (seed, round)."""
    framed = [
        np.asarray([tokenizer.bos_token_id, *tokenizer.convert_tokens_to_ids(words), tokenizer.eos_token_id])
        for words in pieces
    ]
    return RealWindows(framed, config.anchor_window, tokenizer.pad_token_id, _seed(config, round_index))


def _seed(config: TuneConfig, round_index: int) -> int:
    """The first sampling seed of a round (prompt i, candidate j: + i * N + j)."""
    return config.seed + 1_000_000 * round_index


def _finish(config: TuneConfig, policy, tokenizer, preset, score: Score, openings, rows: list[dict], progress) -> dict:
    """Measure the tuned policy on round 1's prompts and seeds (round 1 sampled them from the generator: the
    scorer's before and after), save it with its card, and write the summary."""
    out = Path(config.output_dir)
    clock = time.perf_counter()
    groups = sample_candidates(policy, tokenizer, round_prompts(config, openings, 1), config, _seed(config, 1))
    after = _mean(score_groups(groups, score))
    before = rows[0]["mean_score"]
    samples = sum(map(len, groups))
    progress(f"mean score of {samples} samples, same prompts and seeds: before {before:.4f}, after {after:.4f}")
    summary = {
        "generator": config.generator,
        "critic": config.critic,
        "rounds": rows,
        "check": {
            "samples": samples,
            "mean_score_before": before,
            "mean_score_after": after,
            "seconds": round(time.perf_counter() - clock, 1),
        },
        "torch_threads": torch.get_num_threads(),
        "device": str(next(policy.parameters()).device),
    }
    card = CardInfo(
        title=f"Toccata NotewiseLSTM preference-tuned from {Path(config.generator).name or config.generator}",
        license=_license(config.generator),
        training_data=_card_text(config, summary),
        notes="The evaluation numbers of the generator's card do not carry over: measure this model with "
        "`toccata evaluate --model FOLDER --dataset DATASET --split test`.",
    )
    save_checkpoint(out, policy.eval(), tokenizer, card=card, sampler=preset[0], guards=preset[1])
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _license(generator: str) -> str:
    """The licence on the generator's card (the tuned weights are a derivative of its weights), else unknown."""
    card = Path(generator) / "README.md"
    if card.is_file():
        license_id = ModelCard.load(card).data.license
        if license_id:
            return str(license_id)
    return "unknown"


def _card_text(config: TuneConfig, summary: dict) -> str:
    """The card's "training data" paragraph: preference-tuned from what, by which critic, how, and what it measured."""
    rows, check = summary["rounds"], summary["check"]
    prompts = {"bos": "`<bos>` (composing from nothing)", "dataset": f"openings ({config.prompt_beats:g} beats) of "
               f"`{config.dataset}` [{config.split}]", "both": f"`<bos>` and openings ({config.prompt_beats:g} "
               f"beats) of `{config.dataset}` [{config.split}], half each"}[config.prompt_from]  # fmt: skip
    pairs = ", ".join(str(row["pairs"]) for row in rows)
    quotes = (
        f", a continuation that copies {config.max_copy_quarters:g} quarter notes or more of the training pieces "
        "scored 0"
        if config.max_copy_quarters
        else ""
    )
    anchor = (
        f"; anchored to real music: each step adds {config.anchor:g} x the NLL per token of {config.batch_size} "
        f"windows of {config.anchor_window} tokens of `{config.dataset}` [{config.split}]"
        if config.anchor
        else ""
    )
    return (
        f"**Preference-tuned** from `{config.generator}` with {config.loss.upper()} (beta {config.beta:g}) against a "
        f"frozen copy of it, ranked by the critic `{config.critic or 'a score function'}` (its P(human) of each "
        f"continuation){quotes}. {len(rows)} round(s): {config.prompts} prompts per round from {prompts}, "
        f"{config.candidates} candidates each of {config.beats:g} beats with the generator's preset, the best against "
        f"the worst of each prompt (score gap >= {config.min_gap:g}): {pairs} pairs; {config.epochs:g} epoch(s) per "
        f"round, batch {config.batch_size} pairs, AdamW lr {config.learning_rate:g}, dropout off{anchor}. The critic's "
        "mean "
        f"score of {check['samples']} samples (round 1's prompts and seeds): before {check['mean_score_before']:.4f}, "
        f"after {check['mean_score_after']:.4f}. A critic's rating is not a judgement of the music: see "
        "docs/critic.md (Preference tuning) for what an independent judge measured."
    )


__all__ = ["TuneConfig", "dataset_openings", "load_generator", "preference_pairs", "sample_candidates", "tune"]
