"""Load on the demo: N concurrent `gradio_client` users against a real `toccata demo` server on 127.0.0.1.

Each client (its own session, its own thread) sends R requests in a bounded loop: a Bach chorale prompt continued
for a few bars with top-k, rendered to audio and a piano roll, as the page does. Every request must either complete
or be refused cleanly by the queue ("queue is full"); then the server must still answer and generate.

Two servers in the same run, one after the other, same load: the server as it was before continuous batching
(`--no-batching --concurrency 2`: each request decodes in its own thread, two at a time) and as it is now (the
defaults: one shared decoding loop). For each: a lone client first (5 requests: the service time), then the crowd.
Goals (issue 16): crowd median latency <= 2x the lone median, nothing refused at the default queue size, notes per
second >= 4x the earlier server's.

    python benchmarks/demo_load.py                     # 20 clients x 3 requests; prints a table
    python benchmarks/demo_load.py --clients 40 --requests 2 --max-queue 16 --only now

Writes benchmarks/results/demo_load.json (machine, settings, per-request latencies).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

ROOT = Path(__file__).resolve().parents[1]
REQUEST = {  # what each user asks for: 4 bars after 8 beats of a chorale, one variation, audio included
    "sampler": "top_k",
    "prompt_source": "corpus",
    "corpus_work": "bach/bwv66.6",
    "prompt_file": None,
    "prompt_beats": 8,
    "length": 4,
    "length_unit": "bars",
    "variations": 1,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVERS = {  # name -> extra `toccata demo` arguments
    "before": ["--no-batching", "--concurrency", "2"],
    "now": [],
}


def start_server(port: int, extra: list[str], max_queue: int, log: Path) -> subprocess.Popen:
    """`python -m toccata.demo` on 127.0.0.1:port, returned once it answers HTTP."""
    command = [sys.executable, "-m", "toccata.demo", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--max-queue", str(max_queue), *extra]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; see {log}")
        if answers(f"http://127.0.0.1:{port}/"):
            return server
        time.sleep(0.3)
    server.kill()
    sys.exit(f"the server did not start within 180 s; see {log}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of process `pid` (VmHWM, Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def user(url: str, index: int, requests: int, start: threading.Barrier, downloads: str) -> list[dict]:
    """One user's bounded loop: (outcome, seconds) of each request."""
    client = Client(url, verbose=False, download_files=downloads)
    start.wait()
    outcomes = []
    for number in range(requests):
        began = time.perf_counter()
        try:
            result = client.predict(**REQUEST, seed=index * 1000 + number, api_name="/generate")
            status = str(result[0])
            outcome = "completed" if status.startswith("**Done**") else f"unexpected: {result[0]!r}"
            notes = sum(int(n) for n in re.findall(r"Variation \d+: (\d+) notes", status))
        except QueueError:
            outcome, notes = "refused", 0
        except (AppError, ValueError, OSError) as err:
            outcome, notes = f"error: {err}", 0
        record = {"client": index, "outcome": outcome, "seconds": time.perf_counter() - began, "notes": notes}
        outcomes.append(record)
    return outcomes


def run_phase(url: str, clients: int, requests: int, downloads: str) -> tuple[list[dict], float]:
    """`clients` users at once, `requests` each; (records, wall seconds)."""
    barrier = threading.Barrier(clients)
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(user, url, i, requests, barrier, downloads) for i in range(clients)]
        records = [record for future in futures for record in future.result()]
    return records, time.perf_counter() - began


def summarise(name: str, records: list[dict], wall: float) -> dict:
    """Counts and latency percentiles (completed requests only) of one phase."""
    done = [r["seconds"] for r in records if r["outcome"] == "completed"]
    p50, p90, p99 = np.percentile(done, [50, 90, 99]) if done else [float("nan")] * 3
    return {
        "phase": name,
        "requests": len(records),
        "completed": len(done),
        "refused_by_queue": sum(r["outcome"] == "refused" for r in records),
        "errors": [r["outcome"] for r in records if r["outcome"] not in ("completed", "refused")],
        "latency_p50_s": round(float(p50), 3),
        "latency_p90_s": round(float(p90), 3),
        "latency_p99_s": round(float(p99), 3),
        "latency_max_s": round(max(done), 3) if done else float("nan"),
        "completed_per_s": round(len(done) / wall, 3),
        "notes_per_s": round(sum(r["notes"] for r in records if r["outcome"] == "completed") / wall, 1),
        "wall_s": round(wall, 2),
    }


def measure(name: str, extra: list[str], args: argparse.Namespace, work: Path) -> dict:
    """Start one server, run the lone client and the crowd against it, stop it; its phases and health."""
    port = free_port()
    server = start_server(port, extra, args.max_queue, work / f"server-{name}.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        solo = summarise(f"{name}: 1 client", *run_phase(url, 1, 5, str(work)))
        crowd_records, crowd_wall = run_phase(url, args.clients, args.requests, str(work))
        crowd = summarise(f"{name}: {args.clients} clients at once", crowd_records, crowd_wall)
        alive = server.poll() is None and answers(url)
        after = Client(url, verbose=False, download_files=str(work)).predict(**REQUEST, seed=1, api_name="/generate")
        still_generates = str(after[0]).startswith("**Done**")
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    return {
        "server": name,
        "arguments": extra,
        "phases": [solo, crowd],
        "crowd_median_vs_lone": round(crowd["latency_p50_s"] / solo["latency_p50_s"], 2),
        "server_alive_after": alive,
        "server_generates_after": still_generates,
        "server_peak_rss_mb": round(rss, 1),
        "records": crowd_records,
    }


def generation_only(clients: int, requests: int, seconds: float) -> list[dict]:
    """In this process, without Gradio or rendering: `clients` threads each composing `requests` pieces of `seconds`
    of music (no prompt, the checkpoint's preset, one thread for torch), with and without the shared batcher; a lone
    client first each time. What continuous batching changes when generation is the work."""
    import torch
    from toccata.modeling import GenerationRequest, compose
    from toccata.modeling.batching import ContinuousBatcher
    from toccata.modeling.sampling import preset_from_generation_config

    import toccata

    torch.set_num_threads(1)
    model, tokenizer = toccata.load_checkpoint()
    sampler, guards = preset_from_generation_config(model.generation_config)
    rows = []
    for name, batcher in (("own thread per request", None), ("shared batch", ContinuousBatcher(model))):

        def one(seed: int, batcher=batcher) -> tuple[float, int]:
            began = time.perf_counter()
            request = GenerationRequest(replace(sampler, seed=seed), guards, beats=None, seconds=seconds)
            (piece,) = compose(model, tokenizer, request, batcher=batcher)
            return time.perf_counter() - began, piece.score.note_num()

        lone = [one(seed) for seed in range(3)]
        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            crowd = list(pool.map(one, range(100, 100 + clients * requests)))
        wall = time.perf_counter() - began
        lone_p50 = float(np.median([t for t, _ in lone]))
        crowd_p50 = float(np.median([t for t, _ in crowd]))
        rows.append(
            {
                "decoding": name,
                "lone_p50_s": round(lone_p50, 3),
                "crowd_p50_s": round(crowd_p50, 3),
                "crowd_vs_lone": round(crowd_p50 / lone_p50, 2),
                "notes_per_s": round(sum(n for _, n in crowd) / wall, 1),
                "peak_rows": batcher.peak_rows if batcher else 1,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=3, help="requests per client, one after another")
    parser.add_argument("--max-queue", type=int, default=16, help="the servers' --max-queue")
    parser.add_argument("--only", choices=sorted(SERVERS), help="measure one server only")
    parser.add_argument(
        "--generation-seconds", type=float, default=30.0, help="generation-only phase: seconds of music per request"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_load.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="toccata-load-"))
    servers = [args.only] if args.only else list(SERVERS)
    runs = [measure(name, SERVERS[name], args, work) for name in servers]

    print(f"{os.cpu_count()} CPUs; each client sends its requests one after another; --max-queue {args.max_queue}\n")
    print("| phase | requests | completed | refused | errors | p50 s | p90 s | max s | completed/s | notes/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        for row in run["phases"]:
            print(
                f"| {row['phase']} | {row['requests']} | {row['completed']} | {row['refused_by_queue']} "
                f"| {len(row['errors'])} | {row['latency_p50_s']:.2f} | {row['latency_p90_s']:.2f} "
                f"| {row['latency_max_s']:.2f} | {row['completed_per_s']:.2f} | {row['notes_per_s']:,.0f} |"
            )
    for run in runs:
        print(
            f"{run['server']}: crowd median / lone median {run['crowd_median_vs_lone']:.2f}; "
            f"alive after {run['server_alive_after']}, generates after {run['server_generates_after']}; "
            f"peak RSS {run['server_peak_rss_mb']:.0f} MB"
        )
    if len(runs) == 2:
        gain = runs[1]["phases"][1]["notes_per_s"] / max(runs[0]["phases"][1]["notes_per_s"], 1e-9)
        print(f"crowd notes/s, now / before: {gain:.2f}x")
    generation = generation_only(args.clients, args.requests, args.generation_seconds)
    print(
        f"\ngeneration only (in-process, {args.clients} threads x {args.requests} pieces of "
        f"{args.generation_seconds:g} s, no rendering):\n"
    )
    print(
        "| decoding | lone p50 s | crowd p50 s | crowd / lone | notes/s | most rows at once |\n|---|---:|---:|---:|---:|---:|"
    )
    for row in generation:
        print(
            f"| {row['decoding']} | {row['lone_p50_s']:.2f} | {row['crowd_p50_s']:.2f} | {row['crowd_vs_lone']:.2f} "
            f"| {row['notes_per_s']:,.0f} | {row['peak_rows']} |"
        )
    print(
        f"generation notes/s, shared batch / own threads: {generation[1]['notes_per_s'] / generation[0]['notes_per_s']:.2f}x"
    )
    errors = [e for run in runs for row in run["phases"] for e in row["errors"]]
    for error in errors[:5]:
        print(error)

    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "python": sys.version.split()[0],
        "settings": {**vars(args), "request": REQUEST},
        "servers": runs,
        "generation_only": generation,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    healthy = all(run["server_alive_after"] and run["server_generates_after"] for run in runs)
    if errors or not healthy:
        sys.exit(f"failed: see the server logs in {work}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
