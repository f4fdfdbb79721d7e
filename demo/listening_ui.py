"""The "Human or AI?" tab: play a real excerpt and a generated one as A and B, ask which is human, reveal, record.

The page holds only a round id, in a `gr.State` (kept on the server, never sent to the browser); which side is
human is in the `AnswerStore`, looked up when the answer comes. Its events are private: not part of the API.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .answers import AnswerStore
from .components import RenderedAudio
from .engine import Engine
from .listening import ListeningTest

INTRO = """### Human or AI?
Press **New round**: one excerpt is the opening of a real piece (from the test split, never trained on), the other
was composed just now by the model, as long, at the same tempo, on the same piano. Listen to both, then say which
one a human wrote. Answers are recorded (with the generator's settings, nothing about you) to measure how often
listeners can tell."""


@dataclass(frozen=True)
class ListeningView:
    """The tab's components."""

    round_id: gr.State
    start: gr.Button
    status: gr.Markdown
    audios: tuple[gr.Audio, gr.Audio]
    rolls: tuple[gr.Image, gr.Image]
    files: gr.File
    choose: tuple[gr.Button, gr.Button]  # "A is human", "B is human"
    reveal: gr.Markdown
    settings: gr.JSON
    results: gr.Markdown

    def round_outputs(self) -> list[gr.components.Component]:
        shown = [self.status, *self.audios, *self.rolls, self.files, *self.choose, self.reveal, self.settings]
        return [self.round_id, *shown]

    def answer_outputs(self) -> list[gr.components.Component]:
        return [self.round_id, self.reveal, self.settings, self.results, *self.choose]


def _error(err: Exception) -> gr.Error:
    return gr.Error(html.escape(str(err)), title="Human or AI?", print_exception=False)


def new_round(game: ListeningTest, view: ListeningView) -> Iterator[dict]:
    """Compose the model's excerpt, then show A and B (audio, else piano rolls) and enable the answer buttons."""
    yield {
        view.round_id: None,
        view.status: "Composing the model's excerpt…",
        view.reveal: "",
        view.settings: gr.update(value=None, visible=False),
        **{button: gr.update(interactive=False) for button in view.choose},
    }
    out_dir = Path(tempfile.mkdtemp(prefix="toccata-listen-"))
    try:
        try:
            heard = game.new_round(out_dir)
        except ValueError as err:
            raise _error(err) from None
        status = f"Listen to **A** and **B** ({heard.seconds:.0f} s each), then say which one a human wrote."
        status += "".join(f"\n\n⚠️ {notice}" for notice in heard.notices)
        updates = {view.round_id: heard.id, view.status: status, view.files: [str(path) for path in heard.midi]}
        for index in range(2):
            audio = heard.audio[index] if heard.audio else None
            updates[view.audios[index]] = gr.update(value=str(audio) if audio else None, visible=audio is not None)
            updates[view.rolls[index]] = gr.update(value=str(heard.rolls[index]), visible=audio is None)
        updates.update({button: gr.update(interactive=True) for button in view.choose})
        yield updates
    finally:
        # Gradio copies a yielded update's files into its cache before asking for the next one.
        shutil.rmtree(out_dir, ignore_errors=True)


def answer(game: ListeningTest, view: ListeningView, round_id: str | None, side: str) -> dict:
    """Check and record the answer (the truth comes from the store), then reveal it with the settings."""
    if not round_id:
        raise _error(ValueError("no round to answer: press New round first"))
    try:
        reveal = game.answer(round_id, side)
    except ValueError as err:
        raise _error(err) from None
    return {
        view.round_id: None,
        view.reveal: reveal.markdown(),
        view.settings: gr.update(value=reveal.answer.settings, visible=True),
        view.results: reveal.summary.markdown(),
        **{button: gr.update(interactive=False) for button in view.choose},
    }


def _picker(game: ListeningTest, view: ListeningView, side: str):
    """The click handler of "`side` is human"."""

    def pick(round_id: str | None) -> dict:
        return answer(game, view, round_id, side)

    return pick


def listening_tab(blocks: gr.Blocks, engine: Engine, store: AnswerStore) -> ListeningView:
    """Build the tab's components and events inside the current Tab of `blocks`; returns them."""
    game = ListeningTest(engine, store)
    gr.Markdown(INTRO)
    round_id = gr.State(None)
    start = gr.Button("New round", variant="primary", elem_id="listen-start")
    status = gr.Markdown("Press **New round**.", elem_id="listen-status")
    audios, rolls = [], []
    with gr.Row():
        for side in ("A", "B"):
            with gr.Column():
                audios.append(RenderedAudio(label=side, type="filepath", interactive=False, visible=False))
                rolls.append(gr.Image(label=f"{side}: piano roll", type="filepath", interactive=False, visible=False))
                audios[-1].elem_id, rolls[-1].elem_id = f"listen-audio-{side.lower()}", f"listen-roll-{side.lower()}"
    with gr.Row():
        choose = (
            gr.Button("A is human", interactive=False, elem_id="listen-a-human"),
            gr.Button("B is human", interactive=False, elem_id="listen-b-human"),
        )
    reveal = gr.Markdown("", elem_id="listen-reveal")
    settings = gr.JSON(
        label="How the model's excerpt was made", visible=False, max_height=260, elem_id="listen-settings"
    )
    with gr.Accordion("MIDI files", open=False):
        files = gr.File(label="A and B as MIDI", file_count="multiple", interactive=False, elem_id="listen-files")
    gr.Markdown("#### Results so far")
    results = gr.Markdown("…", elem_id="listen-results")  # filled when the page loads
    refresh = gr.Button("Refresh results", size="sm", elem_id="listen-refresh")
    view = ListeningView(round_id, start, status, tuple(audios), tuple(rolls), files, choose, reveal, settings, results)

    def start_round() -> Iterator[dict]:
        yield from new_round(game, view)

    def results_now() -> str:
        return game.summary().markdown()

    start.click(start_round, outputs=view.round_outputs(), api_visibility="private", show_progress="minimal")
    for side, button in zip(("A", "B"), choose):
        button.click(
            _picker(game, view, side), inputs=round_id, outputs=view.answer_outputs(), api_visibility="private"
        )
    refresh.click(results_now, outputs=results, api_visibility="private", queue=False)
    blocks.load(results_now, outputs=results, api_visibility="private", queue=False)
    return view
