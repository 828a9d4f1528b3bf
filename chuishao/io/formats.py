"""Which file format a path holds, from its extension (the same rule for inputs and outputs)."""

from __future__ import annotations

from pathlib import Path

from chuishao.errors import DataError

# (suffix, format); ".gz" is allowed after the text formats only.
_SUFFIXES = (
    (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
    (".csv", "csv"), (".tsv", "csv"),
    (".xlsx", "xlsx"),
    (".parquet", "parquet"), (".pq", "parquet"),
)
TEXT_FORMATS = ("jsonl", "csv")
FORMATS = ("jsonl", "csv", "xlsx", "parquet")


def detect_format(path: str | Path) -> str:
    name = str(path).lower().rstrip("/")
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix) or (fmt in TEXT_FORMATS and name.endswith(suffix + ".gz")):
            return fmt
    known = ", ".join(suffix for suffix, _ in _SUFFIXES)
    raise DataError(f"{path}: unknown file type; use {known} (the text ones also .gz, e.g. .jsonl.gz, .csv.gz)")


def delimiter_for(path: str | Path) -> str:
    """Tab for .tsv (and .tsv.gz) files, in and out; comma for every other CSV."""
    name = Path(str(path).rstrip("/")).name.lower().removesuffix(".gz")
    return "\t" if name.endswith(".tsv") else ","
