"""Continuous batching: one decoding loop serves every concurrent request of a model.

An LSTM's state is a fixed-size (h, c) per row, so a request's rows can join a running batch between two steps and
leave when they are done; nothing is padded or recomputed. Many small requests then share each step's weight reads,
which is where a CPU spends its time at small batch. Each request keeps its own sampler, seed, guards and length
(`DecodeBatch` keeps its rows together and draws them with the request's generator), so a request gives the same
music alone or in company.

    batcher = ContinuousBatcher(model)
    pieces = compose(model, tokenizer, request, batcher=batcher)   # from any number of threads at once
"""

from __future__ import annotations

import queue
import threading

import torch

from .decoding import DecodeBatch, DecodeJob

MAX_ROWS = 64  # rows decoded at once; later requests wait for rows to free up


class ContinuousBatcher:
    """A daemon thread that decodes every submitted `DecodeJob` in one shared `DecodeBatch`.

    `run(job)` blocks the calling thread until its job is done (or cancelled through `job.cancel`). `max_rows`
    bounds the batch, and so memory and per-step latency; a job waits in line while its rows do not fit.
    """

    def __init__(self, model, max_rows: int = MAX_ROWS, name: str = "toccata-batcher", int8: bool = False):
        self.model, self.max_rows, self.name, self.int8 = model, max_rows, name, int8
        self._queue: queue.SimpleQueue[DecodeJob] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.peak_rows = 0  # the most rows decoded together so far

    def run(self, job: DecodeJob, *more: DecodeJob) -> DecodeJob:
        """Decode `job` (and `more` jobs) with whatever else is running; returns `job` done (tokens, or `cancelled`),
        once all of them are. Raises the first error of any."""
        jobs = (job, *more)
        for each in jobs:
            if each.rows > self.max_rows:
                raise ValueError(f"a request of {each.rows} rows does not fit a batch of {self.max_rows}; ask for fewer")
        self._start()
        for each in jobs:
            self._queue.put(each)
        for each in jobs:
            each.finished.wait()
        for each in jobs:
            if each.error is not None:
                raise each.error
        return job

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        batch, waiting = DecodeBatch(self.model, int8=self.int8), []
        with torch.inference_mode():
            while True:
                if not len(batch) and not waiting:
                    waiting.append(self._queue.get())  # idle: sleep until a request comes
                while True:
                    try:
                        waiting.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                waiting = self._admit(batch, waiting)
                try:
                    batch.step()
                except Exception as err:  # noqa: BLE001 - every running request gets the error; the loop goes on
                    batch.fail(err)
                self.peak_rows = max(self.peak_rows, batch.rows)

    def _admit(self, batch: DecodeBatch, waiting: list[DecodeJob]) -> list[DecodeJob]:
        """Add waiting jobs, first come first served, while their rows fit; returns those still waiting."""
        still = []
        for job in waiting:
            if job.cancel is not None and job.cancel.is_set():
                job.cancelled = True
                job.finished.set()
            elif still or batch.rows + job.rows > self.max_rows:
                still.append(job)
            else:
                try:
                    batch.add(job)
                except Exception as err:  # noqa: BLE001 - a bad prompt fails its own request only
                    job.error = err
                    job.finished.set()
        return still


__all__ = ["MAX_ROWS", "ContinuousBatcher"]
