"""`ToccataBuilder`: a `datasets.GeneratorBasedBuilder` that turns MIDI sources into a notewise piano dataset.

Use it directly, as loading scripts are gone since datasets 4::

    builder = ToccataBuilder(sources=("corpus:bach", "my_midi/"), transpositions=(0,), seed=0)
    builder.download_and_prepare("data/bach", file_format="parquet", num_proc=2)

or through `build_dataset` / ``toccata build-dataset``. The build runs in two passes. `_split_generators` streams every
source through the per-file analysis (`analysis.py`, in `num_proc` worker processes, results in source order), then
dedups and assigns splits in this process (`planning.plan_build`, shared with the Ray engine; `pipeline.py`), writing
a plan per split and the rejects manifest.
With a second tokenizer (``tokenizer="remi"``, ``"notewise-bpe"``, ...; `tokens.py`), the scheme is made between the
two passes, learning from the train split's rows only where it learns (BPE merges, the chordwise vocabulary), and saved
in the dataset's ``tokenizer/`` folder; each row then gets a `tokens` column beside `notewise`.
`_generate_examples` then reads each plan and yields rows, adding transposed copies when asked. Rows are written by
one process whatever `num_proc` is, so the output files are the same for any `num_proc`. A card (README.md with YAML),
a LICENSE summary and ``rejects.jsonl`` are written next to the shards; `load_dataset(out_dir)` and
`load_dataset("parquet", data_dir=out_dir)` read the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
from datasets.builder import Key
from datasets.utils.file_utils import is_remote_url
from datasets.utils.tqdm import tqdm as hf_tqdm
from huggingface_hub import HfApi
from toccata.tokenization import NotewiseTokenizer
from toccata.tokenization.midi_io import NoteArrays, load_score, standard_midi_bytes
from toccata.tokenization.schemes import TokenScheme, grid_notes, load_scheme

from .analysis import AnalysisSettings, load_tokens, tokenizer_for
from .card import REJECTS_FILE, license_summary, write_card
from .config import ToccataConfig
from .engines import LocalEngine
from .items import metadata_json
from .pipeline import ALL_SPLITS, SPLITS, BuildStats, read_plan, row_id
from .planning import plan_build
from .tokens import LEARNED, TOKENIZER_FOLDER, learn_scheme, row_tokens, save_scheme, scheme_summary

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "piece_id": datasets.Value("string"),
        "transposition": datasets.Value("int8"),
        "source": datasets.Value("string"),
        "path": datasets.Value("string"),
        "composer": datasets.Value("string"),
        "title": datasets.Value("string"),
        "license": datasets.Value("string"),
        "source_url": datasets.Value("string"),
        "metadata": datasets.Value("string"),
        "midi": datasets.Value("binary"),  # datasets 5.2 has no Midi feature: raw Standard MIDI File bytes
        "notewise": datasets.Value("string"),
        "num_tokens": datasets.Value("int32"),
        "num_notes": datasets.Value("int32"),
        "length_quarters": datasets.Value("float32"),
        "qpm": datasets.Value("float32"),
        "time_signature": datasets.Value("string"),
        "content_hash": datasets.Value("string"),
    }
)
BUILDING = ".toccata-building"  # the mark of a Ray build in progress (`engines.ray_engine`): a rerun may replace it
DESCRIPTION = "Piano MIDI with notewise tokens (Toccata), deduplicated by bytes and by notes, split by piece."


def features_for(config: ToccataConfig) -> datasets.Features:
    """`FEATURES`, plus a `tokens` column after `notewise` when the build has a second tokenizer."""
    if not config.has_tokens_column:
        return FEATURES
    columns: dict[str, Any] = {}
    for name, feature in FEATURES.items():
        columns[name] = feature
        if name == "notewise":
            columns["tokens"] = datasets.Value("string")
    return datasets.Features(columns)


class ToccataBuilder(datasets.GeneratorBasedBuilder):
    """Builds a Toccata dataset (features: `FEATURES`) from the sources of its `ToccataConfig`."""

    BUILDER_CONFIG_CLASS = ToccataConfig
    VERSION = datasets.Version("1.0.0")
    DEFAULT_WRITER_BATCH_SIZE = 100  # rows held before a write: bounds memory with large MIDI files
    config: ToccataConfig

    def __init__(self, *args: Any, dataset_name: str | None = None, **kwargs: Any):
        super().__init__(*args, dataset_name=dataset_name or "toccata", **kwargs)
        self.stats: BuildStats | None = None
        self.tokens_info: dict[str, Any] | None = None  # the `tokens` column's scheme (tokens.scheme_summary)
        self._final_output_dir: str | None = None

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=DESCRIPTION,
            features=features_for(self.config),
            homepage="https://github.com/toccata-music/toccata",
        )

    def download_and_prepare(self, output_dir: str | None = None, *args: Any, **kwargs: Any) -> None:
        """datasets' `download_and_prepare`, refusing to replace a folder that is not a dataset (datasets would)."""
        if output_dir is not None and not is_remote_url(str(output_dir)):
            output_dir = os.fspath(output_dir)
            _check_replaceable(Path(output_dir))
        self._final_output_dir = output_dir
        super().download_and_prepare(output_dir, *args, **kwargs)

    def work_dir(self) -> Path:
        """Where per-file results, converted corpus works and crawls are kept between runs (``<output>.work``)."""
        if self.config.work_dir:
            return Path(self.config.work_dir).expanduser()
        base = self._final_output_dir or self._cache_dir
        if is_remote_url(str(base)):
            raise ValueError(f"output {base} is remote: set work_dir to a local folder for the build's cache")
        return Path(str(base).rstrip("/\\") + ".work")

    def summary(self) -> str:
        """A few lines for the CLI: files read, rows and pieces per split, rejects per reason."""
        if self.stats is None:
            return "nothing built yet"
        stats = self.stats
        splits = ", ".join(
            f"{name} {stats.rows[name]} rows ({stats.pieces[name]} pieces)"
            for name in ALL_SPLITS
            if name in SPLITS or stats.pieces[name]
        )
        if stats.unseen_composers:
            splits += f"\nunseen composers (held out whole): {', '.join(stats.unseen_composers)}"
        rejects = ", ".join(f"{reason} {count}" for reason, count in sorted(stats.rejects.items())) or "none"
        empty = "" if sum(stats.rows.values()) else "\nno piece was kept: see rejects.jsonl for why"
        empty += "".join(f"\n{note}" for note in stats.split_notes)
        tokens = ""
        if self.tokens_info is not None:
            info = self.tokens_info
            learned = f", learnt from {info['train_rows']} train rows" if info["learned"] else ""
            tokens = (
                f"\ntokens column: {info['name']} ({info['vocab_size']} ids{learned}), scheme in {TOKENIZER_FOLDER}/"
            )
        return f"read {stats.files} files: {splits}\nrejected: {rejects}{empty}{tokens}"

    def _make_split_generators_kwargs(self, prepare_split_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"num_proc": prepare_split_kwargs.get("num_proc") or 1}

    def _split_generators(self, dl_manager: Any, num_proc: int = 1) -> list[datasets.SplitGenerator]:
        work = self.work_dir()
        out = Path(self._output_dir)
        _clear_incomplete(out)
        own = (self._output_dir, self._final_output_dir or self._output_dir)  # never read our own files
        planner = plan_build(self.config, work, own, out / REJECTS_FILE, LocalEngine(max(1, int(num_proc))))
        self.stats = planner.stats
        settings = self.config.analysis_settings(str(work))
        kept = [name for name in ALL_SPLITS if self.stats.pieces[name] or name == "train"]
        extra: dict[str, str] = {}
        if self.config.has_tokens_column:  # after the splits, before any row: learn from the train split only
            extra["scheme_dir"] = str(self._make_scheme(out, planner.plan_files["train"], settings))
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"plan_file": str(planner.plan_files[name]), **extra})
            for name in kept
        ]

    def _make_scheme(self, out: Path, train_plan: Path, settings: AnalysisSettings) -> Path:
        """Make the `tokens` column's scheme, learning from the rows of the train split (transposed copies
        included) where it learns, never from validation or test; save it in ``<out>/tokenizer/``, return that."""
        config, train_rows = self.config, self.stats.rows["train"]
        if train_rows == 0 and config.tokenizer in LEARNED and sum(self.stats.rows.values()):
            raise ValueError(
                f"tokenizer {config.tokenizer} learns from the train split, which has no rows: add pieces or raise "
                "train_fraction (--splits)"
            )

        def pieces() -> Iterator[NoteArrays]:
            for plan in read_plan(train_plan):
                for _shift, midi in _row_midis(plan, settings):
                    yield grid_notes(midi)

        if config.tokenizer in LEARNED and train_rows:
            desc = f"Learning the {config.tokenizer} tokens from the train split"
            scheme = learn_scheme(
                config.tokenizer, config.bpe_vocab_size, hf_tqdm(pieces(), total=train_rows, desc=desc)
            )
        else:  # nothing to learn (remi, midilike, tsd), or nothing kept at all (the build then says so)
            scheme = load_scheme(config.tokenizer, bpe_vocab_size=config.bpe_vocab_size)
        self.tokens_info = scheme_summary(scheme, train_rows)
        return save_scheme(scheme, out)

    def _prepare_split(
        self,
        split_generator: datasets.SplitGenerator,
        file_format: str = "arrow",
        num_proc: int | None = None,
        max_shard_size: int | str | None = None,
    ) -> None:
        # The costly work ran in parallel in _split_generators; one writer keeps the files identical for any num_proc.
        super()._prepare_split(split_generator, file_format=file_format, num_proc=None, max_shard_size=max_shard_size)

    def _generate_examples(self, plan_file: str, scheme_dir: str | None = None) -> Iterator[tuple[Key, dict[str, Any]]]:
        settings = self.config.analysis_settings(str(self.work_dir()))
        tokenizer = tokenizer_for(settings.tokenizer)
        scheme = load_scheme(scheme_dir) if scheme_dir else None  # as saved: the column is what tokenizer/ decodes
        rows = (row for plan in read_plan(plan_file) for row in _rows(plan, settings, tokenizer, scheme))
        for index, row in enumerate(rows):
            yield Key(0, index), row

    def _download_and_prepare(self, dl_manager: Any, verification_mode: Any, **prepare_split_kwargs: Any) -> None:
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        if self.stats is not None:
            self.info.license = license_summary(self.stats)
            write_card(
                Path(self._output_dir),
                self.info,
                self.config,
                self.stats,
                dataset_name=self.dataset_name,
                file_format=self._file_format or "arrow",
                tokens=self.tokens_info,
            )


def push_to_hub(
    out_dir: str | os.PathLike, repo_id: str, *, private: bool | None = None, token: str | None = None
) -> str:
    """Publish a built dataset with datasets' own `DatasetDict.push_to_hub`, after uploading its card and manifest
    (and the ``tokenizer/`` folder of a build with a `tokens` column).

    The card goes first so that `push_to_hub` keeps its text and only updates the YAML (configs, sizes) it owns.
    """
    out = Path(out_dir)
    if not (out / "README.md").is_file() or not any(out.glob("*.parquet")):
        raise ValueError(f"{out}: not a built Toccata dataset (no README.md and *.parquet); run build-dataset first")
    dataset = datasets.load_dataset(str(out))
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(out),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=["README.md", "LICENSE", REJECTS_FILE, f"{TOKENIZER_FOLDER}/*"],
    )
    dataset.push_to_hub(repo_id, private=private, token=token)
    return f"https://huggingface.co/datasets/{repo_id}"


# ---------------------------------------------------------------------------------------------------- private


def _check_replaceable(path: Path) -> None:
    """datasets replaces the output folder wholesale: refuse unless it is empty or an earlier dataset."""
    done = (path / "dataset_info.json").is_file() or (path / BUILDING).is_file()
    if path.is_file() or (path.is_dir() and any(path.iterdir()) and not done):
        raise ValueError(
            f"output {str(path)!r} exists and is not a dataset built here; building would replace it. "
            "Choose a new or empty folder"
        )


def _clear_incomplete(out: Path) -> None:
    """Empty datasets' ``.incomplete`` folder left by a killed build, so no stale shard survives into this one."""
    if out.name.endswith(".incomplete") and out.is_dir():
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def _piece_midi(plan: dict[str, Any], settings: AnalysisSettings) -> bytes:
    """The MIDI bytes of a kept piece as its rows hold them, checked against the hashes the analysis recorded."""
    item, result = plan["item"], plan["result"]
    data = standard_midi_bytes(Path(result["midi_file"]).read_bytes(), item["path"])
    if hashlib.sha256(data).hexdigest() != result["content_hash"]:
        raise ValueError(f"{result['midi_file']} changed while the dataset was being built; run the build again")
    if result.get("mapped"):  # an instrumented build: the row holds the "instrument + piano" MIDI that was tokenized
        mapped_file = settings.mapped_path(result["content_hash"])
        data = mapped_file.read_bytes() if mapped_file.is_file() else b""
        if hashlib.sha256(data).hexdigest() != result["mapped_hash"]:
            raise ValueError(f"{mapped_file} changed while the dataset was being built; run the build again")
    return data


def _row_midis(plan: dict[str, Any], settings: AnalysisSettings) -> Iterator[tuple[int, bytes]]:
    """(transposition, MIDI bytes) of each row of a kept piece: the file as it is, then each transposed copy."""
    data = _piece_midi(plan, settings)
    for shift in plan["transpositions"]:
        yield shift, data if shift == 0 else _transpose(data, shift, plan["item"]["path"])


def _rows(
    plan: dict[str, Any], settings: AnalysisSettings, tokenizer: NotewiseTokenizer, scheme: TokenScheme | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of one kept piece: the file as it is, then each transposed copy the plan asks for (with the
    `tokens` column when `scheme` is given)."""
    item, result = plan["item"], plan["result"]
    base = {
        "piece_id": plan["piece_id"],
        "source": item["source"],
        "path": item["path"],
        "composer": item["composer"],
        "title": item["title"],
        "license": item["license"],
        "source_url": item["source_url"],
        "metadata": _with_ensemble(item["metadata"], result.get("ensemble")),
        "num_notes": result["num_notes"],
        "length_quarters": result["length_quarters"],
        "qpm": result["qpm"],
        "time_signature": result["time_signature"],
    }
    for shift, midi in _row_midis(plan, settings):
        if shift == 0:
            notewise = load_tokens(settings, result["content_hash"])
            content_hash = result.get("mapped_hash", result["content_hash"])
        else:
            notewise = " ".join(tokenizer.encode_midi(midi).tokens)
            content_hash = hashlib.sha256(midi).hexdigest()
        row = {
            **base,
            "id": row_id(plan["piece_id"], shift),
            "transposition": shift,
            "midi": midi,
            "notewise": notewise,
            "num_tokens": len(notewise.split()),
            "content_hash": content_hash,
        }
        if scheme is not None:
            row["tokens"] = row_tokens(scheme, midi)
        yield row


def _with_ensemble(metadata: str, ensemble: dict[str, Any] | None) -> str:
    """Row metadata plus, for an instrumented build, which track became each part and how many notes moved."""
    if not ensemble:
        return metadata
    return metadata_json({**json.loads(metadata), "ensemble": ensemble})


def _transpose(data: bytes, shift: int, name: str) -> bytes:
    """MIDI bytes with every pitched track moved by `shift` semitones (drums stay); tempo, velocities kept."""
    score = load_score(data, name=name)
    for track in score.tracks:
        if not track.is_drum:
            track.shift_pitch(shift, inplace=True)
    return bytes(score.dumps_midi())


__all__ = ["DESCRIPTION", "FEATURES", "ToccataBuilder", "features_for", "push_to_hub"]
