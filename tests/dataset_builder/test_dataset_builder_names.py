"""Names from folders: a collection laid out as ``<root>/<Composer>/…/<file>`` (the ASAP layout: every file named
``midi_score.mid``, a work and its ``_no_repeat`` version in two folders) gets composers and titles from its folders,
a sidecar or a score's own records first, and a variant of a work is one piece with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from support.midi_files import make_score
from toccata.dataset_builder import FolderSource, build_dataset
from toccata.dataset_builder.names import composer_from_folders, title_from_path, work_name

# A score that names its composer and title (kern records), in a folder named otherwise.
NAMED_KERN = (
    "!!!COM: Tester, Anna\n!!!OTL: Little Piece\n**kern\n*M4/4\n=1\n4c\n4d\n4e\n4f\n=2\n4g\n4a\n4b\n4cc\n==\n*-\n"
)
# A score that names nothing: its folders do.
PLAIN_KERN = "**kern\n*M4/4\n=1\n4C\n4G\n4E\n4F\n=2\n2G\n4B\n4c\n==\n*-\n"


def _section(seed: int, offset: int = 0) -> list[tuple[int, int, int]]:
    """Eight quarters of a random two-voice line (480 ticks per quarter), starting at quarter `offset`."""
    rng = np.random.default_rng(seed)
    notes = []
    for beat in range(8):
        start = (offset + beat) * 480
        for pitch in rng.choice(np.arange(45, 85), size=2, replace=False):
            notes.append((start, start + 480, int(pitch)))
    return notes


def _midi(*sections: list[tuple[int, int, int]]) -> bytes:
    return bytes(make_score([[note for section in sections for note in section]]).dumps_midi())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    root = tmp_path_factory.mktemp("names") / "midis"
    a, b = _section(1), _section(2, 8)
    files = {
        # Sonata 32, first movement, with its repeat played (A B A B) and, as ASAP has it, without (A B).
        "Beethoven/Piano_Sonatas/32-1/midi_score.mid": _midi(a, b, _section(1, 16), _section(2, 24)),
        "Beethoven/Piano_Sonatas/32-1_no_repeat/midi_score.mid": _midi(a, b),
        "Chopin/Etudes_op_25/1/midi_score.mid": _midi(_section(3), _section(4, 8)),
        "Chopin/Etudes_op_25/2/midi_score.mid": _midi(_section(5), _section(6, 8)),
        "Chopin/midi/waltz.mid": _midi(_section(7), _section(8, 8)),
        "Chopin/midi/waltz_v2.mid": _midi(_section(7), _section(9, 8)),  # another version of the waltz
        "Chopin/nocturne.mid": _midi(_section(10), _section(11, 8)),
        "loose.mid": _midi(_section(12), _section(13, 8)),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "Folder_Name").mkdir()
    (root / "Folder_Name" / "named.krn").write_text(NAMED_KERN, encoding="utf-8")
    (root / "Gounod,_Charles" / "Faust_Waltz" / "kern").mkdir(parents=True)
    (root / "Gounod,_Charles" / "Faust_Waltz" / "kern" / "score.krn").write_text(PLAIN_KERN, encoding="utf-8")
    (root / "metadata.csv").write_text(
        "file_name,composer,title\nChopin/nocturne.mid,Fryderyk Chopin,Nocturne in E-flat\n", encoding="utf-8"
    )
    out = root.parent / "out"
    build_dataset(out, sources=[str(root)], train_fraction=1.0, validation_fraction=0.0, test_fraction=0.0)
    rows = {row["path"]: row for path in out.glob("*.parquet") for row in pq.read_table(path).to_pylist()}
    rejects = {r["path"]: r for r in map(json.loads, (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines())}
    return rows, rejects


def test_composer_and_title_come_from_the_folders_when_nothing_else_names_them(built) -> None:
    rows, _ = built
    names = {path: (row["composer"], row["title"]) for path, row in rows.items()}
    assert names == {
        "Beethoven/Piano_Sonatas/32-1/midi_score.mid": ("Beethoven", "Piano Sonatas / 32-1"),
        "Chopin/Etudes_op_25/1/midi_score.mid": ("Chopin", "Etudes op 25 / 1"),
        "Chopin/Etudes_op_25/2/midi_score.mid": ("Chopin", "Etudes op 25 / 2"),
        "Chopin/midi/waltz.mid": ("Chopin", "waltz"),  # a format folder names no composer
        "Chopin/nocturne.mid": ("Fryderyk Chopin", "Nocturne in E-flat"),  # the sidecar first
        "loose.mid": ("", "loose"),  # no folder below the root: no composer
        "Folder_Name/named.krn": ("Anna Tester", "Little Piece"),  # the score's own records before its folder
        "Gounod,_Charles/Faust_Waltz/kern/score.krn": ("Charles Gounod", "Faust Waltz"),  # the folder's "Gounod, Charles", in one spelling
    }


def test_a_variant_of_a_work_is_one_piece_with_it(built) -> None:
    """`32-1_no_repeat` has other notes than `32-1` (the repeat is not played), so the note dedup cannot see it;
    its name says it is the same work: it is rejected as `duplicate_work`, and cannot land in another split."""
    rows, rejects = built
    variant = rejects["Beethoven/Piano_Sonatas/32-1_no_repeat/midi_score.mid"]
    assert variant["reason"] == "duplicate_work"
    assert variant["duplicate_of"]["path"] == "Beethoven/Piano_Sonatas/32-1/midi_score.mid"
    assert "variant" in variant["detail"]
    waltz = rejects["Chopin/midi/waltz_v2.mid"]
    assert (waltz["reason"], waltz["duplicate_of"]["path"]) == ("duplicate_work", "Chopin/midi/waltz.mid")
    assert set(rejects) == {"Beethoven/Piano_Sonatas/32-1_no_repeat/midi_score.mid", "Chopin/midi/waltz_v2.mid"}


def test_folder_name_rules() -> None:
    assert composer_from_folders("midi/Saint-Georges,_Joseph_Bologne/Quartet/sq.mxl") == "Saint-Georges, Joseph Bologne"
    assert composer_from_folders("piece.mid") == ""
    assert title_from_path("Bach/Fugue/bwv_846/MIDI Score.mid") == "Fugue / bwv 846"
    assert title_from_path("Bach/midi_score.mid") == "midi_score"  # no folder below the composer's: the name
    assert title_from_path("Bach/Fugue/bwv_846/bwv846.mid") == "bwv846"
    same = [("32-1", "32-1_no_repeat"), ("op10", "op10-NoRepeats"), ("etude", "etude_v2"), ("etude", "Etude (1)"),
            ("waltz", "waltz without repeats"), ("sonata", "sonata_version_2"), ("x", "x_v2_no_repeat")]  # fmt: skip
    for name, variant in same:
        assert work_name(name) == work_name(variant), (name, variant)
    different = [("op10_1", "op10_2"), ("No_1", "No_2"), ("nov2", "nov"), ("32-1", "32-2"), ("v2", "v3")]
    for name, other in different:
        assert work_name(name) != work_name(other), (name, other)


def test_a_crawl_takes_no_names_from_its_folders(tmp_path: Path) -> None:
    """A crawl's folders are files/<host>/…: not composers."""
    (tmp_path / "files" / "example.org").mkdir(parents=True)
    (tmp_path / "files" / "example.org" / "midi_score.mid").write_bytes(_midi(_section(1)))
    (item,) = FolderSource(tmp_path, names_from_folders=False)
    assert (item.composer, item.title) == ("", "midi_score")
    (item,) = FolderSource(tmp_path)
    assert (item.composer, item.title) == ("files", "example.org")
