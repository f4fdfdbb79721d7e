"""The dataset card: README.md with the YAML the Hub and `load_dataset` read, and a body saying how it was built.

The YAML is made with datasets' own helpers (`MetadataConfigs` for the data files of each split, `DatasetInfosDict`
for features and sizes), so `load_dataset(out_dir)` reads exactly the shards listed, and `push_to_hub` can update it.
The body covers what a user of the data must know: splits, provenance, licences (with music21's corpus licence texts),
what was rejected and why, and the configuration that reproduces the build.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from toccata.tokenization.score_io import license_from_text

from .config import is_url
from .licenses import license_id
from .pipeline import ALL_SPLITS, UNSEEN, BuildStats
from .sources.corpus import license_texts
from .tokens import TOKENIZER_FOLDER

REJECTS_FILE = "rejects.jsonl"

FIELD_NOTES = {
    "id": "stable row id: `piece_id`, plus `_t+N` for a copy transposed by N semitones",
    "piece_id": "first 16 hex digits of the note fingerprint (notes relative to their lowest pitch and first onset)",
    "transposition": "semitones this row is shifted from the source file (0 = the file as it is)",
    "source": "`music21`, `folder:NAME` or `crawl:URL`",
    "path": "the file inside its source (a relative path, or a music21 corpus work, `#N` = Nth tune of a book)",
    "composer": "from the corpus metadata, the folder's sidecar, the score's own records, else the folder layout "
    "(`<source>/<Composer>/…`); empty when unknown",
    "title": "from the corpus metadata, the sidecar or the score; else the file name (its folders for a generic one "
    "such as midi_score.mid)",
    "license": "licence of the file as its source states it (see Licences)",
    "source_url": "where the file came from",
    "metadata": "further sidecar columns (for crawls: fetched_at, ...) as JSON",
    "midi": "the Standard MIDI File bytes (an .rmi's inner file; transposed rows: pitched tracks shifted)",
    "notewise": "space-separated notewise tokens (`p60`, `endp60`, `wait12`, ...; 12 steps per quarter by default)",
    "num_tokens": "number of notewise tokens",
    "num_notes": "number of notes on the step grid (drums dropped)",
    "length_quarters": "length in quarter notes (end of the last note)",
    "qpm": "first tempo, quarter notes per minute (tokens carry no tempo)",
    "time_signature": "first time signature",
    "content_hash": "sha256 of the `midi` bytes",
}


def license_summary(stats: BuildStats) -> str:
    """Text of the LICENSE file: each licence with its piece count, then the music21 corpus licence texts."""
    lines = ["This dataset collects files under several licences; each row's `license` column names its own.", ""]
    lines += [f"- {name or 'unknown'}: {count} pieces" for name, count in sorted(stats.licenses.items())]
    for note, text in license_texts(set(stats.licenses)).items():
        lines += ["", f"## {note}", "", text]
    return "\n".join(lines) + "\n"


def write_card(
    out_dir: Path,
    info: datasets.DatasetInfo,
    config: Any,
    stats: BuildStats,
    *,
    dataset_name: str,
    file_format: str,
    tokens: dict[str, Any] | None = None,
) -> Path:
    """Write README.md (YAML header + body) into `out_dir`; returns its path.

    `tokens` describes the scheme of a `tokens` column (`tokens.scheme_summary`); None for a notewise-only build.
    """
    splits = [name for name in ALL_SPLITS if info.splits and name in info.splits]
    data = DatasetCardData(
        pretty_name="Toccata piano MIDI (notewise)",
        license="other",
        license_name="mixed",
        license_link="LICENSE",
        tags=["music", "midi", "symbolic-music", *getattr(config, "instruments", ("piano",)), "notewise"]
        + ([tokens["name"]] if tokens else []),
        task_categories=["text-generation"],
        size_categories=[_size_category(sum(stats.rows.values()))],
    )
    pattern = "{name}-{split}*.{ext}"
    files = [{"split": s, "path": pattern.format(name=dataset_name, split=s, ext=file_format)} for s in splits]
    MetadataConfigs({"default": {"data_files": files}}).to_dataset_card_data(data)
    yaml_info = info.copy()
    yaml_info.config_name = "default"
    yaml_info.dataset_size = sum(info.splits[s].num_bytes for s in splits)
    DatasetInfosDict({"default": yaml_info}).to_dataset_card_data(data)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + _body(info, config, stats, splits, tokens))
    path = out_dir / "README.md"
    card.save(path)
    return path


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _body(
    info: datasets.DatasetInfo, config: Any, stats: BuildStats, splits: list[str], tokens: dict[str, Any] | None
) -> str:
    pieces, rows = sum(stats.pieces.values()), sum(stats.rows.values())
    rejected = sum(n for reason, n in stats.rejects.items() if reason != "transposition_out_of_range")
    settings = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in ("name", "version", "data_dir", "data_files", "description", "work_dir")
    }
    settings["version"] = str(config.version)
    if not any(map(is_url, config.sources)):
        settings.pop("crawl_options", None)  # unused: the CLI always passes some, the API none; same card for both
    if tokens is None:  # a notewise-only build: its card stays as it was before the option existed
        settings.pop("tokenizer", None)
        settings.pop("bpe_vocab_size", None)
    split_rows = [
        (s, stats.pieces[s], stats.rows[s], f"{stats.tokens[s]:,}", f"{info.splits[s].num_bytes:,}") for s in splits
    ]
    composers = [
        (name, count, f"{stats.composer_notes.get(name, 0):,}", UNSEEN if name in stats.unseen_composers else "")
        for name, count in sorted(stats.composers.items(), key=lambda pair: (-pair[1], pair[0]))
    ]
    summary = (
        f"{pieces} pieces ({rows} rows) of MIDI with notewise tokens, built by Toccata's dataset builder from "
        f"{', '.join(f'`{s}`' for s in config.sources)}. {stats.files} files were read, {rejected} of them rejected "
        "(see [Rejected files](#rejected-files))."
    )
    if getattr(config, "is_instrumented", False):
        summary += (
            f" Instruments: {', '.join(config.instruments)}. Each ensemble was mapped to \"instrument + piano\" with "
            f"the `{config.ensemble_rule}` rule of `toccata.tokenization.ensemble` (outer: the top string part is the "
            "violin, the bottom one the cello; named: the part of that name; exact: the part of that name, in music "
            "with no other string part; every other part goes to the piano, as do notes out of the "
            "instrument's range and beyond a double stop); `midi` holds that mapped file, and `metadata.ensemble` "
            "says which track became the part and how many notes moved. Files without such a part (under exact: "
            "also those with another string part) are rejected as `no_instrument`."
        )
    loading = (
        "```python\nfrom datasets import load_dataset\n\n"
        'ds = load_dataset("path/to/this/folder")          # or load_dataset("parquet", data_dir=...)\n'
        'row = ds["train"][0]\n\n'
        "from toccata.tokenization import NotewiseTokenizer\n"
        f"tok = NotewiseTokenizer(**{config.tokenizer_kwargs()!r})\n"
        'tok(row["notewise"])["input_ids"]                  # model input\n'
        'score = tok.tokens_to_midi(row["notewise"], qpm=row["qpm"])   # tokens -> symusic.Score\n'
        '# row["midi"] holds the source file\'s bytes: symusic.Score.from_midi(row["midi"])\n```'
    )
    split_note = (
        "By piece, never by chunk: a piece's split is fixed by sha256(seed, piece_id), so it does not depend on file "
        "order, on `num_proc` or on the other files, and every transposed copy of a piece sits in its split. "
        f"Fractions: {config.split_fractions()}, seed {config.seed}. Near-identical versions of one work (same "
        "composer, half or more of their note n-grams shared: another edition, repeats played or not) count as one "
        "piece: the first is kept, the others are rejected as `near_duplicate`."
    )
    if stats.unseen_composers:
        split_note += (
            f" `{UNSEEN}` holds every piece of {len(stats.unseen_composers)} composers held out whole "
            f"({', '.join(stats.unseen_composers)}): scores there measure music by composers a model never saw, "
            "and the gap to `test` (new pieces by known composers) measures how well it generalises."
        )
    if stats.split_notes:  # a small build: a held-out split that the hash left empty
        split_note += " In this build " + "; ".join(note.removeprefix("warning: ") for note in stats.split_notes) + "."
    license_note = (
        "Each row's `license` names the licence its source gives; check it before redistributing or training on "
        "the data, some forbid commercial use. Music21 corpus works carry the corpus licence notes below."
    )
    rejects_note = (
        f"Every file left out is in `{REJECTS_FILE}` with its provenance, the reason and a detail (for duplicates, "
        "the row kept instead). `transposition_out_of_range` counts transposed rows not made (their notes would "
        "leave the keyboard), not files."
    )
    method = (
        "Per file (in parallel, results in source order): read and check the bytes (files over `max_file_bytes` are "
        "not parsed), sha256, parse with Toccata's MIDI reader (in a child process with time and memory limits for "
        "folder and crawled files), tokenize, and fingerprint the notes on the step grid relative to their lowest "
        "pitch and first onset. Then, in order: reject empty and short files, files with the bytes of a kept file, "
        "and files with a kept file's notes up to transposition, tempo and velocity; assign splits; write rows. "
        "Rebuilding with the same sources and configuration gives the same rows in the same order."
    )
    notes = dict(FIELD_NOTES)
    if tokens:
        notes["tokens"] = (
            f"space-separated tokens of the `{tokens['name']}` scheme (`toccata.tokenization.schemes`) for the row's "
            f"`midi`; the scheme is in `{TOKENIZER_FOLDER}/` (see [Tokens](#tokens))"
        )
    fields = [(f"`{k}`", v.dtype, notes.get(k, "")) for k, v in info.features.items()]
    sections = [
        "# Toccata piano MIDI (notewise)",
        summary,
        "## Loading",
        loading,
        *(["## Tokens", _tokens_note(tokens)] if tokens else []),
        "## Fields",
        _table(("field", "type", "meaning"), fields),
        "## Splits",
        split_note,
        _table(("split", "pieces", "rows", "tokens", "bytes"), split_rows),
        "## Sources and provenance",
        "Every row keeps its `source`, `path` and `source_url`; duplicates keep the first file met, in source order.",
        _table(("source", "pieces"), sorted(stats.sources.items())),
        "### Composers\n\nNames are normalised to one spelling per person (\"Last, First\" as \"First Last\", life "
        "dates dropped, anonymous works as \"Anonymous\").",
        _table(("composer", "pieces", "notes", "held out in"), composers),
        "## Licences",
        license_note,
        _table(("licence", "pieces"), sorted(stats.licenses.items())),
        *[f"### {note}\n\n{text}" for note, text in license_texts(set(stats.licenses)).items()],
        *_attributions(stats),
        "## Rejected files",
        rejects_note,
        _table(("reason", "count"), sorted(stats.rejects.items())) if stats.rejects else "None.",
        "## How it was built",
        method,
        "Configuration (`ToccataConfig`):",
        "```json\n" + json.dumps(settings, indent=2, sort_keys=True, default=list) + "\n```",
        _versions(),
    ]
    return "\n\n".join(sections) + "\n"


def _attributions(stats: BuildStats) -> list[str]:
    """The card's attribution section: the opening lines of each collection licence file whose licence asks for
    attribution (CC BY and its variants), as those licences require wherever the data or what is made from it go."""
    blocks = []
    for path, pieces in sorted(stats.license_files.items()):
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if not license_id(license_from_text(text)).startswith("cc-by"):
            continue
        blocks.append(
            f"{pieces} pieces come from the collection of `{Path(path).parent.name}/`:\n\n{quote_attribution(text)}"
        )
    return ["### Attributions", *blocks] if blocks else []


def quote_attribution(text: str) -> str:
    """A licence file's attribution as a markdown quote: its opening paragraph (at most 12 lines), which is where
    collections put the lines to carry along (CC BY's "acknowledge the source")."""
    head = []
    for line in text.strip().splitlines()[:12]:
        if not line.strip():
            break
        head.append(line.rstrip())
    return "\n".join(f"> {line}  " for line in head)


def _tokens_note(tokens: dict[str, Any]) -> str:
    """The card's section on the `tokens` column: which tokenizer made it, what it learnt from, how to decode it."""
    name = tokens["name"]
    made = (
        f"The `tokens` column was made by the `{name}` tokenizer ({tokens['vocab_size']} ids), one of Toccata's token "
        "schemes (`toccata.tokenization.schemes`): the row's notes (pitched tracks merged, "
        "drums dropped, on a grid of 12 steps per quarter, folded into 21-108) as `scheme.words(scheme.encode(...))`, "
        "space-separated. The `notewise` column is made as in every build."
    )
    if tokens["learned"]:
        what = "its BPE merges" if name == "notewise-bpe" else "its vocabulary of chord words"
        made += (
            f" What `{name}` learns ({what}) was learnt from the {tokens['train_rows']} rows of the train split only "
            "(transposed copies included), never from validation or test"
            + ("; words rare or absent there are `<unk>`." if name == "chordwise" else ".")
        )
    made += (
        f" The scheme is saved in `{TOKENIZER_FOLDER}/` beside this card (`token_scheme.json` and the tokenizer's "
        "files), so the column decodes back to notes:"
    )
    code = (
        "```python\nfrom toccata.tokenization.schemes import load_scheme\n"
        "from toccata.dataset_builder.tokens import token_ids\n\n"
        f'scheme = load_scheme("path/to/this/folder/{TOKENIZER_FOLDER}")\n'
        'ids = token_ids(scheme, row["tokens"])                # model input\n'
        "notes = scheme.decode(ids)                             # NoteArrays on the 12-step grid\n```"
    )
    return made + "\n\n" + code


def _versions() -> str:
    names = ("toccata", "datasets", "music21", "symusic")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "Built with " + ", ".join(found) + "."


__all__ = ["FIELD_NOTES", "REJECTS_FILE", "license_summary", "quote_attribution", "write_card"]
