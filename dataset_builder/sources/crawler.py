"""A polite MIDI crawler: follows links within allowed hosts to MIDI files, resumable, deduplicated, with provenance.

Politeness comes from kept libraries: protego reads robots.txt (Disallow, Crawl-delay, Request-rate), tenacity retries
5xx, 429 and connection errors with exponential backoff, httpx fetches with an honest User-Agent. Every kept file gets
a row in `metadata.jsonl` (the `datasets` folder convention) and every URL that gave no file a row with a reason in
`skipped.jsonl`. Those two files are the crawl's journal: with `crawl_state.json` (frontier, visited URLs, hashes,
written atomically) they let a killed crawl resume without downloading a recorded file again. See docs/crawler.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Self, TextIO
from urllib.parse import urlsplit

import httpx
from protego import Protego
from tqdm.auto import tqdm

from .html_links import PageParser, parse_page
from .http_retry import RetryableStatus, retry_after, retrying
from .url_paths import has_midi_extension, host_allowed, is_ignored_link, local_path, normalize_url

try:  # an advisory lock that the kernel drops when the process dies, so a kill -9 never blocks the resume
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"ToccataCrawler/{version('toccata')} (+https://github.com/toccata-music/toccata)"
MAX_PAGE_BYTES = 10_000_000  # an HTML page larger than this is not an index of MIDI files
MAX_ROBOTS_BYTES = 500 * 1024  # the least RFC 9309 asks crawlers to parse
STATE_FILE, METADATA_FILE, SKIPPED_FILE = "crawl_state.json", "metadata.jsonl", "skipped.jsonl"
STATE_VERSION = 1


@dataclass
class CrawlConfig:
    """What to crawl and how politely; the defaults suit a real site, tests shrink the delays."""

    start_urls: list[str]
    out_dir: Path
    allowed_hosts: list[str] | None = None  # host or host:port; default: the hosts of start_urls
    user_agent: str = DEFAULT_USER_AGENT
    max_file_bytes: int = 5_000_000  # larger MIDI files are skipped as too-large (Content-Length and while streaming)
    max_files: int = 10_000  # kept files, over all runs of this out_dir
    max_pages: int = 100_000  # HTML pages fetched, over all runs of this out_dir
    min_delay: float = 1.0  # seconds between requests to one host; robots crawl-delay wins if larger
    max_crawl_delay: float = 60.0  # a host whose robots.txt asks for a longer delay is not crawled (it asks not to be)
    retries: int = 3  # extra attempts after a 5xx, a 429 or a connection error
    backoff: float = 1.0  # first retry wait in seconds, doubled each time (tests set it small)
    timeout: float = 30.0  # seconds, for connecting and between bytes read

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if isinstance(self.start_urls, str) or not self.start_urls:
            raise ValueError(f"start_urls must be a non-empty list of http(s) URLs, got {self.start_urls!r}")
        for url in self.start_urls:
            if normalize_url(url) is None:
                raise ValueError(f"start URL {url!r} is not an absolute http(s) URL; write it as https://host/path")
        if self.allowed_hosts is None:
            self.allowed_hosts = sorted({urlsplit(normalize_url(url)).netloc for url in self.start_urls})
        self.allowed_hosts = [host.lower() for host in self.allowed_hosts]
        for url in self.start_urls:
            if not host_allowed(normalize_url(url), self.allowed_hosts):
                raise ValueError(f"start URL {url!r} is not on allowed_hosts {self.allowed_hosts}; add its host")
        for name in ("max_file_bytes", "max_files", "max_pages"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("min_delay", "max_crawl_delay", "retries", "backoff"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive (seconds), got {self.timeout}")
        if not self.user_agent.strip():
            raise ValueError("user_agent is empty: name the crawler and a contact URL, as DEFAULT_USER_AGENT does")


@dataclass
class FetchedFile:
    """One kept MIDI file: a row of metadata.jsonl."""

    file_name: str  # relative to out_dir, under files/
    source_url: str
    fetched_at: str  # ISO-8601, UTC
    license: str | None  # licence markup found on the page that linked the file
    sha256: str
    size: int


@dataclass
class SkippedUrl:
    """A URL that gave no file, and why: a row of skipped.jsonl."""

    url: str
    reason: str  # robots-disallowed, too-large, duplicate-of <url>, http-404, not-midi, off-host, redirect, ...
    detail: str = ""


@dataclass
class CrawlReport:
    """The whole crawl recorded in out_dir (this run and any earlier ones it resumed)."""

    out_dir: Path
    fetched: list[FetchedFile]
    skipped: list[SkippedUrl]
    pages: int  # HTML pages fetched, all runs
    requests: int  # HTTP requests made by this run, robots.txt and retries included
    stopped_by: str | None  # why URLs are left for a later run: max-files, max-pages, robots-unreachable; else None


@dataclass
class _Item:
    """A frontier entry: a URL, what we expect there, and the licence of the page that linked it."""

    url: str
    kind: str  # "page" or "file"
    license: str | None = None


@dataclass
class _Response:
    """What one GET gave, with the body already read (bounded by the cap)."""

    status: int
    content_type: str = ""
    robots_tag: str = ""
    location: str | None = None
    body: bytes = b""
    too_large: int | None = None  # bytes declared or read past the cap


def crawl(config: CrawlConfig, progress: bool = False) -> CrawlReport:
    """Crawl from `config.start_urls` into `config.out_dir`, resuming whatever an earlier run there left undone."""
    with _Crawler(config, progress) as crawler:
        return crawler.run()


class _Crawler:
    """The crawl loop and its state; one instance per run, holding the lock on out_dir."""

    def __init__(self, config: CrawlConfig, progress: bool):
        self.config = config
        self.out = config.out_dir
        self.progress = progress
        self.requests = 0
        self._robots: dict[str, Protego | None] = {}  # origin -> rules, None when robots.txt could not be read
        self._delays: dict[str, float] = {}  # host -> seconds between requests
        self._next_at: dict[str, float] = {}  # host -> monotonic time of the next allowed request
        self._stack = contextlib.ExitStack()
        self._in_flight: _Item | None = None  # saved back to the frontier if the run stops (Ctrl-C) while on it
        self._deferred: list[_Item] = []  # left for a later run: pages over max_pages, hosts whose robots.txt failed

    def __enter__(self) -> Self:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock()
            shutil.rmtree(self.out / ".partial", ignore_errors=True)  # downloads a killed run left unfinished
            (self.out / ".partial").mkdir()
            self._load()
            self._metadata = self._stack.enter_context(open(self.out / METADATA_FILE, "a", encoding="utf-8"))
            self._skipped_log = self._stack.enter_context(open(self.out / SKIPPED_FILE, "a", encoding="utf-8"))
            headers = {"User-Agent": self.config.user_agent, "Accept": "text/html,audio/midi;q=0.9,*/*;q=0.8"}
            # follow_redirects=False: each redirect is checked against allowed hosts and robots.txt
            self.client = self._stack.enter_context(
                httpx.Client(headers=headers, timeout=self.config.timeout, follow_redirects=False)
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._save_state()
        finally:
            self._stack.close()

    # ------------------------------------------------------------------------------------------------ state

    def _lock(self) -> None:
        handle = self._stack.enter_context(open(self.out / ".crawl.lock", "w"))  # noqa: SIM115 - the stack closes it
        if fcntl is None:
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"{self.out} is being written by another crawl; wait for it or choose another out_dir"
            ) from None

    def _load(self) -> None:
        """Read the state snapshot, then replay the journals, which may be ahead of it after a kill."""
        self.kept = [FetchedFile(**row) for row in _read_jsonl(self.out / METADATA_FILE)]
        self.skipped = [SkippedUrl(**row) for row in _read_jsonl(self.out / SKIPPED_FILE)]
        state: dict[str, Any] = {"frontier": [], "seen": [], "hashes": {}, "pages": 0}
        path = self.out / STATE_FILE
        if path.exists():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ValueError(f"{path} is unreadable ({err}); delete it to restart the crawl from scratch") from None
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"{path} has state version {state.get('version')}, expected {STATE_VERSION}")
        done = {row.source_url for row in self.kept} | {row.url for row in self.skipped}
        self.seen: set[str] = set(state["seen"]) | done
        queued = {item["url"]: _Item(**item) for item in state["frontier"]}
        self.frontier = deque(item for url, item in queued.items() if url not in done)
        self.hashes: dict[str, str] = {**state["hashes"], **{row.sha256: row.source_url for row in self.kept}}
        self.taken = {row.file_name.lower() for row in self.kept}
        self.pages: int = state["pages"]
        for row in self.skipped:  # a redirect journaled after the snapshot: its target is not queued yet
            if row.reason == "redirect" and row.detail not in self.seen:
                source = queued.get(row.url, _Item(row.url, "page"))
                self.seen.add(row.detail)
                self.frontier.appendleft(_Item(row.detail, _kind(row.detail, source.kind), source.license))
        for url in map(normalize_url, self.config.start_urls):
            if url not in self.seen:
                self.seen.add(url)
                self.frontier.append(_Item(url, _kind(url, "page")))

    def _save_state(self) -> None:
        """Write the frontier, visited URLs and hashes atomically (temp file + os.replace)."""
        pending = [self._in_flight] if self._in_flight else []
        state = {
            "version": STATE_VERSION,
            "pages": self.pages,
            "frontier": [asdict(item) for item in (*pending, *self._deferred, *self.frontier)],
            "seen": sorted(self.seen),
            "hashes": self.hashes,
        }
        temp = self.out / f"{STATE_FILE}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(state, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.out / STATE_FILE)

    def _record(self, handle: TextIO, row: dict[str, Any]) -> None:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()  # the journal line is the commit point: it survives a kill -9 once flushed

    def _skip(self, url: str, reason: str, detail: str = "") -> None:
        logger.info("skipped %s: %s %s", url, reason, detail)
        row = SkippedUrl(url, reason, detail)
        self._record(self._skipped_log, asdict(row))
        self.skipped.append(row)

    # ------------------------------------------------------------------------------------------------ loop

    def run(self) -> CrawlReport:
        stopped_by = None
        with tqdm(desc="crawl", unit="file", initial=len(self.kept), disable=not self.progress) as bar:
            while self.frontier:
                if len(self.kept) >= self.config.max_files:
                    stopped_by = "max-files"
                    break
                item = self.frontier.popleft()
                if item.kind == "page" and self.pages >= self.config.max_pages:
                    self._deferred.append(item)
                    stopped_by = stopped_by or "max-pages"
                    continue
                if self._robots_for(item.url) is None:  # a server error, not a refusal: try again next run
                    self._deferred.append(item)
                    stopped_by = stopped_by or "robots-unreachable"
                    continue
                before, self._in_flight = len(self.kept), item
                self._process(item)
                self._in_flight = None
                bar.update(len(self.kept) - before)
                bar.set_postfix(pages=self.pages, skipped=len(self.skipped), queued=len(self.frontier))
        self.frontier.extendleft(reversed(self._deferred))
        self._deferred = []
        self._save_state()
        return CrawlReport(self.out, list(self.kept), list(self.skipped), self.pages, self.requests, stopped_by)

    def _process(self, item: _Item) -> None:
        """Fetch one frontier URL and keep the file, follow the page's links, or record why not."""
        url = item.url
        rules = self._robots_for(url)
        if rules is None or not rules.can_fetch(url, self.config.user_agent):
            return self._skip(url, "robots-disallowed")
        delay = self._delays.get(urlsplit(url).hostname or "", 0.0)
        if delay > self.config.max_crawl_delay:
            return self._skip(url, "crawl-delay-too-long", f"robots.txt asks {delay:g} s between requests")
        cap = self.config.max_file_bytes if item.kind == "file" else max(MAX_PAGE_BYTES, self.config.max_file_bytes)
        response = self._get_or_skip(url, cap)
        if response is None:
            return None
        if response.location is not None:
            return self._redirect(item, response.location)
        if not 200 <= response.status < 300:
            return self._skip(url, f"http-{response.status}")
        if response.too_large is not None:
            return self._skip(url, "too-large", f"{response.too_large} bytes or more, over the cap of {cap}")
        if item.kind == "file" or _is_midi(response.body):
            return self._keep(item, response.body)
        if "html" not in response.content_type and not (
            not response.content_type and response.body.lstrip()[:1] == b"<"
        ):
            return self._skip(url, "not-html", response.content_type)
        self._follow_links(item, response)
        return None

    def _get_or_skip(self, url: str, cap: int) -> _Response | None:
        """GET with retries; a failure is journaled and gives None."""
        attempts = self.config.retries + 1
        try:
            return self._get(url, cap)
        except RetryableStatus as err:
            self._skip(url, "failed-after-retries", f"HTTP {err.status} on all {attempts} attempts")
        except httpx.TransportError as err:
            self._skip(url, "failed-after-retries", f"{type(err).__name__} on all {attempts} attempts: {err}")
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            self._skip(url, "fetch-error", f"{type(err).__name__}: {err}")
        return None

    def _redirect(self, item: _Item, location: str) -> None:
        """Journal a redirect and queue its target next, if it is on an allowed host and new."""
        target = normalize_url(location, item.url)
        if target is None:
            return self._skip(item.url, "bad-redirect", location)
        if not host_allowed(target, self.config.allowed_hosts):
            return self._skip(item.url, "off-host", f"redirects to {target}")
        self._skip(item.url, "redirect", target)
        if target not in self.seen:
            self.seen.add(target)
            self.frontier.appendleft(_Item(target, _kind(target, item.kind), item.license))
        return None

    def _keep(self, item: _Item, body: bytes) -> None:
        """Store a MIDI file under files/, unless it is not MIDI, too large or a duplicate, and journal it."""
        if len(body) > self.config.max_file_bytes:
            return self._skip(item.url, "too-large", f"{len(body)} bytes, over the cap of {self.config.max_file_bytes}")
        if not _is_midi(body):
            return self._skip(item.url, "not-midi", f"starts with {body[:8]!r}, not MThd or RIFF....RMID")
        digest = hashlib.sha256(body).hexdigest()
        if digest in self.hashes:
            return self._skip(item.url, f"duplicate-of {self.hashes[digest]}", digest)
        file_name = local_path(item.url, self.taken)
        target = (self.out / file_name).resolve()
        if os.path.commonpath([target, (self.out / "files").resolve()]) != str((self.out / "files").resolve()):
            raise RuntimeError(f"refusing to write {target}: outside {self.out / 'files'} (URL {item.url})")
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self.out / ".partial" / uuid.uuid4().hex
        temp.write_bytes(body)
        os.replace(temp, target)  # an orphan left by a kill before the journal line is simply overwritten
        fetched_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        row = FetchedFile(file_name, item.url, fetched_at, item.license, digest, len(body))
        self._record(self._metadata, asdict(row))
        self.kept.append(row)
        self.hashes[digest] = item.url
        self.taken.add(file_name.lower())
        return None

    def _follow_links(self, item: _Item, response: _Response) -> None:
        """Queue the page's links within allowed hosts; off-host MIDI links are journaled, other ones ignored."""
        self.pages += 1
        parser = parse_page(response.body, response.content_type, item.url)
        license_text = parser.license()
        if parser.nofollow or "nofollow" in response.robots_tag.lower() or "none" in response.robots_tag.lower():
            logger.info("not following the links of %s: robots nofollow", item.url)
            parser.links = []
        for link in parser.links:
            url = normalize_url(link, item.url)
            if url is None or url in self.seen:
                continue
            is_midi = has_midi_extension(url)
            if not host_allowed(url, self.config.allowed_hosts):
                if is_midi:
                    self.seen.add(url)
                    self._skip(url, "off-host", f"linked from {item.url}")
                continue
            if not is_midi and is_ignored_link(url):
                continue
            self.seen.add(url)
            self.frontier.append(_Item(url, "file" if is_midi else "page", license_text))
        self._in_flight = None
        self._save_state()  # pages are not journaled: the snapshot after each one keeps them from being refetched

    # ------------------------------------------------------------------------------------------------ HTTP

    def _get(self, url: str, cap: int) -> _Response:
        """One GET retried on 5xx, 429 and connection errors, with exponential backoff (tenacity)."""
        policy = retrying(self.config.retries, self.config.backoff, url)
        return policy(self._attempt, url, cap)

    def _attempt(self, url: str, cap: int) -> _Response:
        """One rate-limited GET; the body is streamed and abandoned as soon as it passes `cap` bytes."""
        host = urlsplit(url).hostname or ""
        wait = self._next_at.get(host, 0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.requests += 1
        try:
            with self.client.stream("GET", url) as response:
                status = response.status_code
                if status == 429 or status >= 500:
                    raise RetryableStatus(status, retry_after(response.headers.get("retry-after")))
                result = _Response(
                    status, response.headers.get("content-type", "").lower(), response.headers.get("x-robots-tag", "")
                )
                if 300 <= status < 400 and response.headers.get("location"):
                    result.location = response.headers["location"]
                if result.location is not None or status >= 300:
                    return result
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    result.too_large = int(declared)
                    return result
                chunks, size = [], 0
                for chunk in response.iter_bytes():  # decoded bytes, so a gzip bomb is capped too
                    size += len(chunk)
                    if size > cap:
                        result.too_large = size
                        return result
                    chunks.append(chunk)
                result.body = b"".join(chunks)
                return result
        finally:
            self._next_at[host] = time.monotonic() + self._delays.get(host, self.config.min_delay)

    def _robots_for(self, url: str) -> Protego | None:
        """The robots.txt rules of the URL's origin, fetched once per run; None when it could not be read (5xx)."""
        split = urlsplit(url)
        origin = f"{split.scheme}://{split.netloc}"
        if origin in self._robots:
            return self._robots[origin]
        rules: Protego | None = Protego.parse("")  # a robots.txt that is missing (4xx) allows everything
        robots_url = origin + "/robots.txt"
        for _ in range(5):  # RFC 9309: follow at least five redirects
            try:
                response = self._get(robots_url, MAX_ROBOTS_BYTES)
            except (RetryableStatus, httpx.HTTPError) as err:
                logger.warning("robots.txt of %s unreachable (%s): not crawling it", origin, err)
                rules = None
                break
            if response.location is not None:
                robots_url = normalize_url(response.location, robots_url) or ""
                if robots_url:
                    continue
                logger.warning("robots.txt of %s redirects to %r: treated as missing", origin, response.location)
            if 200 <= response.status < 300:
                rules = None if response.too_large else Protego.parse(response.body.decode("utf-8", errors="replace"))
            break
        self._robots[origin] = rules
        if rules is not None:
            agent = self.config.user_agent
            rate = rules.request_rate(agent)
            delays = [self.config.min_delay, rules.crawl_delay(agent) or 0.0]
            if rate is not None and rate.requests:
                delays.append(rate.seconds / rate.requests)
            host = split.hostname or ""
            self._delays[host] = max(delays)
            self._next_at[host] = time.monotonic() + self._delays[host]  # the robots.txt request itself counts
        return rules


# ---------------------------------------------------------------------------------------------------- helpers


def _kind(url: str, default: str) -> str:
    return "file" if has_midi_extension(url) else default


def _is_midi(data: bytes) -> bool:
    """A Standard MIDI File (MThd) or a RIFF-wrapped one (RMID); deeper checks are the dataset builder's job."""
    return data[:4] == b"MThd" or (data[:4] == b"RIFF" and data[8:12] == b"RMID")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a journal; a line torn by a kill (no final newline) is cut off the file so appends stay clean."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        logger.warning("%s: dropping a partial last line left by an interrupted crawl", path)
        with open(path, "r+b") as handle:
            handle.truncate(end)
    rows = []
    for number, line in enumerate(data[:end].decode("utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError as err:
            raise ValueError(f"{path} line {number} is not JSON ({err}); fix or delete that line to resume") from None
    return rows


_PageParser = PageParser  # the name tests and older callers import from here

__all__ = ["DEFAULT_USER_AGENT", "CrawlConfig", "CrawlReport", "FetchedFile", "SkippedUrl", "crawl", "local_path"]
