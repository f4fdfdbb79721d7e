"""Files of an `EvaluationReport`: report.md (goals, tables, plots), report.json (every number) and PNG plots.

Plots use matplotlib's object API (`Figure`, no pyplot), so no global backend is set and no window ever opens.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .evaluation import COPY_QUARTERS, EvaluationReport
from .giveaways import LONG_NOTE_QUARTERS, MAX_OUTSIDE, giveaway_markdown
from .music_stats import SetSummary
from .parts import LONG_REST_BARS

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
REFERENCE_STYLE = {"color": "black", "linewidth": 2.5, "marker": "o"}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.{digits}f}"


def goal_table(goals: list[dict]) -> list[str]:
    """Markdown rows of the goals, as stored in report.json (the model card reuses them)."""
    lines = ["| goal | target | value | met |", "|---|---|---|---|"]
    for goal in goals:
        value, met = goal["value"], goal["met"]
        shown = _fmt(value)
        if goal["name"] in ("copy share", "bits per note vs n-gram") and value is not None:
            shown = f"{value:.1%}"
        elif goal["name"] == "rest collapse" and value is not None:
            shown = str(int(value))
        status = "not measured" if met is None else ("**met**" if met else "**not met**")
        note = f" ({goal['note']})" if goal.get("note") else ""
        lines.append(f"| {goal['name']} | {goal['target']} | {shown}{note} | {status} |")
    return lines


def likelihood_table(rows: list[dict]) -> list[str]:
    """Markdown rows of the likelihood results, as stored in report.json (the model card reuses them)."""
    lines = [
        "| model | predicted tokens | notes | loss / token (nats) | perplexity | bits / token | bits / note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['tokens']} | {r['notes']} | {r['loss_per_token']:.4f} | {r['perplexity']:.3f} | "
            f"{r['bits_per_token']:.4f} | {r['bits_per_note']:.3f} |"
        )
    return lines


def _column(
    summary: SetSummary, overlaps: dict[str, float] | None, copies: list, samples: str, critic=None
) -> list[str]:
    """One column of the generation table (the rows are listed in `_GENERATION_ROWS`)."""
    longest = max((c.quarters for c in copies), default=0.0)
    share = sum(c.quarters >= COPY_QUARTERS for c in copies) / len(copies) if copies else 0.0
    overlap = overlaps or {}
    return [
        samples,
        f"{summary.rest_collapsed} ({summary.rest_collapse_rate:.0%})",
        _fmt(max(summary.longest_silences, default=0.0), 2),
        _fmt(longest, 2),
        f"{share:.0%}",
        _fmt(summary.density),
        _fmt(overlap.get("density")),
        _fmt(summary.mean_polyphony, 2),
        _fmt(overlap.get("polyphony")),
        str(summary.max_polyphony),
        _fmt(summary.mean_pitch_range, 1),
        _fmt(overlap.get("pitch_classes")),
        _fmt(overlap.get("onset_positions")),
        _fmt(overlap.get("iois")),
        "—" if critic is None else f"{critic.auc:.3f} ± {critic.auc_std:.3f}",
    ]


_GENERATION_ROWS = (
    "samples (generated)",
    "rest-collapsed",
    "longest silence (beats)",
    "longest copy of training (quarters)",
    f"samples with a copy >= {COPY_QUARTERS:g} quarters",
    "notes per quarter",
    "density overlap",
    "mean polyphony",
    "polyphony overlap",
    "max polyphony",
    "mean pitch range (semitones)",
    "pitch-class overlap",
    "onset-grid overlap",
    "inter-onset-interval overlap",
    "critic ROC AUC (0.5 = indistinguishable)",
)


def _generation_table(report: EvaluationReport) -> list[str]:
    columns = [
        _column(report.reference, None, report.reference_copies, f"{report.reference.count} pieces"),
        *(_column(s.summary, s.overlaps, s.copies, f"{s.samples} ({s.distinct})", s.critic) for s in report.samplers),
    ]
    names = [f"held-out ({report.split})", *(s.label for s in report.samplers)]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row, name in enumerate(_GENERATION_ROWS):
        lines.append(f"| {name} | " + " | ".join(column[row] for column in columns) + " |")
    return lines


def render_markdown(report: EvaluationReport, plots: list[str] | None = None) -> str:
    """report.md: goals first, then likelihood, the generation table, the plots and how it was measured."""
    s = report.settings
    lines = [f"# Toccata evaluation: {report.model}", ""]
    lines += [
        (
            f"Dataset `{report.dataset}`, split `{report.split}` ({s['eval_pieces']} pieces); baselines and the "
            f"copy index from `train` ({s['train_pieces']} pieces, original keys)."
        ),
        "",
    ]
    lines += ["## Goals", "", *goal_table([asdict(goal) for goal in report.goals]), ""]
    lines += ["## Likelihood", "", *likelihood_table([row.to_dict() for row in report.likelihood]), ""]
    lines += [
        (
            "Each piece is scored whole as `<bos> tokens <eos>`: `<bos>` is given, every other token (`<eos>` "
            "included) is predicted. Notes are the predicted note-on tokens; bits per note = total bits / notes. "
            "Baselines, fitted on `train`: an add-one unigram and an interpolated modified Kneser-Ney "
            f"{s['ngram_order']}-gram."
        ),
        "",
    ]
    if report.samplers:
        guards = s["preset_guards"]
        lines += ["## Generation", ""]
        lines += [
            (
                f"{s['samples']} samples x {s['tokens']} tokens per sampler, from `<bos>`, seed {s['seed']} "
                f"(batch b uses seed {s['seed']} + b), the checkpoint's preset otherwise "
                f"({_preset(s['preset_sampler'])}; guards: {', '.join(f'{k}={v}' for k, v in guards.items())}). "
                "Columns give samples (sequences actually generated): greedy is deterministic, so its samples are "
                "one sequence. Raw ids are measured, nothing trimmed. Overlaps compare with the held-out column "
                "(1 = identical)."
            ),
            "",
            *_generation_table(report),
            "",
            *_critic_section(report),
            *_giveaway_section(report),
            (
                "Copies: the longest span of a sample that equals training music up to transposition (at least "
                f"{s['copy_k_tokens']} tokens), in quarter notes; the held-out column shows how much real pieces "
                "share with the training split anyway."
            ),
            "",
        ]
    lines += _parts_section(report)
    if plots:
        lines += ["## Plots", "", *(f"![{Path(p).stem}]({p})" for p in plots), ""]
    lines += ["## Time", "", *(f"- {name}: {value:.1f} s" for name, value in report.seconds.items()), ""]
    lines += ["Definitions: docs/evaluation.md.", ""]
    return "\n".join(lines)


def _parts_section(report: EvaluationReport) -> list[str]:
    """Per instrument (with a violin or cello): range, double-stop and grammar violations, share of steps sounding."""
    if not report.reference_parts:
        return []
    lines = [
        "## Instruments",
        "",
        (
            "Per part: notes outside the part's range, note-ons that make a third note of a violin or cello sound at "
            "once (double stops allowed), grammar slips (a note-off of a silent key or a note-on of a sounding one); "
            "goal 0 for generated samples. Sounds: share of time steps in which the part has a note sounding. Note "
            "share: the part's share of all notes, and its 5th percentile, median and 95th percentile over the "
            f"pieces. Long rests: pieces in which the part plays no note or rests for more than {LONG_REST_BARS} bars "
            "of 4/4 (goal 0). The statistics, copies and critic above read the texture with every part merged into "
            "the piano's words."
        ),
        "",
        "| | part | notes | range | double stops | grammar | sounds in | note share (5% / median / 95%) "
        "| long rests |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    runs = [(f"held-out ({report.split})", report.reference_parts)]
    runs += [(run.label, run.parts) for run in report.samplers if run.parts]
    for label, parts in runs:
        for name, row in parts.items():
            lines.append(
                f"| {label} | {name} | {row['notes']:,} | {row['range']} | {row['double_stop']} | {row['grammar']} "
                f"| {row['sounding_share']:.1%} | {note_share_text(row)} | {long_rests_text(row)} |"
            )
    return [*lines, ""]


def note_share_text(row: dict) -> str:
    """"31% (12% / 30% / 52%)"; a report written before the share was measured has none: "—"."""
    if "note_share" not in row:
        return "—"
    spread = " / ".join(f"{row[f'note_share_{q}']:.0%}" for q in ("p5", "median", "p95"))
    return f"{row['note_share']:.0%} ({spread})"


def long_rests_text(row: dict) -> str:
    """"3 of 100"; "—" in a report written before long rests were counted."""
    return f"{row['long_rest_pieces']} of {row['pieces']}" if "long_rest_pieces" in row else "—"


def _giveaway_section(report: EvaluationReport) -> list[str]:
    """Per sampler, each giveaway's spread over the samples against the held-out windows' (evaluation/giveaways.py)."""
    runs = [run for run in report.samplers if run.giveaways]
    if not runs:
        return []
    lines = [
        "### What gives the samples away, sample by sample",
        "",
        (
            f"Each measure per sample and per window of {report.settings['tokens']} tokens of a held-out piece (two "
            "per piece, a short piece whole): the real windows' 5th percentile, median and 95th percentile against "
            f"the samples', and the share of samples outside the real 5–95% band (within: the samples' median inside "
            f"it and at most {MAX_OUTSIDE:.0%} of them outside). Notes held {LONG_NOTE_QUARTERS:g} quarters or more "
            "count as long; the melody is the top note of each onset."
        ),
        "",
    ]
    for run in runs:
        lines += [f"**{run.label}**", "", giveaway_markdown(run.giveaways), ""]
    return lines


def _critic_section(report: EvaluationReport) -> list[str]:
    """What the critic is, and the features that give each sampler's excerpts away."""
    s = report.settings
    lines = [
        (
            f"Critic: a fresh gradient-boosting classifier on musical features of {s.get('critic_excerpt_tokens')}-token "
            f"excerpts ({s.get('critic_real_excerpts')} held-out excerpts against one excerpt per sample), 5-fold "
            "cross-validated with folds grouped by piece and by sample; ROC AUC ± its spread across folds. The "
            "features that separate the sets most (one-feature AUC; mean held-out → mean generated):"
        ),
        "",
    ]
    for run in report.samplers:
        if run.critic is None:
            continue
        shown = "; ".join(
            f"{row['feature']} ({row['auc']:.2f}: {row['real_mean']:.3g} → {row['generated_mean']:.3g})"
            for row in run.critic.separating[:3]
        )
        lines.append(f"- {run.label}: {shown}")
    return [*lines, ""]


def _preset(sampler: dict) -> str:
    keep = {"top_n": ("n", "p_best"), "top_k": ("k",), "mixed": ("random_freq", "trunc")}.get(sampler["sampler"], ())
    args = ", ".join(f"{k}={sampler[k]}" for k in ("temperature", *keep))
    return f"default sampler {sampler['sampler']} ({args})"


def _series(report: EvaluationReport) -> list[tuple[str, SetSummary, dict]]:
    """(label, summary, line style) of the held-out split and of every sampler."""
    out = [(f"held-out ({report.split})", report.reference, REFERENCE_STYLE)]
    return out + [(s.label, s.summary, {"marker": ".", "linewidth": 1.2}) for s in report.samplers]


def write_plots(report: EvaluationReport, out_dir: str | os.PathLike) -> list[str]:
    """PNG plots (generated vs held-out): pitch classes, onset grid positions, inter-onset intervals, densities."""
    out_dir = Path(out_dir)
    written = []
    histograms = (
        ("pitch_classes", "Pitch classes (share of notes)", PITCH_CLASSES, "pitch_classes"),
        ("onset_grid", "Onset position in the quarter (steps of 1/12)", None, "onset_positions"),
        ("ioi", "Inter-onset interval (steps of 1/12 quarter; last bin: longer)", None, "iois"),
    )
    for name, title, ticks, attribute in histograms:
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.subplots()
        for label, summary, style in _series(report):
            values = getattr(summary, attribute)
            x = np.arange(len(values)) + (1 if attribute == "iois" else 0)
            ax.plot(x, values, label=label, **style)
        if ticks:
            ax.set_xticks(range(len(ticks)), ticks)
        ax.set_title(title)
        ax.set_ylabel("share")
        ax.legend(fontsize="small")
        fig.savefig(out_dir / f"{name}.png", dpi=100)
        written.append(f"{name}.png")

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    series = _series(report)
    ax.boxplot([s.densities for _, s, _ in series], tick_labels=[label for label, _, _ in series])
    ax.set_title("Notes per quarter note (per sample / per held-out piece)")
    ax.tick_params(axis="x", labelrotation=20, labelsize="small")
    fig.savefig(out_dir / "density.png", dpi=100)
    return written + ["density.png"]


def write_report(report: EvaluationReport, out_dir: str | os.PathLike, plots: bool = True) -> list[Path]:
    """Write report.md, report.json and (with generation results and `plots`) the PNGs; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_plots(report, out_dir) if plots and report.samplers else []
    (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=1, default=_json_default) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report, images), encoding="utf-8")
    return [out_dir / "report.md", out_dir / "report.json", *(out_dir / name for name in images)]


def _json_default(value):
    """numpy scalars and arrays in report.json."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"report.json: cannot write {type(value).__name__}")


__all__ = ["goal_table", "long_rests_text", "note_share_text", "render_markdown", "write_plots", "write_report"]
