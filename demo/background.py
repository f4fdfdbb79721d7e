"""Run a long job in a worker thread and stream its progress as a generator that can be cancelled by closing it.

Gradio closes a handler's generator when the user presses Stop or disconnects; `finally` then sets the job's
cancel event, which `compose()` checks after every token. The generator yields every `poll_s` seconds, so that
closing it never waits for a busy `next()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
WORKER_NAME = "toccata-demo-job"


@dataclass(frozen=True)
class Progress:
    """Tokens generated so far out of the token budget (0 of 0 while the prompt is being read)."""

    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class Finished(Generic[T]):
    """The job's return value."""

    value: T


class _Tracker:
    """The latest (done, total) a job reported; written by the worker, read by the generator (a tuple swap)."""

    def __init__(self) -> None:
        self.latest = Progress()

    def __call__(self, done: int, total: int) -> None:
        self.latest = Progress(done, total)


def run_in_background(
    job: Callable[[Callable[[int, int], None], threading.Event], T], poll_s: float = 0.25
) -> Iterator[Progress | Finished[T]]:
    """Start `job(progress, cancel)` in a thread; yield `Progress` every `poll_s` s, then `Finished(result)`.

    The job's exception is raised from the generator. Closing the generator early sets `cancel`.
    """
    cancel, tracker = threading.Event(), _Tracker()
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["value"] = job(tracker, cancel)
        except BaseException as err:  # noqa: BLE001 - handed to the generator, which re-raises it
            outcome["error"] = err

    worker = threading.Thread(target=work, name=WORKER_NAME, daemon=True)
    worker.start()
    try:
        while True:
            worker.join(poll_s)
            if not worker.is_alive():
                break
            yield tracker.latest
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        yield Finished(outcome["value"])  # type: ignore[arg-type]
    finally:
        cancel.set()
