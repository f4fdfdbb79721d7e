"""Run a `bytes -> bytes` function on untrusted input in a fresh Python process with a time and memory limit.

    python -m toccata.demo.sandbox MODULE:FUNCTION MEMORY_BYTES   < input  > output

A fresh interpreter (not `multiprocessing`): safe to start from a threaded server, it never re-imports the
server's main script, and it starts in ~0.1 s because it imports only the target's module. Bytes, not pickles,
come back, so even a compromised child cannot make the server run code.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

EXIT_USER_ERROR, EXIT_MEMORY = 2, 3


class SandboxError(RuntimeError):
    """The child ran out of time or memory, or died; or the function refused the input (`user_error`)."""

    def __init__(self, message: str, user_error: bool = False):
        super().__init__(message)
        self.user_error = user_error


def run_isolated(target: str, data: bytes, timeout_s: float, memory_bytes: int) -> bytes:
    """`target` ("module:function", bytes -> bytes) applied to `data` in a child process that may use
    `memory_bytes` more address space than it starts with, for `timeout_s` seconds. Raises `SandboxError`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    command = [sys.executable, "-m", __name__, target, str(memory_bytes)]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        raise SandboxError(f"reading did not finish within {timeout_s:g} s") from None
    message = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode == EXIT_USER_ERROR:
        raise SandboxError(message.splitlines()[-1] if message else "the input was refused", user_error=True)
    if done.returncode == EXIT_MEMORY:
        raise SandboxError(f"reading needed more than {memory_bytes // 1024**2} MB of memory")
    if done.returncode != 0:
        raise SandboxError(f"the reader crashed (exit code {done.returncode})")
    return done.stdout


def reparse_midi(data: bytes) -> bytes:
    """The target for uploads: parse MIDI with symusic and write it back, so the server only ever parses symusic's
    own well-formed output. (symusic directly, not `midi_io`: importing toccata.tokenization costs 1.5 s of torch.)"""
    import symusic  # start-up: the sandbox's child imports only what its target needs, and starts in ~0.1 s

    try:
        return symusic.Score.from_midi(data).dumps_midi()
    except Exception as err:  # noqa: BLE001 - symusic raises RuntimeError and friends with terse messages
        raise ValueError(f"cannot be parsed as MIDI ({err})") from None


def _limit_memory(extra_bytes: int) -> None:
    """Cap this process's address space at what it maps now plus `extra_bytes` (Linux; a no-op elsewhere)."""
    try:
        import resource  # optional: Unix only; elsewhere no cap (ImportError below)

        with open("/proc/self/statm") as statm:
            in_use = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        limit = in_use + extra_bytes if hard == resource.RLIM_INFINITY else min(in_use + extra_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass


def main(argv: list[str]) -> int:
    """The child: import the target, cap memory, read stdin, write the result to stdout."""
    target, memory_bytes = argv[0], int(argv[1])
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    _limit_memory(memory_bytes)
    data = sys.stdin.buffer.read()
    try:
        result = function(data)
    except MemoryError:
        return EXIT_MEMORY
    except ValueError as err:  # the function's way of saying "bad input", with a message for the user
        print(err, file=sys.stderr)
        return EXIT_USER_ERROR
    sys.stdout.buffer.write(result)
    return 0


if __name__ == "__main__":  # an internal child process (the demo parses uploads in it), not a user-facing command
    sys.exit(main(sys.argv[1:]))
