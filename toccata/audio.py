"""Audio from MIDI: FluidSynth renders with a General MIDI soundfont, offline, to WAV. `toccata generate` and the demo
use it; where FluidSynth or a soundfont is missing, `Synth.find()` returns None and the caller says so.

FluidSynth runs in this process through its C library (libfluidsynth, which the `fluidsynth` package installs) when it
loads: the soundfont is read once per process instead of once per file, which more than halves the CPU per render and
writes the same WAV bytes as the `fluidsynth` command (tested). Otherwise, or with `in_process=False`, each render runs
the `fluidsynth` command.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Synth:
    """FluidSynth rendering MIDI to WAV offline with one soundfont (in this process where libfluidsynth loads)."""

    binary: str | None
    soundfont: str
    sample_rate: int = 32_000
    gain: float = 0.6
    timeout_s: float = 60.0
    in_process: bool = True  # False: always run the `fluidsynth` command (a crash there cannot take this process)

    @classmethod
    def find(cls) -> Synth | None:
        """FluidSynth (the command or its library) and a GM soundfont ($TOCCATA_SOUNDFONT first), or None where
        either is missing."""
        binary = shutil.which(os.environ.get("TOCCATA_FLUIDSYNTH", "fluidsynth"))
        candidates = [os.environ.get("TOCCATA_SOUNDFONT", ""), *SOUNDFONTS]
        soundfont = next((path for path in candidates if path and Path(path).is_file()), None)
        if soundfont is None or (binary is None and FluidSynthLibrary.shared() is None):
            return None
        return cls(binary, soundfont)

    def render(self, midi: Path, wav: Path) -> Path:
        """Write `wav` from `midi`; a RuntimeError saying what went wrong if it fails."""
        midi, wav = Path(midi), Path(wav)
        if not midi.is_file():
            raise RuntimeError(f"FluidSynth could not render {midi}: no such file")
        library = FluidSynthLibrary.shared() if self.in_process else None
        if library is not None:
            library.render(self, midi, wav)
        elif self.binary is None:
            raise RuntimeError(f"FluidSynth could not render {midi.name}: the `fluidsynth` command is not installed")
        else:
            self._run_command(midi, wav)
        if not wav.is_file() or wav.stat().st_size <= 44:
            raise RuntimeError(f"FluidSynth could not render {midi.name}: it wrote no audio")
        return wav

    def _run_command(self, midi: Path, wav: Path) -> None:
        """The `fluidsynth` command, one process per file."""
        # Dynamic sample loading reads only the samples the piece plays, not the whole 148 MB GM soundfont: a third
        # less CPU per render, same audio.
        command = [str(self.binary), "-ni", "-q", "-g", str(self.gain), "-r", str(self.sample_rate)]
        command += ["-o", "synth.dynamic-sample-loading=1"]
        command += ["-F", str(wav), "-T", "wav", self.soundfont, str(midi)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"FluidSynth took more than {self.timeout_s:g} s to render {midi.name}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise RuntimeError(f"FluidSynth could not render {midi.name}: {detail[0]}")


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

    Each soundfont is loaded once (into a synth kept only to hold it) and lent to a fresh synth per render, which
    starts from the state the command starts from, so the WAV is byte for byte the command's. Renders take turns
    (one lock): a soundfont's dynamically loaded samples are not meant to be shared between threads at once.
    """

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        for name, (result, arguments) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = result, arguments
        for level in range(5):  # FluidSynth's own log lines (panic..debug) off: errors come back as RuntimeError
            lib.fluid_set_log_function(level, None, None)
        self.lock = threading.Lock()
        self.fonts: dict[str, tuple[int, int, int]] = {}  # soundfont -> (settings, holder synth, sfont) pointers

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

    def _settings(self, synth: Synth) -> int:
        """Settings as `fluidsynth -ni -q -g GAIN -r RATE -o synth.dynamic-sample-loading=1 -F ... -T wav` has them."""
        lib, settings = self.lib, self.lib.new_fluid_settings()
        if not settings:
            raise RuntimeError("FluidSynth could not allocate its settings")
        lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(synth.sample_rate))
        lib.fluid_settings_setnum(settings, b"synth.gain", float(synth.gain))
        lib.fluid_settings_setint(settings, b"synth.dynamic-sample-loading", 1)
        lib.fluid_settings_setstr(settings, b"player.timing-source", b"sample")  # what -F (fast render) sets
        lib.fluid_settings_setint(settings, b"synth.lock-memory", 0)
        lib.fluid_settings_setstr(settings, b"audio.file.type", b"wav")
        return settings

    def _font(self, synth: Synth) -> int:
        """The soundfont's loaded sfont (loaded on first use)."""
        if synth.soundfont not in self.fonts:
            settings = self._settings(synth)
            holder = self.lib.new_fluid_synth(settings)
            font_id = self.lib.fluid_synth_sfload(holder, os.fsencode(synth.soundfont), 1) if holder else -1
            sfont = self.lib.fluid_synth_get_sfont_by_id(holder, font_id) if font_id >= 0 else None
            if not sfont:
                if holder:
                    self.lib.delete_fluid_synth(holder)
                self.lib.delete_fluid_settings(settings)
                raise RuntimeError(f"FluidSynth could not load the soundfont {synth.soundfont}")
            self.fonts[synth.soundfont] = (settings, holder, sfont)
        return self.fonts[synth.soundfont][2]

    def render(self, synth: Synth, midi: Path, wav: Path) -> None:
        """Render `midi` to `wav` with `synth`'s soundfont, rate and gain; RuntimeError on failure or timeout."""
        lib = self.lib
        with self.lock:
            sfont = self._font(synth)
            settings = self._settings(synth)
            lib.fluid_settings_setstr(settings, b"audio.file.name", os.fsencode(wav))
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
                    raise RuntimeError(f"FluidSynth could not write {wav}")
                lib.fluid_player_play(player)
                deadline, blocks = time.monotonic() + synth.timeout_s, 0
                while lib.fluid_player_get_status(player) == FLUID_PLAYER_PLAYING:
                    if lib.fluid_file_renderer_process_block(renderer) != FLUID_OK:
                        raise RuntimeError(f"FluidSynth could not write {wav}")
                    blocks += 1
                    if blocks % 4096 == 0 and time.monotonic() > deadline:
                        raise RuntimeError(f"FluidSynth took more than {synth.timeout_s:g} s to render {midi.name}")
            finally:
                if renderer:
                    lib.delete_fluid_file_renderer(renderer)  # closes the WAV file
                if player:
                    lib.delete_fluid_player(player)
                if fluid:
                    lib.fluid_synth_remove_sfont(fluid, sfont)  # lent, not owned: deleting the synth must not free it
                    lib.delete_fluid_synth(fluid)
                lib.delete_fluid_settings(settings)
