"""The per-file work of a build, as a pure function run in worker processes: read, hash, parse, tokenize, fingerprint.

`analyse_item(item, settings)` depends only on the item's bytes and the settings, so its result is cached on disk
keyed by the content hash and a digest of the settings (`<work_dir>/analysis/<settings>/<ab>/<hash>.json`, written
atomically). A rebuild after a crash or `kill -9` reads the cache and redoes only the files it lacks. Corpus works are
converted to MIDI once and kept as content in `<work_dir>/music21/`. What a worker returns is small (no tokens, no
bytes), so the parent holds per-file summaries only, never the corpus.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.ensemble import map_ensemble
from toccata.tokenization.midi_io import (
    MidiError,
    MidiLimits,
    NoteArrays,
    load_score,
    music21_corpus_midi,
    read_midi_bytes,
    standard_midi_bytes,
)
from toccata.tokenization.score_io import CONVERSION_VERSION, SCORE_LIMITS, read_score_file
from toccata.tokenization.tokenization_base import quantize_notes

from .items import MUSIC21, SCORE, SourceItem

ANALYSIS_VERSION = 2  # bump when the analysis changes, so old cache entries are not reused
ENSEMBLE_VERSION = 2  # bump when the ensemble mapping changes (instrumented builds only)
FINGERPRINT_TAG = b"toccata-notes-v1"
SKETCH_SIZE = 64  # MinHash values per piece: the share of equal values estimates the Jaccard index within ±0.06
SKETCH_GRAM = 6  # notes per n-gram of the sketch (5 steps of pitch interval and onset gap)

# Reject reasons (the `reason` column of the rejects manifest).
PARSE_ERROR = "parse_error"  # not MIDI, truncated, a header that lies, the parser failed or crashed
TOO_LARGE = "too_large"  # over max_file_bytes, never parsed
TOO_LONG = "too_long"  # over max_quarters (usually a corrupt delta time)
TOO_MANY_NOTES = "too_many_notes"
OUT_OF_RANGE = "out_of_range"  # absurd tempo, event times that overflow
EMPTY = "empty"  # no bytes, or no notes
TOO_SHORT = "too_short"  # under min_quarters
TIMEOUT = "timeout"  # the safe parser ran out of time (not cached: may pass on a quieter machine)
CONVERSION_ERROR = "conversion_error"  # music21 could not export a corpus work
UNREADABLE = "unreadable"  # the file system refused, or not a regular file (a FIFO, a device)
INTERNAL_ERROR = "internal_error"  # a bug; the detail has the exception
DUPLICATE = "duplicate"  # the bytes of a file kept earlier
DUPLICATE_NOTES = "duplicate_notes"  # the notes of a file kept earlier, up to transposition, tempo and velocity
DUPLICATE_WORK = "duplicate_work"  # the same work as a file kept earlier: another format or variant (a.krn, a.mid)
TRANSPOSITION_OUT_OF_RANGE = "transposition_out_of_range"  # a transposed row not made (notes off the keyboard)
NO_INSTRUMENT = "no_instrument"  # instrumented builds: no track can play the violin (or cello) part
NEAR_DUPLICATE = "near_duplicate"  # another edition of a piece kept earlier: same composer, most note n-grams shared
LICENSE_EXCLUDED = "license_excluded"  # a licence outside the build's `licenses`
TRANSIENT_REASONS = (TIMEOUT, INTERNAL_ERROR)  # not cached: another run may succeed


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the per-file analysis depends on; picklable, sent once to each worker."""

    tokenizer: tuple[tuple[str, Any], ...]  # NotewiseTokenizer keyword arguments
    max_file_bytes: int
    max_quarters: int
    timeout_s: float
    safe: bool
    work_dir: str
    score_timeout_s: float = 120.0  # music21 on a score file (kern, MusicXML ...): far slower than a MIDI parse
    ensemble_rule: str = "outer"  # instrumented builds: how an ensemble maps to "instrument + piano"

    @property
    def targets(self) -> tuple[str, ...]:
        """The parts beside the piano (empty for a piano build)."""
        return tuple(name for name in dict(self.tokenizer).get("instruments", ("piano",)) if name != "piano")

    def key(self) -> str:
        """Digest of what changes a cached result (not safe/timeout: they change whether, not what, is parsed)."""
        payload = {"version": ANALYSIS_VERSION, "tokenizer": dict(self.tokenizer), "max_quarters": self.max_quarters}
        if self.targets:
            payload.update(ensemble=self.ensemble_rule, ensemble_version=ENSEMBLE_VERSION)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def limits(self) -> MidiLimits:
        return MidiLimits(max_bytes=self.max_file_bytes, max_quarters=self.max_quarters, timeout_s=self.timeout_s)

    def cache_path(self, content_hash: str) -> Path:
        """Where the analysis of the MIDI bytes with this content hash is cached."""
        return Path(self.work_dir, "analysis", self.key(), content_hash[:2], content_hash + ".json")

    def mapped_path(self, content_hash: str) -> Path:
        """Instrumented builds: where the "instrument + piano" MIDI of the bytes with this content hash is kept."""
        return self.cache_path(content_hash).with_suffix(".mapped.mid")


@functools.lru_cache(maxsize=4)
def tokenizer_for(settings: tuple[tuple[str, Any], ...]) -> NotewiseTokenizer:
    """One tokenizer per process and settings (building one per file would dominate small files)."""
    return NotewiseTokenizer(**dict(settings))


def analyse_item(item: SourceItem, settings: AnalysisSettings) -> dict[str, Any]:
    """Summary of one item: ``ok`` plus hashes, fingerprint and sizes, or ``ok=False`` with a reason and a problem.

    Never raises for a bad file: every MidiError becomes a reject reason. The token text is written to the cache
    only (`load_tokens`), so what travels back to the parent stays small.
    """
    try:
        data, midi_file, score = _item_bytes(item, settings)
    except MidiError as err:
        return _rejected(err.problem)
    except OSError as err:
        return {"ok": False, "reason": UNREADABLE, "problem": f"cannot read the file ({err})"}
    except Exception as err:  # noqa: BLE001 - e.g. a music21 bug on one work must not abort the build
        return {"ok": False, "reason": INTERNAL_ERROR, "problem": f"{type(err).__name__}: {err}"}
    content_hash = hashlib.sha256(data).hexdigest()
    cache = settings.cache_path(content_hash)
    result = _read_json(cache)
    if result is not None and result.get("mapped") and not settings.mapped_path(content_hash).is_file():
        result = None  # the mapped MIDI went missing: analyse again
    if result is None:
        safe = settings.safe and item.kind != MUSIC21  # corpus bytes come from music21's own writer
        result = _analyse_bytes(data, item.path, settings, safe, content_hash)
        if result.get("reason") not in TRANSIENT_REASONS:
            write_json_atomic(cache, result)
    summary = {key: value for key, value in result.items() if key != "notewise"}
    summary.update(content_hash=content_hash, midi_file=midi_file)
    if score is not None:
        summary["score"] = score  # what the score says of itself: composer, title, movement, licence, repeats
    return summary


def load_tokens(settings: AnalysisSettings, content_hash: str) -> str:
    """The notewise text cached for `content_hash` by `analyse_item`."""
    result = _read_json(settings.cache_path(content_hash))
    if result is None or "notewise" not in result:
        raise FileNotFoundError(
            f"no cached analysis for {content_hash} in {settings.work_dir}; the work folder changed during the build, "
            "run the build again"
        )
    return result["notewise"]


def note_fingerprint(grid: NoteArrays) -> str:
    """sha256 of the notes relative to their lowest pitch and first onset, on the step grid.

    Equal for a piece and its transpositions, tempo changes, re-exports at another resolution, velocity edits and
    track splits: everything the notewise tokens do not distinguish up to transposition.
    """
    if not len(grid):
        return ""
    first, low = int(grid.start.min()), int(grid.pitch.min())
    order = np.lexsort((grid.end, grid.pitch, grid.start))
    table = np.stack([grid.start[order] - first, grid.end[order] - first, grid.pitch[order] - low], axis=1)
    return hashlib.sha256(FINGERPRINT_TAG + table.astype("<i8").tobytes()).hexdigest()


def note_sketch(grid: NoteArrays) -> list[int]:
    """A MinHash sketch of the piece's note n-grams (pitch intervals and onset gaps of `SKETCH_GRAM` notes in a row),
    so two editions of one work (a few notes apart, repeats played or not, another key) share most values while other
    pieces share almost none. `sketch_similarity` compares two. Empty for pieces too short to have an n-gram."""
    if len(grid) < SKETCH_GRAM:
        return []
    order = np.lexsort((grid.pitch, grid.start))
    pitch, start = grid.pitch[order].astype(np.int64), grid.start[order].astype(np.int64)
    steps = (np.diff(pitch) + 128) * 4096 + np.minimum(np.diff(start), 4095)  # one number per pair of notes
    grams = np.zeros(len(steps) - SKETCH_GRAM + 2, dtype=np.uint64)
    for offset in range(SKETCH_GRAM - 1):  # a polynomial hash of each run of SKETCH_GRAM - 1 steps
        grams = grams * np.uint64(1_000_003) + steps[offset : offset + len(grams)].astype(np.uint64)
    grams = np.unique(grams)
    salts = np.random.default_rng(20261206).integers(1, 2**63, size=SKETCH_SIZE, dtype=np.uint64) | np.uint64(1)
    mixed = grams[None, :] * salts[:, None]  # one multiplicative hash per sketch value (wraps modulo 2**64)
    mixed ^= mixed >> np.uint64(29)
    return [int(value) for value in mixed.min(axis=1) >> np.uint64(11)]  # 53 bits: exact in JSON readers


def sketch_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The estimated share of note n-grams two pieces have in common (Jaccard index), from their `note_sketch`."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return float(np.mean(np.asarray(a, dtype=np.uint64) == np.asarray(b, dtype=np.uint64)))  # a list or an array


def classify(problem: str) -> str:
    """The reject reason of a MidiError's problem text (midi_io's messages name the limit they broke)."""
    text = problem.lower()
    rules = (
        ("file is empty", EMPTY),
        ("did not finish within", TIMEOUT),
        ("music21", CONVERSION_ERROR),
        ("cannot open the file", UNREADABLE),
        ("cannot read the file", UNREADABLE),
        ("is not a regular file", UNREADABLE),
        ("is a directory", UNREADABLE),
        ("bytes, over the limit", TOO_LARGE),
        ("tracks, over the limit", PARSE_ERROR),
        ("over the limit of", TOO_LARGE),
        ("notes, over the limit", TOO_MANY_NOTES),
        ("quarter notes, over the limit", TOO_LONG),
        ("outside [", OUT_OF_RANGE),
        ("overflow", OUT_OF_RANGE),
    )
    for needle, reason in sorted(rules, key=lambda rule: -len(rule[0])):  # most specific first
        if needle in text:
            return reason
    return PARSE_ERROR


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename: a killed process leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(value, out, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write bytes atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------- private


def _map_ensemble(score: Any, name: str, settings: AnalysisSettings, content_hash: str) -> tuple[Any, dict[str, Any]]:
    """(the "instrument + piano" score, what to add to the result); ``found`` False gives a no_instrument reject.

    The result records, per target, the source track, the notes moved to the piano, and `shift_range`: the semitone
    shifts that keep every part inside its range (the transposition check of an instrumented build).
    """
    tokenizer = tokenizer_for(settings.tokenizer)
    mapped = map_ensemble(score, settings.targets, settings.ensemble_rule, steps_per_quarter=tokenizer.steps_per_quarter)
    if not mapped.found:
        missing = [target for target, source in mapped.sources.items() if source is None]
        problem = f"no track can play the {' and '.join(missing)} part (rule {settings.ensemble_rule!r})"
        if not missing:
            others = ", ".join(mapped.other_strings)
            problem = f"other string parts than the {' and '.join(settings.targets)} ({others}): rule 'exact'"
        return mapped.score, {"found": False, "ok": False, "reason": NO_INSTRUMENT, "problem": problem}
    midi = bytes(mapped.score.dumps_midi())
    write_bytes_atomic(settings.mapped_path(content_hash), midi)
    low, high = -127, 127  # tracks: the piano, then each target, in the order of the tokenizer's parts
    for spec, track in zip(tokenizer.instrument_layout.values(), mapped.score.tracks):
        pitches = track.notes.numpy()["pitch"]
        if len(pitches):
            low = max(low, spec["low_pitch"] - int(pitches.min()))
            high = min(high, spec["high_pitch"] - int(pitches.max()))
    return load_score(midi, name=name), {
        "found": True,
        "mapped": True,
        "mapped_hash": hashlib.sha256(midi).hexdigest(),
        "ensemble": {
            "sources": mapped.sources,
            "out_of_range": mapped.out_of_range,
            "over_polyphony": mapped.over_polyphony,
        },
        "shift_range": [low, high],
    }


def _rejected(problem: str) -> dict[str, Any]:
    return {"ok": False, "reason": classify(problem), "problem": problem}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _item_bytes(item: SourceItem, settings: AnalysisSettings) -> tuple[bytes, str, dict[str, Any] | None]:
    """(MIDI bytes, file to read them from again, score metadata or None).

    Corpus works and score files are converted to MIDI once and kept in the work folder, with a failure record so
    that a bad score is not parsed again on a rebuild (a timeout is not recorded: it may pass on a quieter machine).
    """
    if item.kind == MUSIC21:
        import music21  # start-up: music21 takes ~1 s to import (in every build worker), and only corpus works need it

        key = hashlib.sha256(f"{music21.__version__}|{item.locator}".encode()).hexdigest()
        data, blob, _ = _converted(
            Path(settings.work_dir, "music21", key[:2], key),
            f"corpus:{item.locator}",
            lambda: (music21_corpus_midi(item.locator), None),
        )
        score = None
    elif item.kind == SCORE:
        import music21  # start-up: as above; only score files need it

        source = read_midi_bytes(item.locator, settings.limits())  # the same checks as MIDI: regular file, size
        key = hashlib.sha256(f"{music21.__version__}|score-v{CONVERSION_VERSION}|".encode() + source).hexdigest()
        limits = dataclasses.replace(
            SCORE_LIMITS, max_bytes=settings.max_file_bytes, timeout_s=settings.score_timeout_s
        )

        def convert() -> tuple[bytes, dict[str, Any]]:
            converted = read_score_file(item.locator, safe=settings.safe, limits=limits)
            return converted.midi, converted.metadata()

        data, blob, score = _converted(Path(settings.work_dir, "scores", key[:2], key), item.path, convert)
    else:
        return standard_midi_bytes(read_midi_bytes(item.locator, settings.limits()), item.path), item.locator, None
    if len(data) > settings.max_file_bytes:
        raise MidiError(item.path, f"file is {len(data)} bytes, over the limit of {settings.max_file_bytes} bytes")
    return data, blob, score


def _converted(stem: Path, name: str, convert: Any) -> tuple[bytes, str, dict[str, Any] | None]:
    """`convert()`'s (MIDI bytes, metadata), cached as ``<stem>.mid`` + ``<stem>.json``; failures as ``.error.json``."""
    blob, info, failure = stem.with_suffix(".mid"), stem.with_suffix(".json"), stem.with_suffix(".error.json")
    if blob.is_file():
        return blob.read_bytes(), str(blob), _read_json(info)
    if failure.is_file():
        raise MidiError(name, (_read_json(failure) or {}).get("problem", "conversion failed"))
    try:
        data, metadata = convert()
    except MidiError as err:
        if classify(err.problem) not in TRANSIENT_REASONS:
            write_json_atomic(failure, {"problem": err.problem})
        raise
    if metadata is not None:
        write_json_atomic(info, metadata)
    write_bytes_atomic(blob, data)
    return data, str(blob), metadata


def _analyse_bytes(
    data: bytes, name: str, settings: AnalysisSettings, safe: bool, content_hash: str = ""
) -> dict[str, Any]:
    """Parse (in a child process if `safe`), tokenize and fingerprint MIDI bytes; a dict that is JSON as it stands.

    Instrumented builds first map the ensemble to "instrument + piano" (`map_ensemble`), keep the mapped MIDI
    beside the cached result (`settings.mapped_path`) and tokenize that.
    """
    tokenizer = tokenizer_for(settings.tokenizer)
    extra: dict[str, Any] = {}
    try:
        score = load_score(data, name=name, safe=safe, limits=settings.limits())
        notes, meta = tokenizer.read_notes(score)  # the file's own notes: the piece id is the same in every build
        if settings.targets:
            mapped, extra = _map_ensemble(score, name, settings, content_hash)
            if not extra.pop("found"):
                return extra
        tokens = tokenizer.midi_to_tokens(mapped) if settings.targets else tokenizer.notes_to_tokens(notes)
    except MidiError as err:
        return _rejected(err.problem)
    except Exception as err:  # noqa: BLE001 - a parser bug must not abort the build; the manifest shows it
        return {"ok": False, "reason": INTERNAL_ERROR, "problem": f"{type(err).__name__}: {err}"}
    grid = quantize_notes(notes, tokenizer.steps_per_quarter, 0, 127)  # unfolded pitches: exact transposition range
    spq = tokenizer.steps_per_quarter
    return {
        **extra,
        "ok": True,
        "fingerprint": note_fingerprint(grid),
        "sketch": note_sketch(grid),
        "num_notes": len(grid),
        "num_tokens": len(tokens),
        "length_quarters": float(grid.end.max()) / spq if len(grid) else 0.0,
        "lowest_pitch": int(grid.pitch.min()) if len(grid) else 0,
        "highest_pitch": int(grid.pitch.max()) if len(grid) else 0,
        "qpm": float(meta.qpm),
        "time_signature": "{}/{}".format(*meta.time_signature),
        "notewise": " ".join(tokens),
    }


__all__ = [
    "ANALYSIS_VERSION",
    "LICENSE_EXCLUDED",
    "NEAR_DUPLICATE",
    "NO_INSTRUMENT",
    "AnalysisSettings",
    "analyse_item",
    "classify",
    "load_tokens",
    "note_fingerprint",
    "note_sketch",
    "sketch_similarity",
    "tokenizer_for",
    "write_bytes_atomic",
    "write_json_atomic",
]
