"""Shared fixtures: a tiny Toccata dataset built from music21's bundled corpus (real chorales, ~5 s to build)."""

from __future__ import annotations

import os
from pathlib import Path

# One torch thread per test process: CI machines have 2 cores, and several threads per process on a busy machine
# make torch's OpenMP workers spin against each other (a 6x slowdown seen in the training tests).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

TINY_SOURCES = ("corpus:bach/bwv25*,bach/bwv26*",)  # 22 chorales


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built dataset folder (parquet splits + card) of 22 Bach chorales, split by piece 60/20/20."""
    from toccata.dataset_builder import build_dataset

    out = tmp_path_factory.mktemp("tiny-dataset") / "toccata-tiny"
    build_dataset(out, sources=TINY_SOURCES, train_fraction=0.6, validation_fraction=0.2, test_fraction=0.2, seed=0)
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices gain nothing from intra-op threads, and on a busy 2-core machine the threads' spinning makes
    one-token steps many times slower. Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    """Markers of the demo tests (CI runs them all; `-m "not browser"` deselects them locally)."""
    config.addinivalue_line("markers", "server: starts a real demo server on 127.0.0.1")
    config.addinivalue_line("markers", "browser: drives a real headless Chromium against a real demo server")
