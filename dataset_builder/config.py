"""`ToccataConfig`: the typed `datasets.BuilderConfig` of a Toccata dataset, validated when it is made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import datasets
from toccata.tokenization.ensemble import ENSEMBLE_RULES
from toccata.tokenization.tokenization_base import check_range
from toccata.tokenization.tokenization_notewise import INSTRUMENTS

from .analysis import AnalysisSettings
from .licenses import parse_licenses
from .pipeline import SPLITS
from .tokens import DEFAULT_TOKENIZER, check_tokenizer

URL_PREFIXES = ("http://", "https://")


@dataclass
class ToccataConfig(datasets.BuilderConfig):
    """What goes into a Toccata dataset and how: sources, tokenizer settings, filters, splits and augmentation.

    A source is ``corpus`` (music21's corpus, a keyboard selection), ``corpus:PATTERN[,PATTERN...]`` (``corpus:bach``,
    ``corpus:*``), a folder of MIDI and score files (kern, MusicXML, ABC, MEI), or an http(s) URL to crawl first (politely, resumably) into the work folder.
    """

    sources: tuple[str, ...] = ("corpus",)
    # Tokenizer settings (NotewiseTokenizer keyword arguments): the `notewise` column is made with these.
    steps_per_quarter: int = 12
    min_pitch: int = 21
    max_pitch: int = 108
    max_wait: int = 48
    sustain_pedal: bool = False
    # Instruments: ("piano",) merges every track into the piano (the default); ("piano", "violin") or
    # ("piano", "cello") maps each ensemble to "instrument + piano" with `ensemble_rule` (toccata.tokenization.ensemble:
    # "outer" = top string part is the violin, bottom one the cello; "named" = the first track named so) and
    # tokenizes with the instrumented vocabulary; files with no such part are rejected as no_instrument.
    instruments: tuple[str, ...] = ("piano",)
    ensemble_rule: str = "outer"
    # A second token column (tokens.py): "notewise" (the default) adds none; "remi", "midilike", "tsd",
    # "notewise-bpe" or "chordwise" (toccata.tokenization.schemes) add `tokens`, that scheme's words of each row.
    # notewise-bpe and chordwise learn from the train split only; the scheme is saved in the dataset's tokenizer/.
    tokenizer: str = DEFAULT_TOKENIZER
    bpe_vocab_size: int | None = None  # notewise-bpe only: the vocabulary size (base tokens + merges), e.g. 1024
    # Rows. transpositions: semitone shifts, each a row of its own (0 = the file as it is; (0,) = no augmentation,
    # the default: transposing at training time is cheaper). A shift that would push notes off the keyboard is skipped.
    transpositions: tuple[int, ...] = (0,)
    min_quarters: float = 8.0  # shorter pieces are rejected as too_short
    max_quarters: int = 50_000  # longer files are rejected as too_long (a corrupt delta time, usually)
    max_file_bytes: int = 5_000_000  # larger files are rejected as too_large before they are parsed
    # Splits: by piece, from a hash of (seed, piece), so reproducible and independent of order and num_proc.
    train_fraction: float = 0.9
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    splits_from: str | None = None  # an earlier built dataset: files it holds keep their split there (others: hash)
    # A second test split, "unseen_composers": every piece of some composers, held out whole, to measure how a model
    # does on composers it never saw. Those named, plus `unseen_composer_count` chosen by the seed among composers
    # with `unseen_composer_pieces` (min, max) pieces kept (never Anonymous). Names are matched after normalisation.
    unseen_composers: tuple[str, ...] = ()
    unseen_composer_count: int = 0
    unseen_composer_pieces: tuple[int, int] = (3, 19)
    # Keep only files under these licences (ids such as cc-by-4.0, cc0-1.0; `licenses.parse_licenses`); () = all.
    licenses: tuple[str, ...] = ()
    # Reading.
    safe: bool = True  # parse files from folders and crawls in a child process (time and memory limits)
    parse_timeout_s: float = 30.0
    score_timeout_s: float = 120.0  # music21 on one score file (kern, MusicXML, ABC, MEI): slower than MIDI
    default_license: str = "unknown"  # for folder files whose sidecar names no licence
    work_dir: str | None = None  # cache of per-file results and crawls; default: "<output_dir>.work"
    crawl_options: dict[str, Any] = field(default_factory=dict)  # CrawlConfig keywords for URL sources

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sources, str):
            self.sources = (self.sources,)
        self.sources = tuple(str(s).strip() for s in self.sources if str(s).strip())
        if not self.sources:
            raise ValueError("sources is empty; give a folder, corpus[:PATTERN] or an http(s) URL")
        check_range("steps_per_quarter", self.steps_per_quarter, 1, 96)
        check_range("min_pitch", self.min_pitch, 0, 116)
        check_range("max_pitch", self.max_pitch, self.min_pitch + 11, 127)
        check_range("max_wait", self.max_wait, 1, 4096)
        if isinstance(self.instruments, str):
            self.instruments = tuple(part.strip() for part in self.instruments.split(",") if part.strip())
        self.instruments = _check_instruments(self.instruments)
        if self.ensemble_rule not in ENSEMBLE_RULES:
            raise ValueError(f"ensemble_rule must be one of {list(ENSEMBLE_RULES)}, got {self.ensemble_rule!r}")
        self.tokenizer = str(self.tokenizer).strip().lower()
        check_tokenizer(self.tokenizer, self.bpe_vocab_size, self.instruments)
        if self.bpe_vocab_size is not None:
            self.bpe_vocab_size = int(self.bpe_vocab_size)
        self.transpositions = tuple(sorted({int(t) for t in self.transpositions}, key=lambda t: (abs(t), t)))
        if not self.transpositions:
            raise ValueError("transpositions is empty; use (0,) for no augmentation or e.g. range(-5, 7) for 12 keys")
        for shift in self.transpositions:
            check_range("each transposition (semitones)", shift, -12, 12)
        check_range("max_file_bytes", self.max_file_bytes, 1, 2**31)
        check_range("max_quarters", self.max_quarters, 1, 10**7)
        check_range("seed", self.seed, 0, 2**63)
        if not (self.min_quarters >= 0 and math.isfinite(self.min_quarters)):
            raise ValueError(f"min_quarters must be a finite number >= 0, got {self.min_quarters!r}")
        for name in ("parse_timeout_s", "score_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive (seconds), got {getattr(self, name)!r}")
        if isinstance(self.unseen_composers, str):
            self.unseen_composers = tuple(name.strip() for name in self.unseen_composers.split(";") if name.strip())
        self.unseen_composers = tuple(self.unseen_composers)
        check_range("unseen_composer_count", self.unseen_composer_count, 0, 10_000)
        low, high = (int(n) for n in self.unseen_composer_pieces)
        if not 1 <= low <= high:
            raise ValueError(f"unseen_composer_pieces must be (min, max) with 1 <= min <= max, got {(low, high)}")
        self.unseen_composer_pieces = (low, high)
        if isinstance(self.licenses, str):
            self.licenses = parse_licenses(self.licenses)
        self.licenses = tuple(self.licenses)
        fractions = self.split_fractions()
        if any(not 0 <= f <= 1 for f in fractions.values()) or not math.isclose(sum(fractions.values()), 1.0):
            raise ValueError(
                f"split fractions must be in [0, 1] and add up to 1, got {fractions} (sum {sum(fractions.values()):g})"
            )

    def split_fractions(self) -> dict[str, float]:
        """Fraction of pieces per split, in `SPLITS` order."""
        values = (self.train_fraction, self.validation_fraction, self.test_fraction)
        return {name: float(value) for name, value in zip(SPLITS, values)}

    def tokenizer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the `NotewiseTokenizer` that makes (and decodes) the `notewise` column."""
        names = ("steps_per_quarter", "min_pitch", "max_pitch", "max_wait", "sustain_pedal")
        kwargs: dict[str, Any] = {name: getattr(self, name) for name in names}
        if self.is_instrumented:  # a piano build keeps its settings (and so its cache keys) as they were
            kwargs["instruments"] = self.instruments
        return kwargs

    @property
    def has_tokens_column(self) -> bool:
        """Whether rows get a `tokens` column (a tokenizer other than notewise) and the folder a `tokenizer/`."""
        return self.tokenizer != DEFAULT_TOKENIZER

    @property
    def is_instrumented(self) -> bool:
        """Whether rows are "instrument + piano" (an ensemble mapping and an instrumented vocabulary)."""
        return self.instruments != ("piano",)

    def analysis_settings(self, work_dir: str) -> AnalysisSettings:
        """The settings each worker needs to analyse one file."""
        return AnalysisSettings(
            tokenizer=tuple(sorted(self.tokenizer_kwargs().items())),
            max_file_bytes=self.max_file_bytes,
            max_quarters=self.max_quarters,
            timeout_s=self.parse_timeout_s,
            score_timeout_s=self.score_timeout_s,
            safe=self.safe,
            work_dir=work_dir,
            ensemble_rule=self.ensemble_rule,
        )


def _check_instruments(instruments: tuple[str, ...]) -> tuple[str, ...]:
    """The instruments of a build in part order: the piano, plus the violin or the cello or both."""
    names = tuple(str(name).strip().lower() for name in instruments)
    if "piano" not in names:
        names = ("piano", *names)
    if any(name not in INSTRUMENTS for name in names) or len(set(names)) != len(names):
        raise ValueError(
            f"instruments must be piano plus any of {[n for n in INSTRUMENTS if n != 'piano']}, each once; got "
            f"{list(instruments)} (e.g. piano,violin)"
        )
    return tuple(name for name in INSTRUMENTS if name in names)


def parse_transpositions(text: str) -> tuple[int, ...]:
    """Semitone shifts from text: ``0``, ``0,5,-3``, a range ``-5..6`` (inclusive), or ``all`` (= ``-5..6``, 12 keys)."""
    text = text.strip().lower()
    if text == "all":
        return tuple(range(-5, 7))
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split(".."))
            return tuple(range(low, high + 1))
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"transpositions {text!r}: write 0, a list such as 0,5,-3, a range such as -5..6, or all"
        ) from None


def parse_fractions(text: str) -> dict[str, float]:
    """Train/validation/test fractions from ``0.9,0.05,0.05`` as `ToccataConfig` keyword arguments."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != len(SPLITS):
        raise ValueError(f"splits {text!r}: give three fractions, train,validation,test, such as 0.9,0.05,0.05")
    return {f"{name}_fraction": value for name, value in zip(SPLITS, values)}


def is_url(source: str) -> bool:
    """Whether a source string is an http(s) URL to crawl."""
    return source.lower().startswith(URL_PREFIXES)


__all__ = ["ToccataConfig", "is_url", "parse_fractions", "parse_transpositions"]
