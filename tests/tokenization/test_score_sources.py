"""Score sources: `**kern`, MusicXML and ABC files read through music21 into the notewise grid, and a folder of them
built into a dataset (metadata from the scores, licences from the collection, one piece per work in two formats,
bad and slow scores rejected with their reason).

Every expected note below is written out by hand, (start step, end step, MIDI pitch) at 12 steps per quarter, from
the score text, not from what music21 returns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import symusic
from datasets import load_dataset
from toccata.dataset_builder import FolderSource, build_dataset
from toccata.dataset_builder.items import FILE, SCORE
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import MidiError, MidiLimits
from toccata.tokenization.score_io import (
    display_name,
    kern_records,
    kern_spine_names,
    license_from_text,
    read_score_file,
)
from toccata.tokenization.tokenization_base import quantize_notes

TOK = NotewiseTokenizer()

# Two staves. Right hand: a quarter C4, a triplet of eighths (4 steps each), a half G4; a quarter A4, eighths B4 C5,
# a grace note D5 before the last half C5. Left hand: a half C3, then G3 tied over the bar line (one note), a half C3.
TWO_STAVES_KERN = """!!!COM: Tester, Anna
!!!OTL: Little Piece
!!!OMV: 2
!!!OMD: Andante
!!!YEM: Licence: (CC BY-NC-SA 4.0) https://creativecommons.org/licenses/by-nc-sa/4.0
**kern\t**kern
*staff2\t*staff1
*clefF4\t*clefG2
*M4/4\t*M4/4
=1\t=1
2C\t4c
.\t12d
.\t12e
.\t12f
[2G\t2g
=2\t=2
2G]\t4a
.\t8b
.\t8cc
2C\t8qdd
.\t2cc
==\t==
*-\t*-
"""
TWO_STAVES_NOTES = [
    (0, 24, 48),  # 2C
    (0, 12, 60),  # 4c
    (12, 16, 62),  # 12d: triplet eighths are 4 steps
    (16, 20, 64),
    (20, 24, 65),
    (24, 72, 55),  # [2G ... 2G]: one tied note over the bar line
    (24, 48, 67),  # 2g
    (48, 60, 69),  # 4a
    (60, 66, 71),  # 8b
    (66, 72, 72),  # 8cc
    (71, 72, 74),  # 8qdd: a grace note, one step just before the note it ornaments
    (72, 96, 48),  # 2C
    (72, 96, 72),  # 2cc
]

# An end-repeat barline after the first bar of 2/4: bar 1 is played twice.
REPEAT_KERN = "**kern\n*M2/4\n=1\n4c\n4d\n=2:|!\n4e\n4f\n==\n*-\n"
REPEAT_NOTES = [(0, 12, 60), (12, 24, 62), (24, 36, 60), (36, 48, 62), (48, 60, 64), (60, 72, 65)]

# MusicXML with two staves (one part), a tie, a triplet and a grace note, written by hand.
MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN"
  "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="3.1">
  <work><work-title>Crafted Sonatina</work-title></work>
  <identification><creator type="composer">Ada Crafter</creator></identification>
  <part-list><score-part id="P1"><part-name>Piano</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>6</divisions><time><beats>2</beats><beat-type>4</beat-type></time><staves>2</staves>
        <clef number="1"><sign>G</sign><line>2</line></clef><clef number="2"><sign>F</sign><line>4</line></clef>
      </attributes>
      <note><pitch><step>E</step><octave>5</octave></pitch><duration>6</duration><type>quarter</type>
        <staff>1</staff></note>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration><type>eighth</type>
        <time-modification><actual-notes>3</actual-notes><normal-notes>2</normal-notes></time-modification>
        <staff>1</staff></note>
      <note><pitch><step>D</step><octave>5</octave></pitch><duration>2</duration><type>eighth</type>
        <time-modification><actual-notes>3</actual-notes><normal-notes>2</normal-notes></time-modification>
        <staff>1</staff></note>
      <note><pitch><step>E</step><octave>5</octave></pitch><duration>2</duration><type>eighth</type>
        <time-modification><actual-notes>3</actual-notes><normal-notes>2</normal-notes></time-modification>
        <staff>1</staff></note>
      <backup><duration>12</duration></backup>
      <note><pitch><step>C</step><octave>3</octave></pitch><duration>12</duration><tie type="start"/>
        <type>half</type><staff>2</staff><notations><tied type="start"/></notations></note>
    </measure>
    <measure number="2">
      <note><grace slash="yes"/><pitch><step>G</step><octave>5</octave></pitch><type>eighth</type>
        <staff>1</staff></note>
      <note><pitch><step>F</step><octave>5</octave></pitch><duration>12</duration><type>half</type>
        <staff>1</staff></note>
      <backup><duration>12</duration></backup>
      <note><pitch><step>C</step><octave>3</octave></pitch><duration>12</duration><tie type="stop"/>
        <type>half</type><staff>2</staff><notations><tied type="stop"/></notations></note>
    </measure>
  </part>
</score-partwise>
"""
MUSICXML_NOTES = [
    (0, 12, 76),  # E5 quarter
    (0, 48, 48),  # C3 half tied to a half: one note of two bars
    (12, 16, 72),  # the triplet: 4 steps each
    (16, 20, 74),
    (20, 24, 76),
    (23, 24, 79),  # the grace G5, one step before F5
    (24, 48, 77),  # F5 half
]

ABC = "X:1\nT:Crafted Reel\nC:Trad Fiddler\nM:2/4\nL:1/8\nK:C\nCDEF|G2G2|]\n"
ABC_NOTES = [(0, 6, 60), (6, 12, 62), (12, 18, 64), (18, 24, 65), (24, 36, 67), (36, 48, 67)]


def grid_notes(midi: bytes) -> list[tuple[int, int, int]]:
    """The notes of MIDI bytes on the 12-step grid, sorted."""
    notes, _ = TOK.read_notes(midi)
    grid = quantize_notes(notes, 12, 0, 127)
    return sorted(zip(grid.start.tolist(), grid.end.tolist(), grid.pitch.tolist()))


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_kern_ties_tuplets_grace_notes_and_two_staves(tmp_path):
    converted = read_score_file(write(tmp_path, "piece.krn", TWO_STAVES_KERN))
    assert grid_notes(converted.midi) == sorted(TWO_STAVES_NOTES)
    assert (converted.composer, converted.title, converted.movement) == ("Anna Tester", "Little Piece", "2 Andante")
    assert converted.license == "CC BY-NC-SA 4.0" and converted.repeats == "none"


DUO_KERN = "\n".join(  # a violin sonata as the Polish scores write it: printed names, class codes only
    "\t".join(fields)
    for fields in [
        ("**kern", "**kern", "**dynam", "**kern"),
        ('*I"PIANO.', '*I"PIANO.', "*", '*I"Violine.'),
        ("*I'[pf]", "*I'[pf]", "*", "*I'[vln]"),
        ("*ICklav", "*ICklav", "*", "*ICstr"),
        ("*clefF4", "*clefG2", "*", "*clefG2"),
        ("*M4/4", "*M4/4", "*M4/4", "*M4/4"),
        ("=1", "=1", "=1", "=1"),
        ("1C", "1c", "p", "1g"),
        ("==", "==", "==", "=="),
        ("*-", "*-", "*-", "*-"),
    ]
) + "\n"


def test_kern_parts_take_the_names_their_spines_print(tmp_path):
    assert kern_spine_names(DUO_KERN) == ["PIANO", "PIANO", "Violine"]
    split = "**kern\t**kern\n*I'[vc]\t*I\"Violon.\\n(Violoncello.)\n*^\t*\n*I\"late\t*\t*\n4c\t4d\t4e\n*-\t*-\t*-\n"
    assert kern_spine_names(split) == ["vc", "Violon"]  # abbreviation, first printed line; nothing after a split
    coded = "**kern\t**kern\n*Iempty\t*Icello\n*I\"Piano\t*I\"[Violon]\n4c\t4d\n*-\t*-\n"
    assert kern_spine_names(coded) == ["Piano", "Violoncello"]  # the encoder's code before a printed "Violon"
    converted = read_score_file(write(tmp_path, "sonata.krn", DUO_KERN), safe=False)
    tracks = sorted((str(t.name), [n.pitch for n in t.notes]) for t in symusic.Score.from_midi(converted.midi).tracks)
    assert tracks == [("PIANO", [48]), ("PIANO", [60]), ("Violine", [67])]
    duo = NotewiseTokenizer(instruments=("piano", "violin"))
    assert duo.midi_to_tokens(converted.midi)[:3] == ["p48", "p60", "v67"]  # the violin is read as the violin


def test_kern_repeats_are_expanded(tmp_path):
    converted = read_score_file(write(tmp_path, "rep.krn", REPEAT_KERN), safe=False)
    assert grid_notes(converted.midi) == sorted(REPEAT_NOTES)
    assert converted.repeats == "expanded"


def test_musicxml_ties_tuplets_grace_notes_and_two_staves(tmp_path):
    converted = read_score_file(write(tmp_path, "sonatina.musicxml", MUSICXML))
    assert grid_notes(converted.midi) == sorted(MUSICXML_NOTES)
    assert (converted.composer, converted.title) == ("Ada Crafter", "Crafted Sonatina")


def test_abc(tmp_path):
    converted = read_score_file(write(tmp_path, "reel.abc", ABC))
    assert grid_notes(converted.midi) == sorted(ABC_NOTES)
    assert converted.composer == "Trad Fiddler" and converted.title == "Crafted Reel"


def test_bad_scores_raise_errors_that_name_the_file(tmp_path):
    broken = write(tmp_path, "broken.musicxml", "<score-partwise><part id='P1'><measure")
    with pytest.raises(MidiError, match="broken.musicxml: music21 cannot parse"):
        read_score_file(broken)
    empty = write(tmp_path, "empty.krn", "")
    with pytest.raises(MidiError, match="file is empty"):
        read_score_file(empty)
    rests = write(tmp_path, "rests.krn", "**kern\n*M4/4\n=1\n1r\n==\n*-\n")
    with pytest.raises(MidiError, match="no notes"):
        read_score_file(rests)
    with pytest.raises(MidiError, match="no such file"):
        read_score_file(tmp_path / "missing.krn")


def slow_kern(bars: int = 3000) -> str:
    """A long, valid score that takes music21 far longer than a fraction of a second to parse."""
    body = "".join(f"={i}\n8c\n8d\n8e\n8f\n8g\n8a\n8b\n8cc\n" for i in range(1, bars + 1))
    return "**kern\n*M4/4\n" + body + "==\n*-\n"


def test_a_score_that_takes_too_long_is_stopped(tmp_path):
    slow = write(tmp_path, "slow.krn", slow_kern())
    with pytest.raises(MidiError, match="did not finish within 0.5 s"):
        read_score_file(slow, limits=MidiLimits(timeout_s=0.5))


def test_reference_records_and_licence_names():
    records = kern_records(
        "!!!COM: Chopin, Fr&eacute;d&eacute;ric\n!!!OTL: Mazurka\n!!!COM: Other\n**kern\n!! a comment\n"
    )
    assert records == {"COM": "Chopin, Frédéric", "OTL": "Mazurka"}
    assert display_name("Chopin, Frédéric") == "Frédéric Chopin" and display_name("Trad.") == "Trad."
    assert license_from_text("Licensed with Attribution-NonCommercial-ShareAlike 4.0 International") == (
        "CC BY-NC-SA 4.0"
    )
    assert license_from_text("see https://creativecommons.org/licenses/by/4.0/") == "CC BY 4.0"
    assert license_from_text("Copyright 2004 by Craig Stuart Sapp") == ""


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like kernScores': a licensed collection, an unlicensed one, a work in two formats, bad scores."""
    root = tmp_path_factory.mktemp("scores")
    licensed = root / "licensed"
    write(licensed, "LICENSE.txt", "A digital edition\n\nLicensed with Attribution-NonCommercial-ShareAlike 4.0\n")
    write(licensed, "kern/piece.krn", TWO_STAVES_KERN.replace("!!!YEM", "!!!YEC"))
    write(licensed, "kern/rep.krn", REPEAT_KERN.replace("4f\n", "4f\n=3\n1g\n=4\n1a\n=5\n1b\n"))
    # the same work as kern/piece.krn as a MIDI rendering with one more note (as a performer's file would differ),
    # in a folder of MIDI files beside the folder of kern files (as kernScores' repositories lay them out)
    extra = TOK.read_notes(read_score_file(licensed / "kern/piece.krn").midi)[0]
    midi = TOK.tokens_to_midi(TOK.notes_to_tokens(extra) + ["p84", "wait12", "endp84"])
    (licensed / "midi").mkdir()
    midi.dump_midi(str(licensed / "midi/piece.mid"))
    unlicensed = root / "unlicensed"
    write(unlicensed, "README.md", "Scores typed in by a friend.\n")
    write(unlicensed, "sonatina.musicxml", MUSICXML)
    other = TWO_STAVES_KERN.replace("Little Piece", "Other Piece").replace("2C\t8qdd", "2D\t8qdd")
    other = other.replace(".\t12e", ".\t12a").replace(".\t8b", ".\t8e")  # another piece, not another edition
    write(unlicensed, "yem.krn", other)
    write(unlicensed, "broken.xml", "<score-partwise><part")
    write(unlicensed, "slow.krn", slow_kern(8000))  # ~64,000 notes: far over the build's 10 s on any machine
    return root


def test_folder_source_lists_scores_with_collection_licences(collection):
    items = {item.path: item for item in FolderSource(collection, default_license="house terms")}
    assert set(items) == {
        "licensed/kern/piece.krn",
        "licensed/midi/piece.mid",
        "licensed/kern/rep.krn",
        "unlicensed/broken.xml",
        "unlicensed/slow.krn",
        "unlicensed/sonatina.musicxml",
        "unlicensed/yem.krn",
    }
    assert items["licensed/kern/piece.krn"].kind == SCORE and items["licensed/midi/piece.mid"].kind == FILE
    assert items["licensed/kern/piece.krn"].license == "CC BY-NC-SA 4.0"  # LICENSE.txt one folder up
    assert items["licensed/midi/piece.mid"].license == "CC BY-NC-SA 4.0"
    assert items["unlicensed/yem.krn"].license == ""  # left for the score's own records, then the default


def test_a_folder_of_scores_builds_a_dataset(collection, tmp_path):
    out = tmp_path / "ds"
    builder = build_dataset(
        out,
        sources=(str(collection),),
        train_fraction=1.0,
        validation_fraction=0.0,
        test_fraction=0.0,
        default_license="house terms",
        score_timeout_s=10.0,
        min_quarters=0,
        num_proc=2,
    )
    rows = {row["path"]: row for row in load_dataset(str(out), split="train")}
    assert set(rows) == {
        "licensed/kern/piece.krn",
        "licensed/kern/rep.krn",
        "unlicensed/sonatina.musicxml",
        "unlicensed/yem.krn",
    }
    piece = rows["licensed/kern/piece.krn"]
    assert (piece["composer"], piece["title"]) == ("Anna Tester", "Little Piece: 2 Andante")
    assert piece["license"] == "CC BY-NC-SA 4.0"  # the collection's LICENSE.txt
    assert grid_notes(piece["midi"]) == sorted(TWO_STAVES_NOTES)
    assert piece["notewise"].split() == TOK.notes_to_tokens(TOK.read_notes(piece["midi"])[0])
    assert json.loads(rows["licensed/kern/rep.krn"]["metadata"])["repeats"] == "expanded"
    assert rows["unlicensed/yem.krn"]["license"] == "CC BY-NC-SA 4.0"  # its !!!YEM record
    assert rows["unlicensed/sonatina.musicxml"]["license"] == "house terms"  # nothing better: the default
    assert rows["unlicensed/sonatina.musicxml"]["composer"] == "Ada Crafter"
    rejects = {r["path"]: r for r in map(json.loads, (out / "rejects.jsonl").read_text().splitlines())}
    assert rejects["licensed/midi/piece.mid"]["reason"] == "duplicate_work"
    assert rejects["licensed/midi/piece.mid"]["duplicate_of"]["path"] == "licensed/kern/piece.krn"
    assert rejects["unlicensed/broken.xml"]["reason"] == "conversion_error"
    assert "music21 cannot parse" in rejects["unlicensed/broken.xml"]["detail"]
    assert rejects["unlicensed/slow.krn"]["reason"] == "timeout"
    assert "CC BY-NC-SA 4.0" in (out / "README.md").read_text()
    assert builder.stats.rejects == {"duplicate_work": 1, "conversion_error": 1, "timeout": 1}


def test_a_rebuild_can_keep_the_splits_of_an_earlier_build(tmp_path):
    """A piece whose notes are read differently (a new Toccata) would hash to another split; splits_from pins it."""
    from support.midi_files import make_score

    folder = tmp_path / "midi"
    folder.mkdir()
    def piece(i: int, low: int) -> list[tuple[int, int, int]]:  # 12 pieces, each with its own intervals
        rng = np.random.default_rng(i)
        return [(480 * b, 480 * b + 240 * int(rng.integers(1, 4)), low + int(rng.integers(0, 36))) for b in range(20)]

    for i in range(12):
        make_score([piece(i, 48)]).dump_midi(str(folder / f"piece{i:02d}.mid"))
    fractions = {"train_fraction": 0.5, "validation_fraction": 0.25, "test_fraction": 0.25}
    first = tmp_path / "first"
    build_dataset(first, sources=(str(folder),), seed=0, **fractions)
    again = tmp_path / "again"
    build_dataset(again, sources=(str(folder),), seed=7, splits_from=str(first), **fractions)  # another seed
    other = tmp_path / "other"
    build_dataset(other, sources=(str(folder),), seed=7, **fractions)

    def splits(out: Path) -> dict[str, str]:
        return {row["path"]: name for name, rows in load_dataset(str(out)).items() for row in rows}

    assert splits(again) == splits(first)
    assert splits(other) != splits(first)  # without it, seed 7 would have moved pieces

    # The same pieces a tone lower under other names, in a source listed first: those files are kept now (the pinned
    # ones are their duplicates), and each piece stays in its split all the same.
    lower = tmp_path / "lower"
    lower.mkdir()
    for i in range(12):
        make_score([piece(i, 46)]).dump_midi(str(lower / f"copy{i:02d}.mid"))
    moved = tmp_path / "moved"
    build_dataset(moved, sources=(str(lower), str(folder)), seed=7, splits_from=str(first), **fractions)

    def piece_splits(out: Path) -> dict[str, str]:
        return {row["piece_id"]: name for name, rows in load_dataset(str(out)).items() for row in rows}

    assert {row["path"] for rows in load_dataset(str(moved)).values() for row in rows} == {
        f"copy{i:02d}.mid" for i in range(12)
    }
    assert piece_splits(moved) == piece_splits(first)
    with pytest.raises(ValueError, match="holds no built dataset"):
        build_dataset(tmp_path / "x", sources=(str(folder),), splits_from=str(folder))


MEI = """<?xml version="1.0" encoding="UTF-8"?>
<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="4.0.0">
<meiHead><fileDesc><titleStmt><title>Tiny</title></titleStmt><pubStmt/></fileDesc></meiHead>
<music><body><mdiv><score>
<scoreDef meter.count="2" meter.unit="4"><staffGrp>
<staffDef n="1" lines="5" clef.shape="G" clef.line="2"/></staffGrp></scoreDef>
<section><measure n="1"><staff n="1"><layer n="1">
<note pname="c" oct="4" dur="4"/><note pname="e" oct="4" dur="8"/><note pname="g" oct="4" dur="8"/>
</layer></staff></measure></section>
</score></mdiv></body></music></mei>
"""


def test_mei(tmp_path):
    converted = read_score_file(write(tmp_path, "tiny.mei", MEI))
    assert grid_notes(converted.midi) == [(0, 12, 60), (12, 18, 64), (18, 24, 67)]  # a quarter, two eighths
