"""Effect of the `calmness` control on note density: notes per quarter note and mean wait, per calmness value.

    python benchmarks/calmness.py [--model PATH_OR_REPO] [--samples 8] [--beats 32]

Without --model it uses a randomly initialised model (the effect is then that of the bias alone); with a trained
checkpoint it measures what users hear. Prints a table and writes benchmarks/results/calmness.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from toccata.modeling import GenerationRequest, GuardSettings, SamplerSettings, compose
from toccata.modeling.hub import load_checkpoint, random_model
from toccata.tokenization import NotewiseTokenizer

VALUES = (-2.0, -1.0, 0.0, 1.0, 2.0, 4.0)


def density(pieces, steps_per_quarter: int) -> tuple[float, float]:
    """(notes per quarter note, mean wait in quarter notes) over the continuations of `pieces`."""
    notes = quarters = waits = 0
    for piece in pieces:
        new = piece.tokens[piece.prompt_length :]
        notes += sum(1 for t in new if t.startswith("p"))
        steps = [int(t[4:]) for t in new if t.startswith("wait")]
        quarters += sum(steps) / steps_per_quarter
        waits += len(steps)
    return notes / max(quarters, 1e-9), quarters / max(waits, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder or Hub id (default: random weights)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--beats", type=float, default=32.0)
    parser.add_argument("--sampler", default="top_k")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "calmness.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model:
        model, tokenizer = load_checkpoint(args.model)
    else:
        torch.manual_seed(0)
        tokenizer = NotewiseTokenizer()
        model = random_model(tokenizer)
    rows = []
    for calmness in VALUES:
        request = GenerationRequest(
            sampler=SamplerSettings(args.sampler, seed=0),
            guards=GuardSettings(calmness=calmness),
            beats=args.beats,
            num_samples=args.samples,
        )
        per_quarter, mean_wait = density(compose(model, tokenizer, request), tokenizer.steps_per_quarter)
        rows.append({"calmness": calmness, "notes_per_quarter": per_quarter, "mean_wait_quarters": mean_wait})
    base = next(r for r in rows if r["calmness"] == 0.0)["notes_per_quarter"]
    print(f"model: {args.model or 'random weights'}; sampler {args.sampler}; {args.samples} x {args.beats:g} beats")
    print("| calmness | notes per quarter | x calmness 0 | mean wait (quarters) |\n|---|---|---|---|")
    for r in rows:
        ratio = r["notes_per_quarter"] / base
        print(f"| {r['calmness']:g} | {r['notes_per_quarter']:.2f} | {ratio:.2f} | {r['mean_wait_quarters']:.3f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model or "random", "sampler": args.sampler, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
