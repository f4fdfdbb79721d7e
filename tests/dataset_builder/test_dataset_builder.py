"""The dataset builder end to end: folder and music21 sources, dedup, rejects, splits, determinism, resume, CLI.

The fixture folder holds real MIDI (works of music21's corpus, converted by Toccata), pieces written by the test, and
every kind of bad file the builder must survive: truncated, garbage, empty, silent, too short, too large, an exact
copy and a transposed copy at another tempo and resolution.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import symusic
from datasets import load_dataset
from support.midi_files import END_OF_TRACK, make_score, smf, vlq
from huggingface_hub import DatasetCard
from toccata.dataset_builder import (
    FEATURES,
    FolderSource,
    Music21CorpusSource,
    ToccataConfig,
    assign_split,
    build_dataset,
    note_fingerprint,
    push_to_hub,
    read_sidecar,
)
from toccata.dataset_builder.pipeline import SPLITS
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import NoteArrays, load_score, music21_corpus_midi
from toccata.tokenization.tokenization_base import quantize_notes

FRACTIONS = {"train_fraction": 0.5, "validation_fraction": 0.25, "test_fraction": 0.25}
OPTIONS = {**FRACTIONS, "max_file_bytes": 200_000}
SYNTHETIC = 12
GOOD = {"chorale.mid", "schoenberg.MID", "folk/altdeu1.midi", "folk/altdeu2.kar"} | {
    f"synth/piece{i:02d}.mid" for i in range(SYNTHETIC)
}
BAD = {
    "truncated.mid": "parse_error",
    "garbage.mid": "parse_error",
    "empty.mid": "empty",
    "silent.mid": "empty",
    "short.mid": "too_short",
    "big.mid": "too_large",
    "copies/chorale_copy.mid": "duplicate",
    "transposed.mid": "duplicate_notes",
}


def _synthetic_piece(seed: int) -> bytes:
    """A random two-hand piece of 16 quarters (480 ticks per quarter), different for every seed."""
    rng = np.random.default_rng(seed)
    notes = []
    for beat in range(32):
        start = beat * 240
        for pitch in rng.choice(np.arange(40, 90), size=rng.integers(1, 4), replace=False):
            notes.append((start, start + 240 * int(rng.integers(1, 4)), int(pitch)))
    return bytes(make_score([notes], qpm=100.0).dumps_midi())


def _transposed_copy(data: bytes, shift: int) -> bytes:
    """The same notes moved by `shift` semitones, at 60 bpm and 960 ticks per quarter (other bytes entirely)."""
    score = symusic.Score.from_midi(data).resample(960)
    for tempo in score.tempos:
        tempo.qpm = 60.0
    for track in score.tracks:
        track.shift_pitch(shift, inplace=True)
    return bytes(score.dumps_midi())


@pytest.fixture(scope="module")
def corpus_bytes() -> dict[str, bytes]:
    works = {
        "chorale": "bach/bwv66.6",
        "schoenberg": "schoenberg/opus19/movement2.mxl",
        "folk1": "essenFolksong/altdeu10.abc#1",
        "folk2": "essenFolksong/altdeu10.abc#2",
    }
    return {name: music21_corpus_midi(work) for name, work in works.items()}


@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory: pytest.TempPathFactory, corpus_bytes: dict[str, bytes]) -> Path:
    root = tmp_path_factory.mktemp("midi")
    chorale = corpus_bytes["chorale"]
    files = {
        "chorale.mid": chorale,
        "schoenberg.MID": corpus_bytes["schoenberg"],
        "folk/altdeu1.midi": corpus_bytes["folk1"],
        "folk/altdeu2.kar": corpus_bytes["folk2"],
        "truncated.mid": chorale[: len(chorale) // 2],
        "garbage.mid": bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8)),
        "empty.mid": b"",
        "silent.mid": bytes(make_score([[]]).dumps_midi()),
        "short.mid": bytes(make_score([[(0, 480, 60)]]).dumps_midi()),
        "big.mid": b"MThd" + bytes(250_000),
        "copies/chorale_copy.mid": chorale,
        "transposed.mid": _transposed_copy(chorale, 3),
        "notes.txt": b"not a MIDI file, and not read",
        ".hidden.mid": chorale,
        ".git/x.mid": chorale,
    }
    files.update({f"synth/piece{i:02d}.mid": _synthetic_piece(i) for i in range(SYNTHETIC)})
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "metadata.csv").write_text(
        "file_name,composer,title,license,source_url,year\n"
        "chorale.mid,J. S. Bach,Chorale BWV 66.6,public-domain,https://example.org/66.6,1724\n",
        encoding="utf-8",
    )
    return root


def _build(folder: Path, out: Path, num_proc: int = 1, **options) -> Path:
    build_dataset(out, num_proc=num_proc, sources=[str(folder)], **{**OPTIONS, **options})
    return out


def _rows(out: Path) -> dict[str, list[dict]]:
    """The rows of each split, read straight from the parquet shards."""
    return {
        split: [row for path in sorted(out.glob(f"*-{split}*.parquet")) for row in pq.read_table(path).to_pylist()]
        for split in SPLITS
    }


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def built(midi_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(midi_folder, tmp_path_factory.mktemp("a") / "out")


# ---------------------------------------------------------------------------------------------------- folder build


def test_rows_rejects_and_features(built: Path) -> None:
    rows = [row for split in _rows(built).values() for row in split]
    assert {row["path"] for row in rows} == GOOD
    rejects = {row["path"]: row for row in _rejects(built)}
    assert {path: row["reason"] for path, row in rejects.items()} == BAD
    assert rejects["copies/chorale_copy.mid"]["duplicate_of"]["path"] == "chorale.mid"
    assert rejects["transposed.mid"]["duplicate_of"]["path"] == "chorale.mid"
    assert "transposed by +3" in rejects["transposed.mid"]["detail"]
    assert "over the limit of 200000 bytes" in rejects["big.mid"]["detail"]
    assert all(row["detail"] and row["source"].startswith("folder:") for row in rejects.values())

    table = pq.read_table(next(built.glob("*-train*.parquet")))
    assert table.schema.names == list(FEATURES)
    chorale = next(row for row in rows if row["path"] == "chorale.mid")
    assert (chorale["composer"], chorale["title"], chorale["license"]) == (
        "Johann Sebastian Bach",  # the sidecar's "J. S. Bach", in the one spelling of dataset_builder.composers
        "Chorale BWV 66.6",
        "public-domain",
    )
    assert chorale["source_url"] == "https://example.org/66.6"
    assert json.loads(chorale["metadata"]) == {"year": "1724"}
    synth = next(row for row in rows if row["path"] == "synth/piece00.mid")
    assert (synth["title"], synth["license"], synth["composer"]) == ("piece00", "unknown", "synth")  # its folder
    assert all(row["transposition"] == 0 and row["id"] == row["piece_id"] for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)
    assert all(row["num_tokens"] == len(row["notewise"].split()) for row in rows)


def test_card_license_and_info(built: Path) -> None:
    card = (built / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "configs:" in card and "dataset_info:" in card
    yaml = DatasetCard.load(built / "README.md").data.to_dict()  # the Hub's own parser
    assert (yaml["license"], yaml["license_link"]) == ("other", "LICENSE")
    assert [f["name"] for f in yaml["dataset_info"]["features"]] == list(FEATURES)
    splits = {s["name"]: s["num_examples"] for s in yaml["dataset_info"]["splits"]}
    assert splits == {name: len(rows) for name, rows in _rows(built).items() if rows}
    assert {f["split"] for f in yaml["configs"][0]["data_files"]} == set(splits)
    for reason in set(BAD.values()):
        assert f"| {reason} |" in card
    assert "public-domain" in (built / "LICENSE").read_text(encoding="utf-8")
    assert (built / "dataset_info.json").is_file()


def test_load_back_with_datasets_and_decode_midi(built: Path) -> None:
    by_card = load_dataset(str(built))
    by_parquet = load_dataset("parquet", data_dir=str(built))
    assert set(by_card) == set(by_parquet) == {s for s, rows in _rows(built).items() if rows}
    for split in by_card:
        assert by_card[split].to_list() == by_parquet[split].to_list()
    row = by_card["train"][0]
    tokenizer = NotewiseTokenizer()
    score = load_score(row["midi"])  # the raw bytes are a real MIDI file again
    assert score.note_num() > 0
    assert tokenizer.encode_midi(row["midi"]).tokens == row["notewise"].split()
    assert len(quantize_notes(tokenizer.tokens_to_notes(row["notewise"]), 12, 0, 127)) == row["num_notes"]


def test_splits_are_disjoint_by_piece_and_follow_the_seed(built: Path) -> None:
    rows = _rows(built)
    pieces = {split: {row["piece_id"] for row in split_rows} for split, split_rows in rows.items()}
    assert sum(len(p) for p in pieces.values()) == len(set().union(*pieces.values())) == len(GOOD)
    assert all(pieces[split] for split in SPLITS), "with 16 pieces and 50/25/25 every split should get some"
    fractions = ToccataConfig(**FRACTIONS).split_fractions()
    for split, split_rows in rows.items():
        assert all(assign_split(row["piece_id"], 0, fractions) == split for row in split_rows)


def test_build_is_deterministic_across_runs_and_num_proc(built: Path, midi_folder: Path, tmp_path: Path) -> None:
    again = _build(midi_folder, tmp_path / "np2" / "out", num_proc=2)  # fresh work folder: nothing cached
    names = sorted(p.name for p in built.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name


def test_transpositions_stay_with_their_piece(midi_folder: Path, tmp_path: Path, corpus_bytes: dict) -> None:
    folder = tmp_path / "few"
    folder.mkdir()
    (folder / "chorale.mid").write_bytes(corpus_bytes["chorale"])
    for i in range(6):
        (folder / f"p{i}.mid").write_bytes(_synthetic_piece(100 + i))
    high = [(i * 480, i * 480 + 480, 105) for i in range(16)]  # +5 would leave the keyboard (max 108)
    (folder / "high.mid").write_bytes(bytes(make_score([high]).dumps_midi()))
    build_dataset(tmp_path / "out", sources=[str(folder)], transpositions=(0, 5, -4), **FRACTIONS)
    rows = _rows(tmp_path / "out")
    split_of: dict[str, set[str]] = {}
    for split, split_rows in rows.items():
        for row in split_rows:
            split_of.setdefault(row["piece_id"], set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())
    everything = [row for split_rows in rows.values() for row in split_rows]
    assert len(everything) == 8 * 3 - 1
    skipped = [r for r in _rejects(tmp_path / "out") if r["reason"] == "transposition_out_of_range"]
    assert [(r["path"], r["transposition"]) for r in skipped] == [("high.mid", 5)]
    chorale = {row["transposition"]: row for row in everything if row["path"] == "chorale.mid"}
    assert chorale[5]["id"] == chorale[0]["id"] + "_t+5"
    shifted = [
        f"{w[:-2]}{int(w[-2:]) + 5}" if w.startswith(("p", "endp")) else w for w in chorale[0]["notewise"].split()
    ]
    assert chorale[5]["notewise"].split() == shifted
    assert NotewiseTokenizer().midi_to_tokens(chorale[-4]["midi"]) == chorale[-4]["notewise"].split()
    assert len({row["content_hash"] for row in chorale.values()}) == 3


def test_killed_build_restarts_and_finishes_the_same(built: Path, midi_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = (
        "import sys; from toccata.dataset_builder import build_dataset; "
        f"build_dataset(sys.argv[1], sources=[sys.argv[2]], **{OPTIONS!r})"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(out), str(midi_folder)], stderr=subprocess.DEVNULL)
    cache = Path(str(out) + ".work") / "analysis"
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        if cache.is_dir() and sum(1 for _ in cache.rglob("*.json")) >= 4:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait(30)
    if child.returncode == -signal.SIGKILL:  # killed mid-build: no dataset yet, a half-made one on the side
        assert not (out / "dataset_info.json").exists()
    build_dataset(out, sources=[str(midi_folder)], **OPTIONS)
    for path in built.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


# ---------------------------------------------------------------------------------------------------- messy input


def _line(k: int, *, channel: int = 0, tpq: int = 480, n: int = 16, base: int = 55) -> bytes:
    """Raw track events: n one-quarter notes on `channel`, a melody that differs for every k (no duplicate notes)."""
    events = b""
    for i in range(n):
        pitch = base + (i * i * k + i) % 19
        events += vlq(0) + bytes([0x90 | channel, pitch, 80]) + vlq(tpq) + bytes([0x80 | channel, pitch, 0])
    return events


def _meta(kind: int, data: bytes) -> bytes:
    return vlq(0) + bytes([0xFF, kind]) + vlq(len(data)) + data


def _rmid(inner: bytes) -> bytes:
    """A RIFF RMID (.rmi) file: an INFO list chunk of odd length (so padded), then the data chunk with `inner`."""
    body = b"RMID" + b"LIST" + struct.pack("<I", 5) + b"INFOx\0" + b"data" + struct.pack("<I", len(inner)) + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.skipif(sys.platform != "linux", reason="FIFOs, symlink loops and non-UTF-8 file names as Linux has them")
def test_messy_real_world_folder_never_aborts_and_accounts_for_every_file(tmp_path: Path) -> None:
    """Odd but real files become rows; bad ones land in rejects.jsonl with a reason, whatever the file system holds."""
    root = tmp_path / "messy"
    lyrics = _meta(0x01, b"@KMIDI KARAOKE FILE") + b"".join(
        _meta(0x05, word) for word in (b"\\Hel", b"lo", b"/w\xf6rld")
    )
    two_channels = b"".join(
        vlq(0) + bytes([0x90, 60 + i % 7, 80]) + vlq(0) + bytes([0x91, 48 + i % 5, 70])
        + vlq(480) + bytes([0x80, 60 + i % 7, 0]) + vlq(0) + bytes([0x81, 48 + i % 5, 0])
        for i in range(12)
    )  # fmt: skip
    rmid_inner = smf([_line(9) + END_OF_TRACK])
    files = {
        "song.KAR": smf([_meta(0x51, (500_000).to_bytes(3, "big")) + END_OF_TRACK, lyrics + END_OF_TRACK,
                         _line(1) + END_OF_TRACK]),
        "format0.mid": smf([two_channels + END_OF_TRACK], fmt=0),
        "format2.mid": smf([_line(2) + END_OF_TRACK, _line(3, base=40) + END_OF_TRACK], fmt=2),
        "tpq1.mid": smf([_line(4, tpq=1) + END_OF_TRACK], division=1),
        "tpq960.mid": smf([_line(5, tpq=960) + END_OF_TRACK], division=960),
        "piano_drums.mid": smf([_line(6) + END_OF_TRACK, _line(7, channel=9, base=36, n=40) + END_OF_TRACK]),
        "drums_only.mid": smf([_line(8, channel=9, base=36, n=40) + END_OF_TRACK]),
        "cc_only.mid": smf([b"".join(vlq(480) + bytes([0xB0, 64, 127 * (i % 2)]) for i in range(40)) + END_OF_TRACK]),
        "wrapped.rmi": _rmid(rmid_inner),
        "broken.rmi": _rmid(rmid_inner)[:60],
        "huge.mid": smf([_line(10, n=3000) + END_OF_TRACK]),  # valid, but over max_file_bytes
        "zero.mid": b"",
        "dir.mid/inner.mid": smf([_line(11) + END_OF_TRACK]),  # a folder named like a MIDI file is walked
    }  # fmt: skip
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    os.symlink("loop_b.mid", root / "loop_a.mid")
    os.symlink("loop_a.mid", root / "loop_b.mid")
    os.symlink("nowhere.mid", root / "dangling.mid")
    os.symlink(".", root / "again")  # a folder loop: symlinked folders are not followed
    os.mkfifo(root / "pipe.mid")  # reading would block forever
    latin1_name = os.fsencode(root) + b"/caf\xe9.mid"  # not UTF-8: Python keeps the byte as a surrogate escape
    with open(latin1_name, "wb") as handle:
        handle.write(smf([_line(12) + END_OF_TRACK]))
    (root / "metadata.csv").write_bytes(
        "\ufefffile_name,composer,license,year\n"  # a BOM, no title column; a row with cells past the header
        "song.KAR,Singer,cc-by-4.0,2001,extra cell\n"
        "format0.mid,,,\n"
        ",,,\n"
        "gone/missing.mid,Nobody,cc0,1900\n".encode()
    )
    out = tmp_path / "out"
    builder = build_dataset(out, sources=[str(root)], max_file_bytes=20_000, **FRACTIONS)

    rows = {row["path"]: row for split in _rows(out).values() for row in split}
    rejects = {row["path"]: row for row in _rejects(out)}
    assert set(rows) == {"song.KAR", "format0.mid", "format2.mid", "tpq1.mid", "tpq960.mid", "piano_drums.mid",
                         "wrapped.rmi", "dir.mid/inner.mid", "caf\\xe9.mid"}  # fmt: skip
    assert {path: row["reason"] for path, row in rejects.items()} == {
        "drums_only.mid": "empty",
        "cc_only.mid": "empty",
        "broken.rmi": "parse_error",
        "huge.mid": "too_large",
        "zero.mid": "empty",
        "loop_a.mid": "unreadable",
        "loop_b.mid": "unreadable",
        "dangling.mid": "unreadable",
        "pipe.mid": "unreadable",
    }
    assert builder.stats.files == len(rows) + len(rejects) == 18
    assert "symbolic links" in rejects["loop_a.mid"]["detail"] and "not a regular file" in rejects["pipe.mid"]["detail"]
    assert "RIFF 'data' chunk is truncated" in rejects["broken.rmi"]["detail"]
    assert "no notes" in rejects["drums_only.mid"]["detail"]
    # The .rmi row holds the Standard MIDI File inside the wrapper; drums are not counted; odd resolutions load.
    assert rows["wrapped.rmi"]["midi"] == rmid_inner
    assert rows["wrapped.rmi"]["content_hash"] == hashlib.sha256(rmid_inner).hexdigest()
    assert (rows["piano_drums.mid"]["num_notes"], rows["format0.mid"]["num_notes"]) == (16, 24)
    assert rows["tpq1.mid"]["length_quarters"] == rows["tpq960.mid"]["length_quarters"] == 16
    assert rows["song.KAR"]["qpm"] == 120 and rows["caf\\xe9.mid"]["title"] == "caf\\xe9"
    # Sidecar: BOM stripped, missing cells empty, cells past the header kept, a row for a missing file harmless.
    song = rows["song.KAR"]
    assert (song["composer"], song["title"], song["license"]) == ("Singer", "song", "cc-by-4.0")
    assert json.loads(song["metadata"]) == {"year": "2001", "unnamed_columns": ["extra cell"]}
    assert (rows["format0.mid"]["composer"], rows["format0.mid"]["license"]) == ("", "unknown")
    assert len(load_dataset(str(out))["train"]) == len(_rows(out)["train"])


# ---------------------------------------------------------------------------------------------------- sources
# ---------------------------------------------------------------------------------------------------- sources


def test_music21_corpus_source_and_build(tmp_path: Path) -> None:
    source = Music21CorpusSource.from_spec("corpus:schoenberg,essenFolksong/altdeu10.abc#1")
    items = list(source)
    assert [item.path for item in items] == [
        "essenFolksong/altdeu10.abc#1",
        "schoenberg/opus19/movement2.mxl",
        "schoenberg/opus19/movement6.mxl",
    ]
    assert items[0].title == "Das Hildebrandslied"
    assert items[0].license == "music21 corpus: essenFolksong/license.txt"
    assert items[1].composer == "Arnold Schoenberg" and items[1].license == "music21 corpus: license.txt"
    assert items[1].source_url.endswith("music21/corpus/schoenberg/opus19/movement2.mxl")
    with pytest.raises(ValueError, match="nobody"):
        Music21CorpusSource.from_spec("corpus:nobody")

    builder = build_dataset(
        tmp_path / "out", sources=["corpus:schoenberg,essenFolksong/altdeu10.abc#1"], min_quarters=1
    )
    rows = [row for split in _rows(tmp_path / "out").values() for row in split]
    assert sorted(row["path"] for row in rows) == [item.path for item in items]
    assert {row["source"] for row in rows} == {"music21"}
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "distributed with a corpus of encoded compositions" in card  # music21's corpus/license.txt, verbatim
    assert "Essen" in (tmp_path / "out" / "LICENSE").read_text(encoding="utf-8")
    assert builder.stats.files == 3

    # A source folder holding the output and work folders: a rebuild must not read its own cache (the converted
    # corpus works in out.work/music21/) as the folder's MIDI files, or they would take the corpus rows' place.
    spec = "corpus:schoenberg,essenFolksong/altdeu10.abc#1"
    again = build_dataset(tmp_path / "out", sources=[str(tmp_path), spec], min_quarters=1)
    rebuilt = [row for split in _rows(tmp_path / "out").values() for row in split]
    assert again.stats.files == 3 and sorted((row["source"], row["path"]) for row in rebuilt) == sorted(
        ("music21", row["path"]) for row in rows
    )


def test_url_source_is_crawled_into_the_work_folder_then_built(tmp_path: Path, corpus_bytes: dict) -> None:
    import functools
    import http.server
    import threading

    site = tmp_path / "site"
    (site / "midi").mkdir(parents=True)
    (site / "midi" / "chorale.mid").write_bytes(corpus_bytes["chorale"])
    (site / "midi" / "broken.mid").write_bytes(corpus_bytes["chorale"][:100])
    (site / "index.html").write_text(
        '<a href="midi/chorale.mid">a</a> <a href="midi/broken.mid">b</a>', encoding="utf-8"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        build_dataset(tmp_path / "out", sources=[url], crawl_options={"min_delay": 0, "backoff": 0, "retries": 0})
    finally:
        server.shutdown()
    (row,) = [row for rows in _rows(tmp_path / "out").values() for row in rows]
    assert (row["source"], row["source_url"]) == (f"crawl:{url}", url + "midi/chorale.mid")
    assert "fetched_at" in json.loads(row["metadata"])
    assert [r["reason"] for r in _rejects(tmp_path / "out")] == ["parse_error"]
    assert list((tmp_path / "out.work" / "crawl").glob("*/metadata.jsonl"))


def test_sidecar_conventions(tmp_path: Path) -> None:
    (tmp_path / "files" / "host").mkdir(parents=True)
    (tmp_path / "files" / "host" / "a.mid").write_bytes(_synthetic_piece(5))
    crawler_row = {
        "file_name": "files/host/a.mid",
        "source_url": "https://host/a.mid",
        "fetched_at": "2026-01-01T00:00:00Z",
        "license": None,
        "sha256": "x",
        "size": 10,
    }
    (tmp_path / "metadata.jsonl").write_text(json.dumps(crawler_row) + "\n", encoding="utf-8")
    (item,) = FolderSource(tmp_path, default_license="cc-by-4.0")
    assert (item.path, item.source_url, item.license, item.title) == (
        "files/host/a.mid",
        "https://host/a.mid",
        "cc-by-4.0",
        "a",
    )
    assert json.loads(item.metadata) == {"fetched_at": "2026-01-01T00:00:00Z", "sha256": "x", "size": 10}

    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.mid"}\n{broken\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_sidecar(tmp_path)
    (tmp_path / "metadata.jsonl").unlink()
    (tmp_path / "metadata.csv").write_text("name,composer\na.mid,X\n", encoding="utf-8")
    with pytest.raises(ValueError, match="file_name"):
        read_sidecar(tmp_path)
    (tmp_path / "metadata.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="several metadata sidecars"):
        read_sidecar(tmp_path)


def test_a_large_sidecar_is_not_held_in_memory(tmp_path: Path) -> None:
    """A sidecar of 20,000 rows (~4 MB of CSV) is looked up from disk: reading it and looking every file up peaks at a
    small fraction of its size in Python memory (a dict of its rows peaks at several times its size)."""
    import tracemalloc

    lines = ["file_name,composer,title,notes"]
    lines += [f"C{i % 50}/piece{i:05d}.mid,Composer {i % 50},A long title for piece number {i} of many,{'x' * 120}"
              for i in range(20_000)]
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    size = (tmp_path / "metadata.csv").stat().st_size
    tracemalloc.start()
    sidecar = read_sidecar(tmp_path)
    found = sum(sidecar.get(f"C{i % 50}/piece{i:05d}.mid") is not None for i in range(0, 20_000, 7))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found == len(range(0, 20_000, 7)) and len(sidecar) == 20_000
    assert sidecar.get("C1/piece00001.mid")["title"] == "A long title for piece number 1 of many"
    assert sidecar.get("missing.mid", {}) == {}
    assert peak < size / 4, (peak, size)


def test_note_fingerprint_ignores_transposition_and_tempo_only() -> None:
    def grid(start, end, pitch, tpq=12):
        notes = NoteArrays(np.array(start), np.array(end), np.array(pitch), tpq)
        return quantize_notes(notes, 12, 0, 127)

    base = note_fingerprint(grid([0, 12, 12], [12, 24, 36], [60, 64, 67]))
    assert note_fingerprint(grid([24, 36, 36], [36, 48, 60], [65, 69, 72])) == base  # later, a fourth higher
    assert note_fingerprint(grid([0, 40, 40], [40, 80, 120], [60, 64, 67], tpq=40)) == base  # other resolution
    assert note_fingerprint(grid([0, 12, 12], [12, 24, 36], [60, 64, 68])) != base
    assert note_fingerprint(grid([0, 12, 12], [12, 24, 30], [60, 64, 67])) != base


def test_split_assignment_is_stable_and_proportional() -> None:
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    ids = [f"{i:016x}" for i in range(3000)]
    first = [assign_split(i, 7, fractions) for i in ids]
    assert first == [assign_split(i, 7, fractions) for i in ids]
    assert first != [assign_split(i, 8, fractions) for i in ids]
    assert abs(first.count("train") / len(ids) - 0.8) < 0.03
    # Pinned: a split must not change between Python processes or versions (sha256, never hash()).
    halves = {"train": 0.5, "validation": 0.25, "test": 0.25}
    assert [assign_split(f"{i:016x}", 0, halves) for i in range(6)] == [
        "train",
        "test",
        "validation",
        "test",
        "validation",
        "validation",
    ]


def test_a_held_out_split_the_hash_leaves_empty_gets_a_piece_or_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """30 pieces at 5 % validation: one seed in five used to give a validation split of 0 rows, without a word, which
    `toccata train` then refused. It takes one train piece now; a build too small for that says which --splits."""
    from toccata.cli import main

    folder = tmp_path / "thirty"
    folder.mkdir()
    for i in range(30):
        (folder / f"p{i:02d}.mid").write_bytes(_synthetic_piece(300 + i))
    build_dataset(tmp_path / "first", sources=[str(folder)])
    piece_ids = [row["piece_id"] for rows in _rows(tmp_path / "first").values() for row in rows]
    fractions = ToccataConfig().split_fractions()
    seed = next(
        seed for seed in range(1000) if all(assign_split(p, seed, fractions) != "validation" for p in piece_ids)
    )  # a seed whose hash puts no piece in validation: the case of the issue
    out = tmp_path / "out"
    assert main(["build-dataset", "--source", str(folder), "--out", str(out), "--seed", str(seed)]) == 0
    err = capsys.readouterr().err
    rows = _rows(out)
    assert len(rows["validation"]) == 1 and rows["test"], "every held-out split has a piece"
    assert sorted(row["piece_id"] for split in rows.values() for row in split) == sorted(piece_ids)
    (moved,) = rows["validation"]
    assert assign_split(moved["piece_id"], seed, fractions) == "train"
    note = f"the validation split got no piece from the hash (0.05 of 30 pieces), so it took piece {moved['piece_id']}"
    assert note in err
    assert "took piece" in (out / "README.md").read_text(encoding="utf-8")
    assert {row["piece_id"] for row in load_dataset(str(out))["validation"]} == {moved["piece_id"]}
    # Pieces pinned by --splits-from keep their split: here all in train, so validation stays empty, and says why.
    everything_in_train = tmp_path / "all-train"
    all_train = {"train_fraction": 1.0, "validation_fraction": 0.0, "test_fraction": 0.0}
    build_dataset(everything_in_train, sources=[str(folder)], **all_train)
    pinned = build_dataset(tmp_path / "pinned", sources=[str(folder)], splits_from=str(everything_in_train))
    assert [pinned.stats.pieces[split] for split in SPLITS] == [30, 0, 0]
    assert "the 30 train pieces are pinned there by splits_from" in pinned.summary()

    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "p.mid").write_bytes(_synthetic_piece(1))
    assert main(["build-dataset", "--source", str(tmp_path / "one"), "--out", str(tmp_path / "small")]) == 0
    err = capsys.readouterr().err
    assert "warning: the validation and test splits are empty" in err and "--splits 1,0,0" in err


# ---------------------------------------------------------------------------------------------------- errors, CLI


def test_config_and_output_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        ToccataConfig(train_fraction=0.9, validation_fraction=0.2, test_fraction=0.0)
    with pytest.raises(ValueError, match="transposition"):
        ToccataConfig(transpositions=(0, 20))
    with pytest.raises(ValueError, match="does not exist"):
        build_dataset(tmp_path / "out", sources=[str(tmp_path / "missing")])
    for num_proc in (0, -3):  # were accepted
        with pytest.raises(ValueError, match="num_proc must be a whole number of processes, 1 or more"):
            build_dataset(tmp_path / "np", num_proc=num_proc, sources=[str(tmp_path)])
    assert not (tmp_path / "np.work").exists()  # refused before any work folder is made
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me", encoding="utf-8")
    with pytest.raises(ValueError, match="not a dataset"):
        build_dataset(precious, sources=[str(tmp_path)])
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "keep me"


def _tree(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def test_a_refused_build_leaves_nothing_behind(tmp_path: Path) -> None:
    """A bad source, sidecar, corpus pattern, setting or output is refused before any work: no OUT.work/ (it was left
    with datasets' cache stub in it), no OUT_builder.lock, no new parent folders."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.mid").write_bytes(_synthetic_piece(1))
    (tmp_path / "bad_sidecar").mkdir()
    (tmp_path / "bad_sidecar" / "metadata.jsonl").write_text("{broken\n", encoding="utf-8")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("keep me", encoding="utf-8")
    before = _tree(tmp_path)
    refusals = [
        ("does not exist", "out", {"sources": [str(tmp_path / "missing")]}),
        ("does not exist", "new/deeper/out", {"sources": [str(tmp_path / "missing")]}),
        ("not JSON", "out", {"sources": [str(tmp_path / "bad_sidecar")]}),
        ("match no work", "out", {"sources": ["corpus:nobody"]}),
        ("add up to 1", "out", {"sources": [str(tmp_path / "src")], "train_fraction": 2.0}),
        ("not a dataset", "precious", {"sources": [str(tmp_path / "src")]}),
    ]
    for message, out, options in refusals:
        with pytest.raises(ValueError, match=message):
            build_dataset(tmp_path / out, **options)
        assert _tree(tmp_path) == before, f"{message}: the refused build left files behind"


def test_a_build_that_fails_after_reading_files_keeps_its_work_to_resume(tmp_path: Path) -> None:
    """The clean-up of a refused build never throws away analysed files: a build that stops after reading them
    keeps OUT.work/, and the next run (here with a train split to learn from) reuses every cached result."""
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"p{i}.mid").write_bytes(_synthetic_piece(200 + i))
    options = {"sources": [str(tmp_path / "src")], "tokenizer": "notewise-bpe", "bpe_vocab_size": 240}
    with pytest.raises(ValueError, match="learns from the train split"):
        build_dataset(tmp_path / "out", train_fraction=0.0, validation_fraction=0.5, test_fraction=0.5, **options)
    cache = tmp_path / "out.work" / "analysis"
    cached = sorted(cache.rglob("*.json"))
    assert len(cached) == 3
    stamps = [path.stat().st_mtime_ns for path in cached]
    build_dataset(tmp_path / "out", **FRACTIONS, **options)
    assert [path.stat().st_mtime_ns for path in sorted(cache.rglob("*.json"))] == stamps, "analysed again"
    assert sum(len(rows) for rows in _rows(tmp_path / "out").values()) == 3


def test_cli_build_dataset(midi_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from toccata.cli import main

    out = tmp_path / "cli"
    argv = ["build-dataset", "--source", str(midi_folder), "--out", str(out), "--splits", "0.5,0.25,0.25"]
    assert main(argv + ["--max-file-bytes", "200000", "--num-proc", "2"]) == 0
    assert "rejected:" in capsys.readouterr().err
    assert (out / "README.md").is_file() and (out / "rejects.jsonl").is_file()
    assert sum(len(rows) for rows in _rows(out).values()) == len(GOOD)
    assert main(["build-dataset", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(argv + ["--transpositions", "up"]) == 2
    assert main(["crawl", "ftp://example.org/midi/", "--out", str(tmp_path / "crawl")]) == 2  # the crawler refuses
    assert "http" in capsys.readouterr().err


def test_push_to_hub_refuses_a_folder_that_is_not_a_built_dataset(tmp_path: Path) -> None:
    """Pushing needs the network (not exercised here); a wrong folder must fail before any upload is attempted."""
    with pytest.raises(ValueError, match="not a built Toccata dataset"):
        push_to_hub(tmp_path, "org/piano")


def test_cli_build_that_keeps_nothing_exits_with_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from toccata.cli import main

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.mid").write_bytes(b"MThd garbage")
    assert main(["build-dataset", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no piece was kept" in err and "rejects.jsonl" in err
    assert "broken.mid" in (tmp_path / "out" / "rejects.jsonl").read_text()


def _running(pid: int) -> bool:
    """Whether process `pid` runs (an exited one that nobody has reaped yet, a zombie, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_workers_exit_when_the_build_is_killed(tmp_path: Path) -> None:
    """`kill -9` of a `num_proc > 1` build: its workers, blocked on their pipe, used to live on for good."""
    pids = tmp_path / "pids"
    script = f"""
import os, time
from toccata.dataset_builder.pipeline import ordered_map

def slow(item):
    with open({str(pids)!r}, "a") as out:
        out.write(f"{{os.getpid()}}\\n")
    time.sleep(0.2)
    return item

for _ in ordered_map(slow, range(10_000), num_proc=2):
    pass
"""
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(set(pids.read_text().split()) if pids.exists() else ()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = {int(pid) for pid in pids.read_text().split()}
        assert len(workers) == 2, workers
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if _running(pid)]
    for pid in alive:  # leave nothing behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers outlived the killed build"
