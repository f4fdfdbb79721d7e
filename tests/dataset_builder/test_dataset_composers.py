"""Composers and licences in a build: one spelling per person, near-identical editions as one piece, a split of
composers held out whole, and keeping only the files under given licences."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from support.midi_files import make_score
from toccata.dataset_builder import build_dataset
from toccata.dataset_builder.analysis import note_sketch, sketch_similarity
from toccata.dataset_builder.composers import normalize_composer
from toccata.dataset_builder.licenses import license_id, parse_licenses
from toccata.tokenization.midi_io import NoteArrays
from toccata.training.data import load_pieces

COMPOSERS = {  # spelling in the sidecar -> pieces
    "Paderewski, Ignacy Jan": 4,
    "Szymanowska, Maria": 3,
    "Stefani, Józef": 3,
    "Kurpiński, Karol Kazimierz": 3,
    "Ogiński, Michał Kleofas (1765-1833)": 3,
    "Anonim": 3,
}


def _notes(seed: int, beats: int = 48) -> list[tuple[int, int, int]]:
    """A random two-hand piece, different for every seed: (start, end, pitch) at 480 ticks per quarter."""
    rng = np.random.default_rng(seed)
    notes = []
    for beat in range(beats):
        start = beat * 240
        for pitch in rng.choice(np.arange(40, 90), size=int(rng.integers(1, 4)), replace=False):
            notes.append((start, start + 240 * int(rng.integers(1, 4)), int(pitch)))
    return notes


def _write(path: Path, notes: list[tuple[int, int, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(make_score([notes], qpm=100.0).dumps_midi()))


def _edited(notes: list[tuple[int, int, int]], seed: int, share: float = 0.02) -> list[tuple[int, int, int]]:
    """Another edition: a few notes moved by a semitone, the whole played twice (repeats), a tone lower."""
    rng = np.random.default_rng(seed)
    moved = [(s, e, p + 1) if rng.random() < share else (s, e, p) for s, e, p in notes]
    length = max(e for _, e, _ in notes)
    return [(s, e, p - 2) for s, e, p in moved] + [(s + length, e + length, p - 2) for s, e, p in moved]


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pieces by six composers (one anonymous), with a sidecar naming composer and licence; two near-duplicates."""
    root = tmp_path_factory.mktemp("collection")
    rows = []
    seed = 0
    for composer, count in COMPOSERS.items():
        for i in range(count):
            seed += 1
            name = f"{composer.split(',')[0].lower()}/{i}.mid"
            _write(root / name, _notes(seed))
            license = "CC BY 4.0" if seed % 2 else "CC BY-NC-SA 4.0"
            rows.append({"file_name": name, "composer": composer, "license": license})
    # another edition of Paderewski's first piece (repeats played, a tone lower, 2% of notes changed), under another
    # spelling of his name: one piece. The same edit credited to somebody else is another composer's piece: kept.
    _write(root / "zz-editions/paderewski-0-b.mid", _edited(_notes(1), seed=99))
    edition = "zz-editions/paderewski-0-b.mid"
    rows.append({"file_name": edition, "composer": "Ignacy Jan PADEREWSKI", "license": "CC BY 4.0"})
    _write(root / "zz-editions/other.mid", _edited(_notes(1), seed=98))
    rows.append({"file_name": "zz-editions/other.mid", "composer": "Mozart, Wolfgang Amadeus", "license": "CC BY 4.0"})
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["file_name", "composer", "license"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def _rows(folder: Path, split: str) -> list[dict]:
    return [row for path in sorted(folder.glob(f"*-{split}.parquet")) for row in pq.read_table(path).to_pylist()]


def _rejects(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "rejects.jsonl").read_text().splitlines()]


def test_composer_names_get_one_spelling():
    assert normalize_composer("Paderewski, Ignacy Jan") == "Ignacy Jan Paderewski"
    assert normalize_composer("Ogiński, Michał Kleofas (1765-1833)") == "Michał Kleofas Ogiński"
    assert normalize_composer("Beethoven, Ludwig van, 1770-1827") == "Ludwig van Beethoven"
    assert normalize_composer("M&uuml;ller,  August Eberhard") == "August Eberhard Müller"
    for anonymous in ("Anonim", "anon.", "Unknown", "Anonymous"):
        assert normalize_composer(anonymous) == "Anonymous"
    assert normalize_composer("Chopin, Frederic") == normalize_composer("Fryderyk Chopin")
    assert normalize_composer("") == ""
    assert normalize_composer("PADEREWSKI, Ignacy Jan") == "Ignacy Jan Paderewski"


def test_licence_ids_match_what_sources_write():
    assert license_id("CC BY 4.0") == "cc-by-4.0"
    assert license_id("License CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0)") == "cc-by-4.0"
    assert license_id("CC BY-NC-SA 4.0") == "cc-by-nc-sa-4.0"
    assert license_id("CC0 1.0") == "cc0-1.0"
    assert parse_licenses("cc-by-4.0, CC0 1.0") == ("cc-by-4.0", "cc0-1.0")
    assert "cc-by-4.0" in parse_licenses("permissive")
    with pytest.raises(ValueError, match="licence ids"):
        parse_licenses(" , ")


def test_sketch_tells_editions_from_other_pieces():
    def grid(notes):
        array = np.asarray(notes)
        return NoteArrays(array[:, 0] // 40, array[:, 1] // 40, array[:, 2], np.full(len(array), 64))

    piece = _notes(1)
    assert sketch_similarity(note_sketch(grid(piece)), note_sketch(grid(_edited(piece, seed=3)))) >= 0.5
    others = [sketch_similarity(note_sketch(grid(piece)), note_sketch(grid(_notes(seed)))) for seed in range(2, 30)]
    assert max(others) < 0.2


def test_pieces_meet_in_a_sketch_bucket_only_when_alike():
    """Near-duplicates are looked for among pieces sharing a band of their sketch, so a folder of many pieces by one
    (or no) composer does not compare every pair: an edition meets its original, unrelated pieces almost never meet."""
    from toccata.dataset_builder.pipeline import _bands

    def grid(notes):
        array = np.asarray(notes)
        return NoteArrays(array[:, 0] // 40, array[:, 1] // 40, array[:, 2], np.full(len(array), 64))

    # composers by number, as the planner numbers them when it meets them: 0 and 1
    kept = {seed: set(_bands(0, note_sketch(grid(_notes(seed))))) for seed in range(1, 201)}
    edition = set(_bands(0, note_sketch(grid(_edited(_notes(1), seed=3)))))
    assert edition & kept[1]
    stranger = set(_bands(0, note_sketch(grid(_notes(999)))))
    assert sum(bool(stranger & bands) for bands in kept.values()) <= 10  # of 200
    assert not set(_bands(1, note_sketch(grid(_notes(1))))) & kept[1]  # another composer: another bucket


def test_composers_held_out_whole_and_editions_merged(collection: Path, tmp_path: Path):
    out = tmp_path / "ds"
    builder = build_dataset(out, sources=(str(collection),), unseen_composer_count=2, seed=3, safe=False,
                            train_fraction=0.8, validation_fraction=0.1, test_fraction=0.1)
    stats = builder.stats
    unseen = stats.unseen_composers
    assert len(unseen) == 2 and "Anonymous" not in unseen
    held = _rows(out, "unseen_composers")
    assert {row["composer"] for row in held} == set(unseen)
    assert len(held) == sum(stats.composers[name] for name in unseen) == stats.pieces["unseen_composers"]
    others = [row for split in ("train", "validation", "test") for row in _rows(out, split)]
    assert not {row["composer"] for row in others} & set(unseen)
    # one spelling per person: the sidecar's "Anonim", the dates, "Last, First" and the capitals are gone
    names = {row["composer"] for row in held + others}
    assert "Anonymous" in names and "Michał Kleofas Ogiński" in names
    assert all("," not in name and "(" not in name for name in names)
    assert "Ignacy Jan PADEREWSKI" not in names and "Ignacy Jan Paderewski" in names
    # the other edition of Paderewski's piece is one piece with it; the same notes by another composer are kept
    near = [r for r in _rejects(out) if r["reason"] == "near_duplicate"]
    assert [r["path"] for r in near] == ["zz-editions/paderewski-0-b.mid"]
    assert near[0]["duplicate_of"]["path"] == "paderewski/0.mid"
    assert any(row["path"] == "zz-editions/other.mid" for row in held + others)
    card = (out / "README.md").read_text()
    assert "unseen_composers" in card and all(name in card for name in unseen)
    # the same seed holds out the same composers; training code reads the split
    again = build_dataset(tmp_path / "again", sources=(str(collection),), unseen_composer_count=2, seed=3,
                          safe=False, train_fraction=0.8, validation_fraction=0.1, test_fraction=0.1)
    assert again.stats.unseen_composers == unseen
    from toccata.tokenization import NotewiseTokenizer

    assert len(load_pieces(out, "unseen_composers", NotewiseTokenizer())) == len(held)


def test_named_composers_and_licence_filter(collection: Path, tmp_path: Path):
    out = tmp_path / "ds"
    builder = build_dataset(out, sources=(str(collection),), unseen_composers=("Maria Szymanowska",), safe=False,
                            licenses=("cc-by-4.0",))
    assert builder.stats.unseen_composers == ["Maria Szymanowska"]
    kept = [row for split in ("train", "validation", "test", "unseen_composers") for row in _rows(out, split)]
    assert kept and {row["license"] for row in kept} == {"CC BY 4.0"}
    excluded = [r for r in _rejects(out) if r["reason"] == "license_excluded"]
    assert excluded and all("CC BY-NC-SA 4.0" in r["detail"] for r in excluded)
    with pytest.raises(ValueError, match="have no piece"):
        build_dataset(tmp_path / "bad", sources=(str(collection),), unseen_composers=("Nobody Atall",), safe=False)


def test_card_quotes_the_attribution_a_cc_by_collection_asks_for(tmp_path: Path):
    root = tmp_path / "collection"
    (root / "cc").mkdir(parents=True)
    (root / "cc" / "LICENSE.txt").write_text(
        "Example Scores in Open Access\nCopyright 2020 The Example Institute\n"
        "License: https://creativecommons.org/licenses/by/4.0\n\nYou are free to share and adapt.\n"
    )
    (root / "nc").mkdir()
    (root / "nc" / "LICENSE.txt").write_text("Other Scores\nhttps://creativecommons.org/licenses/by-nc-sa/4.0\n")
    (root / "zero").mkdir()
    (root / "zero" / "LICENSE").write_text("Free Scores\nCC0 1.0 https://creativecommons.org/publicdomain/zero/1.0\n")
    for i in range(3):
        _write(root / "cc" / f"{i}.mid", _notes(100 + i))
        _write(root / "nc" / f"{i}.mid", _notes(200 + i))
        _write(root / "zero" / f"{i}.mid", _notes(300 + i))
    out = tmp_path / "ds"
    build_dataset(out, sources=(str(root),), safe=False)
    card = (out / "README.md").read_text()
    attributions = card.split("### Attributions", 1)[1]
    assert "3 pieces come from the collection of `cc/`" in attributions
    assert "> Example Scores in Open Access" in attributions
    assert "> Copyright 2020 The Example Institute" in attributions
    assert "You are free" not in attributions  # the opening lines only, up to the first blank line
    assert "3 pieces come from the collection of `nc/`" in attributions and "> Other Scores" in attributions  # BY-NC-SA
    assert "Free Scores" not in attributions  # CC0 asks for no attribution
