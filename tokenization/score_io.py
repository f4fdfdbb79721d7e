"""Scores in, MIDI out: `**kern`, MusicXML, ABC and MEI files read with music21 and written as Standard MIDI Files.

music21 is slow and can hang or exhaust memory on a bad file, so `read_score_file` runs it in a forked child with a
time and memory limit (midi_io's safe mode) and returns plain data: the MIDI bytes and what the score says about
itself (composer, title, movement, licence) and about its repeats. Repeats are expanded where music21 can expand
them; otherwise the score is played through once as written, and `repeats` says why. On the 12-step grid: tuplets
land on their exact steps (a triplet eighth is 4 steps), ties become one note, grace notes (no written duration;
music21 leaves them out of MIDI) become one-step notes just before the note they ornament, and ornaments (trills,
turns, mordents) sound as their main note: music21 does not realize them.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import symusic

from .midi_io import MidiError, MidiLimits, _music21, _without_repeats, run_limited

SCORE_EXTENSIONS = (".krn", ".musicxml", ".mxl", ".xml", ".abc", ".mei")
"""Score formats read through music21 (`.xml` is tried as MusicXML)."""

CONVERSION_VERSION = 6
TICKS_PER_QUARTER = 480  # MIDI resolution of converted scores: a multiple of the 12-step grid  # bump when the conversion changes, so caches of converted scores are not reused
SCORE_LIMITS = MidiLimits(timeout_s=120.0)  # a Beethoven sonata movement takes music21 up to ~5 s on an idle core

EXPANDED, AS_WRITTEN, NO_REPEATS = "expanded", "as written", "none"

_LICENSES = (  # (pattern in a licence text or record, short name): most specific first
    (r"by-nc-sa|Attribution-NonCommercial-ShareAlike", "CC BY-NC-SA 4.0"),
    (r"by-nc-nd|Attribution-NonCommercial-NoDerivatives", "CC BY-NC-ND 4.0"),
    (r"by-nc/|Attribution-NonCommercial\b", "CC BY-NC 4.0"),
    (r"by-sa/|Attribution-ShareAlike", "CC BY-SA 4.0"),
    (r"by/\d|Creative Commons Attribution \d", "CC BY 4.0"),
    (r"CC0|publicdomain/zero", "CC0 1.0"),
    (r"\bMIT License\b", "MIT"),
)


@dataclass(frozen=True)
class ScoreConversion:
    """A score file as MIDI bytes, with what its own metadata says; picklable (it comes back from the child)."""

    midi: bytes
    composer: str = ""  # "First Last", from kern !!!COM or the score's metadata
    title: str = ""  # the work (kern !!!OTL, MusicXML work/movement title)
    movement: str = ""  # kern !!!OMV (+ !!!OMD), MusicXML movement number/name
    license: str = ""  # from kern !!!YEM, when the file states one
    repeats: str = NO_REPEATS  # "expanded", "as written: <why>" or "none"
    scores_in_file: int = 1  # an ABC book holds several tunes: the first is read

    def metadata(self) -> dict[str, Any]:
        """Everything but the MIDI bytes, for caches and manifests."""
        return {key: value for key, value in asdict(self).items() if key != "midi"}


def is_score_path(path: str | os.PathLike) -> bool:
    """Whether `path` names a score format read through music21 (by extension, case-insensitive)."""
    return os.fspath(path).lower().endswith(SCORE_EXTENSIONS)


def read_music_file(path: str | os.PathLike, *, safe: bool = True) -> str | bytes:
    """A MIDI file or a score as `load_score` and the tokenizers take it: a score (.krn, .musicxml, .mxl, .xml, .abc,
    .mei) as the MIDI bytes of `read_score_file` (music21 in a limited child when `safe`), any other file as its path
    for `load_score` to read (or refuse, naming the problem). A MIDI file under a score's extension is MIDI.
    Every command that takes a MIDI file takes a score through this."""
    name = os.fspath(path)
    if not is_score_path(name):
        return name
    try:
        with open(name, "rb") as handle:
            head = handle.read(12)
    except OSError:
        head = b""  # read_score_file says what is wrong with the path
    if head[:4] == b"MThd" or (head[:4] == b"RIFF" and head[8:12] == b"RMID"):
        return name
    return read_score_file(name, safe=safe).midi


def read_score_file(
    path: str | os.PathLike, *, safe: bool = True, limits: MidiLimits = SCORE_LIMITS
) -> ScoreConversion:
    """Parse a score file with music21 and convert it to MIDI, in a limited child process when `safe`.

    Raises `MidiError` naming the file and the problem: unreadable, not a score music21 can parse, too slow (over
    `limits.timeout_s`), out of memory, or a crash of the parser.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise MidiError(name, "cannot open the file (no such file); check the path")
    size = os.path.getsize(name)
    if size > limits.max_bytes:
        raise MidiError(name, f"file is {size} bytes, over the limit of {limits.max_bytes} bytes")
    if size == 0:
        raise MidiError(name, "file is empty")
    _music21()  # imported here, before the fork, so each child does not import it again
    if safe:
        return run_limited(_convert, (name,), name, limits)
    return _convert(name)


def license_from_text(text: str) -> str:
    """A short licence name ("CC BY-NC-SA 4.0", "MIT" ...) recognised in a licence file or record; "" if none."""
    for pattern, short in _LICENSES:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return short
    return ""


def kern_records(text: str) -> dict[str, str]:
    """The reference records (``!!!KEY: value``) of a Humdrum file, HTML entities decoded; the first of each key wins."""
    records: dict[str, str] = {}
    for match in re.finditer(r"^!!!([^:!\s][^:]*):[ \t]*(.*?)\s*$", text, flags=re.MULTILINE):
        records.setdefault(match.group(1).strip(), html.unescape(match.group(2)))  # kernScores writes M&uuml;ller
    return records


KERN_INSTRUMENT_CODES = {  # Humdrum instrument codes (``*Icello``) of the parts a duo or trio is made of
    "violn": "Violin",
    "viola": "Viola",
    "cello": "Violoncello",
    "contr": "Contrabass",
    "piano": "Piano",
    "forte": "Fortepiano",
    "cemba": "Harpsichord",
    "clavi": "Clavichord",
    "organ": "Organ",
}


def kern_spine_names(text: str) -> list[str]:
    """Per ``**kern`` spine, in file order, the instrument its header names: the encoder's instrument code
    (``*Icello`` as "Violoncello", `KERN_INSTRUMENT_CODES`) first, then the name printed in the score (``*I"Violine.``,
    first line, brackets, quotes and the final dot dropped), then the abbreviation (``*I'[vln]`` as "vln"); "" for
    none. The code comes first because a printed "Violon" may stand for a cello part the encoder coded *Icello.
    music21 names a part from the code only and calls the rest "StringInstrument" or "Keyboard", which cannot tell a
    violin from a cello. Records after the first data line or a spine split are not read."""
    lines = [line for line in text.splitlines() if line and not line.startswith("!")]
    if not lines or not lines[0].startswith("**"):
        return []
    kinds = lines[0].split("\t")
    coded, printed, abbreviated = [""] * len(kinds), [""] * len(kinds), [""] * len(kinds)
    for line in lines[1:]:
        fields = line.split("\t")
        if not line.startswith("*") or len(fields) != len(kinds) or any(f in ("*^", "*v", "*-") for f in fields):
            break
        for index, field in enumerate(fields):
            if field.startswith('*I"') and not printed[index]:
                printed[index] = html.unescape(field[3:].split("\\n")[0]).strip(" []").rstrip(".").strip(" []")
            elif field[2:] in KERN_INSTRUMENT_CODES and field.startswith("*I") and not coded[index]:
                coded[index] = KERN_INSTRUMENT_CODES[field[2:]]
            elif field.startswith("*I'") and not abbreviated[index]:
                abbreviated[index] = field[3:].strip("[] ")
    return [coded[i] or printed[i] or abbreviated[i] for i, kind in enumerate(kinds) if kind == "**kern"]


def display_name(name: str) -> str:
    """ "Mozart, Wolfgang Amadeus" as "Wolfgang Amadeus Mozart"; other spellings as they are."""
    last, comma, first = name.partition(",")
    return f"{first.strip()} {last.strip()}" if comma and first.strip() and "," not in first else name.strip()


# ---------------------------------------------------------------------------------------------------- private


def _convert(name: str) -> ScoreConversion:
    """Parse, read metadata, expand repeats, export: the body of `read_score_file` (runs in the child)."""
    music21 = _music21()
    try:
        parsed = music21.converter.parse(name)
    except Exception as err:
        raise MidiError(name, f"music21 cannot parse this score ({type(err).__name__}: {err})") from None
    count = 1
    if isinstance(parsed, music21.stream.Opus):
        count = len(parsed.scores)
        if not count:
            raise MidiError(name, "the file holds no scores")
        parsed = parsed.scores[0]
    if not parsed.recurse().notes.first():
        raise MidiError(name, "the score has no notes")
    kern_text = _kern_text(name)
    info = _metadata(parsed, kern_text)
    if kern_text:
        _name_kern_parts(parsed, kern_text)
    playable, repeats = _expand_repeats(parsed)
    return ScoreConversion(midi=_score_midi(playable, name), repeats=repeats, scores_in_file=count, **info)


def _kern_text(name: str) -> str:
    """The text of a kern file, read once for its records and spine names; "" for any other score format."""
    if not name.lower().endswith(".krn"):
        return ""
    with open(name, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _name_kern_parts(score: Any, kern_text: str) -> None:
    """Give each part of a kern score the instrument its spine names (`kern_spine_names`: code, printed name or
    abbreviation), so that a violin written ``*I"Violine.`` is a "Violine" track, not a "StringInstrument". music21
    makes one part per ``**kern`` spine, top staff first: the spines' file order reversed. Parts are left as they are
    if the counts differ."""
    names = kern_spine_names(kern_text)
    parts = list(getattr(score, "parts", None) or [])
    if len(names) != len(parts):
        return
    for part, spine_name in zip(parts, reversed(names)):
        if spine_name:
            part.partName = spine_name


def _score_midi(score: Any, name: str) -> bytes:
    """The notes of `score` as a Standard MIDI File (one track per part), written from the score's own note list.

    Not through music21's MIDI writer: it sends the unisons of two voices (a half note and a quarter on the same key)
    on one channel, and a MIDI reader then pairs their note-ons and note-offs so that one note lasts for dozens of
    bars (seen in 2% of the notes of kernScores' Beethoven sonatas). Here every note keeps its written start and end,
    ties joined; the tokenizer reads a unison overlap as a re-strike. Grace notes (no written duration; music21's
    writer drops them) become one-step notes just before the note they ornament. Tempo: the first metronome mark
    (120 without one); time signature: the first.
    """
    music21 = _music21()
    step = TICKS_PER_QUARTER // 12
    out = symusic.Score(TICKS_PER_QUARTER)
    mark = score.recurse().getElementsByClass(music21.tempo.MetronomeMark).first()
    qpm = (mark.getQuarterBPM() if mark is not None else None) or 120.0
    out.tempos.append(symusic.Tempo(0, float(min(max(qpm, 10.0), 400.0))))
    meter = score.recurse().getElementsByClass(music21.meter.TimeSignature).first()
    if meter is not None:
        out.time_signatures.append(symusic.TimeSignature(0, int(meter.numerator), int(meter.denominator)))
    for index, part in enumerate(list(getattr(score, "parts", None) or []) or [score]):
        track = symusic.Track(name=str(getattr(part, "partName", None) or f"part {index + 1}"), program=0)
        graces: list[list[int]] = []  # grace notes waiting for the note they ornament
        for note in part.stripTies().flatten().notes:
            pitches = [int(p.midi) for p in getattr(note, "pitches", ()) if 0 <= p.midi <= 127]
            if not pitches:
                continue  # unpitched percussion
            start = round(float(note.offset) * TICKS_PER_QUARTER)
            if note.duration.isGrace:
                graces.append(pitches)
                continue
            for back, grace in enumerate(reversed(graces), start=1):
                track.notes.extend(symusic.Note(max(0, start - back * step), step, p, 64) for p in grace)
            graces = []
            length = max(1, round(float(note.quarterLength) * TICKS_PER_QUARTER))
            velocity = int(getattr(note.volume, "velocity", None) or 80)
            track.notes.extend(symusic.Note(start, length, p, velocity) for p in pitches)
        if len(track.notes):
            track.notes.sort(key=lambda n: (n.time, n.pitch))
            out.tracks.append(track)
    if not out.note_num():
        raise MidiError(name, "the score has no pitched notes")
    return bytes(out.dumps_midi())


def _expand_repeats(score: Any) -> tuple[Any, str]:
    """(the score with its repeats played, how): expanded by music21, or kept as written when it cannot expand them."""
    music21 = _music21()
    marks = score.recurse().getElementsByClass((music21.bar.Repeat, music21.repeat.RepeatMark))
    if not marks.first():
        return score, NO_REPEATS
    try:
        return score.expandRepeats(), EXPANDED
    except Exception as err:  # music21 raises ExpanderException (and others) on repeats it cannot follow
        return _without_repeats(score), f"{AS_WRITTEN}: music21 cannot expand them ({type(err).__name__}: {err})"


def _metadata(score: Any, kern_text: str) -> dict[str, str]:
    """Composer, title, movement and licence: kern reference records first (exact), then music21's metadata."""
    records = kern_records(kern_text[:200_000]) if kern_text else {}
    meta = score.metadata
    composer = records.get("COM") or (meta.composer if meta is not None else "") or ""
    title = records.get("OTL") or ""
    movement = " ".join(part for part in (records.get("OMV", ""), records.get("OMD", "")) if part)
    if meta is not None and not records:
        title = meta.title or ""
        number, movement_name = meta.movementNumber or "", meta.movementName or ""
        if movement_name and movement_name != title:
            movement = f"{number} {movement_name}".strip()
        elif number:
            movement = str(number)
    license_text = records.get("YEM", "") or (str(meta.copyright) if meta is not None and meta.copyright else "")
    return {
        "composer": display_name(str(composer)),
        "title": str(title).strip(),
        "movement": movement.strip(),
        "license": license_from_text(license_text),
    }


__all__ = [
    "CONVERSION_VERSION",
    "SCORE_EXTENSIONS",
    "SCORE_LIMITS",
    "ScoreConversion",
    "display_name",
    "is_score_path",
    "kern_records",
    "kern_spine_names",
    "license_from_text",
    "read_music_file",
    "read_score_file",
]
