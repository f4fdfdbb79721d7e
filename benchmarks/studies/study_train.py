"""The tokenization study's training loop: one LSTM per tokenization, the same budget of tokens for each.

Self-contained on purpose (torch, numpy and transformers only, no Toccata imports), so that a prepared study folder
can be trained on a machine without Toccata's other dependencies, e.g. a GPU box:

    python benchmarks/studies/study_train.py STUDY/notewise --steps 2400 --device cuda

reads STUDY/LABEL/train.xz (the training stream, uint16, xz-compressed), tokens.npz and STUDY/LABEL/init/ (config.json + the model's code, written by
`benchmarks/studies/tokenization_study.py prepare`) and writes STUDY/LABEL/model.safetensors (the weights of the evaluation with the best validation loss, as
`toccata train` keeps) and train_log.json. The
model is built from the config with a fixed seed; each step takes `batch` windows of `window` tokens at random
offsets of the training stream (pieces as ``<bos> ids <eos>``, one after another, every prepared transposition),
so every tokenization gets exactly `steps × batch × window` training tokens. AdamW, linear warm-up then cosine
decay, gradient clipping: the settings of `toccata train`.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch


def build_model(init: Path, seed: int):
    """A new model from `init/config.json`, its weights drawn with `seed` (the same for every tokenization)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(init, trust_remote_code=True)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, trust_remote_code=True)


def windows(stream: np.ndarray, starts: np.ndarray, window: int) -> torch.Tensor:
    """Rows of `window` tokens of `stream` beginning at `starts`."""
    index = starts[:, None] + np.arange(window)[None, :]
    return torch.from_numpy(stream[index].astype(np.int64))


@torch.no_grad()
def mean_loss(model, stream: np.ndarray, window: int, batch: int, device: str) -> float:
    """Mean next-token loss (nats) over `stream` read in non-overlapping windows (state reset per window)."""
    model.eval()
    starts = np.arange(0, len(stream) - window, window - 1)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x = windows(stream, starts[i : i + batch], window).to(device)
        loss = model(input_ids=x, labels=x).loss
        total += float(loss) * x.shape[0] * (window - 1)
        count += x.shape[0] * (window - 1)
    model.train()
    return total / max(count, 1)


def lr_factor(step: int, steps: int, warmup: float) -> float:
    """Linear warm-up over `warmup` of the steps, then cosine decay to zero."""
    warm = max(1, int(steps * warmup))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def train_one(
    folder: str | Path,
    steps: int,
    batch: int = 32,
    window: int = 512,
    learning_rate: float = 3e-3,
    weight_decay: float = 0.01,
    warmup: float = 0.05,
    max_grad_norm: float = 0.5,
    seed: int = 0,
    device: str = "cpu",
    evaluations: int = 8,
    max_seconds: float | None = None,
) -> dict:
    """Train the model of one prepared study folder and write model.safetensors and train_log.json there."""
    from safetensors.torch import save_file

    folder = Path(folder)
    valid = np.load(folder / "tokens.npz")["validation"]
    train = np.frombuffer(lzma.decompress((folder / "train.xz").read_bytes()), dtype="<u2")
    model = build_model(folder / "init", seed).to(device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup))
    rng = np.random.default_rng(seed)
    log: list[dict] = []
    every = max(1, steps // evaluations)
    began = time.perf_counter()
    done = 0
    best: tuple[float, int, dict] | None = None
    for step in range(steps):
        x = windows(train, rng.integers(0, len(train) - window, batch), window).to(device)
        loss = model(input_ids=x, labels=x).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        done = step + 1
        if done % every == 0 or done == steps:
            row = {"step": done, "train_loss": float(loss.detach()), "seconds": round(time.perf_counter() - began, 1)}
            row["validation_loss"] = mean_loss(model, valid, window, batch, device)
            log.append(row)
            if best is None or row["validation_loss"] < best[0]:  # keep the best, as `toccata train` does
                best = (
                    row["validation_loss"],
                    done,
                    {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()},
                )
            print(json.dumps({"run": folder.name, **row}), flush=True)
        if max_seconds is not None and time.perf_counter() - began > max_seconds:
            print(f"{folder.name}: stopped at step {done} of {steps}: over {max_seconds:.0f} s", flush=True)
            break
    model.eval()
    state = best[2] if best else {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    state = {k: v.contiguous() for k, v in state.items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, str(folder / "model.safetensors"))
    summary = {
        "run": folder.name,
        "steps": done,
        "steps_planned": steps,
        "batch": batch,
        "window": window,
        "tokens_seen": done * batch * window,
        "learning_rate": learning_rate,
        "seed": seed,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "train_seconds": round(time.perf_counter() - began, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_stream_tokens": len(train),
        "final_validation_loss": log[-1]["validation_loss"] if log else None,
        "best_validation_loss": best[0] if best else None,
        "best_step": best[1] if best else None,
        "log": log,
    }
    (folder / "train_log.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="prepared study folders (STUDY/LABEL)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--max-seconds", type=float, help="stop a run early past this wall-clock time (reported)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        summary = train_one(
            folder, args.steps, args.batch, args.window, args.learning_rate, seed=args.seed, device=args.device,
            max_seconds=args.max_seconds,
        )  # fmt: skip
        print(json.dumps({k: v for k, v in summary.items() if k != "log"}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
