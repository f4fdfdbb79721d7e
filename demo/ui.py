"""The Gradio Blocks of the demo: controls, outputs and their wiring. The work happens in `Engine.run`; this module
only turns form values into `DemoSettings` and a `Result` into component updates.

    demo = build_demo()           # loads the default checkpoint (or random weights) and queues the app
    serve(demo, port=7860)        # what `toccata demo` and the Space's app.py do
"""

from __future__ import annotations

import functools
import html
import inspect
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

import toccata

from .answers import AnswerStore, default_answers_path
from .background import Finished, run_in_background
from .components import RenderedAudio
from .engine import Engine, Result, load_engine
from .form import (
    ALL_SAMPLER_PARAMETERS,
    CORPUS_EXCERPTS,
    INSTRUMENT_CHOICES,
    LENGTH_UNITS,
    MAX_BEST_OF,
    MAX_VARIATIONS,
    PROMPT_SOURCES,
    SAMPLER_CHOICES,
    SAMPLER_PARAMETERS,
    default_values,
    settings_from_values,
)
from .listening_ui import listening_tab
from .prompt import MAX_UPLOAD_BYTES

CONCURRENCY = 8  # requests served at once: their rows share one decoding loop (the engine's batcher)
# Requests waiting; more are refused at once with "queue is full". Gradio counts a request as waiting until its
# dispatcher starts it, so requests arriving together all count (20 at once refused 3 of them with 16).
QUEUE_SIZE = 32
PROGRESS_EVERY_S = 0.5  # how often a running request tells the page how far it got
INTRO = """# Toccata
Piano music from an LSTM over notewise tokens. Pick a sampler, a prompt to continue (or none), press **Generate**.
Same seed + same settings = same music."""
RANDOM_SEED_JS = "() => Math.floor(Math.random() * 2147483647)"
# How the status line reads while a job waits or runs, and after it ends without pieces. The status line is the
# job's only progress display (its Gradio tracker is hidden): after Stop the tracker could show a red "Error" when
# the event stream closed after the cancel was confirmed.
WAITING, READING, COMPOSING = "Waiting for a free composer…", "Reading the prompt…", "Composing…"
STOPPED, NOT_COMPOSED = "Stopped.", "Nothing composed: see the message."
GENERATE_JS = f"() => {{ window.toccataStopped = false; return {WAITING!r}; }}"
STOP_JS = f"() => {{ window.toccataStopped = true; return {STOPPED!r}; }}"
# Run in the page when a job ends without its pieces, once Gradio has confirmed a cancel (its updates no longer
# apply then): a progress update already on its way when Stop was pressed can land after Stop's own "Stopped.",
# and an error leaves the status reading as running.
# Run in the page whenever the status changes: after Stop, a progress update that was already on its way (seen on a
# loaded machine, landing after the failure handler's "Stopped.") must not bring "Composing…" back.
STATUS_CHANGED_JS = (
    f"(status) => window.toccataStopped && [{WAITING!r}, {READING!r}, {COMPOSING!r}]"
    f".some((prefix) => (status || '').startsWith(prefix)) ? {STOPPED!r} : status"
)
ENDED_WITHOUT_PIECES_JS = (
    f"(status) => window.toccataStopped ? {STOPPED!r} : "
    f"[{WAITING!r}, {READING!r}, {COMPOSING!r}].some((prefix) => (status || '').startsWith(prefix)) "
    f"? {NOT_COMPOSED!r} : status"
)


@dataclass(frozen=True)
class Outputs:
    """The components a generation fills, in the order the API returns them."""

    status: gr.Markdown
    audios: list[gr.Audio]
    rolls: list[gr.Image]
    files: gr.File
    tokens: gr.Textbox
    settings: gr.JSON
    command: gr.Code

    def all(self) -> list[gr.components.Component]:
        return [self.status, *self.audios, *self.rolls, self.files, self.tokens, self.settings, self.command]


def _controls(
    start: dict[str, Any], instruments: list[tuple[str, str]], composers: tuple[str, ...] = ()
) -> dict[str, gr.components.Component]:
    """The form's components by field name (the names `settings_from_values` reads), with their local events.
    `composers`: the model's composer labels; the style choice is shown only when it has some."""
    c: dict[str, gr.components.Component] = {}
    c["instruments"] = gr.Radio(
        instruments,
        value=start["instruments"],
        label="Instruments",
        info="piano alone, or piano with a violin or a cello part (each has its own model)",
    )
    c["composer"] = gr.Dropdown(
        [("any composer", ""), *((name, name) for name in composers)],
        value=start["composer"],
        label="In the style of",
        info="a composer the model learnt from (a label put before the piece, as in training)",
        visible=bool(composers),
    )
    c["composer_guidance"] = gr.Slider(
        0.0, 6.0, value=start["composer_guidance"], step=0.5, label="Style strength",
        info="how hard the composer's style steers: 1 is the label alone; higher follows the style more "
        "(classifier-free guidance)",
        visible=bool(composers),
    )  # fmt: skip
    with gr.Group():
        c["sampler"] = gr.Radio(SAMPLER_CHOICES, value=start["sampler"], label="Sampler")
        shown = SAMPLER_PARAMETERS[start["sampler"]]
        sliders = {
            "temperature": ("Temperature", 0.1, 3.0, 0.05, "above 1: bolder; below 1: safer"),
            "p_best": ("p_best: probability of the best guess", 0.0, 1.0, 0.01, None),
            "n": ("n: the best guess and n-1 runners-up", 2, 20, 1, None),
            "k": ("k: draw among the k most likely", 1, 60, 1, None),
            "random_freq": ("random_freq: share of weighted draws", 0.0, 1.0, 0.01, None),
            "trunc": ("trunc: weighted draws among the trunc most likely", 1, 60, 1, None),
        }
        for name, (label, low, high, step, info) in sliders.items():
            c[name] = gr.Slider(low, high, value=start[name], step=step, label=label, info=info, visible=name in shown)
        with gr.Row(equal_height=True):
            c["seed"] = gr.Number(value=start["seed"], precision=0, label="Seed", scale=3)
            random_seed = gr.Button("Random seed", scale=1, elem_id="random-seed")
    with gr.Group():
        with gr.Row():
            c["length"] = gr.Slider(1, 240, value=start["length"], step=1, label="Length", scale=3)
            c["length_unit"] = gr.Radio(list(LENGTH_UNITS), value=start["length_unit"], label="in", scale=1)
        c["tempo"] = gr.Slider(30, 240, value=start["tempo"], step=1, label="Tempo (quarter notes per minute)")
        c["prompt_tempo"] = gr.Checkbox(value=start["prompt_tempo"], label="keep the prompt's tempo if there is one")
        c["calmness"] = gr.Slider(
            -5, 5, value=start["calmness"], step=0.1, label="Calmness", info="> 0: fewer notes; < 0: busier"
        )
        c["repeat_penalty"] = gr.Slider(
            0, 5, value=start["repeat_penalty"], step=0.1, label="Repeat penalty", info="> 0: fewer repeated top notes"
        )
        with gr.Row():
            c["grammar"] = gr.Checkbox(value=start["grammar"], label="grammar guard (always decodable)")
            c["rest_guard"] = gr.Checkbox(value=start["rest_guard"], label="rest guard (no endless silence)")
            c["part_entry"] = gr.Checkbox(
                value=start["part_entry"], label="every part plays (violin, cello: no long rests)"
            )
        c["variations"] = gr.Slider(1, MAX_VARIATIONS, value=start["variations"], step=1, label="Variations")
        c["best_of"] = gr.Slider(
            1,
            MAX_BEST_OF,
            value=start["best_of"],
            step=1,
            label="Best of",
            info="compose this many candidates per variation (one batch); the critic keeps the most human-like",
        )
    with gr.Group():
        c["prompt_source"] = gr.Radio(PROMPT_SOURCES, value=start["prompt_source"], label="Prompt")
        c["corpus_work"] = gr.Dropdown(
            CORPUS_EXCERPTS, value=start["corpus_work"], label="Excerpt of music21's corpus", visible=True
        )
        c["prompt_file"] = gr.File(
            label=f"MIDI file to continue (up to {MAX_UPLOAD_BYTES // 1024**2} MB)",
            file_types=[".mid", ".midi", ".rmi"],
            type="filepath",
            visible=False,
        )
        keep_label = "Beats of the prompt to keep (whole measures, at least one)"
        c["prompt_beats"] = gr.Slider(1, 64, value=start["prompt_beats"], step=1, label=keep_label)
        c["prompt_from"] = gr.Radio(
            [("its opening", "start"), ("its close", "end")], value=start["prompt_from"], label="Keep the prompt's"
        )

    for name, component in c.items():  # the field's name is its element id (tests and custom CSS use them)
        component.elem_id = name
    parameters = [c[name] for name in ALL_SAMPLER_PARAMETERS]
    c["sampler"].change(_sampler_visibility, c["sampler"], parameters, queue=False, api_visibility="private")
    prompt_parts = [c["corpus_work"], c["prompt_file"], c["prompt_beats"], c["prompt_from"]]
    c["prompt_source"].change(
        _prompt_visibility, c["prompt_source"], prompt_parts, queue=False, api_visibility="private"
    )
    random_seed.click(None, outputs=c["seed"], js=RANDOM_SEED_JS, api_visibility="private")
    return c


def _sampler_visibility(sampler: str) -> list[dict]:
    return [gr.update(visible=name in SAMPLER_PARAMETERS.get(sampler, ())) for name in ALL_SAMPLER_PARAMETERS]


def _prompt_visibility(source: str) -> list[dict]:
    return [
        gr.update(visible=source == "corpus"),
        gr.update(visible=source == "upload"),
        gr.update(visible=source != "none"),
        gr.update(visible=source != "none"),
    ]


def _outputs() -> Outputs:
    status = gr.Markdown("Press **Generate**.", elem_id="status")
    audios, rolls = [], []
    for index in range(MAX_VARIATIONS):
        label = f"Variation {index + 1}"
        audios.append(
            RenderedAudio(label=label, type="filepath", interactive=False, visible=False, elem_id=f"audio-{index}")
        )
        rolls.append(
            gr.Image(
                label=f"{label}: piano roll", type="filepath", interactive=False, visible=False, elem_id=f"roll-{index}"
            )
        )
    files = gr.File(label="MIDI files", file_count="multiple", interactive=False, elem_id="midi-files")
    with gr.Accordion("Tokens", open=False):
        tokens = gr.Textbox(label="Notewise tokens (prompt first)", lines=6, max_lines=12, buttons=["copy"])
    with gr.Accordion("Settings used (to make the same piece again)", open=True):
        command = gr.Code(
            label="The same with the command line", language="shell", interactive=False, elem_id="command"
        )
        settings = gr.JSON(label="Settings", max_height=260)
    return Outputs(status, audios, rolls, files, tokens, settings, command)


def _result_updates(result: Result, outputs: Outputs) -> dict:
    """Component updates that show `result`."""
    count = len(result.pieces)
    lines = [
        f"Variation {i}: {piece.notes} notes, {piece.seconds:.1f} s{_critic_note(piece)}."
        for i, piece in enumerate(result.pieces, start=1)
    ]
    status = f"**Done** (seed {result.settings['sampler']['seed']}; lengths include the prompt). " + " ".join(lines)
    kept = result.settings.get("prompt_kept")  # e.g. "beats 0–16 are the prompt (bars 1–4 of bwv66.6); ..."
    status += f"\n\n{kept[0].upper()}{kept[1:]}." if kept else ""
    status += "".join(f"\n\n⚠️ {notice}" for notice in result.notices)
    updates: dict = {outputs.status: status}
    for index in range(MAX_VARIATIONS):  # plain values, so API clients get paths; `_show_filled` shows them
        piece = result.pieces[index] if index < count else None
        updates[outputs.audios[index]] = str(piece.audio) if piece and piece.audio else None
        updates[outputs.rolls[index]] = str(piece.roll) if piece else None
    updates[outputs.files] = [str(piece.midi) for piece in result.pieces]
    updates[outputs.tokens] = "\n".join(piece.text for piece in result.pieces)
    updates[outputs.settings] = result.settings
    updates[outputs.command] = result.command
    return updates


def _progress_updates(outputs: Outputs, status: str) -> dict:
    """A status line, the other outputs emptied until the pieces come. Every output gets a value: one left out is a
    `gr.skip()`, which costs Gradio a rebuilt component per output and update (under load, most of the server's CPU)."""
    return {**{component: None for component in outputs.all()}, outputs.status: status}


def _critic_note(piece) -> str:
    """For a best-of-N piece, the critic's P(human) of the kept candidate, to append to its status line."""
    if piece.human_probability is None:
        return ""
    return f" (best of {piece.best_of}: the critic's P(human) {piece.human_probability:.2f})"


def _show_filled(*values: Any) -> list[dict]:
    """Show the audio players and piano rolls that hold something, hide the others."""
    return [gr.update(visible=value is not None) for value in values]


def _user_error(err: Exception, title: str) -> gr.Error:
    """A `gr.Error` (its message is HTML, so escaped) for a mistake the user can fix."""
    return gr.Error(html.escape(str(err)), title=title, print_exception=False)


def _generate(engine: Engine, outputs: Outputs, values: dict[str, Any]) -> Iterator[dict]:
    """The Generate handler: stream progress, then the pieces. Closing it (Stop, a lost client) cancels the job."""
    try:
        settings = settings_from_values(values, *engine.presets())
    except (ValueError, TypeError) as err:
        raise _user_error(err, "Check the settings") from None
    out_dir = Path(tempfile.mkdtemp(prefix="toccata-demo-"))
    # Each progress update re-sends every output to the page; twice a second reads as live and costs half the CPU.
    stream = run_in_background(functools.partial(engine.run, settings, out_dir), poll_s=PROGRESS_EVERY_S)
    shown = None
    try:
        for event in stream:
            if isinstance(event, Finished):
                yield _result_updates(event.value, outputs)
            elif event != shown:  # while a job waits, nothing new to say
                shown = event
                text = f"{COMPOSING} {event.done:,} tokens so far (at most {event.total:,})." if event.total else ""
                yield _progress_updates(outputs, text or READING)
    except ValueError as err:  # MidiError and bad settings name the input and the fix
        raise _user_error(err, "Cannot use this input") from None
    finally:
        stream.close()  # if Gradio closed us (Stop, a lost client), this cancels the job
        # Gradio copies the files of each update into its cache before asking for the next one, so the folder
        # can go once the generator ends (or is closed).
        shutil.rmtree(out_dir, ignore_errors=True)


def _instrument_choices(engine: Engine) -> list[tuple[str, str]]:
    """The instrument sets this demo can serve: the embedded checkpoints' with the default model, else the model's."""
    if engine.model_args:  # --model or random weights: that model only
        return [(engine.instruments.replace(",", " and "), engine.instruments)]
    available = set(toccata.available_instruments())
    return [(label, value) for label, value in INSTRUMENT_CHOICES if value in available] or [("piano", "piano")]


def build_demo(
    engine: Engine | None = None,
    concurrency: int = CONCURRENCY,
    max_queue: int = QUEUE_SIZE,
    answers: AnswerStore | str | os.PathLike | None = None,
) -> gr.Blocks:
    """The queued Gradio app for `engine` (default: the default checkpoint, or random weights); the "Human or AI?"
    tab records answers in `answers` (a store or a path; default: `default_answers_path()`)."""
    engine = engine or load_engine()
    if not isinstance(answers, AnswerStore):
        answers = AnswerStore(answers if answers is not None else default_answers_path())
    start = {**default_values(*engine.presets()), "instruments": engine.instruments}
    instruments = _instrument_choices(engine)
    with gr.Blocks(title="Toccata", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(engine.notice(), elem_id="model-notice")
        with gr.Tabs():
            with gr.Tab("Compose", id="compose", elem_id="tab-compose"), gr.Row():
                with gr.Column(scale=2):
                    form = _controls(start, instruments, engine.composers())
                    with gr.Row():
                        generate = gr.Button("Generate", variant="primary", elem_id="generate")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop")
                with gr.Column(scale=3):
                    outputs = _outputs()
            with gr.Tab("Human or AI?", id="listen", elem_id="tab-listen"):
                listening_tab(demo, engine, answers)

        def compose_pieces(**values: Any) -> Iterator[dict]:
            """Compose and render pieces; streams progress. Arguments: the form's fields, by name."""
            yield from _generate(engine, outputs, values)

        # The form's fields as named parameters, the upload defaulting to None: Gradio's API makes a parameter
        # optional when its component has a value or the function's parameter defaults to None, so that
        # `Client(url).predict(api_name="/generate")` composes with the page's defaults.
        compose_pieces.__signature__ = inspect.Signature(
            [
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=None if name == "prompt_file" else start.get(name)
                )
                for name in form
            ]
        )

        generate.click(None, outputs=outputs.status, js=GENERATE_JS, queue=False, api_visibility="private")
        job = generate.click(
            compose_pieces, inputs_kwargs=form, outputs=outputs.all(), api_name="generate", show_progress="hidden"
        )
        slots = [*outputs.audios, *outputs.rolls]
        job.then(_show_filled, slots, slots, queue=False, api_visibility="private")
        stop.click(None, outputs=outputs.status, js=STOP_JS, cancels=[job], api_visibility="private")
        job.failure(
            None, outputs.status, outputs.status, js=ENDED_WITHOUT_PIECES_JS, queue=False, api_visibility="private"
        )
        outputs.status.change(
            None, outputs.status, outputs.status, js=STATUS_CHANGED_JS, queue=False, api_visibility="private"
        )
    # Gradio summarises its last 10,000 events with pandas after every event by default (CPU that grows with the
    # server's age, taken from the requests); every 100 events is plenty for its /monitoring page. Set before the
    # queue is made, which reads it; a value the user set wins.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)
    return demo


def serve(demo: gr.Blocks, host: str | None = None, port: int | None = None, **launch_kwargs: Any) -> None:
    """Launch with the upload cap (host/port None: $GRADIO_SERVER_NAME/PORT or Gradio's defaults); blocks."""
    demo.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, **launch_kwargs)
