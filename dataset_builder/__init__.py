"""Sources and the `datasets` builder that turn MIDI collections into shareable notewise datasets.

    from toccata.dataset_builder import ToccataBuilder, build_dataset
    build_dataset("data/toccata-corpus", sources=("corpus",), num_proc=2)      # parquet + card + rejects.jsonl

Names are imported lazily, so `toccata.dataset_builder.sources.crawler` loads without `datasets`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ToccataBuilder": ".builder",
    "FEATURES": ".builder",
    "build_dataset": ".build",
    "push_to_hub": ".builder",
    "ToccataConfig": ".config",
    "SourceItem": ".items",
    "FolderSource": ".sources.folder",
    "read_sidecar": ".sources.folder",
    "Music21CorpusSource": ".sources.corpus",
    "note_fingerprint": ".analysis",
    "assign_split": ".pipeline",
    "SPLITS": ".pipeline",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [
    "FEATURES",
    "SPLITS",
    "FolderSource",
    "Music21CorpusSource",
    "SourceItem",
    "ToccataBuilder",
    "ToccataConfig",
    "assign_split",
    "build_dataset",
    "note_fingerprint",
    "push_to_hub",
    "read_sidecar",
]
