"""Does best-of-N help? An independent judge compares plain samples and best-of-N samples with real music.

The judge is the feature critic of `toccata evaluate` (gradient boosting on 63 excerpt features, cross-validated by
piece, `feature_critic.py`), not the LSTM critic that picks the candidates, so a lower ROC AUC means the chosen pieces are
really harder to tell from held-out pieces, not just better at pleasing their own critic.

    toccata best-of --dataset data/piano --split test --samples 100 --best-of 8
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from toccata.modeling import GenerationRequest, compose
from toccata.modeling.layout import VocabLayout
from toccata.modeling.pipeline import Critic
from toccata.modeling.presets import preset_from_generation_config
from toccata.training.data import load_pieces

from .feature_critic import EXCERPT_TOKENS, critic_score, excerpts


def _samples(model, tokenizer, preset, samples: int, best_of: int, beats: float, seed: int, critic) -> list:
    """Token id arrays of `samples` pieces (no prompt), up to 8 per batch, each the best of `best_of` candidates."""
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


def compare(
    model,
    tokenizer,
    critic: Critic,
    dataset: str,
    split: str,
    samples: int,
    best_of: int,
    beats: float,
    seed: int = 0,
) -> dict:
    """The judge's AUC for plain samples and for best-of-`best_of` samples (chosen by `critic`, token lists ->
    P(human)), against `split`'s pieces."""
    preset = preset_from_generation_config(model.generation_config)
    layout = VocabLayout.from_config(tokenizer)
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

