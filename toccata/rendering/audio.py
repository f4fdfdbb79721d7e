"""Audio from MIDI: FluidSynth renders with a General MIDI soundfont, offline, to WAV or FLAC (by the file's suffix).
`toccata generate`, `toccata look` and the demo use it (through `toccata.rendering`); where FluidSynth or a soundfont
is missing, `Synth.find()` returns None and the caller says so.

Three engines write the same bytes (tested):
- "library": FluidSynth's C library (libfluidsynth, which the `fluidsynth` package installs) in this process. The
  soundfont is read once per process instead of once per file: less than half the CPU of the command per render.
- "workers": the same in helper processes that stay up (`python -m toccata.rendering`), for servers: a render then runs
  beside the server's Python threads on another core instead of taking turns with them for the GIL (the demo, 20
  users on 2 cores: 1.8x the throughput of "library"), and a crash in FluidSynth cannot take the server down.
- "command": the `fluidsynth` command, one process per file; also where libfluidsynth does not load.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

SOUNDFONTS = (  # Debian/Ubuntu fluid-soundfont-gm, then other common places
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
INSTALL_HINT = (
    "install FluidSynth and a General MIDI soundfont (Debian/Ubuntu: `apt-get install fluidsynth fluid-soundfont-gm`; "
    "or point $TOCCATA_SOUNDFONT at an .sf2 file)"
)
SYNTH_MISSING = f"No synthesizer here, so no audio: {INSTALL_HINT}. The MIDI files are below."
Engine = Literal["library", "workers", "command"]
FILE_TYPES = {".wav": "wav", ".flac": "flac"}  # output suffix -> FluidSynth's file type (FLAC: the same sound,
# lossless, ~40% of the bytes for ~15% more instructions than WAV (callgrind); every browser plays it)
# Samples rendered per call of the render loop (FluidSynth's default: 64). The library engines call it from Python,
# and at 64 that loop cost a quarter of a render's CPU. Up to 512 the samples are the same as at 64 (FluidSynth still
# synthesises in 64-sample blocks), and a file may end up to 255 samples (8 ms) of silence later; 1024 and more change
# the samples. Every engine, the command included, uses the same size, so they write the same bytes.
PERIOD_SIZE = 256
# FluidSynth's chorus effect is off. Only notes with a chorus send (controller 93, or a soundfont preset's own) feed
# it; Toccata's MIDI has no controllers and GM pianos and strings in FluidR3 send nothing, so it processed silence:
# the same bytes without it (checked on piano, a Bach chorale and piano-cello), 5% fewer instructions per render
# (callgrind, an 18.6 s piece to FLAC: 1.88 G -> 1.79 G). Reverb stays: it is heard.
CHORUS_ACTIVE = 0


@dataclass(frozen=True)
class Synth:
    """FluidSynth rendering MIDI to WAV offline with one soundfont, by one of the engines above."""

    binary: str | None
    soundfont: str
    sample_rate: int = 32_000
    gain: float = 0.6
    timeout_s: float = 60.0
    engine: Engine = "library"

    @classmethod
    def find(cls, engine: Engine = "library") -> Synth | None:
        """FluidSynth (the command or its library) and a GM soundfont ($TOCCATA_SOUNDFONT first), or None where
        either is missing."""
        binary = shutil.which(os.environ.get("TOCCATA_FLUIDSYNTH", "fluidsynth"))
        candidates = [os.environ.get("TOCCATA_SOUNDFONT", ""), *SOUNDFONTS]
        soundfont = next((path for path in candidates if path and Path(path).is_file()), None)
        if soundfont is None or (binary is None and FluidSynthLibrary.shared() is None):
            return None
        return cls(binary, soundfont, engine=engine)

    def render(self, midi: Path, audio: Path) -> Path:
        """Write `audio` (.wav or .flac) from `midi`; a RuntimeError saying what went wrong if it fails."""
        midi, audio = Path(midi), Path(audio)
        file_type(audio)
        if not midi.is_file():
            raise RuntimeError(f"FluidSynth could not render {midi}: no such file")
        library = FluidSynthLibrary.shared() if self.engine != "command" else None
        if library is not None and self.engine == "workers":
            RenderWorkers.shared().render(self, midi, audio)
        elif library is not None:
            library.render(self, midi, audio)
        elif self.binary is None:
            raise RuntimeError(f"FluidSynth could not render {midi.name}: the `fluidsynth` command is not installed")
        else:
            self._run_command(midi, audio)
        if not audio.is_file() or audio.stat().st_size <= 44:
            raise RuntimeError(f"FluidSynth could not render {midi.name}: it wrote no audio")
        return audio

    def _run_command(self, midi: Path, audio: Path) -> None:
        """The `fluidsynth` command, one process per file."""
        # Dynamic sample loading reads only the samples the piece plays, not the whole 148 MB GM soundfont: a third
        # less CPU per render, same audio.
        command = [str(self.binary), "-ni", "-q", "-g", str(self.gain), "-r", str(self.sample_rate)]
        command += ["-o", "synth.dynamic-sample-loading=1", "-o", f"audio.period-size={PERIOD_SIZE}"]
        command += ["-o", f"synth.chorus.active={CHORUS_ACTIVE}"]
        command += ["-F", str(audio), "-T", file_type(audio), self.soundfont, str(midi)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"FluidSynth took more than {self.timeout_s:g} s to render {midi.name}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise RuntimeError(f"FluidSynth could not render {midi.name}: {detail[0]}")


def file_type(audio: Path) -> str:
    """FluidSynth's file type for the output path `audio`, from its suffix; a ValueError for one it cannot write."""
    kind = FILE_TYPES.get(Path(audio).suffix.lower())
    if kind is None:
        raise ValueError(f"cannot write audio to {Path(audio).name}: name it .wav or .flac")
    return kind


_VOID = ctypes.c_void_p
_STR = ctypes.c_char_p
_SIGNATURES = {  # function -> (result type, argument types) of the libfluidsynth 2.x calls used here
    "new_fluid_settings": (_VOID, []),
    "delete_fluid_settings": (None, [_VOID]),
    "fluid_settings_setnum": (ctypes.c_int, [_VOID, _STR, ctypes.c_double]),
    "fluid_settings_setint": (ctypes.c_int, [_VOID, _STR, ctypes.c_int]),
    "fluid_settings_setstr": (ctypes.c_int, [_VOID, _STR, _STR]),
    "new_fluid_synth": (_VOID, [_VOID]),
    "delete_fluid_synth": (None, [_VOID]),
    "fluid_synth_sfload": (ctypes.c_int, [_VOID, _STR, ctypes.c_int]),
    "fluid_synth_get_sfont_by_id": (_VOID, [_VOID, ctypes.c_int]),
    "fluid_synth_add_sfont": (ctypes.c_int, [_VOID, _VOID]),
    "fluid_synth_remove_sfont": (ctypes.c_int, [_VOID, _VOID]),
    "new_fluid_player": (_VOID, [_VOID]),
    "delete_fluid_player": (None, [_VOID]),
    "fluid_player_add": (ctypes.c_int, [_VOID, _STR]),
    "fluid_player_play": (ctypes.c_int, [_VOID]),
    "fluid_player_get_status": (ctypes.c_int, [_VOID]),
    "new_fluid_file_renderer": (_VOID, [_VOID]),
    "delete_fluid_file_renderer": (None, [_VOID]),
    "fluid_file_renderer_process_block": (ctypes.c_int, [_VOID]),
    "fluid_set_log_function": (_VOID, [ctypes.c_int, _VOID, _VOID]),
}
FLUID_OK, FLUID_PLAYER_PLAYING = 0, 1
_shared_lock = threading.Lock()
_shared: list[FluidSynthLibrary | None] = []  # [] until the first try to load it


class FluidSynthLibrary:
    """libfluidsynth through ctypes: what `fluidsynth -ni -F out.wav -T wav font.sf2 in.mid` does, in this process.

    Each soundfont is loaded once per lane (into a synth kept only to hold it) and lent to a fresh synth per render,
    which starts from the state the command starts from, so the WAV is byte for byte the command's. A render holds a
    lane for its whole length (a soundfont's dynamically loaded samples are not shared between threads at once), so
    `lanes` renders run at once. (Threads rendering here still take turns for the GIL between blocks: servers use
    `RenderWorkers`.)
    """

    def __init__(self, lib: ctypes.CDLL, lanes: int = 1):
        self.lib = lib
        for name, (result, arguments) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = result, arguments
        for level in range(5):  # FluidSynth's own log lines (panic..debug) off: errors come back as RuntimeError
            lib.fluid_set_log_function(level, None, None)
        self.lanes: queue.Queue[dict[str, tuple[int, int, int]]] = queue.Queue()
        for _ in range(max(1, lanes)):  # each lane: soundfont -> (settings, holder synth, sfont) pointers
            self.lanes.put({})

    @classmethod
    def shared(cls) -> FluidSynthLibrary | None:
        """The process's library, or None where libfluidsynth 2.x is not installed ($TOCCATA_FLUIDSYNTH_LIBRARY:
        a path to it; "none": never load it)."""
        with _shared_lock:
            if not _shared:
                _shared.append(cls._load(os.environ.get("TOCCATA_FLUIDSYNTH_LIBRARY")))
            return _shared[0]

    @classmethod
    def _load(cls, path: str | None) -> FluidSynthLibrary | None:
        if path == "none":
            return None
        path = path or ctypes.util.find_library("fluidsynth")
        if not path:
            return None
        try:
            return cls(ctypes.CDLL(path))
        except (OSError, AttributeError):  # not there, or not the 2.x API
            return None

    def _settings(self, synth: Synth, kind: str = "wav") -> int:
        """Settings as `fluidsynth -ni -q -g GAIN -r RATE -o synth.dynamic-sample-loading=1 -o audio.period-size=256
        -o synth.chorus.active=0 -F ... -T wav` has them."""
        lib, settings = self.lib, self.lib.new_fluid_settings()
        if not settings:
            raise RuntimeError("FluidSynth could not allocate its settings")
        lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(synth.sample_rate))
        lib.fluid_settings_setnum(settings, b"synth.gain", float(synth.gain))
        lib.fluid_settings_setint(settings, b"synth.dynamic-sample-loading", 1)
        lib.fluid_settings_setstr(settings, b"player.timing-source", b"sample")  # what -F (fast render) sets
        lib.fluid_settings_setint(settings, b"synth.lock-memory", 0)
        lib.fluid_settings_setstr(settings, b"audio.file.type", kind.encode())
        lib.fluid_settings_setint(settings, b"audio.period-size", PERIOD_SIZE)
        lib.fluid_settings_setint(settings, b"synth.chorus.active", CHORUS_ACTIVE)
        return settings

    def _font(self, fonts: dict[str, tuple[int, int, int]], synth: Synth) -> int:
        """The soundfont's loaded sfont in one lane's `fonts` (loaded on first use)."""
        if synth.soundfont not in fonts:
            settings = self._settings(synth)
            holder = self.lib.new_fluid_synth(settings)
            font_id = self.lib.fluid_synth_sfload(holder, os.fsencode(synth.soundfont), 1) if holder else -1
            sfont = self.lib.fluid_synth_get_sfont_by_id(holder, font_id) if font_id >= 0 else None
            if not sfont:
                if holder:
                    self.lib.delete_fluid_synth(holder)
                self.lib.delete_fluid_settings(settings)
                raise RuntimeError(f"FluidSynth could not load the soundfont {synth.soundfont}")
            fonts[synth.soundfont] = (settings, holder, sfont)
        return fonts[synth.soundfont][2]

    def render(self, synth: Synth, midi: Path, audio: Path) -> None:
        """Render `midi` to `audio` (.wav or .flac) with `synth`'s soundfont, rate and gain; RuntimeError on failure
        or timeout."""
        lib, fonts = self.lib, self.lanes.get()
        try:
            sfont = self._font(fonts, synth)
            settings = self._settings(synth, file_type(audio))
            lib.fluid_settings_setstr(settings, b"audio.file.name", os.fsencode(audio))
            fluid = lib.new_fluid_synth(settings)
            player = renderer = None
            try:
                if not fluid or lib.fluid_synth_add_sfont(fluid, sfont) < 0:
                    raise RuntimeError(f"FluidSynth could not start a synthesizer to render {midi.name}")
                player = lib.new_fluid_player(fluid)
                if not player or lib.fluid_player_add(player, os.fsencode(midi)) != FLUID_OK:
                    raise RuntimeError(f"FluidSynth could not read {midi.name}")
                renderer = lib.new_fluid_file_renderer(fluid)
                if not renderer:
                    raise RuntimeError(f"FluidSynth could not write {audio}")
                lib.fluid_player_play(player)
                deadline, blocks = time.monotonic() + synth.timeout_s, 0
                while lib.fluid_player_get_status(player) == FLUID_PLAYER_PLAYING:
                    if lib.fluid_file_renderer_process_block(renderer) != FLUID_OK:
                        raise RuntimeError(f"FluidSynth could not write {audio}")
                    blocks += 1
                    if blocks % 4096 == 0 and time.monotonic() > deadline:
                        raise RuntimeError(f"FluidSynth took more than {synth.timeout_s:g} s to render {midi.name}")
            finally:
                if renderer:
                    lib.delete_fluid_file_renderer(renderer)  # closes the audio file
                if player:
                    lib.delete_fluid_player(player)
                if fluid:
                    lib.fluid_synth_remove_sfont(fluid, sfont)  # lent, not owned: deleting the synth must not free it
                    lib.delete_fluid_synth(fluid)
                lib.delete_fluid_settings(settings)
        finally:
            self.lanes.put(fonts)


def _usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, where the OS says), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class RenderWorkers:
    """Helper processes rendering with libfluidsynth (`python -m toccata.rendering`), each one render at a time: one per
    core, at most 4 ($TOCCATA_RENDER_WORKERS sets it). Started on first use; one that dies or overruns its timeout is
    stopped, the render reports it, and the next render starts a fresh one."""

    def __init__(self, count: int):
        self.idle: queue.Queue[subprocess.Popen | None] = queue.Queue()
        for _ in range(max(1, count)):
            self.idle.put(None)

    @classmethod
    def shared(cls) -> RenderWorkers:
        """The process's workers."""
        with _shared_lock:
            if not _workers:
                wanted = os.environ.get("TOCCATA_RENDER_WORKERS", "")
                # One per core: the demo on 2 cores under load made 1.15-1.3x the throughput with 2 than with 1 (the
                # renders no longer wait in line while a core idles, and the slower decoding steps batch more rows).
                count = int(wanted) if wanted.isdigit() else min(4, max(1, _usable_cores()))
                _workers.append(cls(count))
            return _workers[0]

    @staticmethod
    def _start() -> subprocess.Popen:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds toccata/
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        return subprocess.Popen(
            [sys.executable, "-m", "toccata.rendering"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONPATH": path},
        )

    def render(self, synth: Synth, midi: Path, audio: Path) -> None:
        """Render in the next free worker; RuntimeError with the worker's message, or if it died or timed out."""
        worker = self.idle.get()
        try:
            if worker is None or worker.poll() is not None:
                try:
                    worker = self._start()
                except OSError as err:
                    raise RuntimeError(
                        f"FluidSynth's render worker could not start ({err}) for {Path(midi).name}"
                    ) from err
            request = {**asdict(synth), "midi": str(Path(midi).resolve()), "audio": str(Path(audio).resolve())}
            try:
                worker.stdin.write(json.dumps(request) + "\n")
                worker.stdin.flush()
                ready, _, _ = select.select([worker.stdout], [], [], synth.timeout_s + 10)
                line = worker.stdout.readline() if ready else ""
            except OSError:
                line = ""
            if not line:
                stopped = "took too long" if worker.poll() is None else "stopped"
                worker.kill()
                worker.wait()
                worker = None
                raise RuntimeError(f"FluidSynth {stopped} while rendering {Path(midi).name}")
            reply = json.loads(line)
            if "error" in reply:
                raise RuntimeError(reply["error"])
        finally:
            self.idle.put(worker)


_workers: list[RenderWorkers] = []


def serve_renders() -> None:
    """A render worker: one JSON request per line on stdin (a Synth's fields, midi, audio), one JSON answer per line on
    stdout ({} or {"error": message}); exits at the end of stdin."""
    library = FluidSynthLibrary.shared()
    for line in sys.stdin:
        request = json.loads(line)
        midi, audio = Path(request.pop("midi")), Path(request.pop("audio"))
        try:
            if library is None:
                raise RuntimeError(f"FluidSynth could not render {midi.name}: libfluidsynth did not load")
            library.render(Synth(**request), midi, audio)
            answer: dict = {}
        except RuntimeError as err:
            answer = {"error": str(err)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
