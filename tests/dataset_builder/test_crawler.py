"""The polite MIDI crawler against a real HTTP server on 127.0.0.1: what it fetches, skips and why, and resuming."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from toccata.dataset_builder.sources.crawler import CrawlConfig, _Crawler, _PageParser, crawl, local_path
from toccata.tokenization.midi_io import music21_corpus_midi

VERSION = importlib.metadata.version("toccata")
CAP = 20_000  # max_file_bytes in these tests: the chorales are 2-5 kB, the huge files 30 kB
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
BY_SA = "CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass
class Hit:
    at: float  # time.monotonic() when the request arrived
    path: str
    status: int
    user_agent: str


class Site:
    """A small MIDI site served by http.server in a thread, logging every request it answers."""

    def __init__(self, routes: dict[str, Callable[[int], Reply]]):
        self.routes, self.log, self._lock = routes, [], threading.Lock()
        self._counts: Counter = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site._counts[self.path] += 1
                    number = site._counts[self.path]
                route = site.routes.get(self.path)
                reply = route(number) if route else Reply(404, b"not found", "text/plain")
                site.log.append(Hit(time.monotonic(), self.path, reply.status, self.headers.get("User-Agent", "")))
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                if reply.send_length:
                    self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):  # the crawler hangs up on files over its cap
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def counts(self) -> Counter:
        return Counter(hit.path for hit in self.log)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page(*links: str, head: str = "", body: str = "") -> Callable[[int], Reply]:
    anchors = "".join(f'<a href="{link}">{link}</a>\n' for link in links)
    html = f"<!doctype html><html><head>{head}</head><body>{body}{anchors}</body></html>"
    return lambda n: Reply(body=html.encode())


def static(reply: Reply) -> Callable[[int], Reply]:
    return lambda n: reply


@pytest.fixture(scope="module")
def midi() -> dict[str, bytes]:
    works = {"bwv66": "bach/bwv66.6", "bwv1": "bach/bwv1.6", "bwv10": "bach/bwv10.7", "bwv101": "bach/bwv101.7"}
    works |= {"bwv102": "bach/bwv102.7", "bwv104": "bach/bwv104.6"}
    return {name: music21_corpus_midi(work) for name, work in works.items()}


def site_routes(midi: dict[str, bytes], crawl_delay: float | None) -> dict[str, Callable[[int], Reply]]:
    """The site: index pages, MIDI files, robots.txt, a corrupt file, a duplicate, redirects, 404, 500s, huge files."""
    mid = "audio/midi"
    routes = {
        "/": page(
            "a/index.html",
            "/private/index.html",
            "files/bwv66.mid",
            "files/corrupt.mid",
            "files/copy.MIDI",
            "old/bwv1.mid",
            "missing.mid",
            "flaky.mid",
            "broken.mid",
            "huge.mid",
            "stream.mid",
            "photo.jpg",
            "http://elsewhere.invalid/tune.mid",
            "http://elsewhere.invalid/about.html",
            "mailto:someone@example.org",
            "#top",
            "b/index.html",
            "plain.html",
            "notes.txt",
            head=f'<link rel="license" href="{CC0}">',
        ),
        "/a/index.html": page(
            "bwv101.mid",
            "jump.mid",
            "nofollow.html",
            "../",
            "index.html#top",
            head='<meta name="license" content="CC BY 4.0">',
        ),
        "/a/nofollow.html": page("hidden.mid", head='<meta name="robots" content="noindex, nofollow">'),
        "/b/index.html": page(
            "Bwv102.KAR",
            body='<a rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA 4.0</a>',
        ),
        "/plain.html": page("/download?id=7"),
        "/private/index.html": page("secret.mid"),
        "/notes.txt": static(Reply(body=b"just text", content_type="text/plain")),
        "/files/bwv66.mid": static(Reply(body=midi["bwv66"], content_type=mid)),
        "/files/copy.MIDI": static(Reply(body=midi["bwv66"], content_type=mid)),
        "/files/bwv1.mid": static(Reply(body=midi["bwv1"], content_type=mid)),
        "/files/corrupt.mid": static(Reply(body=b"<html>this is not a MIDI file</html>", content_type=mid)),
        "/old/bwv1.mid": static(Reply(301, headers={"Location": "/files/bwv1.mid"})),
        "/a/jump.mid": static(Reply(302, headers={"Location": "http://elsewhere.invalid/x.mid"})),
        "/flaky.mid": lambda n: Reply(500, b"oops") if n == 1 else Reply(body=midi["bwv10"], content_type=mid),
        "/broken.mid": static(Reply(500, b"always broken")),
        "/huge.mid": static(Reply(body=b"MThd" + bytes(30_000), content_type=mid)),
        "/stream.mid": static(Reply(body=b"MThd" + bytes(30_000), content_type=mid, send_length=False)),
        "/a/bwv101.mid": static(Reply(body=midi["bwv101"], content_type=mid)),
        "/a/hidden.mid": static(Reply(body=midi["bwv104"], content_type=mid)),
        "/b/Bwv102.KAR": static(Reply(body=midi["bwv102"], content_type=mid)),
        "/download?id=7": static(Reply(body=midi["bwv104"], content_type=mid)),
        "/private/secret.mid": static(Reply(body=midi["bwv104"], content_type=mid)),
        "/photo.jpg": static(Reply(body=b"\xff\xd8", content_type="image/jpeg")),
    }
    if crawl_delay is not None:
        robots = f"User-agent: *\nDisallow: /private/\nCrawl-delay: {crawl_delay}\n"
        routes["/robots.txt"] = static(Reply(body=robots.encode(), content_type="text/plain"))
    return routes


@pytest.fixture
def make_site(midi):
    sites = []

    def make(crawl_delay: float | None = 0.05) -> Site:
        sites.append(Site(site_routes(midi, crawl_delay)))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


def config_for(site: Site, out: Path, **overrides) -> CrawlConfig:
    settings = {"start_urls": [site.url + "/"], "min_delay": 0.0, "backoff": 0.01, "retries": 2, "timeout": 10.0}
    return CrawlConfig(out_dir=out, max_file_bytes=CAP, **(settings | overrides))


def expected_fetched(site: Site) -> dict[str, str | None]:
    """source URL -> licence of every file the full crawl keeps."""
    return {
        site.url + "/files/bwv66.mid": CC0,
        site.url + "/files/bwv1.mid": CC0,  # through the redirect from /old/bwv1.mid, licence of the linking page
        site.url + "/flaky.mid": CC0,
        site.url + "/a/bwv101.mid": "CC BY 4.0",
        site.url + "/b/Bwv102.KAR": BY_SA,
        site.url + "/download?id=7": None,  # no .mid link, but served as MIDI
    }


def expected_skipped(site: Site) -> dict[str, str]:
    return {
        site.url + "/private/index.html": "robots-disallowed",
        site.url + "/files/corrupt.mid": "not-midi",
        site.url + "/files/copy.MIDI": f"duplicate-of {site.url}/files/bwv66.mid",
        site.url + "/old/bwv1.mid": "redirect",
        site.url + "/missing.mid": "http-404",
        site.url + "/broken.mid": "failed-after-retries",
        site.url + "/huge.mid": "too-large",
        site.url + "/stream.mid": "too-large",
        site.url + "/a/jump.mid": "off-host",
        site.url + "/notes.txt": "not-html",
        "http://elsewhere.invalid/tune.mid": "off-host",
    }


def read_jsonl(path: Path) -> list[dict]:
    """Complete rows only: a killed writer may leave a torn last line."""
    data = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in data[: data.rfind("\n") + 1].splitlines()]


def midi_downloads(site: Site) -> Counter:
    """How many times each MIDI-serving URL was answered with 200 (a completed download)."""
    return Counter(hit.path for hit in site.log if hit.status == 200 and not hit.path.endswith((".html", "/", ".txt")))


def portable(rows: list, site: Site) -> set[tuple]:
    """Metadata rows without the server's port, so two crawls of two servers compare."""
    return {(r.source_url.removeprefix(site.url), r.file_name.split("/", 2)[2], r.sha256, r.license) for r in rows}


def test_crawl_fetches_and_skips_exactly_what_it_should(make_site, tmp_path):
    site = make_site(crawl_delay=0.2)
    started = datetime.now(UTC).replace(microsecond=0)
    report = crawl(config_for(site, tmp_path))

    assert {row.source_url: row.license for row in report.fetched} == expected_fetched(site)
    assert {row.url: row.reason for row in report.skipped} == expected_skipped(site)
    assert report.stopped_by is None and report.pages == 5  # /, /a/, /a/nofollow, /b/, /plain
    assert [row.detail for row in report.skipped if row.reason == "redirect"] == [site.url + "/files/bwv1.mid"]
    assert "HTTP 500 on all 3 attempts" in next(row.detail for row in report.skipped if row.reason.startswith("failed"))

    # exactly these requests, this many times; never the disallowed folder, the nofollow page's links, nor a .jpg
    once = ["/", "/a/index.html", "/a/nofollow.html", "/b/index.html", "/plain.html", "/notes.txt", "/robots.txt"]
    once += ["/files/bwv66.mid", "/files/corrupt.mid", "/files/copy.MIDI", "/old/bwv1.mid", "/files/bwv1.mid"]
    once += ["/missing.mid", "/huge.mid", "/stream.mid", "/a/bwv101.mid", "/a/jump.mid", "/b/Bwv102.KAR"]
    assert site.counts() == Counter(once + ["/download?id=7", "/flaky.mid", "/flaky.mid"] + ["/broken.mid"] * 3)
    assert site.log[0].path == "/robots.txt"
    assert {hit.user_agent for hit in site.log} == {
        f"ToccataCrawler/{VERSION} (+https://github.com/toccata-music/toccata)"
    }
    gaps = [later.at - earlier.at for earlier, later in zip(site.log, site.log[1:])]
    assert min(gaps) >= 0.2, "robots.txt Crawl-delay: 0.2 was not honoured"

    # on disk: metadata.jsonl in the datasets folder convention, files under files/, hashes and sizes true
    rows = read_jsonl(tmp_path / "metadata.jsonl")
    assert [list(row) for row in rows] == [["file_name", "source_url", "fetched_at", "license", "sha256", "size"]] * 6
    for row in rows:
        data = (tmp_path / row["file_name"]).read_bytes()
        assert row["file_name"].startswith("files/127.0.0.1_")
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["size"]
        served = site.routes[row["source_url"].removeprefix(site.url)](2).body
        assert data == served
        assert started <= datetime.fromisoformat(row["fetched_at"]) <= datetime.now(UTC)
        assert row["fetched_at"].endswith("Z")
    names = {row["source_url"].removeprefix(site.url): row["file_name"].split("/", 2)[2] for row in rows}
    assert names["/b/Bwv102.KAR"] == "b/Bwv102.KAR" and names["/files/bwv66.mid"] == "files/bwv66.mid"
    assert names["/download?id=7"].startswith("download_") and names["/download?id=7"].endswith(".mid")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != ".partial") == sorted(
        [Path(row["file_name"]).name for row in rows]
        + ["metadata.jsonl", "skipped.jsonl", "crawl_state.json", ".crawl.lock"]
    )
    assert {row["url"]: row["reason"] for row in read_jsonl(tmp_path / "skipped.jsonl")} == expected_skipped(site)
    state = json.loads((tmp_path / "crawl_state.json").read_text())
    assert state["frontier"] == [] and set(state["hashes"]) == {row["sha256"] for row in rows}


def test_a_finished_crawl_run_again_requests_nothing(make_site, tmp_path):
    site = make_site()
    first = crawl(config_for(site, tmp_path))
    requests = len(site.log)
    again = crawl(config_for(site, tmp_path))
    assert len(site.log) == requests and again.requests == 0
    assert again.fetched == first.fetched and again.skipped == first.skipped


def test_file_cap_stops_the_crawl_and_a_larger_cap_resumes_it_without_refetching(make_site, tmp_path):
    site = make_site()
    capped = crawl(config_for(site, tmp_path, max_files=2), progress=True)
    assert capped.stopped_by == "max-files" and len(capped.fetched) == 2
    assert len(read_jsonl(tmp_path / "metadata.jsonl")) == 2
    with open(tmp_path / "metadata.jsonl", "a") as handle:  # a line torn by a kill in the middle of a write
        handle.write('{"file_name": "files/x')

    report = crawl(config_for(site, tmp_path, max_files=100))
    assert report.stopped_by is None
    assert {row.source_url: row.license for row in report.fetched} == expected_fetched(site)
    assert {row.url: row.reason for row in report.skipped} == expected_skipped(site)
    assert [row["source_url"] for row in read_jsonl(tmp_path / "metadata.jsonl")] == [
        r.source_url for r in report.fetched
    ]
    assert max(midi_downloads(site).values()) == 1
    assert site.counts()["/"] == 1 and site.counts()["/robots.txt"] == 2  # robots.txt is re-read by each run


def test_page_cap_leaves_pages_for_a_later_run(make_site, tmp_path):
    site = make_site()
    capped = crawl(config_for(site, tmp_path, max_pages=1))
    assert capped.stopped_by == "max-pages" and capped.pages == 1
    assert site.counts()["/a/index.html"] == 0 and site.counts()["/files/bwv66.mid"] == 1
    report = crawl(config_for(site, tmp_path))
    assert report.pages == 5 and {row.source_url for row in report.fetched} == set(expected_fetched(site))
    counts = site.counts()
    assert counts["/robots.txt"] == 2 and counts["/flaky.mid"] == 2 and counts["/broken.mid"] == 3
    assert {n for path, n in counts.items() if path not in ("/robots.txt", "/flaky.mid", "/broken.mid")} == {1}


def test_kill_9_mid_crawl_then_resume_fetches_nothing_twice(make_site, tmp_path):
    site = make_site(crawl_delay=0.05)
    out = tmp_path / "killed"
    code = (
        "from toccata.dataset_builder.sources.crawler import CrawlConfig, crawl\n"
        f"crawl(CrawlConfig(start_urls=[{site.url + '/'!r}], out_dir={str(out)!r}, min_delay=0.0, backoff=0.01,"
        f" retries=2, max_file_bytes={CAP}, timeout=10.0))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    metadata = out / "metadata.jsonl"
    while not (metadata.exists() and metadata.read_bytes().endswith(b"\n")):
        assert child.poll() is None, "the crawl ended before it could be killed"
        assert time.monotonic() < deadline, "the crawl wrote no file within 60 s"
        time.sleep(0.002)
    child.kill()  # SIGKILL: no cleanup, no final state save
    child.wait()
    killed_at = len(site.log)
    done_at_kill = {row["source_url"] for row in read_jsonl(metadata)}
    done_at_kill |= {row["url"] for row in read_jsonl(out / "skipped.jsonl")}
    assert 1 <= len(read_jsonl(metadata)) < 6, "the kill did not land mid-crawl"

    resumed = crawl(config_for(site, out))
    after_kill = {site.url + hit.path for hit in site.log[killed_at:]}
    assert not done_at_kill & after_kill, "a URL journaled before the kill was requested again"
    repeated = [path for path, count in midi_downloads(site).items() if count > 1]
    assert len(repeated) <= 1  # at most the one download in flight when the process died

    fresh_site = make_site(crawl_delay=0.05)
    fresh = crawl(config_for(fresh_site, tmp_path / "fresh"))
    assert portable(resumed.fetched, site) == portable(fresh.fetched, fresh_site)
    assert len(portable(resumed.fetched, site)) == 6
    skipped = [row["url"] for row in read_jsonl(out / "skipped.jsonl")]
    assert len(skipped) == len(set(skipped)) and {r.url: r.reason for r in resumed.skipped} == expected_skipped(site)


def test_missing_robots_txt_allows_all_and_min_delay_spaces_requests(make_site, tmp_path):
    site = make_site(crawl_delay=None)
    report = crawl(config_for(site, tmp_path, min_delay=0.15, start_urls=[site.url + "/private/index.html"]))
    assert [row.source_url for row in report.fetched] == [site.url + "/private/secret.mid"]
    assert [(hit.path, hit.status) for hit in site.log] == [
        ("/robots.txt", 404),
        ("/private/index.html", 200),
        ("/private/secret.mid", 200),
    ]
    assert min(later.at - earlier.at for earlier, later in zip(site.log, site.log[1:])) >= 0.15


def test_robots_rules_for_our_user_agent_win_over_the_catch_all_group(make_site, tmp_path):
    site = make_site()
    robots = "User-agent: *\nDisallow:\n\nUser-agent: ToccataCrawler\nDisallow: /a/\nCrawl-delay: 0.3\n"
    site.routes["/robots.txt"] = static(Reply(body=robots.encode(), content_type="text/plain"))
    start = [site.url + "/a/bwv101.mid", site.url + "/files/bwv66.mid", site.url + "/files/bwv1.mid"]
    report = crawl(config_for(site, tmp_path, start_urls=start))
    assert [row.url for row in report.skipped if row.reason == "robots-disallowed"] == [site.url + "/a/bwv101.mid"]
    assert [row.source_url for row in report.fetched] == start[1:]
    assert [hit.path for hit in site.log] == ["/robots.txt", "/files/bwv66.mid", "/files/bwv1.mid"]
    assert min(later.at - earlier.at for earlier, later in zip(site.log, site.log[1:])) >= 0.3


def test_a_host_asking_for_an_absurd_crawl_delay_is_not_crawled(make_site, tmp_path):
    site = make_site(crawl_delay=100_000)
    report = crawl(config_for(site, tmp_path, max_crawl_delay=60.0))
    assert report.fetched == []
    assert [(row.url, row.reason) for row in report.skipped] == [(site.url + "/", "crawl-delay-too-long")]
    assert [hit.path for hit in site.log] == ["/robots.txt"]


def test_a_failing_robots_txt_stops_the_host_until_a_later_run(make_site, tmp_path):
    site = make_site()
    working_robots = site.routes["/robots.txt"]
    site.routes["/robots.txt"] = static(Reply(503, b"maintenance", "text/plain"))
    report = crawl(config_for(site, tmp_path))
    assert report.stopped_by == "robots-unreachable" and report.fetched == [] and report.skipped == []
    assert site.counts() == Counter({"/robots.txt": 3})  # retries=2, and nothing else is requested

    site.routes["/robots.txt"] = working_robots
    report = crawl(config_for(site, tmp_path))
    assert report.stopped_by is None and {row.source_url for row in report.fetched} == set(expected_fetched(site))


def test_429_waits_for_retry_after_then_succeeds(midi, tmp_path):
    def busy(n: int) -> Reply:
        return Reply(429, b"slow down", headers={"Retry-After": "1"}) if n == 1 else Reply(body=midi["bwv1"])

    site = Site({"/busy.mid": busy})
    try:
        report = crawl(config_for(site, tmp_path, start_urls=[site.url + "/busy.mid"]))
    finally:
        site.close()
    assert [row.source_url for row in report.fetched] == [site.url + "/busy.mid"]
    tries = [hit for hit in site.log if hit.path == "/busy.mid"]
    assert [hit.status for hit in tries] == [429, 200] and tries[1].at - tries[0].at >= 1.0


def test_malformed_links_do_not_stop_the_crawl(midi, tmp_path):
    """Links that urljoin cannot read (a bad IPv6 host, a bad port) are dropped; the rest of the page is crawled."""
    site = Site(
        {
            "/": page("http://[::1/bad.mid", "http://h:notaport/x.mid", "good.mid", head='<base href="http://[zz]/">'),
            "/good.mid": static(Reply(body=midi["bwv1"], content_type="audio/midi")),
        }
    )
    try:
        report = crawl(config_for(site, tmp_path))
    finally:
        site.close()
    assert [row.source_url for row in report.fetched] == [site.url + "/good.mid"]
    assert [hit.path for hit in site.log] == ["/robots.txt", "/", "/good.mid"]


def test_a_second_crawl_on_the_same_folder_is_refused(make_site, tmp_path):
    config = config_for(make_site(), tmp_path)
    with _Crawler(config, progress=False), pytest.raises(RuntimeError, match="another crawl"):
        crawl(config)


def test_local_path_never_escapes_and_never_collides():
    taken: set[str] = set()
    hostile = [
        "http://h/../../etc/passwd.mid",
        "http://h/%2e%2e/%2e%2e/x.mid",
        "http://h/a%2Fb/..%5C..%5Cc.mid",
        "http://h/CON.mid",
        "http://h/",
        "http://h/dir.mid/inner.mid",
        "http://h/" + "n" * 500 + ".mid",
        "http://h/x.mid?a=1",
        "http://h/x.mid?a=2",
        "http://h/X.MID",
        "http://h/x.mid",
        "http://h:8080/.hidden/.mid",
    ]
    for url in hostile:
        name = local_path(url, taken)
        parts = name.split("/")
        assert parts[0] == "files" and all(part not in ("", ".", "..") and "\\" not in part for part in parts), name
        assert all(len(part) <= 120 for part in parts) and name.lower().endswith((".mid", ".kar", ".midi")), name
        assert name.lower() not in taken, f"{url} collides with an earlier file"
        taken.add(name.lower())
    assert local_path("http://h/x.mid", set()) == "files/h/x.mid"
    assert local_path("http://h/x.mid", {"files/h/x.mid", "files/h/x-2.mid"}) == "files/h/x-3.mid"
    assert local_path("http://h:8080/a b/Song.KAR", set()) == "files/h_8080/a_b/Song.KAR"


def test_page_parser_finds_links_licences_and_nofollow():
    parser = _PageParser("http://h/dir/page.html")
    parser.feed(
        '<base href="http://h/base/"><a href="http://[::1/x.mid">bad</a><a href="one.mid">1</a><embed src="/two.mid"><bgsound src="three.kar">'
        '<a rel="nofollow license" href="/lic">Free  Art\nLicence</a><link rel="license" href="http://l/x">'
        '<meta name="dcterms.license" content="CC0"><a href="https://creativecommons.org/licenses/by/4.0/">cc</a>'
        '<meta name="ROBOTS" content="NOFOLLOW">'
    )
    assert parser.links[:3] == ["http://h/base/one.mid", "http://h/two.mid", "http://h/base/three.kar"]
    assert parser.license() == "Free Art Licence (http://h/lic); http://l/x; CC0" and parser.nofollow
    plain = _PageParser("http://h/")
    plain.feed('<a href="https://creativecommons.org/licenses/by/4.0/">some rights reserved</a><a href="x.mid">x</a>')
    assert plain.license() == "https://creativecommons.org/licenses/by/4.0/" and not plain.nofollow


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"start_urls": []}, "non-empty list"),
        ({"start_urls": "http://h/"}, "non-empty list"),
        ({"start_urls": ["ftp://h/x.mid"]}, "'ftp://h/x.mid' is not an absolute http"),
        ({"start_urls": ["http://h/"], "allowed_hosts": ["other"]}, "not on allowed_hosts"),
        ({"start_urls": ["http://h/"], "max_files": 0}, "max_files must be at least 1, got 0"),
        ({"start_urls": ["http://h/"], "min_delay": -1}, "min_delay must be 0 or more, got -1"),
    ],
)
def test_config_errors_name_the_input(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        CrawlConfig(out_dir=tmp_path, **overrides)


def test_config_defaults_to_the_start_hosts_and_an_honest_user_agent(tmp_path):
    config = CrawlConfig(["https://Example.org:8443/midi/", "http://b.example/x.mid"], tmp_path)
    assert config.allowed_hosts == ["b.example", "example.org:8443"]
    assert config.user_agent.startswith(f"ToccataCrawler/{VERSION} (+https://")
    assert (config.min_delay, config.max_file_bytes, config.retries) == (1.0, 5_000_000, 3)
