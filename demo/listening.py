"""The "Human or AI?" listening test without the UI: a round pairs a real excerpt (test split, shipped with the demo)
with a piece the engine's model composes on the spot, as "A" and "B" in random order; the answer is checked against
the truth kept in the `AnswerStore` and recorded with the generator's settings.

    game = ListeningTest(engine, AnswerStore(path))
    heard = game.new_round(folder)         # A.wav / B.wav (or A.mid / B.mid and piano rolls): neutral names only
    reveal = game.answer(heard.id, "A")    # correct or not, the excerpt's attribution, the settings
"""

from __future__ import annotations

import os
import random
import struct
import uuid
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from toccata.modeling import GenerationRequest, compose

from toccata.rendering import INSTALL_HINT, piano_roll

from .answers import SIDES, Answer, AnswerStore, Summary
from .engine import Engine
from .listening_data import FOLDER, Excerpt, load_excerpts, opening, read_tokens

EXTRA_QUARTERS = 8.0  # composed beyond the excerpt's length, so the cut from the first note still fills it
NO_AUDIO = f"No synthesizer here, so no audio: {INSTALL_HINT}. Compare the piano rolls, or download the MIDI files."


@dataclass(frozen=True)
class Round:
    """What the page may see of a round before the answer: an id and files with neutral names, A then B."""

    id: str
    midi: tuple[Path, Path]
    audio: tuple[Path, Path] | None  # None without a synthesizer (then the piano rolls stand in)
    rolls: tuple[Path, Path]
    seconds: float
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reveal:
    """The answer checked: which side was human, the real excerpt's attribution, the generator's settings."""

    answer: Answer
    excerpt: Excerpt
    summary: Summary  # every answer so far for this model

    def markdown(self) -> str:
        a = self.answer
        verdict = "✅ **Right!**" if a.correct else "❌ **Not this time.**"
        seed = a.settings.get("sampler", {}).get("seed")
        return (
            f"{verdict} **{a.human}** was human, **{'B' if a.human == 'A' else 'A'}** was the model "
            f"({a.model}, seed {seed}).\n\nThe human excerpt: {self.excerpt.credit()}"
        )


def salt(path: Path, nonce: bytes) -> Path:
    """Add a chunk holding `nonce` that players ignore to a MIDI, WAV or PNG file, so that its bytes are new.

    Gradio serves a file from a folder named by the hash of its bytes: without this, a real excerpt heard again in a
    later round would come back under a URL seen before (while generated pieces never do), which gives it away.
    """
    data = path.read_bytes()
    if path.suffix == ".mid":  # an alien chunk after the tracks: the standard says readers skip it
        data += b"XToc" + struct.pack(">I", len(nonce)) + nonce
    elif path.suffix == ".wav":  # a RIFF JUNK chunk after the samples, and the RIFF size updated
        chunk = b"JUNK" + struct.pack("<I", len(nonce)) + nonce + b"\0" * (len(nonce) % 2)
        data = data[:4] + struct.pack("<I", len(data) - 8 + len(chunk)) + data[8:] + chunk
    elif path.suffix == ".png":  # a tEXt chunk before IEND (the last 12 bytes)
        body = b"tEXt" + b"round\0" + nonce.hex().encode()
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        data = data[:-12] + chunk + data[-12:]
    else:
        raise ValueError(f"{path.name}: cannot salt a {path.suffix} file (MIDI, WAV or PNG only)")
    path.write_bytes(data)
    return path


class ListeningTest:
    """Rounds of real-vs-generated excerpts for one engine; the truth goes to `store`, never to the caller."""

    def __init__(
        self,
        engine: Engine,
        store: AnswerStore,
        excerpts: list[Excerpt] | None = None,
        folder: str | Path = FOLDER,
        rng: random.Random | None = None,
    ) -> None:
        self.engine, self.store, self.folder = engine, store, Path(folder)
        self.excerpts = excerpts if excerpts is not None else load_excerpts(self.folder)
        if not self.excerpts:
            raise ValueError(f"{self.folder}: no excerpts to play")
        self.rng = rng or random.SystemRandom()

    def new_round(self, out_dir: str | Path, progress=None, cancel=None) -> Round:
        """Pick an excerpt, compose a piece as long with the checkpoint's preset and a fresh seed, write both as
        A and B in random order into `out_dir` and remember which is which in the store."""
        excerpt = self.rng.choice(self.excerpts)
        tokenizer = self.engine.tokenizer
        real = read_tokens(excerpt, self.folder)
        sampler, guards = self.engine.presets()
        request = GenerationRequest(
            sampler=replace(sampler, seed=self.rng.randrange(2**31)),
            guards=guards,
            beats=excerpt.quarters + EXTRA_QUARTERS,
            qpm=excerpt.qpm,
            prompt_beats=None,
            num_samples=1,
        )
        (piece,) = compose(
            self.engine.model, tokenizer, request, progress=progress, cancel=cancel, batcher=self.engine.batcher
        )
        generated = opening(tokenizer, piece.tokens, excerpt.quarters)  # both start at their first note
        human = self.rng.choice(SIDES)
        sides = {human: real, ("B" if human == "A" else "A"): generated}
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        midi, rolls, audio, notices = [], [], [], []
        nonce = os.urandom(16)
        for side in SIDES:  # the same decoding for both: tempo and time signature of the excerpt, one piano track
            path = tokenizer.save_midi(
                sides[side], out_dir / f"{side}.mid", qpm=excerpt.qpm, time_signature=excerpt.time_signature
            )
            grid = tokenizer.tokens_to_notes(sides[side])
            notes = np.column_stack([grid.start / grid.tpq, grid.end / grid.tpq, grid.pitch])
            rolls.append(salt(piano_roll(notes, 0.0, out_dir / f"{side}.png", title=side), nonce))
            if self.engine.synth is not None:
                try:
                    audio.append(salt(self.engine.synth.render(path, out_dir / f"{side}.wav"), nonce))
                except RuntimeError as err:
                    notices.append(f"No audio: {err}. Compare the piano rolls or the MIDI files.")
            midi.append(salt(path, nonce))
        if self.engine.synth is None:
            notices.append(NO_AUDIO)
        settings = {
            **piece.settings,
            "kept_quarters": excerpt.quarters,  # the cut from the first note: the excerpt's length
            "model": self.engine.model_label,
        }
        round_id = uuid.uuid4().hex
        self.store.open_round(round_id, excerpt.id, human, settings, self.engine.model_label)
        return Round(
            round_id,
            (midi[0], midi[1]),
            (audio[0], audio[1]) if len(audio) == 2 else None,
            (rolls[0], rolls[1]),
            excerpt.seconds,
            tuple(notices),
        )

    def answer(self, round_id: str, side: str) -> Reveal:
        """Record that the listener called `side` human; a ValueError for an unknown or already answered round."""
        answer = self.store.answer(round_id, side)
        excerpt = next((e for e in self.excerpts if e.id == answer.excerpt_id), None)
        if excerpt is None:  # answered in another process with other excerpts; the store still has the id
            excerpt = Excerpt(answer.excerpt_id, "", "", answer.excerpt_id, "", "", 120.0, (4, 4), 0, 0.0, 0)
        return Reveal(answer, excerpt, self.summary())

    def summary(self) -> Summary:
        """Every answer so far for this engine's model."""
        return self.store.summary(model=self.engine.model_label)
