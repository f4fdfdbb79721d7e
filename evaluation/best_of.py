"""Does best-of-N help? An independent judge compares plain samples and best-of-N samples with real music.

The judge is the feature critic of `toccata evaluate` (gradient boosting on 63 excerpt features, cross-validated by
piece, `critic.py`), not the LSTM critic that picks the candidates, so a lower ROC AUC means the chosen pieces are
really harder to tell from held-out pieces, not just better at pleasing their own critic.

    python -m toccata.training.best_of --dataset data/piano --split test --samples 100 --best-of 8
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .critic import EXCERPT_TOKENS, critic_score, excerpts
from .data import load_pieces
from .music_stats import TokenLayout


def _samples(model, tokenizer, preset, samples: int, best_of: int, beats: float, seed: int, critic) -> list:
    """Token id arrays of `samples` pieces (no prompt), up to 8 per batch, each the best of `best_of` candidates."""
    from toccata.modeling import GenerationRequest, compose

    sampler, guards = preset
    per_batch = max(1, min(samples, 64 // best_of, 8))
    out = []
    for batch, start in enumerate(range(0, samples, per_batch)):
        count = min(per_batch, samples - start)
        request = GenerationRequest(
            replace(sampler, seed=seed + batch), guards, beats=beats, num_samples=count, best_of=best_of
        )
        for piece in compose(model, tokenizer, request, critic=critic if best_of > 1 else None):
            out.append(np.asarray(tokenizer.convert_tokens_to_ids(piece.tokens), dtype=np.int64))
    return out


def compare(model, tokenizer, dataset: str, split: str, samples: int, best_of: int, beats: float, seed: int = 0):
    """The judge's AUC for plain samples and for best-of-`best_of` samples, against `split`'s pieces."""
    from toccata.modeling.sampling import preset_from_generation_config

    import toccata

    critic = toccata.default_critic_scorer()
    preset = preset_from_generation_config(model.generation_config)
    layout = TokenLayout.of(tokenizer)
    held = load_pieces(dataset, split, tokenizer, original_key_only=True)
    real, real_groups = excerpts([p.ids for p in held], EXCERPT_TOKENS, 4, seed)
    result = {"dataset": dataset, "split": split, "samples": samples, "best_of": best_of, "beats": beats}
    for label, n in (("plain", 1), (f"best of {best_of}", best_of)):
        clock = time.perf_counter()
        sequences = _samples(model, tokenizer, preset, samples, n, beats, seed, critic)
        generated, groups = excerpts(sequences, EXCERPT_TOKENS, 1, seed)
        judged = critic_score(real, real_groups, generated, groups, layout, seed=seed)
        own = critic([tokenizer.convert_ids_to_tokens(s.tolist()) for s in sequences])
        result[label] = {
            "judge_auc": judged.auc,
            "judge_auc_std": judged.auc_std,
            "judge_accuracy": judged.accuracy,
            "excerpts": [judged.real, judged.generated],
            "lstm_critic_mean_p_human": float(np.mean(own)),
            "seconds": time.perf_counter() - clock,
            "separating": judged.separating[:3],
        }
    return result


def main() -> None:
    import toccata

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator checkpoint (default: the embedded one)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--best-of", type=int, default=8)
    parser.add_argument("--beats", type=float, default=96.0, help="length of each sample in quarter notes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the result as JSON here")
    args = parser.parse_args()
    model, tokenizer = toccata.load_checkpoint(args.model)
    result = compare(model, tokenizer, args.dataset, args.split, args.samples, args.best_of, args.beats, args.seed)
    print("| samples | judge ROC AUC (lower: harder to tell from real) | accuracy | LSTM critic mean P(human) |")
    print("|---|---:|---:|---:|")
    for label in ("plain", f"best of {args.best_of}"):
        row = result[label]
        print(
            f"| {label} | {row['judge_auc']:.3f} ± {row['judge_auc_std']:.3f} | {row['judge_accuracy']:.3f} "
            f"| {row['lstm_critic_mean_p_human']:.3f} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
