"""Choose a checkpoint's default preset on the validation split: every candidate sampler setting is generated, scored
by the feature critic against validation excerpts and compared with validation music; the best is the one the critic
finds hardest to tell from real music among those that never collapse into rests with the rest guard off, preferring
candidates whose samples stay within validation music's range on every giveaway (`evaluation.giveaways`).

    toccata preset-search RUN --dataset data/piano \\
        --candidates "sampler=top_k temperature=1.0" "sampler=weighted temperature=0.9 calmness=0.5" ...

Writes RUN/preset_search.json and .md; `toccata preset RUN <the winner's settings>` applies it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from toccata.evaluation.copy_index import CopyIndex
from toccata.evaluation.evaluation import REAL_EXCERPTS_PER_PIECE, evaluate_sampler
from toccata.evaluation.feature_critic import EXCERPT_TOKENS, excerpts
from toccata.evaluation.giveaways import giveaway_values, real_windows
from toccata.evaluation.music_stats import sample_stats, summarise_set
from toccata.modeling.layout import VocabLayout
from toccata.modeling.presets import preset_from_generation_config
from toccata.training.data import load_pieces

from .preset import apply_values as apply  # candidates are applied as `preset` applies NAME=VALUE


def parse_candidate(text: str) -> dict[str, str]:
    """ "sampler=top_k temperature=0.9" as {"sampler": "top_k", "temperature": "0.9"}."""
    pairs = [item.split("=", 1) for item in text.split()]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"candidate {text!r}: write NAME=VALUE pairs separated by spaces")
    return dict(pairs)


def search(
    model,
    tokenizer,
    dataset: str,
    candidates: list[dict[str, str]],
    *,
    split: str = "validation",
    samples: int = 40,
    tokens: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """One row per candidate: critic AUC, overlaps, giveaways sample by sample, rest collapse with the rest guard off,
    density."""
    layout = VocabLayout.from_config(tokenizer)
    train = load_pieces(dataset, "train", tokenizer, original_key_only=True)
    held = load_pieces(dataset, split, tokenizer, original_key_only=True)
    index = CopyIndex.of_pieces(train, layout)
    reference = summarise_set([sample_stats(p.ids, layout) for p in held])
    real = excerpts([p.ids for p in held], EXCERPT_TOKENS, REAL_EXCERPTS_PER_PIECE, seed)
    windows = real_windows([p.ids for p in held], tokens)
    real_giveaways = [giveaway_values(w, layout) for w in windows]
    # Real music has long silences too (fermatas, rests between sections): the share of held-out windows that the
    # rest-collapse measure flags is what a candidate's samples, with the rest guard off, are held to.
    real_collapse = float(np.mean([sample_stats(w, layout).rest_collapsed() for w in windows])) if windows else 0.0
    base_sampler, base_guards = preset_from_generation_config(model.generation_config)
    rows = []
    for values in candidates:
        sampler, guards = apply(replace(base_sampler, seed=seed), base_guards, values)
        run = evaluate_sampler(
            model, "candidate", sampler, guards, samples, tokens, reference, index, layout, real_excerpts=real,
            real_giveaways=real_giveaways,
        )
        raw = evaluate_sampler(
            model,
            "no rest guard",
            sampler,
            replace(guards, rest_guard=False),
            samples,
            tokens,
            reference,
            index,
            layout,
        )
        row = {
            "values": values,
            "sampler": asdict(sampler),
            "guards": asdict(guards),
            "critic_auc": run.critic.auc if run.critic else None,
            "separating": run.critic.separating[:3] if run.critic else [],
            "overlaps": run.overlaps,
            "density": run.summary.density,
            "reference_density": reference.density,
            "mean_polyphony": run.summary.mean_polyphony,
            "reference_polyphony": reference.mean_polyphony,
            "rest_collapsed_no_guard": raw.summary.rest_collapsed,
            "samples": samples,
            "real_rest_collapse_share": real_collapse,
            "copy_share": run.copy_share,
            "giveaways": {g.measure: {"real": g.real, "samples": g.samples, "outside": g.outside, "within": g.within}
                          for g in run.giveaways},
        }
        print(
            json.dumps({k: row[k] for k in ("values", "critic_auc", "overlaps", "rest_collapsed_no_guard")}
                       | {"giveaways_outside": giveaways_outside(row)}),
            file=sys.stderr,
            flush=True,
        )
        rows.append(row)
    return rows


def giveaways_outside(row: dict) -> list[str]:
    """The giveaways on which a candidate's samples leave validation music's range (`GiveawayRow.within`)."""
    return [name for name, g in row.get("giveaways", {}).items() if not g["within"]]


def collapses_more_than_real_music(row: dict) -> bool:
    """Whether a candidate's samples, with the rest guard off, fall silent for long more often than held-out windows
    of the same length do (rows without the real share, from older searches: any collapse counts)."""
    collapsed = row["rest_collapsed_no_guard"]
    if "real_rest_collapse_share" not in row:
        return collapsed > 0
    return collapsed / max(row.get("samples", 1), 1) > row["real_rest_collapse_share"]


def best(rows: list[dict]) -> dict:
    """The candidate with the lowest critic AUC among those whose unguarded samples fall silent no more often than
    real music does (all of them if none), among those within range on every giveaway where some are, so that the
    critic's single number cannot pick a sampler whose samples a listener gives away at once (notes held for bars, a
    melody that never leaps)."""
    clean = [r for r in rows if not collapses_more_than_real_music(r) and r["critic_auc"] is not None] or rows
    clean = [r for r in clean if not giveaways_outside(r)] or clean
    return min(clean, key=lambda r: r["critic_auc"] if r["critic_auc"] is not None else 2.0)


def render(rows: list[dict], chosen: dict, dataset: str, split: str, samples: int, tokens: int) -> str:
    lines = [
        f"# Preset search on `{dataset}` [{split}]",
        "",
        f"{samples} samples × {tokens} tokens per candidate from `<bos>`; critic ROC AUC against {split} excerpts "
        "(0.5 = indistinguishable); rest collapse measured with the rest guard off"
        + (f", against {rows[0]['real_rest_collapse_share']:.1%} of {split} windows of the same length"
           if rows and "real_rest_collapse_share" in rows[0] else "")
        + ".",
        "",
        "| candidate | critic AUC | density (held-out) | polyphony (held-out) | pitch-class | inter-onset | "
        "rest collapse, guard off | giveaways outside the real range | chosen |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        auc = "—" if r["critic_auc"] is None else f"{r['critic_auc']:.3f}"
        lines.append(
            f"| {' '.join(f'{k}={v}' for k, v in r['values'].items())} | {auc} | {r['density']:.2f} "
            f"({r['reference_density']:.2f}) | {r['mean_polyphony']:.2f} ({r['reference_polyphony']:.2f}) | "
            f"{r['overlaps']['pitch_classes']:.3f} | {r['overlaps']['iois']:.3f} | {r['rest_collapsed_no_guard']} | "
            f"{', '.join(giveaways_outside(r)) or 'none'} | {'**yes**' if r is chosen else ''} |"
        )
    return "\n".join(lines) + "\n"


def save(folder: str | Path, rows: list[dict], chosen: dict, dataset: str, split: str, samples: int, tokens: int):
    """Write FOLDER/preset_search.json (every row and the choice) and FOLDER/preset_search.md (the table)."""
    out = Path(folder)
    (out / "preset_search.json").write_text(json.dumps({"rows": rows, "chosen": chosen}, indent=2, default=str))
    (out / "preset_search.md").write_text(render(rows, chosen, dataset, split, samples, tokens))
    return out / "preset_search.md"
