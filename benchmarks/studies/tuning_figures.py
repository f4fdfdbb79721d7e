"""Figures of a preference-tuning run for docs/critic.md: piano rolls of the same seeds before and after the tuning
beside real openings, and the training curves of each round (loss, reward accuracy, margin, the anchor's NLL).

    python benchmarks/studies/tuning_figures.py --before runs/default-untuned --after runs/tuned-a5 \
        --run runs/tuned-a5 --dataset data/piano100 --split test --out docs/images/tuning

writes OUT_rolls.png (for each seed: before, after; then two real openings of the split, all on one time and pitch
scale) and OUT_curves.png (from RUN/rounds/round-K/metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import toccata  # noqa: E402
from toccata.modeling.layout import VocabLayout  # noqa: E402
from toccata.modeling.pipeline import GenerationRequest, compose  # noqa: E402
from toccata.modeling.presets import preset_from_generation_config  # noqa: E402
from toccata.rendering.roll import piano_rolls, roll_notes  # noqa: E402
from toccata.training.data import read_rows  # noqa: E402

CURVES = ("loss", "reward_accuracy", "margin", "anchor_nll")


def samples(folder: str, seeds: list[int], beats: float) -> list[list[str]]:
    """`beats` quarter notes from `<bos>` with the checkpoint's preset, one piece per seed."""
    model, tokenizer = toccata.load_checkpoint(folder)
    sampler, guards = preset_from_generation_config(model.generation_config)
    pieces = []
    for seed in seeds:
        request = GenerationRequest(replace(sampler, seed=seed), guards, beats=beats)
        pieces.append(compose(model, tokenizer, request)[0].tokens)
    return pieces


def real_openings(
    dataset: str, split: str, count: int, beats: float, steps_per_quarter: int
) -> list[tuple[list[str], str]]:
    """The first `beats` quarter notes of the split's first `count` original-key pieces, with their titles."""
    rows = read_rows(dataset, split, ("transposition", "notewise", "composer", "title"))
    out = []
    for row in [r for r in rows if not r["transposition"] and r["notewise"]][:count]:
        words, steps = [], 0
        for word in row["notewise"].split():
            if word.startswith("wait"):
                steps += int(word[4:])
                if steps > beats * steps_per_quarter:
                    break
            words.append(word)
        out.append((words, " ".join(f"real: {row['composer']}, {row['title']}".split())[:90]))
    return out


def rolls(args: argparse.Namespace) -> Path:
    """One sheet: per seed the piece before and after the tuning, then two real openings, on shared scales."""
    _, tokenizer = toccata.load_checkpoint(args.before)
    before = samples(args.before, args.seeds, args.beats)
    after = samples(args.after, args.seeds, args.beats)
    sheet = []
    for seed, old, new in zip(args.seeds, before, after):
        sheet.append((roll_notes(tokenizer, old), f"seed {seed}, before tuning"))
        sheet.append((roll_notes(tokenizer, new), f"seed {seed}, after tuning"))
    steps = VocabLayout.from_config(tokenizer).steps_per_quarter
    for words, title in real_openings(args.dataset, args.split, 2, args.beats, steps):
        sheet.append((roll_notes(tokenizer, words), title))
    return piano_rolls(sheet, Path(f"{args.out}_rolls.png"), caption="notes")


def curves(run: Path, out: Path) -> Path:
    """The logged statistics of every finished round, the rounds one after another on the step axis."""
    rounds = sorted(
        (path for path in (run / "rounds").glob("round-*/metrics.jsonl") if (path.parent / "round.json").is_file()),
        key=lambda path: int(path.parent.name.split("-")[1]),
    )
    if not rounds:
        raise SystemExit(f"{run}: no rounds/round-K/metrics.jsonl (give a `toccata tune` output folder)")
    figure, axes = plt.subplots(1, len(CURVES), figsize=(14, 3.2))
    offset = 0
    for path in rounds:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows = [row for row in rows if "loss" in row]
        steps = [offset + row["step"] for row in rows]
        for axis, name in zip(axes, CURVES):
            axis.plot(steps, [row.get(name, float("nan")) for row in rows], marker="o", label=path.parent.name)
        offset += json.loads((path.parent / "round.json").read_text())["steps"]
    for axis, name in zip(axes, CURVES):
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("step (rounds one after another)")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    return out


def main() -> None:
    """Parse the arguments, draw both figures, print their paths."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the generator before tuning")
    parser.add_argument("--after", required=True, help="the tuned generator")
    parser.add_argument("--run", required=True, help="the `toccata tune` output folder (its rounds' metrics)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--beats", type=float, default=32.0)
    parser.add_argument("--out", default="docs/images/tuning")
    args = parser.parse_args()
    print(rolls(args))
    print(curves(Path(args.run), Path(f"{args.out}_curves.png")))


if __name__ == "__main__":
    main()
