"""Engines: where the per-file work of a build runs. Two engines, one `Planner` (`pipeline.py`) deciding.

The local engine maps the per-file function over the source's items and hands the results back in source order
(`Engine.map_ordered`, `LocalEngine`): `planning.plan_build` then dedups and splits them in one `Planner` in the build
process, and the `datasets` builder writes the rows. The Ray engine (`ray_engine`, ``pip install toccata[ray]``) runs
the same per-file analysis as Ray tasks, shuffles the files by key into groups that no duplicate relation crosses and
plans each group with the same `Planner` on a worker (`ray_planning`), so that its driver holds nothing per file; its
tasks then make the rows (`builder._rows`) and write the parquet shards themselves. Both give the same dataset.
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
