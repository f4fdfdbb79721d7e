"""Generation speed of the default-size NotewiseLSTM on one CPU thread: `compose()` and `generate()` vs anchors.

`compose()` (what the CLI, the pipeline and the demo call) decodes with its own lean loop (`modeling/decoding.py`);
`generate()` is transformers' loop with the same samplers and guards as logits processors (same tokens).
Goal (issue 16): `compose()` with the default sampler and every guard >= 0.85x the bare loop at batch 1 and 8.
Rates are the best of `--rounds` interleaved rounds (bare loop, compose, generate, one after another), so a busy
machine slows all three alike and the ratios hold. The median of the rounds' own compose/bare ratios (each from two
runs a second apart) is printed too: on a shared machine whose speed drifts it moves less than the ratio of bests.
Anchors measured in the same run:
  bare loop      a plain torch loop carrying (h, c) with the same weights and the same `addmm` cell, top-k draw;
  nn.LSTM loop   the same loop calling `nn.LSTM` at sequence length 1 (what a naive implementation does);
  bandwidth      the memory-bandwidth bound: weight bytes read per step / bandwidth of a large matrix-vector product.
Real time: seconds of music per second of compute, from the tokens per second of real music: by default music21's
Bach chorales at 120 qpm; with --dataset, the pieces of a built dataset's split, each at its own written tempo (piano
music needs about twice the tokens per beat of a chorale).
CPU time: `compose_top_k_per_cpu_second` counts the thread's CPU seconds instead of wall seconds, so that a machine
shared with other jobs still reads what one core of it does alone (cache sharing aside).
Memory: peak RSS of generating N and 4N tokens, each in a fresh process (it should not grow with length).

    python benchmarks/generate.py                 # prints a table, writes benchmarks/results/generate.json
    python benchmarks/generate.py --tokens 200    # quicker
    python benchmarks/generate.py --model toccata/checkpoints/default --dataset data/piano --split test
    python benchmarks/generate.py --busy-neighbour    # `toccata generate` with --threads 1 vs a thread per core,
                                                      # idle and beside a process spinning on one core

Busy neighbour (issue 35): wall seconds of the real command (`toccata generate --seed 0 --beats B --no-audio`, the
default checkpoint; plain, `--int8` and `--best-of 8`), best of `--rounds`, with `--threads 1` (the default now) and
with torch's own default (a thread per core, what the command used before), each idle and with another process
spinning on one core. Writes benchmarks/results/generate_threads.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from toccata.modeling import GuardSettings, SamplerSettings
from toccata.modeling.decoding import DecodeJob, decode
from toccata.modeling.hub import random_model
from toccata.modeling.modeling_notewise_lstm import lstm_cell
from toccata.modeling.presets import generate_kwargs
from toccata.modeling.sampling import SAMPLERS
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import music21_corpus_midi

CHORALES = ["bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7", "bach/bwv101.7", "bach/bwv102.7", "bach/bwv103.6"]


def tokens_per_quarter(tokenizer: NotewiseTokenizer) -> float:
    """Notewise tokens per quarter note of real music (a few Bach chorales, merged to one piano part)."""
    tokens = quarters = 0
    for work in CHORALES:
        words = tokenizer.midi_to_tokens(music21_corpus_midi(work))
        tokens += len(words)
        quarters += sum(int(w[4:]) for w in words if w.startswith("wait")) / tokenizer.steps_per_quarter
    return tokens / quarters


def dataset_music_rate(dataset: str, split: str) -> tuple[float, float]:
    """(tokens per quarter, tokens per second of music) of a built dataset's split, each piece at its own tempo."""
    from datasets import load_dataset

    rows = load_dataset(dataset, split=split)
    tokens = quarters = seconds = 0.0
    for row in rows:
        if row["transposition"]:
            continue
        words = row["notewise"].split()
        piece_quarters = sum(int(w[4:]) for w in words if w.startswith("wait")) / 12
        tokens += len(words)
        quarters += piece_quarters
        seconds += piece_quarters * 60.0 / float(row["qpm"] or 120.0)
    return tokens / quarters, tokens / seconds


def bandwidth_bytes_per_s(size: int = 4096, repeats: int = 20) -> float:
    """Bytes per second streamed by a float32 matrix-vector product too large for the caches."""
    matrix, vector = torch.randn(size, size), torch.randn(size)
    torch.mv(matrix, vector)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mv(matrix, vector)
    return matrix.numel() * 4 * repeats / (time.perf_counter() - start)


def step_bytes(model) -> int:
    """Weight bytes one decoding step reads: every LSTM weight and bias, the head, one embedding row."""
    total = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "embeddings" not in n)
    emb = model.model.embeddings.weight
    tied = model.config.tie_word_embeddings
    return total + (emb.numel() * emb.element_size() if tied else emb.shape[1] * emb.element_size())


@torch.inference_mode()
def bare_loop(model, batch: int, steps: int, use_nn_lstm: bool = False) -> float:
    """Tokens per second of a plain loop carrying (h, c) per layer; top-5 weighted draw like the default sampler."""
    layers = [layer.lstm for layer in model.model.layers]
    weights = [layer.step_weights() for layer in model.model.layers]
    h = [torch.zeros(batch, lstm.hidden_size) for lstm in layers]
    c = [torch.zeros(batch, lstm.hidden_size) for lstm in layers]
    token = torch.full((batch,), model.config.bos_token_id, dtype=torch.long)
    emb, head = model.model.embeddings.weight, model.lm_head
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        x = emb[token]
        for i, (w_ih, w_hh, b) in enumerate(weights):
            if use_nn_lstm:
                out, (hn, cn) = layers[i](x.unsqueeze(1), (h[i].unsqueeze(0), c[i].unsqueeze(0)))
                h[i], c[i] = hn[0], cn[0]
            else:
                h[i], c[i] = lstm_cell(torch.addmm(b, x, w_ih).addmm_(h[i], w_hh), c[i])
            x = h[i]
        logits = head(x)
        top = logits.topk(5, dim=-1)
        pick = torch.multinomial(torch.softmax(top.values, -1), 1, generator=generator)
        token = top.indices.gather(1, pick)[:, 0]
    return batch * steps / (time.perf_counter() - start)


def compose_rate(
    model, batch: int, steps: int, sampler: str = "top_k", guards: bool = True, int8: bool = False,
    clock=time.perf_counter,
) -> float:
    """Tokens per second of `compose()`'s decoding loop with a sampler (and the default guards unless `guards` is
    False; int8 weights with `int8`): the same work as `generate_rate`, the prompt pass included. With
    `clock=time.thread_time`, per second of this thread's CPU time: what one idle core does, read on a busy machine
    (torch runs its one thread in the caller)."""
    settings = GuardSettings() if guards else GuardSettings(grammar=False, rest_guard=False)
    job = DecodeJob([model.config.bos_token_id], batch, SamplerSettings(sampler, seed=0), settings, steps)
    start = clock()
    decode(model, job, int8=int8)
    return batch * len(job.tokens[0]) / (clock() - start)


@torch.inference_mode()
def generate_rate(model, batch: int, steps: int, sampler: str, guards: bool) -> float:
    """Tokens per second of `model.generate()` with a sampler (and the default guards unless `guards` is False)."""
    settings = GuardSettings() if guards else GuardSettings(grammar=False, rest_guard=False)
    kwargs = generate_kwargs(model.config, SamplerSettings(sampler, seed=0), settings)
    ids = torch.full((batch, 1), model.config.bos_token_id, dtype=torch.long)
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=steps, **kwargs)
    elapsed = time.perf_counter() - start
    return batch * (out.shape[1] - 1) / elapsed


def peak_rss_mb(tokens: int) -> float:
    """Peak resident memory of a fresh process that composes `tokens` tokens at batch 1."""
    code = (
        "import resource, torch; torch.set_num_threads(1)\n"
        "from toccata.modeling import GenerationRequest, SamplerSettings, compose\n"
        "from toccata.modeling.hub import random_model\n"
        "from toccata.tokenization import NotewiseTokenizer\n"
        "tok = NotewiseTokenizer(); model = random_model(tok)\n"
        f"compose(model, tok, GenerationRequest(SamplerSettings(seed=0), beats=None, max_new_tokens={tokens}))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


@contextmanager
def busy_neighbour():
    """A process spinning on one core for the duration (what another job on the machine does to `generate`)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        spinner.kill()
        spinner.wait()


def command_seconds(extra: list[str], threads: int, beats: int, folder: str) -> float:
    """Wall seconds of `toccata generate ... --threads N` in a fresh process (start-up included, as a user waits)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = str(Path(folder) / "piece.mid")
    command = [sys.executable, "-m", "toccata", "generate", "--seed", "0", "--beats", str(beats), "--no-audio"]
    start = time.perf_counter()
    command += [*extra, "--threads", str(threads), "-o", out]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"toccata generate failed: {done.stderr}")
    return time.perf_counter() - start


def busy_neighbour_study(beats: int, rounds: int, out_path: Path) -> None:
    """Seconds of `toccata generate` per threads setting, idle and beside a busy core; prints a table, writes JSON."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    probe = [sys.executable, "-c", "import torch; print(torch.get_num_threads())"]
    torch_default = int(subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout)
    kinds = {"float32": [], "int8": ["--int8"], "best of 8": ["--best-of", "8"]}
    settings = sorted({1, torch_default})
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for kind, extra in kinds.items():
            for threads in settings:
                row = {"what": kind, "threads": threads}
                for load in ("idle", "busy"):
                    times = []
                    for _ in range(rounds):
                        if load == "busy":
                            with busy_neighbour():
                                times.append(command_seconds(extra, threads, beats, folder))
                        else:
                            times.append(command_seconds(extra, threads, beats, folder))
                    row[f"{load}_s"] = min(times)
                rows.append(row)
                print(f"{kind}, {threads} thread(s): {row['idle_s']:.1f} s, spinner {row['busy_s']:.1f} s", flush=True)
    print(f"\n`toccata generate --seed 0 --beats {beats} --no-audio` (default checkpoint), best of {rounds}; "
          f"{os.cpu_count()} CPUs, torch's default {torch_default} threads")
    print("| what | --threads | no spinner (s) | one core spinning (s) | ratio |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['what']} | {row['threads']} | {row['idle_s']:.1f} | {row['busy_s']:.1f} | "
              f"{row['busy_s'] / row['idle_s']:.1f} |")
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_default_threads": torch_default,
        "beats": beats,
        "rounds": rounds,
        "rows": rows,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    print(f"wrote {out_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000, help="tokens per measurement (default %(default)s)")
    parser.add_argument("--embedding-size", type=int, help="default: NotewiseLSTMConfig's")
    parser.add_argument("--hidden-size", type=int, help="default: NotewiseLSTMConfig's")
    parser.add_argument("--layers", type=int, help="default: NotewiseLSTMConfig's")
    parser.add_argument("--model", help="a checkpoint folder (default: random weights of the default size)")
    parser.add_argument("--dataset", help="a built dataset: real time at its music's token rate (default: chorales)")
    parser.add_argument("--split", default="test", help="the dataset split for --dataset (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="best of this many interleaved rounds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "generate.json"))
    parser.add_argument(
        "--busy-neighbour",
        action="store_true",
        help="only time `toccata generate` with --threads 1 and a thread per core, idle and beside a busy core",
    )
    parser.add_argument("--busy-beats", type=int, default=128, help="--busy-neighbour: beats per piece")
    args = parser.parse_args()
    if args.busy_neighbour:
        busy_neighbour_study(args.busy_beats, args.rounds, Path(args.out).with_name("generate_threads.json"))
        return
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tokenizer = NotewiseTokenizer()
    sizes = {"embedding_size": args.embedding_size, "hidden_size": args.hidden_size, "num_hidden_layers": args.layers}
    if args.model:
        import toccata

        model, _ = toccata.load_checkpoint(args.model)
    else:
        model = random_model(tokenizer, **{k: v for k, v in sizes.items() if v is not None})
    params = sum(p.numel() for p in model.parameters())
    if args.dataset:
        tpq, music_tokens_per_s = dataset_music_rate(args.dataset, args.split)
        music = f"{args.dataset} [{args.split}], each piece at its own tempo"
    else:
        tpq = tokens_per_quarter(tokenizer)
        music_tokens_per_s, music = tpq * 2.0, "Bach chorales at 120 qpm"
    bandwidth = bandwidth_bytes_per_s()
    limit = bandwidth / step_bytes(model)

    rows, ratios = [], {}  # ratios: compose_top_k / bare_loop within each round, per batch
    for batch in (1, 8):
        steps = max(50, args.tokens // batch)
        measures = {
            "bare_loop": functools.partial(bare_loop, model, batch, steps),
            "compose_top_k": functools.partial(compose_rate, model, batch, steps, "top_k", guards=True),
            "generate_top_k": functools.partial(generate_rate, model, batch, steps, "top_k", guards=True),
            "compose_top_k_per_cpu_second": functools.partial(
                compose_rate, model, batch, steps, "top_k", guards=True, clock=time.thread_time
            ),
        }
        row, round_ratios = {"batch": batch}, []
        for _ in range(args.rounds):
            rates = {name: measure() for name, measure in measures.items()}
            round_ratios.append(rates["compose_top_k"] / rates["bare_loop"])
            for name, rate in rates.items():
                row[name] = max(row.get(name, 0.0), rate)
        row["nn_lstm_loop"] = bare_loop(model, batch, steps, use_nn_lstm=True)
        row["bandwidth_limit"] = limit * batch
        for sampler in SAMPLERS:
            if sampler != "top_k":
                row[f"compose_{sampler}"] = compose_rate(model, batch, steps, sampler, guards=True)
                row[f"generate_{sampler}"] = generate_rate(model, batch, steps, sampler, guards=True)
        row["compose_top_k_no_guards"] = compose_rate(model, batch, steps, "top_k", guards=False)
        row["generate_top_k_no_guards"] = generate_rate(model, batch, steps, "top_k", guards=False)
        ratios[batch] = round_ratios
        rows.append(row)

    memory = {n: peak_rss_mb(n) for n in (args.tokens, 4 * args.tokens)}
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": 1,
        "rounds": args.rounds,
        "parameters": params,
        "weight_mb_fp32": params * 4 / 1e6,
        "bandwidth_gb_s": bandwidth / 1e9,
        "model": args.model or "random weights",
        "music": music,
        "tokens_per_quarter": tpq,
        "music_tokens_per_s": music_tokens_per_s,
        "rows": rows,
        "compose_top_k_over_bare_per_round": ratios,
        "peak_rss_mb": memory,
    }
    print(
        f"model: {params / 1e6:.2f} M parameters, {params * 4 / 1e6:.1f} MB fp32; 1 thread; torch {torch.__version__}"
    )
    print(f"bandwidth {bandwidth / 1e9:.1f} GB/s -> limit {limit:,.0f} steps/s")
    print(f"music: {music}: {tpq:.2f} tokens/quarter, {music_tokens_per_s:.1f} tokens/s")
    header = ["batch", "what", "tokens/s", "x bare loop", "x real time"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        for key, value in row.items():
            if key == "batch":
                continue
            ratio = value / row["bare_loop"]
            realtime = value / row["batch"] / music_tokens_per_s
            print(f"| {row['batch']} | {key} | {value:,.0f} | {ratio:.2f} | {realtime:,.0f} |")
    print(f"bare loop / bandwidth limit at batch 1: {rows[0]['bare_loop'] / rows[0]['bandwidth_limit']:.2f}")
    for row in rows:
        ratio = row["compose_top_k"] / row["bare_loop"]
        verdict = "met" if ratio >= 0.85 else "NOT met"
        median = statistics.median(ratios[row["batch"]])
        paired = "met" if median >= 0.85 else "NOT met"
        print(
            f"batch {row['batch']}: compose() top_k + guards / bare loop: best / best {ratio:.2f} (goal >= 0.85: "
            f"{verdict}); median of the {args.rounds} same-round ratios {median:.2f} ({paired}; steadier where the "
            "machine's speed drifts)"
        )
    print("peak RSS: " + ", ".join(f"{n} tokens {mb:.0f} MB" for n, mb in memory.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
