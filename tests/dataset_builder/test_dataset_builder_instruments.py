"""Instrumented ("instrument + piano") dataset builds on a tiny crafted folder: mapping, rows, rejects, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import symusic

from toccata.cli import main
from toccata.dataset_builder import build_dataset
from toccata.dataset_builder.config import ToccataConfig
from toccata.dataset_builder.instrument_stats import instrument_stats
from toccata.dataset_builder.pipeline import SPLITS
from toccata.tokenization import NotewiseTokenizer

STEP = 40


def _piece(path: Path, tracks: list[tuple[str, int, int]], bars: int = 6, seed: int = 0) -> None:
    """A MIDI file of (name, program, base pitch) tracks playing eighth notes for `bars` 4/4 bars."""
    score = symusic.Score(480)
    for k, (name, program, base) in enumerate(tracks):
        track = symusic.Track(name=name, program=program)
        for i in range(bars * 8):
            pitch = base + (i * (3 + k + seed) + seed * 5) % 12  # each seed its own intervals: another piece
            track.notes.append(symusic.Note(i * 240, 240, pitch, 80))
        score.tracks.append(track)
    score.dump_midi(str(path))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chamber")
    quartet = [("Violin I", 48, 74), ("Violin II", 48, 65), ("Viola", 48, 57), ("Violoncello", 48, 38)]
    for n in range(6):
        _piece(root / f"quartet{n}.mid", quartet, seed=n)
    _piece(root / "sonata.mid", [("", 40, 96), ("Piano", 0, 48)])  # violin up to B7: some notes out of range
    _piece(root / "piano.mid", [("Right", 0, 72), ("Left", 0, 48)])
    return root


def _build(folder: Path, out: Path, **options) -> dict[str, list[dict]]:
    build_dataset(out, sources=[str(folder)], safe=False, min_quarters=4, **options)
    return {
        split: [row for path in sorted(out.glob(f"*-{split}*.parquet")) for row in pq.read_table(path).to_pylist()]
        for split in SPLITS
    }


@pytest.mark.parametrize("target, program, prefix", [("violin", 40, "v"), ("cello", 42, "c")])
def test_instrument_build_maps_ensembles_and_tokenizes_the_mapped_midi(folder, tmp_path, target, program, prefix):
    out = tmp_path / target
    splits = _build(folder, out, instruments=("piano", target), transpositions=(0, 5), seed=3)
    rows = [row for split in splits.values() for row in split]
    tokenizer = NotewiseTokenizer(instruments=("piano", target))
    expected_paths = {f"quartet{n}.mid" for n in range(6)} | ({"sonata.mid"} if target == "violin" else set())
    assert {row["path"] for row in rows} == expected_paths
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    reasons = {(row["path"], row["reason"]) for row in rejects}
    assert ("piano.mid", "no_instrument") in reasons
    if target == "cello":
        assert ("sonata.mid", "no_instrument") in reasons  # a violin is not a bass part
    for row in rows:
        score = symusic.Score.from_midi(row["midi"])
        assert [int(t.program) for t in score.tracks] == [0, program]
        assert tokenizer.encode_midi(row["midi"]).tokens == row["notewise"].split()  # the row's MIDI is what was read
        assert any(word.startswith(prefix) for word in row["notewise"].split())
        ensemble = json.loads(row["metadata"])["ensemble"]
        assert ensemble["sources"][target] == {"violin": "Violin I", "cello": "Violoncello"}[target] or (
            row["path"] == "sonata.mid"
        )
    sonata = [row for row in rows if row["path"] == "sonata.mid"]
    if sonata:  # B7 is over the violin's G7: those notes went to the piano, and no transposition up fits
        assert json.loads(sonata[0]["metadata"])["ensemble"]["out_of_range"]["violin"] > 0
        assert [row["transposition"] for row in sonata] == [0]
        assert any(r["path"] == "sonata.mid" and r["reason"] == "transposition_out_of_range" for r in rejects)
    for split in SPLITS:  # splits by piece: a piece's transpositions share its split
        pieces = {row["piece_id"] for row in splits[split]}
        others = {row["piece_id"] for other in SPLITS if other != split for row in splits[other]}
        assert not pieces & others
    quartets = [row for row in rows if row["path"].startswith("quartet") and row["transposition"] == 0]
    assert len(quartets) == 6
    stats = instrument_stats(out)
    assert stats["total"]["pieces"] == len(expected_paths) and stats["total"]["rows"] == len(rows)
    assert stats["total"]["tokens"] == sum(row["num_tokens"] for row in rows)
    assert 0.9 < stats["sounding_share"][target] <= 1.0  # eighths without a rest, bar the sonata's notes over G7
    assert main(["instrument-stats", str(out), "--json", str(tmp_path / "stats.json")]) == 0  # the same numbers
    assert json.loads((tmp_path / "stats.json").read_text())["total"] == stats["total"]


def test_instrument_options_are_checked_and_piano_builds_keep_their_settings(tmp_path):
    assert ToccataConfig(instruments="violin").instruments == ("piano", "violin")
    assert ToccataConfig(instruments=("cello", "piano", "violin")).instruments == ("piano", "violin", "cello")
    piano = ToccataConfig()
    assert "instruments" not in piano.tokenizer_kwargs()  # the cache key of piano builds is unchanged
    assert piano.analysis_settings(str(tmp_path)).key() == ToccataConfig(ensemble_rule="named").analysis_settings(
        str(tmp_path)
    ).key()
    duo = ToccataConfig(instruments=("piano", "violin"))
    assert duo.analysis_settings(str(tmp_path)).key() != piano.analysis_settings(str(tmp_path)).key()
    with pytest.raises(ValueError, match="instruments"):
        ToccataConfig(instruments=("piano", "viola"))
    with pytest.raises(ValueError, match="ensemble_rule"):
        ToccataConfig(instruments=("piano", "violin"), ensemble_rule="loudest")
