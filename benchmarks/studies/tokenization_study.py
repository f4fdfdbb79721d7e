"""Which tokenization serves the LSTM best? Prepare, train and compare one model per tokenization (issue 15).

    python benchmarks/studies/tokenization_study.py prepare --dataset data/piano --out runs/tokstudy
    python benchmarks/studies/study_train.py runs/tokstudy/* --steps 2400          # CPU or GPU; see study_train.py
    python benchmarks/studies/tokenization_study.py evaluate --dataset data/piano --out runs/tokstudy

A study, not part of the package: run it as a script with the package installed (`make setup`); it imports
`study_train.py` from beside it.

`prepare` reads every piece of the dataset's `midi` column once, puts its notes on the 12-step grid
(`schemes.grid_notes`), learns what a scheme learns from the *training* split only (BPE merges, the chordwise
vocabulary), and writes per tokenization LABEL: the token streams (`tokens.npz`), the scheme (`scheme/`) and the
model config (`init/`: same LSTM sizes for all; only the vocabulary differs). `evaluate` measures on the test split,
with measures that compare across tokenizations: bits per note (a piece's total negative log-likelihood divided by
its notes, the same notes for every scheme), tokens per quarter note, generation speed in seconds of music per
second at batch 1, the share of samples that decode without repair, rest collapse, and the critic AUC of
`toccata evaluate` (a classifier on musical features of real versus generated excerpts; 0.5 = indistinguishable).
"""

from __future__ import annotations

import argparse
import itertools
import json
import lzma
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from toccata.tokenization.midi_io import NoteArrays
from toccata.tokenization.schemes import (
    STEPS_PER_QUARTER,
    TokenScheme,
    grid_notes,
    load_scheme,
    read_notes,
)

RUNS: dict[str, tuple[str, int | None]] = {
    "notewise": ("notewise", None),
    "notewise-bpe-1024": ("notewise-bpe", 1024),
    "notewise-bpe-4096": ("notewise-bpe", 4096),
    "chordwise": ("chordwise", None),
    "remi": ("remi", None),
    "midilike": ("midilike", None),
    "tsd": ("tsd", None),
}
"""Study label -> (scheme, BPE vocabulary size)."""

TRANSPOSITIONS = tuple(range(-3, 4))  # training pieces are encoded in each of these keys (semitones)
ROLL_QUARTERS = 32  # the opening of one sample per tokenization is drawn as a piano roll
SAMPLERS = {"top_k": 8, "weighted": None}  # the default preset's rule (top 8) and the whole distribution
SECONDS_PER_QUARTER = 0.5  # speed is quoted in seconds of music at 120 quarter notes per minute


@dataclass
class Prepared:
    """What `prepare` wrote for one tokenization."""

    label: str
    vocab_size: int
    train_tokens: int
    test_tokens: int
    test_notes: int
    test_quarters: float
    test_notes_kept: int  # notes that decode back exactly from the scheme's test tokens (chordwise loses <unk>)


# ---------------------------------------------------------------------------------------------------- prepare


def _split_notes(dataset: str, split: str, shifts: Sequence[int] = (0,)) -> dict[int, list[NoteArrays]]:
    from toccata.training.data import read_rows

    raw = [read_notes(row["midi"]) for row in read_rows(dataset, split, columns=("id", "midi"))]
    return {shift: [grid_notes(notes, shift) for notes in raw] for shift in shifts}


def _stream(scheme: TokenScheme, pieces: Sequence[np.ndarray]) -> np.ndarray:
    special = scheme.special_ids
    parts = [np.concatenate([[special["bos"]], ids, [special["eos"]]]) for ids in pieces]
    return np.concatenate(parts).astype(np.uint16)


def _same_notes(a: NoteArrays, b: NoteArrays) -> int:
    """How many notes of `a` appear in `b` with the same onset, pitch and offset."""
    key_a = set(zip(a.start.tolist(), a.pitch.tolist(), a.end.tolist()))
    key_b = set(zip(b.start.tolist(), b.pitch.tolist(), b.end.tolist()))
    return len(key_a & key_b)


def write_init(folder: Path, scheme: TokenScheme) -> None:
    """`folder/config.json` and the model's code: the default checkpoint's LSTM sizes over the scheme's vocabulary."""
    from toccata.modeling.hub import random_model, saving_code

    if scheme.name == "notewise":
        model = random_model(scheme.tokenizer)  # the notewise layout, so the generator's guards would apply
    else:
        ids = scheme.special_ids
        model = random_model(
            None, vocab_size=scheme.vocab_size, pad_token_id=ids["pad"], bos_token_id=ids["bos"],
            eos_token_id=ids["eos"],
        )  # fmt: skip
    model.config.token_scheme = scheme.name
    with saving_code(model):  # study_train.py loads it with trust_remote_code, toccata not installed
        model.save_pretrained(folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()  # study_train.py draws the weights itself, with the study's seed


def prepare(dataset: str, out: str | Path, labels: Sequence[str] = tuple(RUNS)) -> list[Prepared]:
    """Encode the dataset with every tokenization in `labels` and write what training and evaluation read."""
    out = Path(out)
    train = _split_notes(dataset, "train", TRANSPOSITIONS)
    valid = _split_notes(dataset, "validation")[0]
    test = _split_notes(dataset, "test")[0]
    done = []
    for label in labels:
        began = time.perf_counter()
        name, bpe = RUNS[label]
        scheme = load_scheme(name, bpe_vocab_size=bpe)
        scheme.train(train[0])  # original keys of the training split only
        folder = out / label
        scheme.save(folder / "scheme")
        write_init(folder / "init", scheme)
        test_ids = [scheme.encode(notes) for notes in test]
        stream = _stream(scheme, [scheme.encode(notes) for shift in TRANSPOSITIONS for notes in train[shift]])
        (folder / "train.xz").write_bytes(lzma.compress(stream.astype("<u2").tobytes(), preset=9))  # ~2/3 of npz
        np.savez_compressed(
            folder / "tokens.npz",
            validation=_stream(scheme, [scheme.encode(notes) for notes in valid]),
            test=np.concatenate(test_ids).astype(np.uint16),
            test_lengths=np.array([len(ids) for ids in test_ids]),
        )
        kept = sum(_same_notes(notes, scheme.decode(ids)) for notes, ids in zip(test, test_ids))
        record = Prepared(
            label=label,
            vocab_size=scheme.vocab_size,
            train_tokens=len(stream),
            test_tokens=int(sum(len(ids) for ids in test_ids)),
            test_notes=int(sum(len(notes) for notes in test)),
            test_quarters=float(sum(_quarters(notes) for notes in test)),
            test_notes_kept=int(kept),
        )
        (folder / "prepared.json").write_text(json.dumps(record.__dict__, indent=2) + "\n")
        print(f"{label}: {record.__dict__} ({time.perf_counter() - began:.0f} s)", flush=True)
        done.append(record)
    return done


def _quarters(notes: NoteArrays) -> float:
    return float(notes.end.max()) / STEPS_PER_QUARTER if len(notes) else 0.0


# ---------------------------------------------------------------------------------------------------- evaluate


def load_model(folder: Path, device: str = "cpu"):
    """The trained model of a study folder (init/ config + model.safetensors), in eval mode."""
    from safetensors.torch import load_file

    from study_train import build_model

    model = build_model(folder / "init", seed=0)
    missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{folder}: weights do not fit the config (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    return model.to(device).eval()


@torch.no_grad()
def sample(
    model, bos: int, eos: int, rows: int, tokens: int, top_k: int | None = None, seed: int = 0
) -> tuple[list[np.ndarray], float]:
    """`rows` samples of up to `tokens` tokens, each cut at its first ``<eos>``, and the tokens per second of the
    loop. Drawn from the whole distribution, or from the `top_k` most likely tokens renormalised; no guards (they
    are notewise's)."""
    layers = [layer.lstm for layer in model.model.layers]
    weights = [(m.weight_ih_l0.t(), m.weight_hh_l0.t(), m.bias_ih_l0 + m.bias_hh_l0) for m in layers]
    h = [torch.zeros(rows, m.hidden_size) for m in layers]
    c = [torch.zeros(rows, m.hidden_size) for m in layers]
    token = torch.full((rows,), bos, dtype=torch.long)
    emb, head = model.model.embeddings.weight, model.lm_head
    generator = torch.Generator().manual_seed(seed)
    out = torch.empty(rows, tokens, dtype=torch.long)
    began = time.perf_counter()
    for step in range(tokens):
        x = emb[token]
        for i, (w_ih, w_hh, b) in enumerate(weights):
            gates = torch.addmm(b, x, w_ih).addmm_(h[i], w_hh)
            size = h[i].shape[1]
            ig, fg, _, og = gates.sigmoid().chunk(4, 1)
            c[i] = torch.addcmul(fg * c[i], ig, gates[:, 2 * size : 3 * size].tanh())
            h[i] = og * c[i].tanh()
            x = h[i]
        logits = head(x)
        if top_k:
            top = logits.topk(top_k, dim=-1)
            pick = torch.multinomial(torch.softmax(top.values, -1), 1, generator=generator)
            token = top.indices.gather(1, pick)[:, 0]
        else:
            token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        out[:, step] = token
    rate = rows * tokens / (time.perf_counter() - began)
    samples = []
    for row in out.numpy():
        ends = np.flatnonzero(row == eos)
        samples.append(row[: ends[0]] if len(ends) else row)
    return samples, rate


@dataclass
class RealReference:
    """The held-out music every model is judged against, computed once per evaluation: the test pieces' notes, their
    notewise ids and statistics, their critic excerpts, and the LSTM critic's P(human) of those excerpts."""

    notes: list[NoteArrays]
    stats: object  # music_stats.SetSummary
    excerpts: list[np.ndarray]
    groups: list[int]
    p_human: list[float] | None  # None without an embedded critic

    @classmethod
    def of(cls, test: list[NoteArrays], seed: int = 0) -> RealReference:
        from toccata.tokenization import NotewiseTokenizer

        import toccata

        from toccata.evaluation.feature_critic import EXCERPT_TOKENS, excerpts
        from toccata.evaluation.music_stats import DEFAULT_LAYOUT, sample_stats, summarise_set

        ids = [np.asarray(NotewiseTokenizer().notes_to_ids(n)) for n in test]
        real_ex, groups = excerpts(ids, EXCERPT_TOKENS, per_sequence=10, seed=seed)
        p_human = None
        if real_ex and toccata.default_critic() is not None:
            p_human = toccata.default_critic_scorer()([e.tolist() for e in real_ex])
        stats = summarise_set([sample_stats(i, DEFAULT_LAYOUT) for i in ids])
        return cls(test, stats, real_ex, groups, p_human)


def evaluate_run(folder: Path, real: RealReference, samples: int = 64, quarters: int = 96, seed: int = 0) -> dict:
    """Every measure of one trained tokenization on the test split (see the module docstring)."""

    from toccata.evaluation.likelihood import model_log2probs

    prepared = json.loads((folder / "prepared.json").read_text())
    log = json.loads((folder / "train_log.json").read_text())
    scheme = load_scheme(folder / "scheme")
    model = load_model(folder)
    special = scheme.special_ids
    data = np.load(folder / "tokens.npz")
    bounds = np.cumsum(np.r_[0, data["test_lengths"]])
    test_ids = [data["test"][a:b].astype(np.int64) for a, b in itertools.pairwise(bounds)]
    sequences = [np.r_[special["bos"], ids, special["eos"]] for ids in test_ids]
    bits = -sum(float(row.sum()) for row in model_log2probs(model, sequences))
    notes = sum(len(n) for n in real.notes)
    tokens_per_quarter = prepared["test_tokens"] / prepared["test_quarters"]

    torch.set_num_threads(1)
    length = math.ceil(quarters * tokens_per_quarter * 1.1)
    by_sampler = {
        name: _judge_samples(model, scheme, real, samples, length, top_k, seed) for name, top_k in SAMPLERS.items()
    }
    return {
        "label": folder.name,
        "scheme": scheme.name,
        "vocab_size": scheme.vocab_size,
        "parameters": log["parameters"],
        "tokens_seen": log["tokens_seen"],
        "train_device": log["device"],
        "train_seconds": log["train_seconds"],
        "validation_loss": log["final_validation_loss"],
        "bits_per_note": bits / notes,
        "bits_per_token": bits / sum(len(s) - 1 for s in sequences),
        "test_notes": notes,
        "test_notes_kept": prepared["test_notes_kept"],
        "test_unknown_share": _unknown_share(scheme, test_ids),
        "tokens_per_quarter": tokens_per_quarter,
        "train_tokens": prepared["train_tokens"],
        "quarters_per_token_sampled": by_sampler["weighted"]["quarters_per_token"],
        "samplers": by_sampler,
    }


def _unknown_share(scheme: TokenScheme, pieces: Sequence[np.ndarray]) -> float:
    """Share of the test tokens that are the scheme's unknown word (chordwise: a chord the training split lacks)."""
    unk = getattr(scheme.tokenizer, "unk_token_id", None)
    total = sum(len(ids) for ids in pieces)
    return 0.0 if unk is None or not total else sum(int((ids == unk).sum()) for ids in pieces) / total


def _judge_samples(
    model, scheme: TokenScheme, real: RealReference, samples: int, length: int, top_k: int | None, seed: int
) -> dict:
    """Draw `samples` pieces with one sampler and measure them: repairs, rest collapse, critic AUC, a piano roll."""
    from toccata.tokenization import NotewiseTokenizer

    from toccata.evaluation.feature_critic import EXCERPT_TOKENS, critic_score, excerpts
    from toccata.evaluation.music_stats import DEFAULT_LAYOUT, sample_stats, summarise_set

    special = scheme.special_ids
    drawn, _ = sample(model, special["bos"], special["eos"], samples, length, top_k=top_k, seed=seed)
    decoded = [scheme.decode(ids) for ids in drawn]
    errors = [scheme.errors(ids) for ids in drawn]
    quarters = [_quarters(n) for n in decoded]
    notes = sum(len(n) for n in decoded)
    notewise = NotewiseTokenizer()
    gen_ids = [np.asarray(notewise.notes_to_ids(n)) for n in decoded]
    gen_stats = summarise_set([sample_stats(ids, DEFAULT_LAYOUT) for ids in gen_ids if len(ids)])
    gen_ex, gen_groups = excerpts(gen_ids, EXCERPT_TOKENS, per_sequence=1, seed=seed)
    try:
        critic = critic_score(real.excerpts, real.groups, gen_ex, gen_groups, DEFAULT_LAYOUT, seed=seed)
        auc, auc_std = critic.auc, critic.auc_std
    except ValueError:  # too few generated excerpts (samples that collapse into silence give none)
        auc, auc_std = None, None
    lstm_auc, p_human = _lstm_critic(real.p_human, gen_ex)
    first = decoded[0]
    shown = first.start < ROLL_QUARTERS * STEPS_PER_QUARTER
    roll = [  # the first sample's opening, for the piano-roll figure
        [start / STEPS_PER_QUARTER, end / STEPS_PER_QUARTER, pitch]
        for start, end, pitch in zip(
            first.start[shown].tolist(), first.end[shown].tolist(), first.pitch[shown].tolist()
        )
    ]
    return {
        "top_k": top_k,
        "samples": len(drawn),
        "quarters_per_token": sum(quarters) / max(1, sum(len(ids) for ids in drawn)),
        "sample_quarters_mean": float(np.mean(quarters)),
        "notes_per_quarter": notes / max(1e-9, sum(quarters)),
        "decode_without_repair": sum(e == 0 for e in errors) / len(errors),
        "repairs_per_100_notes": 100 * sum(errors) / max(1, notes),
        "empty_samples": sum(1 for n in decoded if len(n) == 0),
        "rest_collapse": gen_stats.rest_collapse_rate,
        "overlaps_with_real": gen_stats.overlaps(real.stats),
        "critic_auc": auc,
        "critic_auc_std": auc_std,
        "critic_generated_excerpts": len(gen_ex),
        "lstm_critic_auc": lstm_auc,
        "lstm_critic_p_human": p_human,
        "critic_real_excerpts": len(real.excerpts),
        "roll": roll,
    }


def batch1_speeds(folders: Sequence[Path], rounds: int = 5, tokens: int = 1000) -> list[float]:
    """Tokens per second of each model's sampling loop at batch 1, one torch thread: the best of `rounds` rounds
    that take the models in turn, so a busy moment of the machine does not favour one tokenization."""
    torch.set_num_threads(1)
    models = [load_model(folder) for folder in folders]
    best = [0.0] * len(models)
    for round_ in range(rounds):
        for index, model in enumerate(models):
            config = model.config
            _, rate = sample(model, config.bos_token_id, config.eos_token_id, 1, tokens, seed=round_)
            best[index] = max(best[index], rate)
    return best


def _lstm_critic(p_real: list[float] | None, generated: Sequence[np.ndarray]) -> tuple[float | None, float | None]:
    """The embedded LSTM critic (issue 14, trained on the default generator's samples) as a second judge: ROC AUC of
    its P(human) on real (`p_real`, from `RealReference`) versus generated excerpts, and the generated ones' mean."""
    from sklearn.metrics import roc_auc_score

    import toccata

    if not p_real or not generated:
        return None, None
    score = toccata.default_critic_scorer()
    p_generated = score([ids.tolist() for ids in generated])
    labels = [1] * len(p_real) + [0] * len(p_generated)  # 1 = human
    return float(roc_auc_score(labels, [*p_real, *p_generated])), float(np.mean(p_generated))


def evaluate(
    dataset: str, out: str | Path, labels: Sequence[str] | None = None, samples: int = 64, speed_rounds: int = 5
) -> list[dict]:
    """`evaluate_run` for every trained tokenization in `out` (kept in LABEL/evaluation.json until the model is
    retrained), then their batch-1 speeds measured together; writes results.json, results.md and plots there."""
    out = Path(out)
    labels = labels or [label for label in RUNS if (out / label / "model.safetensors").is_file()]
    real = RealReference.of(_split_notes(dataset, "test")[0])
    results = []
    for label in labels:
        folder, began = out / label, time.perf_counter()
        cached = folder / "evaluation.json"
        if cached.is_file() and cached.stat().st_mtime > (folder / "model.safetensors").stat().st_mtime:
            result = json.loads(cached.read_text())  # measured since the model was last trained
        else:
            result = evaluate_run(folder, real, samples=samples)
            cached.write_text(json.dumps(result, indent=2) + "\n")
        brief = {k: v for k, v in result.items() if k != "samplers"}
        brief.update({f"{name}_{key}": value for name, run in result["samplers"].items() for key, value in run.items()
                      if key not in ("roll", "overlaps_with_real")})  # fmt: skip
        print(json.dumps(brief), flush=True)
        print(f"  ({time.perf_counter() - began:.0f} s)", flush=True)
        results.append(result)
    speeds = batch1_speeds([out / label for label in labels], rounds=speed_rounds)
    for result, speed in zip(results, speeds):
        result["tokens_per_second_batch1"] = speed
        result["music_seconds_per_second_batch1"] = speed * result["quarters_per_token_sampled"] * SECONDS_PER_QUARTER
    valid = _split_notes(dataset, "validation")[0]
    for result in results:  # validation curve in bits per note, comparable across tokenizations
        folder = out / result["label"]
        stream = np.load(folder / "tokens.npz")["validation"]
        tokens_per_note = len(stream) / sum(len(n) for n in valid)
        log = json.loads((folder / "train_log.json").read_text())["log"]
        result["validation_curve"] = [
            {"tokens_seen": row["step"] * result["tokens_seen"] // max(1, log[-1]["step"]),
             "bits_per_note": row["validation_loss"] / math.log(2) * tokens_per_note}
            for row in log
        ]  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(results_table(results) + "\n")
    plot(results, out)
    return results


def plot(results: Sequence[dict], out: Path) -> list[Path]:
    """tokenizations_curves.png (validation bits per note while training) and tokenizations_bars.png (test bits per
    note, critic AUC) in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def name(r: dict) -> str:  # a tokenization that cannot spell every test note says so: its numbers do not compare
        kept = 100 * r["test_notes_kept"] / r["test_notes"]
        return r["label"] if kept >= 99.5 else f"{r['label']} ({kept:.0f}% of notes)"

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        curve = r["validation_curve"]
        ax.plot([p["tokens_seen"] / 1e6 for p in curve], [p["bits_per_note"] for p in curve], marker="o", label=name(r))
    ax.set_xlabel("training tokens seen (millions)")
    ax.set_ylabel("validation bits per note")
    ax.set_ylim(top=min(30, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    curves = out / "tokenizations_curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    labels = [name(r) for r in results]
    axes[0].barh(labels, [r["bits_per_note"] for r in results], color="#4a7ab5")
    axes[0].set_xlabel("test bits per note (lower is better)")
    top = [r["samplers"]["top_k"] for r in results]
    aucs = [t["critic_auc"] if t["critic_auc"] is not None else 0.0 for t in top]
    axes[1].barh(labels, aucs, xerr=[t["critic_auc_std"] or 0.0 for t in top], color="#b5744a")
    axes[1].axvline(0.5, color="k", lw=0.8)
    axes[1].set_xlim(0.4, 1.0)
    axes[1].set_xlabel("critic AUC, top-8 samples (0.5 = like real music)")
    for ax in axes:
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    bars = out / "tokenizations_bars.png"
    fig.savefig(bars, dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(len(results), 1, figsize=(9, 1.3 * len(results) + 0.4), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        for start, end, pitch in r["samplers"]["top_k"]["roll"]:
            ax.plot([start, end], [pitch, pitch], color="#2d5d8f", lw=2.2, solid_capstyle="butt")
        ax.set_ylabel(name(r), rotation=0, ha="right", va="center", fontsize=8)
        ax.set_ylim(21, 108)
        ax.set_yticks([36, 60, 84])
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlim(0, ROLL_QUARTERS)
    axes[-1, 0].set_xlabel("quarter notes (first sample of each model, top-8 sampling, no guards)")
    fig.tight_layout()
    rolls = out / "tokenizations_rolls.png"
    fig.savefig(rolls, dpi=100)
    plt.close(fig)
    return [curves, bars, rolls]


def results_table(results: Sequence[dict]) -> str:
    """The study's markdown table (sampled measures: top-8 sampling, then the whole distribution where two)."""

    def auc(run: dict) -> str:
        return "n/a" if run["critic_auc"] is None else f"{run['critic_auc']:.3f} ± {run['critic_auc_std']:.3f}"

    lines = [
        (
            "| tokenization | vocab | params | tokens / quarter | bits / note | test notes kept | music s / s (batch 1) "
            "| repairs / 100 notes (top-8 / all) | samples without repair (top-8) | rest collapse (top-8) "
            "| critic AUC top-8 | critic AUC all | LSTM critic AUC top-8 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        top, whole = r["samplers"]["top_k"], r["samplers"]["weighted"]
        lines.append(
            f"| {r['label']} | {r['vocab_size']:,} | {r['parameters'] / 1e6:.2f}M | {r['tokens_per_quarter']:.1f} "
            f"| {r['bits_per_note']:.3f} | {100 * r['test_notes_kept'] / r['test_notes']:.1f}% "
            f"| {r['music_seconds_per_second_batch1']:.0f} "
            f"| {top['repairs_per_100_notes']:.2f} / {whole['repairs_per_100_notes']:.2f} "
            f"| {100 * top['decode_without_repair']:.0f}% | {100 * top['rest_collapse']:.0f}% "
            f"| {auc(top)} | {auc(whole)} "
            f"| {'n/a' if top['lstm_critic_auc'] is None else format(top['lstm_critic_auc'], '.3f')} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "evaluate"):
        cmd = commands.add_parser(name)
        cmd.add_argument("--dataset", required=True, help="a built Toccata dataset folder (its midi column)")
        cmd.add_argument("--out", required=True, help="the study folder")
        cmd.add_argument("--runs", help=f"comma-separated labels (default: all of {', '.join(RUNS)})")
        if name == "evaluate":
            cmd.add_argument("--samples", type=int, default=64)
            cmd.add_argument("--speed-rounds", type=int, default=5, help="best of N interleaved speed rounds")
    args = parser.parse_args(argv)
    labels = args.runs.split(",") if args.runs else None
    unknown = [label for label in labels or [] if label not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; the study has {', '.join(RUNS)}")
    if args.command == "prepare":
        prepare(args.dataset, args.out, labels or tuple(RUNS))
    else:
        evaluate(args.dataset, args.out, labels, samples=args.samples, speed_rounds=args.speed_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
