"""Contents fingerprints of files and folders: what a resumable step or a fine-tuning run read, so that a file
changed in place (relabelled, re-imported) is seen."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["fingerprint"]

# (path, size, mtime_ns, ctime_ns, inode) -> SHA-256: each file hashed once a run (ctime: a rewrite within one
# clock tick of mtime still changes it on most file systems)
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def _file_digest(path: Path) -> str:
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        _DIGESTS[memo] = h.hexdigest()
    return _DIGESTS[memo]


def fingerprint(path: str | os.PathLike[str] | None) -> str | dict[str, str] | None:
    """The contents of a file (its SHA-256) or of a folder (its own files by name, subfolders such as checkpoints
    left out); None for a path that does not exist (e.g. "default" as data.taxonomy). SHA-256 rather than size and
    mtime: a relabelled file of the same size, or a file copied with its times, is still seen; reading even a
    multi-GB corpus takes seconds against the hours of fine-tuning it guards, and each file is read once a run."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        return _file_digest(p)
    if p.is_dir():
        return {f.name: _file_digest(f) for f in sorted(p.iterdir()) if f.is_file()}
    return None
