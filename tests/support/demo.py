"""Shared by the demo tests: a real demo server in a child process, and the skip-or-fail rule for system tools."""

from __future__ import annotations

import ctypes
import ctypes.util
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

ROOT = Path(__file__).resolve().parents[2]  # tests/support/demo.py
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
    from toccata.rendering import Synth

    require(Synth.find() is not None, "FluidSynth with a General MIDI soundfont")


def require_chromium() -> None:
    require(Path(CHROMIUM).is_file() or shutil.which("chromium") is not None, f"Chromium ({CHROMIUM})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def audio_peak(path: str | os.PathLike) -> float:
    """Peak absolute sample (0..1) of a 16-bit WAV or FLAC file: > 0 means something is audible."""
    if Path(path).suffix.lower() == ".flac":
        samples = audio_samples(path)[1]
    else:
        with wave.open(str(path), "rb") as audio:
            assert audio.getsampwidth() == 2, "FluidSynth writes 16-bit PCM by default"
            samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
    return float(np.abs(samples.astype(np.int32)).max() / 32768) if samples.size else 0.0


class _SoundInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def audio_samples(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """(sample rate, int16 frames × channels) of a WAV or FLAC file, read by libsndfile (which FluidSynth writes
    with), so that a FLAC's samples can be compared with a WAV's."""
    found = ctypes.util.find_library("sndfile")
    require(found is not None, "libsndfile (installed with FluidSynth)")
    lib = ctypes.CDLL(found)
    lib.sf_open.restype, lib.sf_open.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    lib.sf_readf_short.restype = ctypes.c_int64
    lib.sf_readf_short.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    info = _SoundInfo()
    handle = lib.sf_open(os.fsencode(path), 0x10, ctypes.byref(info))  # SFM_READ
    assert handle, f"libsndfile cannot read {path}"
    try:
        samples = np.zeros((info.frames, info.channels), dtype=np.int16)
        read = lib.sf_readf_short(handle, samples.ctypes.data, info.frames)
    finally:
        lib.sf_close(handle)
    assert read == info.frames, f"{path}: read {read} of {info.frames} frames"
    return info.samplerate, samples


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
