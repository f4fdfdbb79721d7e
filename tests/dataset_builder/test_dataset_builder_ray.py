"""The Ray engine (`toccata build-dataset --engine ray`) on a local cluster of 2 CPUs: the same rows, splits and
rejects as the local build of the same folder and seed, also when a Ray worker or the driver is killed mid-build, and
a driver whose memory does not grow with the number of files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import ray
import symusic
from datasets import load_dataset
from support.midi_files import make_score
from toccata.cli import main
from toccata.dataset_builder import build_dataset
from toccata.dataset_builder.engines.ray_engine import DELAY_ENV
from toccata.dataset_builder.pipeline import ALL_SPLITS
from toccata.tokenization.midi_io import music21_corpus_midi

pytestmark = pytest.mark.slow  # a Ray cluster takes ~10 s to start on 2 busy cores; CI runs these
OPTIONS = dict(train_fraction=0.6, validation_fraction=0.2, test_fraction=0.2, seed=3, transpositions=(0, 2))
OPTIONS["unseen_composers"] = ("Synth2",)  # every piece of one composer held out: a step of the driver's planner
TASK = "ray::_map_chunk"  # the process title of a Ray worker running an analysis task


def _piece(seed: int) -> bytes:
    """A random two-hand piece of 16 quarters, different for every seed."""
    rng = np.random.default_rng(seed)
    notes = []
    for beat in range(32):
        for pitch in rng.choice(np.arange(40, 90), size=rng.integers(1, 4), replace=False):
            notes.append((beat * 240, beat * 240 + 240 * int(rng.integers(1, 4)), int(pitch)))
    return bytes(make_score([notes], qpm=100.0).dumps_midi())


def _edited(data: bytes) -> bytes:
    """Another edition: one note moved an octave (other notes, most n-grams shared: a near-duplicate)."""
    score = symusic.Score.from_midi(data)
    score.tracks[0].notes[10].pitch += 12
    return bytes(score.dumps_midi())


def _transposed(data: bytes, shift: int) -> bytes:
    score = symusic.Score.from_midi(data)
    for track in score.tracks:
        track.shift_pitch(shift, inplace=True)
    return bytes(score.dumps_midi())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real chorales and crafted pieces under composer folders, with a copy, a transposed copy, another edition, a
    corrupt and an empty file; another file of a work (left out), whose copy elsewhere is then kept; another edition
    under another spelling of its composer's folder."""
    root = tmp_path_factory.mktemp("ray-midi")
    chorale = music21_corpus_midi("bach/bwv66.6")
    files = {
        "Bach/bwv66.mid": chorale,
        "Bach/bwv66_edit.mid": _edited(chorale),
        "Bach/bwv26.mid": music21_corpus_midi("bach/bwv26.6"),
        "copies/bwv66.mid": chorale,
        "copies/up3.mid": _transposed(chorale, 3),
        "broken/truncated.mid": chorale[: len(chorale) // 2],
        "broken/empty.mid": b"",
        "Bach/midi/bwv26_no_repeat.mid": _piece(100),  # the work of Bach/bwv26.mid, other notes: duplicate_work
        "copies/other.mid": _piece(100),  # its bytes, but the file that had them first was left out: kept
        "synth1/piece99.mid": _edited(_piece(1)),  # Synth1/piece01.mid, under "synth1": the same composer
    }
    files.update({f"Synth{i % 3}/piece{i:02d}.mid": _piece(i) for i in range(12)})
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def local(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    build_dataset(out, sources=[str(folder)], **OPTIONS)
    return out


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster for the module, always shut down."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(out: Path) -> dict[str, list[dict]]:
    """Every split's rows in order, read straight from the parquet shards."""
    rows = {}
    for split in ALL_SPLITS:
        paths = sorted(out.glob(f"*-{split}.parquet")) + sorted(out.glob(f"*-{split}-*.parquet"))
        rows[split] = [row for path in paths for row in pq.read_table(path).to_pylist()]
    return rows


def _assert_same_build(ray_out: Path, local_out: Path) -> None:
    assert _rows(ray_out) == _rows(local_out)
    assert (ray_out / "rejects.jsonl").read_bytes() == (local_out / "rejects.jsonl").read_bytes()
    assert (ray_out / "LICENSE").read_bytes() == (local_out / "LICENSE").read_bytes()
    assert not list(ray_out.glob(".*"))  # no temporary shard, no build-in-progress mark


def test_ray_build_equals_the_local_build(cluster, folder: Path, local: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    builder = build_dataset(out, engine="ray", sources=[str(folder)], pieces_per_shard=3, files_per_task=4, **OPTIONS)
    _assert_same_build(out, local)
    rows = _rows(local)
    assert all(rows[split] for split in ("train", "validation", "test"))
    assert len(list(out.glob("toccata-train-*-of-*.parquet"))) > 1  # several shards, several tasks
    reasons = {json.loads(line)["reason"] for line in (local / "rejects.jsonl").read_text().splitlines()}
    assert {"duplicate", "duplicate_notes", "duplicate_work", "near_duplicate", "parse_error", "empty"} <= reasons
    assert rows["unseen_composers"]
    assert any(row["path"] == "copies/other.mid" for split in rows.values() for row in split)
    loaded = load_dataset(str(out))  # the card's YAML lists the shards
    assert {split: len(loaded[split]) for split in loaded} == {s: len(r) for s, r in rows.items() if r}
    assert builder.stats.rows == build_dataset(tmp_path / "again", sources=[str(folder)], **OPTIONS).stats.rows


def test_ray_build_keeps_the_splits_of_an_earlier_build(cluster, folder: Path, local: Path, tmp_path: Path) -> None:
    options = {**OPTIONS, "seed": 4, "splits_from": str(local)}  # another seed: only the pins keep the splits
    build_dataset(tmp_path / "local", sources=[str(folder)], **options)
    build_dataset(tmp_path / "ray", engine="ray", sources=[str(folder)], files_per_task=4, **options)
    _assert_same_build(tmp_path / "ray", tmp_path / "local")
    ids = {split: {row["id"] for row in rows} for split, rows in _rows(local).items()}
    assert {split: {row["id"] for row in rows} for split, rows in _rows(tmp_path / "ray").items()} == ids


def _our_tasks() -> list[psutil.Process]:
    """Ray workers of this process's cluster running an analysis task."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if " ".join(process.cmdline()).startswith(TASK):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_killed_worker_loses_and_duplicates_no_row(
    cluster, folder: Path, local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DELAY_ENV, "0.4")  # each file waits: the kill lands while tasks are running
    out, killed = tmp_path / "ray", []
    cache = Path(str(out) + ".work") / "analysis"

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not killed:
            tasks = _our_tasks()
            if tasks and cache.is_dir() and sum(1 for _ in cache.rglob("*.json")) >= 2:
                os.kill(tasks[0].pid, signal.SIGKILL)
                killed.append(tasks[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    build_dataset(out, engine="ray", sources=[str(folder)], pieces_per_shard=3, files_per_task=8, **OPTIONS)
    killer.join()
    assert killed, "no analysis task was running to kill"
    _assert_same_build(out, local)


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


def test_a_killed_driver_resumes(cluster, folder: Path, local: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    cache = Path(str(out) + ".work") / "analysis"
    script = (
        "import sys; from toccata.dataset_builder import build_dataset; "
        f"build_dataset(sys.argv[1], engine='ray', num_proc=2, sources=[sys.argv[2]], **{OPTIONS!r})"
    )
    env = {**os.environ, DELAY_ENV: "0.4"}
    its_cluster: list[psutil.Process] = []
    driver = subprocess.Popen(
        [sys.executable, "-c", script, str(out), str(folder)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline:
            if cache.is_dir() and sum(1 for _ in cache.rglob("*.json")) >= 3:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the build ended before it could be killed"
        its_cluster = psutil.Process(driver.pid).children(recursive=True)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        core = [p for p in its_cluster if _name(p).startswith(("raylet", "gcs_server", "ray::_map_chunk", "ray::IDLE"))]
        _, alive = psutil.wait_procs(core, timeout=30)
        assert not alive, f"the killed driver's Ray processes stayed: {[_name(p) for p in alive]}"
    finally:
        driver.kill()
        for process in its_cluster:  # Ray's agents (RuntimeEnvAgent, DashboardAgent) notice a dead raylet slowly
            with contextlib.suppress(psutil.Error):
                process.kill()
    assert not (out / "dataset_info.json").exists()
    analysed = {path: path.stat().st_mtime_ns for path in cache.rglob("*.json")}
    build_dataset(out, engine="ray", sources=[str(folder)], **OPTIONS)  # the same command again
    _assert_same_build(out, local)
    assert {path: path.stat().st_mtime_ns for path in analysed} == analysed  # files analysed before are not redone


def test_cli_builds_on_ray_to_an_fsspec_url(cluster, folder: Path, local: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ray"
    argv = ["build-dataset", "--source", str(folder), "--out", f"file://{out}", "--engine", "ray"]
    argv += ["--splits", "0.6,0.2,0.2", "--seed", "3", "--transpositions", "0,2", "--unseen-composers", "Synth2"]
    assert main(argv) == 0
    assert "read 22 files" in capsys.readouterr().err
    _assert_same_build(out, local)


def _peak_bytes(out: Path, folder: Path, engine: str, **options) -> int:
    """The peak of the Python memory this process (the driver) allocated during one build (tracemalloc)."""
    tracemalloc.start()
    try:
        build_dataset(out, engine=engine, sources=[str(folder)], **options)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_ray_driver_holds_nothing_per_file(cluster, tmp_path: Path) -> None:
    """The driver's peak memory per file added, from 100 to 400 distinct pieces of 4 composers. The local build's
    planner keeps ~5 KB a piece, and this measure sees it; the Ray build's driver must keep nothing per file (small
    tasks and shards, so that what it holds per task is reached at both sizes)."""
    sizes, work = (100, 400), tmp_path / "work"  # one work folder: the Ray workers' analyses serve the local builds
    for size in sizes:
        for index in range(size):
            path = tmp_path / f"n{size}" / f"Composer{index % 4}" / f"piece{index:03d}.mid"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_piece(1000 + index))
    per_file = {}
    for engine, options in (("ray", dict(files_per_task=50, pieces_per_shard=50)), ("local", {})):
        peaks = [  # the first build of each engine pays for what a process sets up once: not measured
            _peak_bytes(tmp_path / f"{engine}-{run}", tmp_path / f"n{size}", engine, work_dir=str(work), **options)
            for run, size in enumerate((sizes[0], *sizes))
        ][1:]
        per_file[engine] = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    assert per_file["local"] > 2000, per_file  # the measure sees a planner's tables
    assert per_file["ray"] < 1000, per_file  # measured: ~140 bytes, the tasks' handles (a task per 50 files here)


def test_cli_address_without_the_ray_engine_is_refused(folder: Path, tmp_path: Path, capsys) -> None:
    argv = ["build-dataset", "--source", str(folder), "--out", str(tmp_path / "out"), "--address", "auto"]
    assert main(argv) == 2
    assert "address is for engine='ray'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
