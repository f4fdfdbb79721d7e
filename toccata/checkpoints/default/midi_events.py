"""What symusic's MIDI parser does not say, read from the raw bytes: how long each track really is, which notes were
never switched off, and on which channel the sustain pedal acts.

- symusic adds delta times in 32 bits, so a file whose delta times add up past 2**32 ticks wraps back to an ordinary
  tick and passes a length check on the parsed score: `check_track_lengths` adds them up exactly.
- symusic drops a note-on that no note-off follows; a player holds it to the end of its track. `close_held_notes`
  adds note-offs after each track's end, `HELD_OFFSET` ticks later, so symusic keeps those notes and
  `release_held_notes` can tell them apart (no other event is that late) and end them where their track ends.
- symusic's tracks do not keep the channel, and a pedal in a track without notes is dropped with that track; a
  piano's pedal holds every note of its channel, whichever track it is in: `sustain_per_channel` moves each note-off
  that comes while its channel's pedal is down to the pedal's release.

The common case costs a few numpy operations over the file's bytes. Events are walked one by one (in Python) only
for files whose delta times could add up to `HELD_OFFSET` ticks, and for the sustain pedal, which is opt-in.
Imports only the standard library, numpy and symusic: it travels to the Hub with `midi_io.py`.
"""

from __future__ import annotations

import bisect
import functools
import struct
from collections.abc import Iterator

import numpy as np
import symusic

MAX_DELTA = 0x0FFFFFFF  # the largest delta time a 4-byte variable-length quantity holds (symusic reads no more)
HELD_OFFSET = 4 * MAX_DELTA  # ticks after a track's end at which `close_held_notes` ends notes never switched off
_END_OF_TRACK = b"\xff\x2f\x00"
_SYSTEM_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1}  # data bytes of system common messages; the others have none
_DIGIT_BOUND = np.array([byte if byte < 0x80 else (byte & 0x7F) * 0x80 for byte in range(256)], dtype=np.int64)


def _delta(value: int) -> bytes:
    """`value` as a MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


_LATER = _delta(MAX_DELTA) + b"\xff\x7f\x00"  # MAX_DELTA ticks later, an empty sequencer-specific meta event


class EventError(ValueError):
    """A track whose events cannot be walked (midi_io turns it into a `MidiError` naming the file)."""


def track_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of the body of each MTrk chunk of a Standard MIDI File that `check_midi_bytes` accepted."""
    (header_len,) = struct.unpack(">I", data[4:8])
    offset, chunks = 8 + header_len, []
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset + 4 : offset + 8])
        if data[offset : offset + 4] == b"MTrk":
            chunks.append((offset + 8, min(offset + 8 + length, len(data))))
        offset += 8 + length
    return chunks


def byte_facts(data: bytes) -> tuple[int, tuple[int, ...]]:
    """(an upper bound of the sum of every delta time in `data`, the channels with note-on status bytes), from the
    bytes alone, without parsing an event.

    A delta time ends at a byte below 0x80, after at most three bytes of 0x80 or more (symusic reads four bytes at
    most); its value is at most what those bytes spell with every high byte right before that byte counted in: each
    byte below 0x80 once, each high byte 128 times, or 128**2 or 128**3 times in a run of two or three. A run of four
    or more gives no bound: `HELD_OFFSET` then, which sends the file to the exact count. A channel may be listed that
    has no note-on (a byte 0x9n inside a delta time or a meta event): harmless where it is used."""
    raw = np.frombuffer(data, dtype=np.uint8)
    counts = np.bincount(raw, minlength=256)
    channels = tuple(np.flatnonzero(counts[0x90:0xA0]).tolist())
    bound = int(counts @ _DIGIT_BOUND)
    is_high = raw >= 0x80
    pair = np.zeros(len(raw) + 1, dtype=bool)  # pair[i]: bytes i and i + 1 are both high
    pair[:-2] = is_high[:-1] & is_high[1:]
    at = np.flatnonzero(pair)  # delta times of 16384 ticks or more, UTF-8 text
    if len(at):
        three = pair[at + 1]
        if (three & pair[np.minimum(at + 2, len(raw))]).any():
            return HELD_OFFSET, channels
        weight = np.where(three, 0x80**3 - 0x80, 0x80**2 - 0x80)  # on top of the 128 counted above
        bound += int(((raw[at] & 0x7F).astype(np.int64) * weight).sum())
    return bound, channels


def track_events(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    """(tick, status, the event's bytes with its status byte) of each event of the track body `data[start:end]`, in
    file order; ticks are exact Python integers. Running status is kept across meta events (as symusic does)."""
    offset, tick, running = start, 0, 0
    while offset < end:
        delta, offset = _quantity(data, offset, end, "a delta time")
        tick += delta
        if offset >= end:
            raise EventError("the track ends after a delta time, without its event")
        status = data[offset]
        if status < 0x80:  # running status: the data bytes follow at once
            if not running:
                raise EventError(f"a data byte at {offset} with no status before it")
            status, begin = running, offset
        else:
            begin = offset + 1
        if status == 0xFF or status in (0xF0, 0xF7):  # meta (type, length, data) or sysex (length, data)
            length, position = _quantity(data, begin + 1 if status == 0xFF else begin, end, "an event's length")
            stop = position + length
            running = running if status == 0xFF else 0
        elif status >= 0xF0:
            stop = begin + _SYSTEM_DATA.get(status, 0)
        else:
            stop = begin + (1 if 0xC0 <= status < 0xE0 else 2)
            running = status
        if stop > end:
            raise EventError("the track ends inside an event")
        event = bytes([status]) + data[begin:stop]
        yield tick, status, event
        if event == _END_OF_TRACK:
            return  # what follows the end of the track is not read (by players or symusic)
        offset = stop


def _quantity(data: bytes, offset: int, end: int, what: str) -> tuple[int, int]:
    """The variable-length quantity at `offset` (four bytes at most, as symusic reads it) and the offset after it."""
    value = 0
    for position in range(offset, min(offset + 4, end)):
        value = (value << 7) | (data[position] & 0x7F)
        if data[position] < 0x80 or position == offset + 3:
            return value, position + 1
    raise EventError(f"the track ends inside {what}")


def check_track_lengths(data: bytes, max_quarters: float) -> int:
    """The largest track length in ticks, its delta times added up exactly (where `byte_facts` cannot rule out that
    symusic's 32-bit sums wrap); `EventError` for a track over `max_quarters`."""
    max_ticks = max_quarters * struct.unpack(">H", data[12:14])[0]
    longest = 0
    for number, (start, end) in enumerate(track_chunks(data), start=1):
        tick = 0
        for tick, _, _ in track_events(data, start, end):
            if tick > max_ticks:
                raise EventError(
                    f"track {number} lasts over {max_quarters} quarter notes, the limit: its delta times add up to "
                    f"more than {max_ticks:.0f} ticks (corrupt delta time?)"
                )
        longest = max(longest, tick)
    return longest


def close_held_notes(data: bytes, channels: tuple[int, ...]) -> bytes:
    """`data` with note-offs for every pitch of `channels` (those with note-ons), `HELD_OFFSET` ticks after the end of
    each track: symusic then keeps the notes that nothing switched off (it drops them otherwise)."""
    if not channels:
        return data
    block = _closing_block(channels)
    parts, previous = [], 0
    for start, end in track_chunks(data):
        if data[end - 3 : end] != _END_OF_TRACK or end - start < 4:
            continue  # a track without its end event: left as it is
        parts += [data[previous : start - 4], struct.pack(">I", end - start + len(block))]
        parts += [data[start : end - 3], block, _END_OF_TRACK]
        previous = end
    parts.append(data[previous:])
    return b"".join(parts)


@functools.lru_cache(maxsize=64)
def _closing_block(channels: tuple[int, ...]) -> bytes:
    """Events to put between a track's last delta time and its end-of-track event (which then gets delta 0)."""
    offs = b"".join(bytes([0, 0x80 | channel, 0, 0]) + b"".join(bytes([0, p, 0]) for p in range(1, 128))
                    for channel in channels)  # fmt: skip
    return b"\xff\x7f\x00" + _LATER * 4 + offs + b"\x00"


def release_held_notes(score: symusic.Score) -> int:
    """End the notes `close_held_notes` kept where their track ends; returns how many there were.

    Such a note ends `HELD_OFFSET` ticks after its track. Only a note-on that no later note-off of its pitch follows
    is held: symusic pairs note-ons and note-offs first in, first out, so after a surplus note-on (a unison of two
    voices), each later note-off went to the note-on before and the last one is left over, though a note-off did
    switch it off (a player releases the key); that one is dropped, as before, and so is a note-on with a note-off of
    its pitch in the same tick (an exporter's order of events, not a held note)."""
    if score.end() < HELD_OFFSET:
        return 0
    count = 0
    for track in score.tracks:
        if track.end() < HELD_OFFSET:
            continue
        notes = track.notes.numpy()
        time, pitch = notes["time"].astype(np.int64), notes["pitch"].astype(np.int64)
        end = time + notes["duration"]
        late = end >= HELD_OFFSET
        last_off = np.full(128, -1, dtype=np.int64)
        np.maximum.at(last_off, pitch[~late], end[~late])
        held = late & (time > last_off[pitch])  # a note-off in the same tick counts: order within a tick is no music
        keep = ~late | held
        duration = np.where(held, end - HELD_OFFSET - time, notes["duration"]).astype(np.int32)
        track.notes = symusic.Note.from_numpy(
            time=notes["time"][keep], duration=duration[keep], pitch=notes["pitch"][keep],
            velocity=notes["velocity"][keep],
        )  # fmt: skip
        count += int(held.sum())
    return count


def sustain_per_channel(data: bytes) -> bytes:
    """`data` with every note-off that comes while its channel's sustain pedal (CC 64 at 64 or more) is down moved to
    where the pedal comes up (or to the end of the note's track if it never does): the pedal of a channel holds the
    notes of that channel in every track, as on a piano. Format 2 files (independent sequences): per track."""
    fmt = struct.unpack(">H", data[8:10])[0]
    tracks = [list(track_events(data, start, end)) for start, end in track_chunks(data)]
    pedals: dict[tuple[int, int], list[tuple[int, int, int, bool]]] = {}  # (track or -1, channel) -> changes
    for number, events in enumerate(tracks):
        for index, (tick, status, event) in enumerate(events):
            if status & 0xF0 == 0xB0 and event[1] == 64:
                key = (number if fmt == 2 else -1, status & 0x0F)
                pedals.setdefault(key, []).append((tick, number, index, event[2] >= 64))
    if not pedals:
        return data
    for changes in pedals.values():
        changes.sort()
    moved: dict[int, dict[int, int]] = {}  # track -> {event index: new tick}
    for number, events in enumerate(tracks):
        track_end = events[-1][0] if events else 0
        for index, (tick, status, event) in enumerate(events):
            is_off = status & 0xF0 == 0x80 or (status & 0xF0 == 0x90 and event[2] == 0)
            changes = pedals.get((number if fmt == 2 else -1, status & 0x0F)) if is_off else None
            if not changes:
                continue
            now = bisect.bisect_right(changes, (tick, number, index, True)) - 1
            if now >= 0 and changes[now][3]:  # the pedal is down: the note sounds until it comes up
                release = next((change[0] for change in changes[now + 1 :] if not change[3]), None)
                moved.setdefault(number, {})[index] = track_end if release is None else release
    if not moved:
        return data
    parts, previous = [], 0
    for number, (start, end) in enumerate(track_chunks(data)):
        if number in moved:
            events = _in_time_order(tracks[number], moved[number])
            ticks = [tick for tick, _ in events]
            body = b"".join(_delta(tick - before) + event for (tick, event), before in zip(events, [0, *ticks]))
            parts += [data[previous : start - 4], struct.pack(">I", len(body)), body]
            previous = end
    parts.append(data[previous:])
    return b"".join(parts)


def _in_time_order(events: list[tuple[int, int, bytes]], new_ticks: dict[int, int]) -> list[tuple[int, bytes]]:
    """(tick, event) of `events` with the ticks `new_ticks` gives by index, in time order (file order on ties), the
    end of the track last."""
    timed = sorted((new_ticks.get(index, tick), index, event) for index, (tick, _, event) in enumerate(events))
    body = [(tick, event) for tick, _, event in timed if event != _END_OF_TRACK]
    last = max((tick for tick, _, _ in timed), default=0)
    return body + [(last, _END_OF_TRACK)]


__all__ = [
    "HELD_OFFSET",
    "EventError",
    "byte_facts",
    "check_track_lengths",
    "close_held_notes",
    "release_held_notes",
    "sustain_per_channel",
    "track_chunks",
    "track_events",
]
