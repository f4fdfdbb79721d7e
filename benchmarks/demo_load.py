"""Load on the demo: N concurrent users of the HTTP API against a real `toccata demo` server on 127.0.0.1.

Each client (its own session, its own thread) sends R requests in a bounded loop: a Bach chorale prompt continued
for a few bars with top-k, rendered to audio and a piano roll, as the page does, then fetches the files the answer
names (MIDI, WAV, PNG), as the page does. Every request must either complete or be refused cleanly by the queue
("queue is full"); then the server must still answer and generate.

Clients: `--client http` (default) speaks Gradio's documented call API (POST /gradio_api/call/generate, then the
event stream; one session per user), which costs the client ~4 ms of CPU per request, so on a small machine the
numbers are the server's; `--client gradio` uses `gradio_client.Client`, which spends ~0.2 s of CPU per request in
the same process and, with 20 of them, competes with the server for the cores.

Two servers in the same run, one after the other, same load: without continuous batching (`--no-batching
--float32 --concurrency 2 --max-queue 16`, the settings when issue 16 was filed) and as it is now (the defaults: one
shared decoding loop, int8 weights). For each: a warm-up request, a lone client (5 requests: the service time), the
crowd (closed loop: each client sends its next request when the last returns, so latency is about clients /
throughput), then open loop: requests arriving at random (Poisson) at fractions of the crowd's throughput, as
visitors of a public page do.
Goals (issue 16): crowd median latency <= 2x the lone median, nothing refused at the default queue size, notes per
second >= 4x the earlier server's.

    python benchmarks/demo_load.py                     # 20 clients x 3 requests; prints a table
    python benchmarks/demo_load.py --clients 40 --requests 2 --max-queue 64 --only now
    python benchmarks/demo_load.py --only now-float32,now --skip-generation-only   # what int8 decoding adds

Writes benchmarks/results/demo_load.json (machine, settings, per-request latencies).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from http.client import HTTPConnection, RemoteDisconnected
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
    "before": ["--no-batching", "--float32", "--concurrency", "2", "--max-queue", "16"],  # as when issue 16 was filed
    "now": [],  # the defaults (int8 decoding in one shared batch)
    "now-float32": ["--float32"],  # the same with float32 weights: what int8 decoding adds (not run by default)
}


def start_server(port: int, extra: list[str], max_queue: int | None, log: Path) -> subprocess.Popen:
    """`python -m toccata.demo` on 127.0.0.1:port, returned once it answers HTTP."""
    command = [sys.executable, "-m", "toccata.demo", "--host", "127.0.0.1", "--port", str(port)]
    command += [*extra, *(["--max-queue", str(max_queue)] if max_queue else [])]
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


def child_pids(pid: int) -> list[int]:
    """The running child processes of `pid` (the server's render workers)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU time (user + system) that process `pid` has used so far, in seconds (Linux /proc); with `children`, that
    of its child processes that have ended instead (a `fluidsynth` command per render, say)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # fields 3... of proc_pid_stat(5)
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server, its child processes (render workers, ended and running) and this load
    generator."""
    own = os.times()
    return {
        "server": cpu_seconds(server_pid),
        "children": cpu_seconds(server_pid, children=True) + sum(cpu_seconds(pid) for pid in child_pids(server_pid)),
        "load_generator": own.user + own.system,
    }


def outcome_of(status: str) -> tuple[str, int]:
    """("completed", notes) for the demo's "**Done**" status line, else ("unexpected: ...", 0)."""
    if not status.startswith("**Done**"):
        return f"unexpected: {status!r}", 0
    return "completed", sum(int(n) for n in re.findall(r"Variation \d+: (\d+) notes", status))


def gradio_user(url: str, index: int, requests: int, start: threading.Barrier, downloads: str) -> list[dict]:
    """One `gradio_client` user's bounded loop: (outcome, seconds, notes) of each request."""
    client = Client(url, verbose=False, download_files=downloads)
    start.wait()
    outcomes = []
    for number in range(requests):
        began = time.perf_counter()
        try:
            result = client.predict(**REQUEST, seed=index * 1000 + number, api_name="/generate")
            outcome, notes = outcome_of(str(result[0]))
        except QueueError:
            outcome, notes = "refused", 0
        except (AppError, ValueError, OSError) as err:
            outcome, notes = f"error: {err}", 0
        record = {"client": index, "outcome": outcome, "seconds": time.perf_counter() - began, "notes": notes}
        outcomes.append(record)
    return outcomes


class CallAPI:
    """Gradio's call API for /generate over one keep-alive connection and one session (as a browser tab has): POST the
    inputs (in the order /gradio_api/info lists them, defaults for the rest), read the event stream to its last
    event, GET the files the answer names."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        with urllib.request.urlopen(urllib.parse.urljoin(url, "gradio_api/info"), timeout=30) as response:
            parameters = json.load(response)["named_endpoints"]["/generate"]["parameters"]
        self.names = [p["parameter_name"] for p in parameters]
        self.defaults = {p["parameter_name"]: p.get("parameter_default") for p in parameters}
        self.connection = HTTPConnection(self.host, self.port, timeout=600)
        self.session_hash = secrets.token_hex(8)

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (BrokenPipeError, ConnectionResetError, RemoteDisconnected):
                # the server closed an idle keep-alive connection (uvicorn: after 5 s): reconnect, as browsers do
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def generate(self, **inputs: object) -> tuple[str, list]:
        """("completed" | "refused" | "error: ...", the answer's data) of one /generate call."""
        values = {**self.defaults, **inputs}
        body = json.dumps({"data": [values[name] for name in self.names], "session_hash": self.session_hash}).encode()
        status, answer = self._request("POST", "/gradio_api/call/generate", body)
        event_id = json.loads(answer or b"{}").get("event_id") if status == 200 else None
        if event_id is None:  # Gradio answers a full queue at once, without an event to follow
            text = answer.decode(errors="replace")
            return ("refused" if "queue is full" in text.lower() else f"error: HTTP {status} {text[:200]}"), []
        status, stream = self._request("GET", f"/gradio_api/call/generate/{event_id}")
        event, data = "", None
        for line in stream.decode().splitlines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        if event != "complete" or data is None:
            text = str(data)
            return ("refused" if "queue is full" in text.lower() else f"error: {event} {text[:200]}"), []
        return "completed", json.loads(data)

    def fetch_files(self, data: list) -> int:
        """GET every file the answer names (as the page loads the player, the image and the links); bytes read."""
        size = 0
        for url in file_urls(data):
            status, content = self._request("GET", urllib.parse.urlsplit(url).path)
            if status != 200:
                raise OSError(f"HTTP {status} for {url}")
            size += len(content)
        return size


def file_urls(value: object) -> list[str]:
    """The `url` of every Gradio FileData in an answer, however nested."""
    if isinstance(value, dict):
        own = [value["url"]] if value.get("meta", {}).get("_type") == "gradio.FileData" and value.get("url") else []
        return own + [url for item in value.values() for url in file_urls(item)]
    if isinstance(value, list):
        return [url for item in value for url in file_urls(item)]
    return []


def http_user(url: str, index: int, requests: int, start: threading.Barrier, downloads: str) -> list[dict]:
    """One call-API user's bounded loop: (outcome, seconds, notes) of each request, files fetched included."""
    api = CallAPI(url)
    start.wait()
    outcomes = []
    for number in range(requests):
        began = time.perf_counter()
        try:
            outcome, data = api.generate(**REQUEST, seed=index * 1000 + number)
            notes = 0
            if outcome == "completed":
                outcome, notes = outcome_of(str(data[0]))
                api.fetch_files(data)
        except (OSError, ValueError, KeyError, IndexError) as err:
            outcome, notes = f"error: {err!r}", 0
        record = {"client": index, "outcome": outcome, "seconds": time.perf_counter() - began, "notes": notes}
        outcomes.append(record)
    return outcomes


USERS = {"http": http_user, "gradio": gradio_user}


def run_phase(url: str, clients: int, requests: int, downloads: str, kind: str) -> tuple[list[dict], float]:
    """`clients` users at once, `requests` each; (records, wall seconds)."""
    barrier = threading.Barrier(clients)
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(USERS[kind], url, i, requests, barrier, downloads) for i in range(clients)]
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


def open_loop(url: str, rate: float, count: int, seed: int) -> tuple[list[dict], float]:
    """`count` requests arriving at random (a Poisson process of `rate` per second) whatever the server's pace, as
    visitors of a public page do; (records, wall seconds)."""
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, count))
    apis: queue.Queue[CallAPI] = queue.Queue()
    for _ in range(32):  # connections for the requests in flight
        apis.put(CallAPI(url))
    began = time.perf_counter()

    def visit(index: int) -> dict:
        time.sleep(max(0.0, began + arrivals[index] - time.perf_counter()))
        api, start = apis.get(), time.perf_counter()
        try:
            outcome, data = api.generate(**REQUEST, seed=50_000 + index)
            notes = 0
            if outcome == "completed":
                outcome, notes = outcome_of(str(data[0]))
                api.fetch_files(data)
        except (OSError, ValueError, KeyError, IndexError) as err:
            outcome, notes = f"error: {err!r}", 0
        finally:
            apis.put(api)
        return {"client": index, "outcome": outcome, "seconds": time.perf_counter() - start, "notes": notes}

    with ThreadPoolExecutor(64) as pool:
        records = list(pool.map(visit, range(count)))
    return records, time.perf_counter() - began


def measure(name: str, extra: list[str], args: argparse.Namespace, work: Path) -> dict:
    """Start one server, run the lone client, the crowd and the open-loop rates against it, stop it; its phases and
    health."""
    port = free_port()
    server = start_server(port, extra, args.max_queue, work / f"server-{name}.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        CallAPI(url).generate(**REQUEST, seed=0)  # warm-up, not counted: the first request loads the soundfont
        solo = summarise(f"{name}: 1 client", *run_phase(url, 1, 5, str(work), args.client))
        cpu_before = cpu_by_process(server.pid)
        crowd_records, crowd_wall = run_phase(url, args.clients, args.requests, str(work), args.client)
        crowd = summarise(f"{name}: {args.clients} clients at once", crowd_records, crowd_wall)
        cpu_after = cpu_by_process(server.pid)
        # Where the crowd's CPU went, per completed request; busy: all of it over the machine's CPU-seconds.
        done = max(crowd["completed"], 1)
        cpu = {key: round((cpu_after[key] - cpu_before[key]) / done, 3) for key in cpu_after}
        cpu["busy"] = round(sum(cpu.values()) * done / (crowd_wall * (os.cpu_count() or 1)), 2)
        opens = []
        for fraction in args.open_loop:  # arrival rates as fractions of what the crowd got through
            rate = fraction * crowd["completed_per_s"]
            label = f"{name}: arrivals {rate:.1f}/s ({fraction:.0%} of the crowd's)"
            before = cpu_by_process(server.pid)
            records, wall = open_loop(url, rate, args.open_requests, seed=int(fraction * 100))
            row = summarise(label, records, wall)
            # How busy the CPUs were: the machine's speed drifts, and a rate set from the crowd's throughput can
            # exceed what it gives a minute later (then requests queue and the median says so).
            used = sum(cpu_by_process(server.pid).values()) - sum(before.values())
            row["cpus_busy"] = round(used / (wall * (os.cpu_count() or 1)), 2)
            row["cpu_s_per_request"] = round(used / max(row["completed"], 1), 3)
            opens.append(row)
        alive = server.poll() is None and answers(url)
        outcome, after = CallAPI(url).generate(**REQUEST, seed=1)
        still_generates = outcome == "completed" and str(after[0]).startswith("**Done**")
        rss = peak_rss_mb(server.pid)
        workers_rss = sum(peak_rss_mb(pid) for pid in child_pids(server.pid))  # the FluidSynth render workers
    finally:
        server.terminate()
        server.wait(30)
    return {
        "server": name,
        "arguments": extra,
        "phases": [solo, crowd, *opens],
        "crowd_median_vs_lone": round(crowd["latency_p50_s"] / solo["latency_p50_s"], 2),
        "open_loop_median_vs_lone": {
            row["phase"]: round(row["latency_p50_s"] / solo["latency_p50_s"], 2) for row in opens
        },
        "server_alive_after": alive,
        "server_generates_after": still_generates,
        "server_peak_rss_mb": round(rss, 1),
        "render_workers_peak_rss_mb": round(workers_rss, 1),
        "crowd_cpu_s_per_request": cpu,
        "records": crowd_records,
    }


def generation_only(clients: int, requests: int, seconds: float) -> list[dict]:
    """In this process, without Gradio or rendering: `clients` threads each composing `requests` pieces of `seconds`
    of music (no prompt, the checkpoint's preset, one thread for torch), with and without the shared batcher; a lone
    client first each time. What continuous batching changes when generation is the work."""
    import torch
    from toccata.modeling import GenerationRequest, compose
    from toccata.modeling.batching import ContinuousBatcher
    from toccata.modeling.presets import preset_from_generation_config

    import toccata

    torch.set_num_threads(1)
    model, tokenizer = toccata.load_checkpoint()
    sampler, guards = preset_from_generation_config(model.generation_config)
    rows = []
    decodings = (
        ("own thread per request", None),
        ("shared batch, float32", ContinuousBatcher(model)),
        ("shared batch, int8 (the demo's)", ContinuousBatcher(model, int8=True)),
    )
    for name, batcher in decodings:

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
    parser.add_argument("--max-queue", type=int, help="both servers' --max-queue (default: each server's own)")
    parser.add_argument(
        "--only",
        type=lambda text: [name for name in text.split(",") if name],
        help=f"measure these servers only, in this order (comma-separated: {', '.join(SERVERS)})",
    )
    parser.add_argument("--client", choices=sorted(USERS), default="http", help="how the users call (default: http)")
    parser.add_argument("--skip-generation-only", action="store_true", help="only the servers")
    parser.add_argument(
        "--open-loop",
        type=lambda text: [float(x) for x in text.split(",") if x],
        default=[0.25, 0.5, 0.75],
        help="after the crowd, requests arriving at random at these fractions of the crowd's completed/s "
        "(default: 0.25,0.5,0.75; empty: none)",
    )
    parser.add_argument("--open-requests", type=int, default=40, help="requests per open-loop rate")
    parser.add_argument(
        "--generation-seconds", type=float, default=30.0, help="generation-only phase: seconds of music per request"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_load.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="toccata-load-"))
    servers = args.only or ["before", "now"]
    unknown = [name for name in servers if name not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}: choose among {', '.join(SERVERS)}")
    runs = [measure(name, SERVERS[name], args, work) for name in servers]

    queue_size = f"--max-queue {args.max_queue}" if args.max_queue else "each server's queue size"
    print(f"{os.cpu_count()} CPUs; {args.client} clients, each sending its requests one after another; {queue_size}\n")
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
            f"peak RSS {run['server_peak_rss_mb']:.0f} MB (render workers: {run['render_workers_peak_rss_mb']:.0f} MB)"
        )
        cpu = run["crowd_cpu_s_per_request"]
        print(
            f"{run['server']}: crowd CPU per request: server {cpu['server']:.3f} s, its child processes (rendering) "
            f"{cpu['children']:.3f} s, load generator {cpu['load_generator']:.3f} s; the CPUs {cpu['busy']:.0%} busy"
        )
        for row in run["phases"][2:]:
            print(
                f"{row['phase']}: median / lone median {run['open_loop_median_vs_lone'][row['phase']]:.2f} "
                f"(CPUs {row['cpus_busy']:.0%} busy, {row['cpu_s_per_request']:.3f} CPU-s a request)"
            )
    for run in runs[1:]:
        gain = run["phases"][1]["notes_per_s"] / max(runs[0]["phases"][1]["notes_per_s"], 1e-9)
        print(f"crowd notes/s, {run['server']} / {runs[0]['server']}: {gain:.2f}x")
    generation = (
        [] if args.skip_generation_only else generation_only(args.clients, args.requests, args.generation_seconds)
    )
    if generation:
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
        own, float32, int8 = (row["notes_per_s"] for row in generation)
        print(
            f"generation notes/s, shared batch / own threads: {float32 / own:.2f}x; "
            f"int8 / float32 in the shared batch: {int8 / float32:.2f}x"
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
