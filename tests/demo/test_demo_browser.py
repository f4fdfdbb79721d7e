"""The demo in a real browser: headless Debian Chromium driven by Playwright against a real server on 127.0.0.1.

A user's path: pick a sampler (its own controls appear), move sliders, upload a prompt, press Generate, get an
audio player, a piano roll and a MIDI download that parses. The screenshot goes to test-artifacts/demo.png, and with
TOCCATA_UPDATE_SCREENSHOT=1 also to docs/images/demo.png, the picture of the demo in the README and docs/demo.md:
    TOCCATA_UPDATE_SCREENSHOT=1 .venv/bin/python -m pytest tests/demo/test_demo_browser.py -k downloads_the_midi
A listener's path in the "Human or AI?" tab: a round, two players, an answer, the reveal, the results, the row.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
import symusic
from support.demo import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, require_chromium, require_fluidsynth
from toccata.demo.answers import AnswerStore
from toccata.demo.background import WORKER_NAME
from toccata.demo.prompt import MAX_UPLOAD_BYTES, corpus_midi
from toccata.demo.ui import NOT_COMPOSED, PROGRESS_EVERY_S, build_demo

pytestmark = [pytest.mark.browser, pytest.mark.server]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ROOT / "docs" / "images" / "demo.png"  # written only when TOCCATA_UPDATE_SCREENSHOT=1


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> AnswerStore:
    return AnswerStore(tmp_path_factory.mktemp("listening") / "answers.sqlite")


@pytest.fixture(scope="module")
def url(answers):
    demo = build_demo(answers=answers.path)
    _, local_url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=MAX_UPLOAD_BYTES,
    )
    yield local_url
    demo.close()


@pytest.fixture
def page(url):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(30_000)
            page.goto(url)
            yield page
        finally:
            browser.close()


def set_slider(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def upload(page, path) -> None:
    """Pick `path` in the visible upload box and wait until the box lists it as uploaded.

    The uploaded file's row is labelled with its name; its text is split in two (stem, extension). While the
    upload runs a progress line shows the whole name, but on a busy machine it can come and go unseen.
    """
    box = page.locator("#prompt_file")
    box.wait_for(state="visible")
    box.locator("input[type=file]").set_input_files(path)
    box.get_by_label(path.name).wait_for()


def test_a_user_continues_an_uploaded_prompt_and_downloads_the_midi(page, tmp_path):
    require_fluidsynth()
    prompt = tmp_path / "chorale.mid"
    prompt.write_bytes(corpus_midi("bach/bwv66.6"))

    page.get_by_label("top-n").check()
    page.locator("#p_best").wait_for(state="visible")
    assert page.locator("#n").is_visible() and not page.locator("#k").is_visible(), "only top-n's controls show"
    set_slider(page, "length", 6)
    page.get_by_label("bars").check()
    set_slider(page, "variations", 2)
    page.get_by_label("upload a MIDI file").check()
    upload(page, prompt)
    page.locator("#generate").click()

    page.locator("#status").get_by_text("Done").wait_for()
    for index in (0, 1):
        page.locator(f"#audio-{index} audio, #audio-{index} a[download$='.flac']").first.wait_for(state="attached")
        page.locator(f"#roll-{index} img").wait_for(state="visible")
    assert not page.locator("#audio-2").is_visible()
    # The browser decodes the FLAC the demo serves: the player shows its length (it reads "0:00" until it has
    # decoded the file), and Chromium's own decoder reads the download. Both are bounded: a hang fails the test.
    page.wait_for_function("() => document.querySelector('#audio-0 #duration')?.textContent.trim() !== '0:00'")
    minutes, seconds = page.locator("#audio-0 #duration").inner_text().split(":")
    assert 60 * int(minutes) + int(seconds) > 5, "the player could not read the audio"
    href = page.locator("#audio-0 a[download$='.flac']").first.get_attribute("href")
    decoded = page.evaluate(
        """async url => Promise.race([
            fetch(url).then(reply => reply.arrayBuffer())
                .then(bytes => new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes))
                .then(audio => audio.duration, () => -1),
            new Promise(done => setTimeout(() => done(-2), 20000)),
        ])""",
        href,
    )
    assert decoded > 5, f"the browser could not decode the FLAC (duration {decoded}; -1: an error, -2: a timeout)"
    command = page.locator("#command").inner_text()
    assert "--sampler top_n" in command and "--beats 24" in command and "--num-samples 2" in command

    links = page.locator("#midi-files a[download$='.mid']")
    assert links.count() == 2
    with page.expect_download() as download:
        links.first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert symusic.Score(str(saved)).note_num() > 0

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "demo.png", full_page=True)
    if os.environ.get("TOCCATA_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / "demo.png", SCREENSHOT)


def test_a_random_seed_and_a_bad_upload_in_the_page(page, tmp_path):
    seed = page.locator("#seed input")
    page.locator("#random-seed").click()
    page.wait_for_function("() => document.querySelector('#seed input').value !== '1'")
    assert 0 <= int(seed.input_value()) < 2**31, "the random button draws a new seed in the browser"
    bad = tmp_path / "notes.mid"
    bad.write_bytes(b"not music\n" * 20)
    page.get_by_label("upload a MIDI file").check()
    upload(page, bad)
    page.locator("#generate").click()
    page.get_by_text("this is not a MIDI file").first.wait_for()


def test_a_file_that_is_not_midi_gets_its_message_and_the_status_says_nothing_was_composed(page, tmp_path):
    bad = tmp_path / "notes.mid"
    bad.write_text("these are my notes, not a MIDI file")
    page.get_by_label("upload a MIDI file").check()
    upload(page, bad)
    page.locator("#generate").click()
    page.get_by_text("does not start with 'MThd'").first.wait_for()  # Gradio's error message, naming the problem
    page.locator("#status").get_by_text(NOT_COMPOSED).wait_for()

def test_stop_cancels_a_long_generation(page):
    # A busy server answers the cancel late, and a progress update arrives meanwhile: the page must still end on
    # "Stopped." (it once stayed on "Composing…"). The delay stands in for the busy server.
    page.route("**/gradio_api/cancel", lambda route: (time.sleep(2 * PROGRESS_EVERY_S + 0.5), route.continue_()))
    set_slider(page, "length", 240)
    set_slider(page, "calmness", -5)  # busy music: thousands of tokens
    set_slider(page, "variations", 4)
    page.get_by_label("none: compose from silence").check()
    page.locator("#generate").click()
    page.locator("#status").get_by_text("Composing").wait_for()
    page.locator("#stop").click()
    page.locator("#status").get_by_text("Stopped.").wait_for()
    time.sleep(2 * PROGRESS_EVERY_S)
    shown = page.locator("#status [data-testid=markdown]").inner_text()
    assert shown == "Stopped.", "no update after Stop overwrites the status"
    # Gradio's own tracker on the status line (a red "Error" when the event stream closes after the cancel) is
    # hidden: the line above is the job's only progress display.
    tracker = page.locator("#status [data-testid=status-tracker]")
    assert tracker.count() == 0 or tracker.evaluate("e => getComputedStyle(e).opacity") == "0"
    deadline = time.monotonic() + 2  # the server runs in this process: its worker thread must end
    while any(thread.name == WORKER_NAME for thread in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(thread.name == WORKER_NAME for thread in threading.enumerate()), "Stop did not stop the work"
    assert not page.locator("#audio-0").is_visible()


def test_a_listener_tells_human_from_ai_and_the_answer_is_recorded(page, answers):
    require_fluidsynth()
    page.get_by_role("tab", name="Human or AI?").click()
    page.locator("#listen-results").get_by_text("No answers yet").wait_for()
    assert page.locator("#listen-a-human").is_disabled(), "nothing to answer before a round"
    page.locator("#listen-start").click()
    page.locator("#listen-status").get_by_text("Listen to").wait_for()
    links = []
    for side in ("A", "B"):
        page.get_by_test_id(f"waveform-{side}").wait_for(state="attached")  # the audio player of side A or B
        link = page.locator(f"#listen-audio-{side.lower()} a[download]")
        link.wait_for(state="attached")
        links.append((link.get_attribute("download"), link.get_attribute("href").rsplit("/", 1)[-1]))
    assert links == [("A.wav", "A.wav"), ("B.wav", "B.wav")], "neutral names only"
    assert "craigsapp" not in page.content(), "the real excerpt's source is not in the page before the answer"
    assert page.locator("#listen-a-human").is_enabled() and not page.locator("#listen-settings").is_visible()

    page.locator("#listen-a-human").click()
    reveal = page.locator("#listen-reveal")
    reveal.get_by_text("was human").wait_for()
    assert "craigsapp" in reveal.inner_text(), "the reveal credits the real excerpt"
    page.locator("#listen-results").get_by_text("1 answer").wait_for()
    assert page.locator("#listen-settings").is_visible() and page.locator("#listen-a-human").is_disabled()
    (row,) = answers.answers()
    assert row.answer == "A" and row.correct == (row.human == "A")
    assert ("Right" in reveal.inner_text()) == row.correct and row.settings["sampler"]["seed"] is not None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "demo-listening.png", full_page=True)


def test_a_user_picks_piano_and_cello_and_gets_the_chamber_model(page, tmp_path):
    import toccata

    if "piano,cello" not in toccata.available_instruments():
        pytest.skip("no embedded piano-cello model")
    page.get_by_label("piano and cello").check()
    page.get_by_label("none: compose from silence").check()
    set_slider(page, "length", 6)
    page.get_by_label("bars").check()
    page.locator("#generate").click()
    page.locator("#status").get_by_text("Done").wait_for()
    page.locator("#roll-0 img").wait_for(state="visible")
    assert "--instruments piano,cello" in page.locator("#command").inner_text()
    with page.expect_download() as download:
        page.locator("#midi-files a[download$='.mid']").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    score = symusic.Score(str(saved))
    assert score.note_num() > 0 and {track.program for track in score.tracks} <= {0, 42}
