"""The feature critic: how easily a fresh classifier tells generated excerpts from excerpts of held-out pieces.

Each excerpt (600 tokens by default) becomes a vector of musical features: pitch-class profile, melodic intervals,
inter-onset intervals, note durations, polyphony, density, range and register. A gradient-boosting classifier
(scikit-learn) is cross-validated on real-versus-generated with folds grouped by piece and by sample, so no piece
is on both sides of a split; its ROC AUC is the critic score (0.5: indistinguishable, 1: always told apart). The
features that separate the two sets most (by their own one-feature AUC) say what gives the samples away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from toccata.modeling.layout import VocabLayout

EXCERPT_TOKENS = 600
IOI_BINS = (1, 2, 3, 4, 6, 8, 12, 18, 24, 48)  # steps (12 per quarter): upper edges; longer gaps in the last bin
INTERVAL_BINS = (0, 1, 2, 3, 4, 5, 7, 9, 12, 19)  # semitones between successive onsets' top notes; larger: last bin


def feature_names() -> list[str]:
    """Names of the columns of `excerpt_features`, in order."""
    names = [f"pitch class {pc}" for pc in range(12)]
    names += [f"interval <= {b}" for b in INTERVAL_BINS] + [f"interval > {INTERVAL_BINS[-1]}"]
    names += [f"inter-onset <= {b} steps" for b in IOI_BINS] + [f"inter-onset > {IOI_BINS[-1]} steps"]
    names += [f"duration <= {b} steps" for b in IOI_BINS] + [f"duration > {IOI_BINS[-1]} steps"]
    names += ["onsets per quarter", "notes per quarter", "mean polyphony", "pitch range", "mean pitch", "pitch std"]
    return names


def _histogram(values: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Shares of `values` at or below each edge (exclusive of the previous) and above the last; zeros if empty."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)
    return counts / counts.sum() if counts.sum() else counts.astype(np.float64)


def excerpt_features(ids: Sequence[int] | np.ndarray, layout: VocabLayout) -> np.ndarray:
    """The feature vector (`feature_names`) of one token id excerpt, read as the decoder reads it."""
    on0, off0, wait0 = layout.note_on_offset, layout.note_off_offset, layout.wait_offset
    n, grid = layout.num_pitches, layout.steps_per_quarter
    started = np.full(n, -1, dtype=np.int64)
    now = area = 0
    onsets, pitches, durations = [], [], []
    for token in np.asarray(ids, dtype=np.int64).tolist():
        if on0 <= token < on0 + n:
            key = token - on0
            if started[key] >= 0:
                durations.append(now - started[key])
            started[key] = now
            onsets.append(now)
            pitches.append(key)
        elif off0 <= token < off0 + n:
            key = token - off0
            if started[key] >= 0:
                durations.append(now - started[key])
                started[key] = -1
        elif wait0 <= token < wait0 + layout.max_wait:
            step = token - wait0 + 1
            area += int((started >= 0).sum()) * step
            now += step
    durations += [now - s for s in started[started >= 0].tolist()]
    onsets_arr, pitch_arr = np.asarray(onsets, dtype=np.int64), np.asarray(pitches, dtype=np.int64)
    times, first = np.unique(onsets_arr, return_index=True) if onsets else (np.zeros(0, np.int64), np.zeros(0, int))
    tops = np.maximum.reduceat(pitch_arr, first) if pitches else np.zeros(0, np.int64)  # highest note per onset
    quarters = max(now, 1) / grid
    midi = pitch_arr + layout.min_pitch
    return np.concatenate(
        [
            np.bincount(midi % 12, minlength=12) / max(len(midi), 1),
            _histogram(np.abs(np.diff(tops)), INTERVAL_BINS),
            _histogram(np.diff(times), IOI_BINS),
            _histogram(np.maximum(np.asarray(durations, dtype=np.int64), 1), IOI_BINS),
            [
                len(times) / quarters,
                len(midi) / quarters,
                area / max(now, 1),
                float(midi.max() - midi.min()) if midi.size else 0.0,
                float(midi.mean()) if midi.size else 0.0,
                float(midi.std()) if midi.size else 0.0,
            ],
        ]
    ).astype(np.float64)


def excerpts(
    sequences: Sequence[np.ndarray], length: int = EXCERPT_TOKENS, per_sequence: int = 0, seed: int = 0
) -> tuple[list[np.ndarray], list[int]]:
    """Non-overlapping windows of `length` tokens (at most `per_sequence` each, 0: all) and the sequence of each.

    A sequence shorter than `length` gives no window; windows start at a random offset (seeded) within the slack.
    """
    rng = np.random.default_rng(seed)
    out, groups = [], []
    for index, ids in enumerate(sequences):
        count = len(ids) // length
        if count == 0:
            continue
        offset = int(rng.integers(0, len(ids) - count * length + 1))
        picks = (
            range(count)
            if not per_sequence or per_sequence >= count
            else sorted(rng.choice(count, per_sequence, replace=False))
        )
        for k in picks:
            start = offset + k * length
            out.append(np.asarray(ids[start : start + length]))
            groups.append(index)
    return out, groups


@dataclass
class CriticResult:
    """Cross-validated ROC AUC of real-versus-generated, and the features that separate the sets most."""

    auc: float
    auc_std: float  # across folds
    accuracy: float
    real: int  # excerpts
    generated: int
    folds: int
    separating: list[dict] = field(default_factory=list)  # {feature, auc, real_mean, generated_mean}

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def critic_score(
    real: Sequence[np.ndarray],
    real_groups: Sequence[int],
    generated: Sequence[np.ndarray],
    generated_groups: Sequence[int],
    layout: VocabLayout,
    *,
    folds: int = 5,
    seed: int = 0,
    top: int = 5,
) -> CriticResult:
    """Cross-validated gradient boosting on the excerpts' features; folds grouped so no piece or sample is split."""
    if len(real) < folds or len(generated) < folds:
        raise ValueError(
            f"critic: need at least {folds} excerpts on each side, got {len(real)} real and {len(generated)} generated"
        )
    x = np.stack([excerpt_features(e, layout) for e in (*real, *generated)])
    y = np.r_[np.zeros(len(real)), np.ones(len(generated))].astype(int)
    groups = np.r_[np.asarray(real_groups), np.asarray(generated_groups) + (max(real_groups) + 1)]
    folds = min(folds, len(set(real_groups)), len(set(generated_groups)))
    if folds < 2:
        raise ValueError("critic: need excerpts of at least 2 pieces and 2 samples")
    scores = np.zeros(len(y))
    aucs = []
    for train, test in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups):
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
        if len(set(y[test])) == 2:
            aucs.append(roc_auc_score(y[test], scores[test]))
    separating = []
    for column, name in enumerate(feature_names()):
        if np.ptp(x[:, column]) == 0:
            continue
        auc = float(roc_auc_score(y, x[:, column]))
        separating.append(
            {
                "feature": name,
                "auc": auc,
                "real_mean": float(x[y == 0, column].mean()),
                "generated_mean": float(x[y == 1, column].mean()),
            }
        )
    separating.sort(key=lambda row: -abs(row["auc"] - 0.5))
    return CriticResult(
        auc=float(roc_auc_score(y, scores)),
        auc_std=float(np.std(aucs)) if aucs else 0.0,
        accuracy=float(((scores >= 0.5) == y).mean()),
        real=len(real),
        generated=len(generated),
        folds=folds,
        separating=separating[:top],
    )


__all__ = ["EXCERPT_TOKENS", "CriticResult", "critic_score", "excerpt_features", "excerpts", "feature_names"]
