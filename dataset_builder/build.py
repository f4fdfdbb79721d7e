"""`build_dataset`: one call for a whole build, on the engine asked for (local processes, or a Ray cluster).

Apart from `builder` (the `datasets` builder the local engine runs) so that the Ray engine, which reuses the
builder's row making, and this dispatcher do not import each other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import datasets

from .builder import ToccataBuilder
from .engines import ENGINES


def build_dataset(
    out_dir: str | os.PathLike,
    *,
    num_proc: int = 1,
    engine: str = "local",
    address: str | None = None,
    **config_kwargs: Any,
) -> ToccataBuilder:
    """Build (or rebuild) a Toccata dataset as parquet shards + card + rejects manifest in `out_dir`.

    `config_kwargs` are `ToccataConfig` fields (sources, transpositions, seed, ...). The work folder (default
    ``<out_dir>.work``) keeps per-file results, so a rebuild, or a restart after a crash, redoes only what it lacks.
    `engine`: "local" (`num_proc` processes) or "ray" (`engines.ray_engine`: the cluster at `address`, or a local one
    of `num_proc` CPUs; `out_dir` may then be an fsspec URL). Both give the same rows, splits and rejects.
    """
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc must be a whole number of processes, 1 or more; got {num_proc!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "ray":
        try:
            from .engines.ray_engine import build_with_ray  # optional: Ray is the `toccata[ray]` extra
        except ImportError as err:
            raise ValueError(f"--engine ray needs Ray ({err}): pip install 'toccata[ray]'") from None
        return build_with_ray(os.fspath(out_dir), address=address, num_cpus=num_proc, **config_kwargs)
    if address is not None:
        raise ValueError("address is for engine='ray' (a Ray cluster); the local engine runs on this machine")
    out = Path(out_dir).expanduser()
    config_kwargs.setdefault("work_dir", str(out) + ".work")
    work = Path(config_kwargs["work_dir"]).expanduser()
    new_paths = _missing_paths(out, work)
    try:
        builder = ToccataBuilder(cache_dir=str(work / "datasets-cache"), **config_kwargs)
        builder.download_and_prepare(
            str(out), file_format="parquet", num_proc=num_proc, download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD
        )
    except BaseException:
        _remove_unused(new_paths, work)
        raise
    return builder


WORK_SCAFFOLD = ("datasets-cache", "plan")  # what a work folder holds before any file is analysed, crawled or converted


def _missing_paths(out: Path, work: Path) -> list[Path]:
    """What a build would create that is not there yet: the work folder, datasets' ``OUT_builder.lock`` and the
    first missing folder above OUT (datasets makes OUT's parents), so that a refused build can take them away."""
    candidates = [work, Path(str(out) + "_builder.lock")]
    first_missing = next((parent for parent in reversed(out.parents) if not parent.exists()), None)
    if first_missing is not None:
        candidates.append(first_missing)
    return [path for path in candidates if not path.exists() and not path.is_symlink()]


def _remove_unused(new_paths: list[Path], work: Path) -> None:
    """After a build that failed: remove what it created (`_missing_paths`) unless it holds work worth resuming.

    A work folder with per-file results, conversions or crawls stays (the next run resumes from it); one holding only
    datasets' cache stub and empty plans (a build refused for a bad source, output or setting) goes, as do the lock
    file and new parent folders left empty.
    """
    for path in new_paths:
        if path == work:
            if path.is_dir() and all(child.name in WORK_SCAFFOLD for child in path.iterdir()):
                shutil.rmtree(path, ignore_errors=True)
        elif path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir() and not any(child.is_file() for child in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)  # nothing but empty folders in it
