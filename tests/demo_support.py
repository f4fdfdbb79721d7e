"""Shared by the demo tests: a real demo server in a child process, and the skip-or-fail rule for system tools."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require(available: bool, what: str) -> None:
    """Skip when a system tool is missing on a developer machine; fail under CI (CI=true), which must have it."""
    if available:
        return
    message = (
        f"{what} is missing (Debian: make system-packages, or apt-get install chromium fluidsynth fluid-soundfont-gm)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_fluidsynth() -> None:
    from toccata.audio import Synth

    require(Synth.find() is not None, "FluidSynth with a General MIDI soundfont")


def require_chromium() -> None:
    require(Path(CHROMIUM).is_file() or shutil.which("chromium") is not None, f"Chromium ({CHROMIUM})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wav_peak(path: str | os.PathLike) -> float:
    """Peak absolute sample (0..1) of a 16-bit PCM WAV file: > 0 means something is audible."""
    with wave.open(str(path), "rb") as audio:
        assert audio.getsampwidth() == 2, "FluidSynth writes 16-bit PCM by default"
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
    return float(np.abs(samples.astype(np.int32)).max() / 32768) if len(samples) else 0.0


@dataclass(frozen=True)
class RunningServer:
    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def demo_server(*args: str, log: Path) -> Iterator[RunningServer]:
    """`python -m toccata.demo --host 127.0.0.1 --port N ARGS` in a child process, stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    env["TOCCATA_ANSWERS"] = str(log.parent / "answers.sqlite")  # never the user's own answers file
    command = [sys.executable, "-m", "toccata.demo", "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        try:
            wait_until_up(url, server, log)
            yield RunningServer(url, server, log)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)


def wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the demo server exited with {server.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the demo server did not answer within {timeout_s:g} s:\n{log.read_text(errors='replace')[-3000:]}")


def is_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False
