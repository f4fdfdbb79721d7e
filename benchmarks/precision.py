"""Lower precision on CPU: bf16 weights and dynamic int8, for speed and for bits per note on a test split.

For each precision, in the same run and on one thread:
  speed          tokens/s of the decoding step (embedding, the LSTM cell by hand, the head) at batch 1 and 8;
                 fp32 and bf16 run `compose()`'s own loop (`DecodeBatch`, guards and top-k draw included);
                 int8 runs the same cell with `torch.ao` dynamically quantized linear layers and the same draw;
  bits per note  of every test piece scored whole (`training.likelihood`), with the model in that precision
                 (int8: `quantize_dynamic` on the LSTM and the head).
The rule for adopting one (issue 16): bits per note within 1% of fp32.

    python benchmarks/precision.py --model toccata/checkpoints/default --dataset data/piano --split test
Writes benchmarks/results/precision.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
from toccata.modeling import GuardSettings, SamplerSettings
from toccata.modeling.decoding import DecodeBatch, DecodeJob
from toccata.modeling.sampling import TopK, draw
from toccata.training.data import load_pieces
from toccata.training.likelihood import model_log2probs, piece_sequences, summarise
from torch import nn

import toccata


def compose_rate(model, batch: int, steps: int) -> float:
    """Tokens/s of `compose()`'s loop with the default sampler and guards."""
    job = DecodeJob([model.config.bos_token_id], batch, SamplerSettings(seed=0), GuardSettings(), steps)
    decoder = DecodeBatch(model)
    start = time.perf_counter()
    decoder.add(job)
    while not job.finished.is_set():
        decoder.step()
    return batch * steps / (time.perf_counter() - start)


@torch.inference_mode()
def int8_rate(model, batch: int, steps: int) -> float:
    """Tokens/s of the same cell with int8 dynamically quantized weights (no guards: compare with `bare` below)."""
    qlinear = torch.ao.nn.quantized.dynamic.Linear
    cells = []
    for layer in model.model.layers:
        lstm = layer.lstm
        both = nn.Linear(lstm.input_size + lstm.hidden_size, 4 * lstm.hidden_size)
        both.weight.copy_(torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1))
        both.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
        both.qconfig = torch.ao.quantization.default_dynamic_qconfig
        cells.append((qlinear.from_float(both), lstm.hidden_size))
    model.lm_head.qconfig = torch.ao.quantization.default_dynamic_qconfig
    head = qlinear.from_float(model.lm_head)
    return _cell_loop(model, batch, steps, cells, head)


@torch.inference_mode()
def fp32_fused_rate(model, batch: int, steps: int) -> float:
    """The loop of `int8_rate` with float32 weights: the anchor its speed-up is measured against."""
    cells = []
    for layer in model.model.layers:
        lstm = layer.lstm
        both = nn.Linear(lstm.input_size + lstm.hidden_size, 4 * lstm.hidden_size)
        both.weight.copy_(torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1))
        both.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
        cells.append((both, lstm.hidden_size))
    return _cell_loop(model, batch, steps, cells, model.lm_head)


def _cell_loop(model, batch: int, steps: int, cells, head) -> float:
    emb = model.model.embeddings.weight.float()
    h = [torch.zeros(batch, size) for _, size in cells]
    c = [torch.zeros(batch, size) for _, size in cells]
    token = torch.full((batch,), model.config.bos_token_id, dtype=torch.long)
    generator, top = torch.Generator().manual_seed(0), TopK(5)
    start = time.perf_counter()
    for _ in range(steps):
        x = emb[token]
        for i, (linear, size) in enumerate(cells):
            gates = linear(torch.cat([x, h[i]], dim=1))
            ig, fg, _, og = gates.sigmoid().chunk(4, 1)
            c[i] = torch.addcmul(fg * c[i], ig, gates[:, 2 * size : 3 * size].tanh())
            x = h[i] = og * c[i].tanh()
        token = draw(top(None, head(x).float()), generator)
    return batch * steps / (time.perf_counter() - start)


def bits_per_note(model, sequences, note_ids: range, chunk: int) -> float:
    return summarise("m", model_log2probs(model, sequences, chunk=chunk), sequences, note_ids).bits_per_note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the embedded one)")
    parser.add_argument("--dataset", required=True, help="a built dataset folder (e.g. data/piano)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per speed measurement")
    parser.add_argument("--rounds", type=int, default=3, help="speed: best of this many interleaved rounds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "precision.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fp32, tokenizer = toccata.load_checkpoint(args.model or toccata.default_checkpoint())
    fp32.eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {nn.LSTM, nn.Linear}, dtype=torch.qint8)

    pieces = load_pieces(args.dataset, args.split, tokenizer, original_key_only=True)
    sequences = piece_sequences(pieces, tokenizer.bos_token_id, tokenizer.eos_token_id)
    first = tokenizer.note_on_offset
    note_ids = range(first, first + tokenizer.num_pitches)
    whole = max(len(s) for s in sequences)  # int8's quantized LSTM has no one-step path: read each piece at once
    quality = {
        "fp32": bits_per_note(fp32, sequences, note_ids, 512),
        "bf16": bits_per_note(bf16, sequences, note_ids, 512),
        "int8 dynamic": bits_per_note(int8, sequences, note_ids, whole),
    }

    speed: dict[str, dict[int, float]] = {}
    for batch in (1, 8):
        steps = max(50, args.tokens // batch)
        for _ in range(args.rounds):
            for name, rate, model in (
                ("fp32, compose() loop", compose_rate, fp32),
                ("bf16, compose() loop", compose_rate, bf16),
                ("fp32, fused cell, no guards", fp32_fused_rate, fp32),
                ("int8 dynamic, fused cell, no guards", int8_rate, fp32),
            ):
                best = speed.setdefault(name, {})
                best[batch] = max(best.get(batch, 0.0), rate(model, batch, steps))

    base = quality["fp32"]
    print(f"{len(sequences)} {args.split} pieces of {args.dataset}; 1 thread; torch {torch.__version__}")
    print("| precision | bits per note | vs fp32 |\n|---|---:|---:|")
    for name, value in quality.items():
        print(f"| {name} | {value:.4f} | {100 * (value / base - 1):+.2f}% |")
    print("| loop | batch 1 tokens/s | batch 8 tokens/s |\n|---|---:|---:|")
    for name, rates in speed.items():
        print(f"| {name} | {rates[1]:,.0f} | {rates[8]:,.0f} |")
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": 1,
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
