"""The served model: loaded once, swapped atomically, version always known.

A request reads ``holder.current`` once and uses that snapshot to the end, so a swap never
mixes two models in one answer; the new model is fully loaded and warmed before the reference
is replaced (a single attribute assignment: atomic under the GIL).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from chuishao.models.annotated import annotated
from chuishao.models.cascade import RoutingModel
from chuishao.models.persistence import DATA_FILES, MANIFEST_FILE, checksum, load_model, model_files, read_manifest
from chuishao.pipeline.annotate import build_annotator
from chuishao.resources import default_model_dir
from chuishao.serve import verified_copy
from chuishao.taxonomy import Taxonomy

log = logging.getLogger("chuishao.serve")


@dataclass(frozen=True)
class LoadedModel:
    model: RoutingModel
    directory: Path
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    source: str = "directory"  # or "verified copy": the model directory did not load when this worker started

    @property
    def version(self) -> str:
        return self.model.version


@dataclass(frozen=True)
class DiskState:
    """The model directory compared with the model in service."""

    state: str  # "same", "differs" or "broken"
    error: str | None = None


class ModelHolder:
    def __init__(self, model_dir: Path | None, taxonomy_file: Path | None = None,
                 fallback_dir: Path | None = None, gazetteer: str | None = "none") -> None:
        # Keep the path as given: a symlink (models/current -> models/v7) is re-resolved on reload.
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.taxonomy_file = taxonomy_file  # a city's edited routing, re-read on every load
        self.fallback_dir = fallback_dir  # verified copies (verified_copy.py), kept by chuishao serve
        self.gazetteer = gazetteer  # the city's places (build_annotator: None the bundled example, "none" off)
        self._disk: tuple[object, DiskState] | None = None  # disk_state() by the files' stat signature
        self._loaded_from: tuple[str, str | None] | None = None
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()  # one load at a time; readers never wait for it

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def require(self) -> LoadedModel:
        loaded = self._current
        if loaded is None:
            raise RuntimeError("no model loaded")
        return loaded

    def _load(self, directory: Path | None = None, source: str = "directory") -> LoadedModel:
        taxonomy = Taxonomy.load(self.taxonomy_file) if self.taxonomy_file is not None else None
        annotator = build_annotator(self.gazetteer)
        model = annotated(load_model(directory or self.model_dir, taxonomy=taxonomy), annotator)
        model.warm_up()  # before serving: the first request must not pay for the lazy builds
        return LoadedModel(model, self.model_dir, source=source)

    def start(self) -> LoadedModel:
        """The first load of a worker: the model directory, or, when it does not load (corrupted,
        deleted, half-copied), the latest verified copy of the model in service, so that a worker
        respawned by uvicorn never stops the service. Without a copy a broken model fails the start."""
        try:
            return self.load()
        except Exception as exc:
            copy = verified_copy.latest(self.fallback_dir) if self.fallback_dir is not None else None
            if copy is None:
                raise
            log.error("model directory %s does not load (%s): serving the verified copy of the model in service",
                      self.model_dir, exc)
        with self._swap_lock:
            new = self._load(copy, source="verified copy")
            routing = self.source_on_disk(copy)
            self._current, self._loaded_from = new, routing
            self._disk = None
        log.info("model loaded: %s from the verified copy %s", new.version, copy.resolve())
        return new

    def load(self) -> LoadedModel:
        """Load (or reload) the model directory and switch to it. Blocking: call from a thread."""
        with self._swap_lock:
            source = self.source_on_disk()
            new = self._load()
            old, self._current = self._current, new
            self._loaded_from = source
            self._disk = None
        if self.fallback_dir is not None and source is not None:
            try:  # the copy a respawned worker falls back to follows the model in service
                verified_copy.keep_copy(self.model_dir, self.fallback_dir, expected=source[0])
            except Exception as exc:  # noqa: BLE001 - serving goes on; the previous copy stays
                log.warning("no verified copy of %s kept: %s", self.model_dir, exc)
        if old is not None:
            log.info("model switched: %s -> %s", old.version, new.version)
        else:
            log.info("model loaded: %s from %s", new.version, self.model_dir)
        return new

    def source_on_disk(self, directory: Path | None = None) -> tuple[str, str | None] | None:
        """What a load would read now: the model files' checksums and version (a retrained model
        always differs, whatever its version says) and the taxonomy file's content. None when unreadable, e.g. mid-copy."""
        try:
            files = checksum(read_manifest(directory or self.model_dir))
            routing = None
            if self.taxonomy_file is not None:
                routing = hashlib.sha256(Path(self.taxonomy_file).read_bytes()).hexdigest()
            return files, routing
        except Exception:  # noqa: BLE001 - a half-replaced model dir is retried on the next poll
            return None

    def reload_if_changed(self) -> bool:
        """Load the directory when it holds another model, or loads again while this worker serves the verified copy."""
        on_disk = self.source_on_disk()
        current = self._current
        if on_disk is None or (current is not None and on_disk == self._loaded_from and current.source == "directory"):
            return False
        self.load()
        return True

    def disk_state(self) -> DiskState:
        """Whether the model directory holds the model in service ("same"), another loadable one
        ("differs": a reload would switch) or one that does not verify ("broken": a missing
        directory or manifest, a corrupted data file). The files are hashed again only when their
        size or time stamps change. Blocking: call from a thread."""
        signature = self._signature()
        cached = self._disk
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            identity = verified_copy.verify(self.model_dir)
            routing = None
            if self.taxonomy_file is not None:
                routing = hashlib.sha256(Path(self.taxonomy_file).read_bytes()).hexdigest()
            state = DiskState("same" if (identity, routing) == self._loaded_from else "differs")
        except Exception as exc:  # noqa: BLE001 - what is wrong is the answer
            state = DiskState("broken", str(exc))
        self._disk = (signature, state)
        return state

    def _signature(self) -> object:
        def stat(path: Path) -> tuple[int, int, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_ino, st.st_size, st.st_mtime_ns

        try:  # the files the manifest lists (a cascade's subfolders too); a classical model's when unreadable
            names = model_files(read_manifest(self.model_dir))
        except Exception:  # noqa: BLE001 - a broken directory still has a signature
            names = DATA_FILES
        files = [self.model_dir / name for name in (MANIFEST_FILE, *names)]
        if self.taxonomy_file is not None:
            files.append(Path(self.taxonomy_file))
        return str(self.model_dir.resolve()), self._loaded_from, [stat(f) for f in files]
