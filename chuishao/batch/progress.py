"""A progress bar with rate and ETA on a terminal; silent in logs and CI (tqdm's disable=None)."""

from __future__ import annotations

import sys
from pathlib import Path

from chuishao.io.formats import detect_format


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def estimate_rows(path: Path) -> int | None:
    """Rows in the input, cheaply: newlines for text files (an estimate for CSV), metadata for Parquet."""
    fmt = detect_format(path)
    if fmt == "parquet":
        from chuishao.io.tabular import count_rows

        return count_rows(path)
    if fmt == "xlsx" or str(path).endswith(".gz"):
        return None
    count, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            count += block.count(b"\n")
            last = block[-1:]
    count += last != b"\n"  # a final line without a newline
    return max(count - 1, 0) if fmt == "csv" else count


def progress_bar(path: Path, initial: int, enabled: bool | None):
    """``enabled`` None: only when stderr is a terminal."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=estimate_rows(path), initial=initial, unit=" rows", unit_scale=True, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.05, desc="tagging")
