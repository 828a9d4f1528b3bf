"""Verified copies of the model in service, so that a worker can always start.

``chuishao serve`` copies the model directory into a private directory before any worker starts,
and every worker refreshes that copy after each successful load. A worker that starts (uvicorn
respawns one after a crash, or replaces them all on SIGHUP) while the model directory is broken
or gone loads the latest copy instead of failing: uvicorn would otherwise stop the whole service.

Layout: ``<root>/<checksum prefix>/`` holds the manifest and data files of one model (those its manifest lists,
``persistence.model_files``: a cascade's subfolders too), and
``<root>/current`` is a symlink to the latest one (replaced atomically).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from chuishao.errors import ModelLoadError
from chuishao.models.persistence import checksum, copy_model, read_manifest, verify_files

log = logging.getLogger("chuishao.serve")
CURRENT = "current"


def verify(directory: Path) -> str:
    """The model's identity (``persistence.checksum``) once every data file matches its manifest
    checksum; ModelLoadError otherwise (missing directory, unreadable manifest, corrupted file)."""
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    return checksum(manifest)


def latest(root: Path) -> Path | None:
    """The latest verified copy, or None."""
    path = root / CURRENT
    return path if path.is_dir() else None


def keep_copy(model_dir: Path, root: Path, expected: str | None = None) -> Path:
    """Copy ``model_dir`` into ``root``, verify the copy, and make it the latest. With ``expected``
    (the identity of the model just loaded) a directory that changed since is not copied
    (ModelLoadError). Safe with several processes doing it at once."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(model_dir)
    identity = checksum(manifest)
    if expected is not None and identity != expected:
        raise ModelLoadError(f"{model_dir} changed since it was loaded: not copied")
    name = hashlib.sha256(identity.encode()).hexdigest()[:16]
    target = root / name
    if not target.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            copy_model(model_dir, tmp, manifest)
            if verify(tmp) != identity:
                raise ModelLoadError(f"{model_dir} changed while it was copied: not copied")
            try:
                tmp.rename(target)
            except OSError:  # another worker made the same copy first
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    link = root / f".current-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(name)
    previous = os.readlink(root / CURRENT) if (root / CURRENT).is_symlink() else None
    os.replace(link, root / CURRENT)
    for old in root.iterdir():  # the two latest stay: a worker may be loading the previous one
        if old.is_dir() and not old.is_symlink() and old.name not in {name, previous} and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return target
