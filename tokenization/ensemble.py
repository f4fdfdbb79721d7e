"""From an ensemble to "instrument + piano": which track becomes the violin (or cello) part, and where the rest goes.

An instrumented `NotewiseTokenizer` has a piano part and one or two string parts. A string quartet, a trio sonata or
a piano trio has more players than that, so a *mapping* chooses, per target instrument, one track of the score to be
that part and gives every other pitched track to the piano (a reduction, as a pianist would play it). Rules:

``"outer"`` (the default)
    the violin is the *top* string part, the cello the *bottom* one: the track with the highest median pitch among
    the violin tracks (or generic "strings"), the one with the lowest median pitch among the cello, double bass and
    violone tracks (or "strings"); a viola part stays with the piano. In a quartet that is the first violin, or the cello; in a trio sonata the first violin, or the bass line
    (violone); in a sonata the one string track. Why: the outer voices carry the melody and the bass, so the solo
    part keeps the line a listener follows, and the piano keeps the inner voices it plays well.
``"named"``
    the first track, in file order, whose name or program says exactly the target (violin; cello), whatever its
    register; a viola or double bass part never becomes the cello.
``"exact"``
    music written for exactly these players: as ``"named"``, and the score may have no other string part (a piano
    trio is not a violin sonata, a quartet is no duo). A score with another string track has no such part
    (`MappedEnsemble.other_strings` names the tracks), so an "exact" build keeps only real duos (or trios).

Then the chosen part is made playable, and nothing is dropped: notes outside the instrument's range
(`INSTRUMENTS`: violin G3-G7, cello C2-E6) go to the piano rather than moving by octaves (which would change the
line); and at most `max_polyphony` (2: a double stop) notes of the part sound at once, on the 12-step grid: of
notes that would make a third, the violin keeps its highest, the cello its lowest, the others go to the piano.
Drums are dropped. A score with no string track for a target has no such part (`MappedEnsemble.found`), which the
dataset builder rejects as ``no_instrument``.

Imports only numpy, symusic and its sibling `tokenization_notewise`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import symusic

from .tokenization_notewise import INSTRUMENTS

ENSEMBLE_RULES = ("outer", "named", "exact")
"""The mapping rules `map_ensemble` knows."""

_STRING_NAMES = (  # (pattern on a lower-cased track name, string role): first match wins
    (re.compile(r"violone|contrabass|kontrabass|double ?bass|\bbasso\b|\bcb\.?(?:\b|\d)|\bkb\b"), "bass"),
    (re.compile(r"cello|violoncel|\bvcl?(?:\b|\d)|\bvlc(?:\b|\d)"), "cello"),
    (re.compile(r"viola|\bvla\b|bratsche"), "viola"),
    (re.compile(r"violin|violon|\bv(?:ln?|n|ni)(?:\b|\d)|geige|fiddle"), "violin"),
    (re.compile(r"string|strings|archi\b|streicher"), "strings"),
)
_NOT_STRINGS = re.compile(r"piano|pno|klavier|keyboard|clavier|cembalo|harpsichord|organ|orgel|flute|oboe|clarinet")
_STRING_PROGRAMS = {40: "violin", 41: "viola", 42: "cello", 43: "bass", 44: "strings", 45: "strings"}
_STRING_PROGRAMS.update({program: "strings" for program in range(48, 52)})  # string ensembles, synth strings


def string_role(name: str, program: int) -> str | None:
    """The string instrument a track plays ("violin", "viola", "cello", "bass", "strings") or None if none.

    By name first ("Violin I", "Vln. 2", "Viola", "Violoncello", "Violone e Organo"), since many files leave the
    program at 0 (kernScores through music21) or write 48 (string ensemble) for every part; then by GM program
    (40-45, 48-51). A name that says piano, organ or a wind instrument is never a string part.
    """
    lowered = (name or "").lower()
    for pattern, role in _STRING_NAMES:
        if pattern.search(lowered):
            return role
    if _NOT_STRINGS.search(lowered):
        return None
    return _STRING_PROGRAMS.get(int(program))


@dataclass
class MappedEnsemble:
    """The mapped score (a "Piano" track, then one track per target found, with GM programs) and what moved."""

    score: symusic.Score
    sources: dict[str, str] = field(default_factory=dict)  # target -> name of the track that became it
    out_of_range: dict[str, int] = field(default_factory=dict)  # target -> notes given to the piano: range
    over_polyphony: dict[str, int] = field(default_factory=dict)  # target -> notes given to the piano: > 2 at once
    other_strings: list[str] = field(default_factory=list)  # rule "exact": string tracks that are not a target

    @property
    def found(self) -> bool:
        """Whether every target found a track to play it (and, under rule "exact", no other string part plays)."""
        return not self.other_strings and all(self.sources.get(target) is not None for target in self.out_of_range)


def map_ensemble(
    score: symusic.Score,
    target: str | Sequence[str] = "violin",
    rule: str = "outer",
    *,
    max_polyphony: int = 2,
    steps_per_quarter: int = 12,
) -> MappedEnsemble:
    """Map an ensemble score to "target + piano" (see the module docstring for the rules); never drops a note.

    `target` is "violin", "cello" or both (the violin is chosen first, then the cello from the other tracks).
    Tempos, time signatures and key signatures are kept; velocities are kept; pedals and controls are not.
    """
    targets = (target,) if isinstance(target, str) else tuple(target)
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"rule must be one of {list(ENSEMBLE_RULES)}, got {rule!r}")
    if not targets or any(t not in INSTRUMENTS or t == "piano" for t in targets) or len(set(targets)) < len(targets):
        others = [name for name in INSTRUMENTS if name != "piano"]
        raise ValueError(f"target must name instruments from {others}, each once, got {list(targets)}")
    if max_polyphony < 1:
        raise ValueError(f"max_polyphony must be at least 1, got {max_polyphony}")
    if score.ttype != "Tick" and str(score.ttype) != "Tick":
        score = score.to("tick")
    tracks = [track for track in score.tracks if not track.is_drum and len(track.notes)]
    roles = [string_role(track.name, track.program) for track in tracks]
    chosen: dict[str, int | None] = {}
    for name in (n for n in INSTRUMENTS if n in targets):  # part order: violin before cello
        taken = {index for index in chosen.values() if index is not None}
        chosen[name] = _choose(tracks, roles, name, rule, taken)
    piano: list[np.ndarray] = [_notes(track) for i, track in enumerate(tracks) if i not in chosen.values()]
    parts, mapped = {}, MappedEnsemble(symusic.Score(score.tpq))
    if rule == "exact":
        mapped.other_strings = [
            str(track.name) for i, track in enumerate(tracks) if roles[i] and i not in chosen.values()
        ]
    for name, index in chosen.items():
        mapped.sources[name] = None if index is None else str(tracks[index].name)
        notes = _notes(tracks[index]) if index is not None else _notes(None)
        spec = INSTRUMENTS[name]
        inside = (notes["pitch"] >= spec["low"]) & (notes["pitch"] <= spec["high"])
        mapped.out_of_range[name] = int((~inside).sum())
        keep = _playable(notes[inside], max_polyphony, high_first=name == "violin", tpq=score.tpq, spq=steps_per_quarter)
        mapped.over_polyphony[name] = int((~keep).sum())
        parts[name] = notes[inside][keep]
        piano += [notes[~inside], notes[inside][~keep]]
    out = mapped.score
    out.tempos, out.time_signatures = score.tempos.copy(), score.time_signatures.copy()
    out.key_signatures = score.key_signatures.copy()
    out.tracks.append(_track(np.concatenate(piano) if piano else _notes(None), "Piano", 0))
    for name, notes in parts.items():
        out.tracks.append(_track(notes, INSTRUMENTS[name]["track_name"], INSTRUMENTS[name]["program"]))
    return mapped


# ---------------------------------------------------------------------------------------------------- private


_CAN_PLAY = {"violin": ("violin", "strings"), "cello": ("cello", "bass", "strings")}  # "outer": string roles taken


def _choose(tracks: list, roles: list[str | None], target: str, rule: str, taken: set[int]) -> int | None:
    """Index of the track that plays `target` under `rule`, or None."""
    if rule in ("named", "exact"):
        return next((i for i in range(len(tracks)) if i not in taken and roles[i] == target), None)
    free = [i for i in range(len(tracks)) if i not in taken and roles[i] in _CAN_PLAY[target]]
    if not free:
        return None
    medians = {i: float(np.median(tracks[i].notes.numpy()["pitch"])) for i in free}
    return max(free, key=lambda i: (medians[i], -i)) if target == "violin" else min(free, key=lambda i: (medians[i], i))


_DTYPE = [("time", np.int64), ("duration", np.int64), ("pitch", np.int64), ("velocity", np.int64)]


def _notes(track) -> np.ndarray:
    """A track's notes as a structured array (time, duration, pitch, velocity); an empty one for None."""
    if track is None:
        return np.zeros(0, dtype=_DTYPE)
    arrays = track.notes.numpy()
    out = np.zeros(len(arrays["time"]), dtype=_DTYPE)
    for name, _ in _DTYPE:
        out[name] = arrays[name]
    return out


def _playable(notes: np.ndarray, limit: int, *, high_first: bool, tpq: int, spq: int) -> np.ndarray:
    """Which notes one player keeps with at most `limit` sounding at once (on the step grid); the rest: False."""
    start = (notes["time"] * spq * 2 + tpq) // (2 * tpq)
    end = np.maximum(((notes["time"] + notes["duration"]) * spq * 2 + tpq) // (2 * tpq), start + 1)
    order = np.lexsort((-notes["pitch"] if high_first else notes["pitch"], start))
    keep = np.zeros(len(notes), dtype=bool)
    sounding: list[int] = []  # end steps of kept notes
    for i in order.tolist():
        sounding = [e for e in sounding if e > start[i]]
        if len(sounding) < limit:
            keep[i] = True
            sounding.append(int(end[i]))
    return keep


def _track(notes: np.ndarray, name: str, program: int) -> symusic.Track:
    track = symusic.Track(name=name, program=program, is_drum=False)
    order = np.lexsort((notes["pitch"], notes["time"]))
    notes = notes[order]
    track.notes = symusic.Note.from_numpy(
        time=notes["time"].astype(np.int32),
        duration=notes["duration"].astype(np.int32),
        pitch=notes["pitch"].astype(np.int8),
        velocity=notes["velocity"].astype(np.int8),
    )
    return track


__all__ = ["ENSEMBLE_RULES", "MappedEnsemble", "map_ensemble", "string_role"]
