"""Audio from MIDI: FluidSynth renders with a General MIDI soundfont, offline, to WAV. `toccata generate` and the demo
use it; where FluidSynth or a soundfont is missing, `Synth.find()` returns None and the caller says so."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    """FluidSynth rendering MIDI to WAV offline with one soundfont."""

    binary: str
    soundfont: str
    sample_rate: int = 32_000
    gain: float = 0.6
    timeout_s: float = 60.0

    @classmethod
    def find(cls) -> Synth | None:
        """FluidSynth and a GM soundfont ($TOCCATA_SOUNDFONT first), or None where either is missing."""
        binary = shutil.which(os.environ.get("TOCCATA_FLUIDSYNTH", "fluidsynth"))
        candidates = [os.environ.get("TOCCATA_SOUNDFONT", ""), *SOUNDFONTS]
        soundfont = next((path for path in candidates if path and Path(path).is_file()), None)
        return cls(binary, soundfont) if binary and soundfont else None

    def render(self, midi: Path, wav: Path) -> Path:
        """Write `wav` from `midi`; a RuntimeError with FluidSynth's own words if it fails."""
        # Dynamic sample loading reads only the samples the piece plays, not the whole 148 MB GM soundfont: a third
        # less CPU per render, same audio.
        command = [self.binary, "-ni", "-q", "-g", str(self.gain), "-r", str(self.sample_rate)]
        command += ["-o", "synth.dynamic-sample-loading=1"]
        command += ["-F", str(wav), "-T", "wav", self.soundfont, str(midi)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"FluidSynth took more than {self.timeout_s:g} s to render {midi.name}") from None
        if done.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise RuntimeError(f"FluidSynth could not render {midi.name}: {detail[0]}")
        return wav
