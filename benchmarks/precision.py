"""Lower precision on CPU: bf16 weights and int8 weights, for speed and for bits per note on a test split.

For each precision, in the same run and on one thread:
  speed          tokens/s of `compose()`'s decoding loop (`DecodeBatch`: the default sampler and every guard) at
                 batch 1 and 8, best of `--rounds` interleaved rounds; float32 is the reference;
                 bf16: the model cast to bfloat16; int8: `DecodeBatch(int8=True)` (`modeling/quantized.py`:
                 dynamically quantized linear layers for the cells and the head);
  bits per note  of every test piece scored whole, with exactly the arithmetic that decodes: float32 and bf16 through
                 the model (`evaluation.likelihood`), int8 through `Int8Cells` one token at a time (teacher forcing).
The rule for adopting one (issue 16): bits per note within 1% of float32.

    python benchmarks/precision.py --dataset data/piano --split test
Writes benchmarks/results/precision.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
from pathlib import Path

import numpy as np
import torch
from generate import compose_rate  # benchmarks/ is on the path when this script runs
from toccata.modeling.quantized import Int8Cells
from toccata.training.data import load_pieces
from toccata.evaluation.likelihood import model_log2probs, piece_sequences, summarise

import toccata


@torch.inference_mode()
def int8_log2probs(model, sequences: list[np.ndarray]) -> list[np.ndarray]:
    """log2 P(token | prefix) of tokens 1.. of each sequence under `Int8Cells`, one step at a time, all pieces
    in one batch (right-padded; an LSTM never sees the padding of later positions)."""
    cells = Int8Cells(model)
    length = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.from_numpy(np.asarray(seq))
    states = [(torch.zeros(len(sequences), size), torch.zeros(len(sequences), size)) for size in cells.state_sizes]
    scores = np.zeros((len(sequences), length - 1))
    for t in range(length - 1):
        logp = torch.log_softmax(model.step(ids[:, t], states, cells), dim=-1)
        scores[:, t] = logp.gather(1, ids[:, t + 1 : t + 2])[:, 0].double().numpy() / math.log(2.0)
    return [scores[row, : len(seq) - 1] for row, seq in enumerate(sequences)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the embedded one)")
    parser.add_argument("--dataset", required=True, help="a built dataset folder (e.g. data/piano)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per speed measurement")
    parser.add_argument("--rounds", type=int, default=5, help="speed: best of this many interleaved rounds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "precision.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fp32, tokenizer = toccata.load_checkpoint(args.model or toccata.default_checkpoint())
    fp32.eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)

    pieces = load_pieces(args.dataset, args.split, tokenizer, original_key_only=True)
    sequences = piece_sequences(pieces, tokenizer.bos_token_id, tokenizer.eos_token_id)
    first = tokenizer.note_on_offset
    note_ids = range(first, first + tokenizer.num_pitches)
    quality = {
        "float32": summarise("f", model_log2probs(fp32, sequences), sequences, note_ids).bits_per_note,
        "bf16": summarise("b", model_log2probs(bf16, sequences), sequences, note_ids).bits_per_note,
        "int8": summarise("i", int8_log2probs(fp32, sequences), sequences, note_ids).bits_per_note,
    }

    speed: dict[str, dict[int, float]] = {}
    for batch in (1, 8):
        steps = max(50, args.tokens // batch)
        for _ in range(args.rounds):
            for name, model, int8 in (("float32", fp32, False), ("bf16", bf16, False), ("int8", fp32, True)):
                best = speed.setdefault(name, {})
                best[batch] = max(best.get(batch, 0.0), compose_rate(model, batch, steps, int8=int8))

    base = quality["float32"]
    print(f"{len(sequences)} {args.split} pieces of {args.dataset}; 1 thread; torch {torch.__version__}")
    print("| weights | bits per note | vs float32 | batch 1 tokens/s | × float32 | batch 8 tokens/s | × float32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, value in quality.items():
        r1, r8 = speed[name][1], speed[name][8]
        print(
            f"| {name} | {value:.4f} | {100 * (value / base - 1):+.2f}% | {r1:,.0f} | {r1 / speed['float32'][1]:.2f} "
            f"| {r8:,.0f} | {r8 / speed['float32'][8]:.2f} |"
        )
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": 1,
        "rounds": args.rounds,
        "dataset": args.dataset,
        "split": args.split,
        "pieces": len(sequences),
        "bits_per_note": quality,
        "tokens_per_s": speed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
