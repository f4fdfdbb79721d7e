"""The answers of the "Human or AI?" tab in a local SQLite file (stdlib `sqlite3`), safe for concurrent users.

    store = AnswerStore("answers.sqlite")
    store.open_round("r1", excerpt_id="cbc0…", human="B", settings={...}, model="the default checkpoint")
    store.answer("r1", "A")            # -> Answer(correct=False, human="B", ...), recorded once
    store.summary()                    # -> Summary(answers=1, correct=0, low=0.0, high=0.79)

The truth of an open round (which side is human) lives only here, never in the page: the page holds a round id.
Every call opens its own connection (WAL journal, a 30 s busy timeout), and answering is one `BEGIN IMMEDIATE`
transaction, so threads and processes can share one file and a round is answered at most once.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SIDES = ("A", "B")
Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile
OPEN_ROUND_TTL_S = 24 * 3600  # unanswered rounds older than this are forgotten
SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    excerpt_id TEXT NOT NULL,
    human TEXT NOT NULL CHECK (human IN ('A', 'B')),
    settings TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    round_id TEXT NOT NULL UNIQUE,
    human TEXT NOT NULL CHECK (human IN ('A', 'B')),
    answer TEXT NOT NULL CHECK (answer IN ('A', 'B')),
    correct INTEGER NOT NULL,
    settings TEXT NOT NULL,
    excerpt_id TEXT NOT NULL,
    model TEXT NOT NULL
);
"""


def default_answers_path() -> Path:
    """$TOCCATA_ANSWERS, else answers.sqlite in the user's cache folder ($XDG_CACHE_HOME or ~/.cache)/toccata."""
    if os.environ.get("TOCCATA_ANSWERS"):
        return Path(os.environ["TOCCATA_ANSWERS"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "toccata" / "answers.sqlite"


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    scale = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Answer:
    """One recorded answer and the truth it was checked against."""

    round_id: str
    human: str  # the side that was the real excerpt: A or B
    answer: str  # the side the listener called human
    correct: bool
    excerpt_id: str
    settings: dict
    model: str
    time: str = ""  # when it was recorded (UTC, ISO 8601)


@dataclass(frozen=True)
class Summary:
    """How often listeners found the human excerpt, with a 95 % Wilson interval of that share."""

    answers: int
    correct: int
    low: float
    high: float

    @property
    def share(self) -> float | None:
        return self.correct / self.answers if self.answers else None

    def markdown(self) -> str:
        if not self.answers:
            return "No answers yet."
        return (
            f"**{self.answers} answer{'s' if self.answers != 1 else ''}**, {self.correct} correct: "
            f"**{self.share:.0%}** (95 % interval {self.low:.0%}–{self.high:.0%}). "
            "50 % is what guessing gives: an interval that holds 50 % means listeners cannot yet tell them apart."
        )


class AnswerStore:
    """Open rounds and answers in one SQLite file at `path` (created with its folder on first write)."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.timeout_s = timeout_s
        self._ready = False
        self._ready_lock = threading.Lock()

    def _prepare(self) -> None:
        """Create the folder, the tables and switch to WAL, once per store: changing the journal mode while other
        connections read fails at once with "database is locked" (SQLite does not wait for it), so it is not done
        on every connection. Another process doing the same at the same moment is retried."""
        with self._ready_lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + self.timeout_s
            while True:
                connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
                try:
                    connection.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
                    connection.execute("PRAGMA journal_mode = WAL")
                    connection.executescript(SCHEMA)
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
                finally:
                    connection.close()
            self._ready = True

    @contextmanager
    def _connect(self, create: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection of its own (autocommit; transactions are explicit), closed afterwards."""
        if create:
            self._prepare()
        connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            yield connection
        finally:
            connection.close()

    def open_round(self, round_id: str, excerpt_id: str, human: str, settings: dict, model: str) -> None:
        """Remember a round's truth (which side is human) until it is answered; forget stale unanswered rounds."""
        if human not in SIDES:
            raise ValueError(f"human must be A or B, got {human!r}")
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM rounds WHERE created < ?", (now - OPEN_ROUND_TTL_S,))
                db.execute(
                    "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?)",
                    (round_id, now, excerpt_id, human, json.dumps(settings, sort_keys=True), model),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def answer(self, round_id: str, answer: str) -> Answer:
        """Record the listener's answer to an open round, once; a ValueError for an unknown or answered round."""
        if answer not in SIDES:
            raise ValueError(f"the answer must be A or B, got {answer!r}")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT excerpt_id, human, settings, model FROM rounds WHERE round_id = ?", (round_id,)
                ).fetchone()
                if row is None:
                    done = db.execute("SELECT 1 FROM answers WHERE round_id = ?", (round_id,)).fetchone()
                    raise ValueError(
                        "this round was already answered: start a new round"
                        if done
                        else "no such round (it may have expired): start a new round"
                    )
                excerpt_id, human, settings, model = row
                correct = answer == human
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                db.execute(
                    "INSERT INTO answers (time, round_id, human, answer, correct, settings, excerpt_id, model) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (stamp, round_id, human, answer, int(correct), settings, excerpt_id, model),
                )
                db.execute("DELETE FROM rounds WHERE round_id = ?", (round_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Answer(round_id, human, answer, correct, excerpt_id, json.loads(settings), model, stamp)

    def summary(self, model: str | None = None) -> Summary:
        """Answers so far (of `model` only, if given), the correct ones and a 95 % Wilson interval of the share."""
        if not self.path.is_file():
            return Summary(0, 0, *wilson_interval(0, 0))
        where, args = ("WHERE model = ?", (model,)) if model is not None else ("", ())
        with self._connect(create=False) as db:
            try:
                query = f"SELECT COUNT(*), COALESCE(SUM(correct), 0) FROM answers {where}"
                total, right = db.execute(query, args).fetchone()
            except sqlite3.OperationalError:  # a file without our tables yet
                total, right = 0, 0
        return Summary(int(total), int(right), *wilson_interval(int(right), int(total)))

    def answers(self) -> list[Answer]:
        """Every recorded answer, oldest first."""
        if not self.path.is_file():
            return []
        with self._connect() as db:
            rows = db.execute(
                "SELECT round_id, human, answer, correct, excerpt_id, settings, model, time FROM answers ORDER BY id"
            ).fetchall()
        return [Answer(r[0], r[1], r[2], bool(r[3]), r[4], json.loads(r[5]), r[6], r[7]) for r in rows]
