"""The demo behind a real server (`python -m toccata.demo` on 127.0.0.1) driven by `gradio_client`, as a user's
script would: generation from an upload, bad uploads with clear messages and a server that keeps serving, and a
cancelled request that stops using the CPU."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.demo import ROOT, demo_server, is_up, require_fluidsynth, audio_peak
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from support.midi_files import END_OF_TRACK, smf
from toccata.demo.prompt import MAX_UPLOAD_BYTES, corpus_midi
from toccata.tokenization import NotewiseTokenizer

pytestmark = pytest.mark.server
STATUS, AUDIOS, ROLLS, FILES, TOKENS, SETTINGS, COMMAND = 0, slice(1, 5), slice(5, 9), 9, 10, 11, 12
QUICK = {"length": 2, "length_unit": "bars", "prompt_source": "none", "prompt_file": None, "seed": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("demo-server") / "server.log"
    answers = log.parent / "answers.sqlite"  # the Human or AI? tab's file (nothing is written unless it is used)
    with demo_server("--concurrency", "2", "--max-queue", "8", "--answers", str(answers), log=log) as running:
        yield running


@pytest.fixture
def client(server) -> Client:
    return Client(server.url, verbose=False, download_files=str(server.log.parent))


def generate(client: Client, **changes) -> tuple:
    return client.predict(**{**QUICK, **changes}, api_name="/generate")


def test_the_api_continues_an_uploaded_prompt_with_decodable_midi(client, tmp_path):
    require_fluidsynth()
    chorale = tmp_path / "chorale.mid"
    chorale.write_bytes(corpus_midi("bach/bwv66.6"))
    out = generate(
        client, prompt_source="upload", prompt_file=handle_file(chorale), prompt_beats=8, prompt_from="end", variations=2,
        sampler="top_k",
    )
    tokenizer = NotewiseTokenizer()
    kept_prompt = tokenizer.tail(tokenizer.midi_to_tokens(chorale), 8)  # its last two bars: it ends on a bar line
    assert len(out[FILES]) == 2 and out[SETTINGS]["prompt"] == "upload:chorale.mid"
    for midi in out[FILES]:
        tokens = tokenizer.midi_to_tokens(midi)
        assert tokens[: len(kept_prompt)] == kept_prompt, "the piece starts with the kept end of the prompt"
        assert len(tokens) > len(kept_prompt), "and goes on"
    assert all(audio_peak(path) > 0.01 for path in out[AUDIOS][:2]) and list(out[AUDIOS][2:]) == [None, None]
    assert all(Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in out[ROLLS][:2])
    assert out[STATUS].startswith("**Done**") and "--prompt YOUR_FILE.mid --prompt-from end" in out[COMMAND]
    assert "Beats 0\u20138 are the prompt (bars 8\u20139 of chorale.mid)" in out[STATUS]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.mid", b"these are not notes\n" * 50, "not a MIDI file"),
        ("cut.mid", smf([b"\x00\x90\x3c\x40\x60\x80\x3c\x40" + END_OF_TRACK])[:-5], "truncated"),
        ("garbled.mid", smf([b"\x00\x3c\x40" + END_OF_TRACK]), "cannot be parsed as MIDI"),
        ("notes.txt", b"MThd", "Invalid file type"),
    ],
)
def test_a_bad_upload_gets_a_clear_message_and_the_next_request_succeeds(server, client, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises((AppError, ValueError)) as caught:
        generate(client, prompt_source="upload", prompt_file=handle_file(path))
    assert message in str(caught.value)
    assert is_up(server.url) and server.process.poll() is None
    assert generate(client)[STATUS].startswith("**Done**")


def test_an_oversized_upload_is_refused_by_the_client_and_by_the_server(server, client, tmp_path):
    path = tmp_path / "huge.mid"
    path.write_bytes(b"MThd" + bytes(MAX_UPLOAD_BYTES))
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {MAX_UPLOAD_BYTES} bytes"):
        generate(client, prompt_source="upload", prompt_file=handle_file(path))  # gradio_client reads the cap
    with path.open("rb") as handle:  # a client that ignores the cap
        response = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("huge.mid", handle)}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert generate(client)[STATUS].startswith("**Done**")


def test_file_payloads_that_point_at_server_paths_or_urls_are_refused(server, tmp_path):
    """No `allowed_paths`, no URL input: a raw API call naming a server file or a local URL gets nothing."""
    fetched = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()

    trap = http.server.HTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    info = httpx.get(f"{server.url}gradio_api/info", timeout=30).json()["named_endpoints"]["/generate"]
    secret = tmp_path / "secret.mid"
    secret.write_bytes(corpus_midi("bach/bwv66.6"))
    link = f"http://127.0.0.1:{trap.server_address[1]}/piece.mid"
    try:
        for payload in ({"path": str(secret)}, {"path": link, "url": link}):
            given = {"prompt_source": "upload", "prompt_file": {**payload, "meta": {"_type": "gradio.FileData"}}}
            data = [given.get(p["parameter_name"], p["parameter_default"]) for p in info["parameters"]]
            event = httpx.post(f"{server.url}gradio_api/call/generate", json={"data": data}, timeout=30).json()
            stream = httpx.get(f"{server.url}gradio_api/call/generate/{event['event_id']}", timeout=60).text
            assert "event: error" in stream and "event: complete" not in stream
    finally:
        trap.shutdown()
    assert fetched == [], "the server must not fetch URLs given as files"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ = 100 on Linux)


def test_a_cancelled_request_stops_computing(server, client):
    busy = {**QUICK, "length": 240, "length_unit": "seconds", "calmness": -5.0, "variations": 4}
    job = client.submit(**busy, api_name="/generate")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("Composing" in str(o) for o in job.outputs()):
        time.sleep(0.1)
    assert any("Composing" in str(o) for o in job.outputs()), "progress is streamed while tokens are produced"
    job.cancel()
    time.sleep(1.0)  # the worker notices within one token; give the server a moment to settle
    before = _cpu_seconds(server.process.pid)
    time.sleep(2.0)
    assert _cpu_seconds(server.process.pid) - before < 0.5, "the server kept generating after the cancel"
    assert generate(client)[STATUS].startswith("**Done**")


def test_the_api_composes_with_no_arguments_at_all(client):
    """What a new user tries first: every input, the optional upload included, has a default."""
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["parameters"]
    assert all(p["parameter_has_default"] for p in info), [p["parameter_name"] for p in info]
    upload = next(p for p in info if p["parameter_name"] == "prompt_file")
    assert upload["parameter_default"] is None
    out = client.predict(api_name="/generate")
    assert out[STATUS].startswith("**Done**") and len(out[FILES]) >= 1


def _documented_http_call() -> tuple[str, list[str], list]:
    """docs/demo.md's curl block, the parameter names its text lists, and the data list its block posts."""
    text = (ROOT / "docs" / "demo.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "gradio_api/call/generate" in b)
    names = re.search(r"in the order `/gradio_api/info` gives \(([^)]*)\)", text).group(1)
    payload = json.loads(re.search(r"-d '([^']*)'", block).group(1))
    return block, [name.strip() for name in names.split(",")], payload["data"]


def test_the_api_composes_over_plain_http_as_the_curl_example_in_the_docs_does(server, tmp_path):
    """docs/demo.md's curl recipe as written (the port changed): the names it lists are /gradio_api/info's, in order,
    and the block, run by bash with curl (or its data posted with httpx where curl is missing), composes."""
    block, names, data = _documented_http_call()
    info = httpx.get(f"{server.url}gradio_api/info", timeout=30).json()["named_endpoints"]["/generate"]["parameters"]
    assert names == [p["parameter_name"] for p in info]
    assert len(data) == len(info)
    if shutil.which("curl"):
        script = tmp_path / "call.sh"
        script.write_text("set -eu\n" + block.replace("http://127.0.0.1:7860/", server.url))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        run = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=180, env=env)
        stream = run.stdout + run.stderr
    else:
        event = httpx.post(f"{server.url}gradio_api/call/generate", json={"data": data}, timeout=30).json()["event_id"]
        stream = httpx.get(f"{server.url}gradio_api/call/generate/{event}", timeout=120).text
    assert "event: complete" in stream, stream[-500:]
    assert "**Done**" in stream
