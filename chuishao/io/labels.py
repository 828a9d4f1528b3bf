"""Our own labels for messages kept elsewhere: ``id,label,sub`` CSV files joined with a corpus by id."""

from __future__ import annotations

import csv
from pathlib import Path

from chuishao.errors import DataError

__all__ = ["read_id_label_file"]


def read_id_label_file(path: str | Path) -> dict[str, tuple[str, str | None]]:
    """An ``id,label,sub`` file as {id: (label, sub)}; an id given two different labels is an error."""
    wanted: dict[str, tuple[str, str | None]] = {}
    conflicts: list[str] = []
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                if not row.get("id") or not row.get("label"):
                    raise DataError(f"{path}: every row needs id and label, got {row}")
                labels = (row["label"], row.get("sub") or None)
                if wanted.setdefault(row["id"], labels) != labels:
                    conflicts.append(row["id"])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if conflicts:
        raise DataError(f"{path}: {len(conflicts)} ids have two different labels (e.g. {', '.join(conflicts[:5])})")
    return wanted
