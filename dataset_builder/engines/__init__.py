"""Engines: where the per-file work of a build runs. One interface, two engines.

An engine maps a function over the source's items and hands the results back in source order (`Engine.map_ordered`):
everything that depends on order (which of two duplicates is kept) then happens in one `Planner`, the same for every
engine (`planning.plan_build`). The local engine runs `ordered_map` over worker processes and writes rows with the
`datasets` builder; the Ray engine (`ray_engine`, ``pip install toccata[ray]``) runs the same per-file analysis and
the same row making (`builder._rows`) as Ray tasks, and its tasks write the parquet shards themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ..pipeline import ordered_map

T = TypeVar("T")
R = TypeVar("R")
ENGINES = ("local", "ray")


class Engine(Protocol):
    """Runs the per-file step of a build."""

    def map_ordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """`map(fn, items)`, results in input order, with bounded memory however many items there are."""
        ...


@dataclass(frozen=True)
class LocalEngine:
    """Worker processes on this machine (`ordered_map`)."""

    num_proc: int = 1

    def map_ordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return ordered_map(fn, items, num_proc=self.num_proc)


__all__ = ["ENGINES", "Engine", "LocalEngine"]
