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

from chuishao.models.cascade import RoutingModel
from chuishao.models.persistence import checksum, load_model, read_manifest
from chuishao.resources import default_model_dir
from chuishao.taxonomy import Taxonomy

log = logging.getLogger("chuishao.serve")


@dataclass(frozen=True)
class LoadedModel:
    model: RoutingModel
    directory: Path
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def version(self) -> str:
        return self.model.version


class ModelHolder:
    def __init__(self, model_dir: Path | None, taxonomy_file: Path | None = None) -> None:
        # Keep the path as given: a symlink (models/current -> models/v7) is re-resolved on reload.
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.taxonomy_file = taxonomy_file  # a city's edited routing, re-read on every load
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

    def _load(self) -> LoadedModel:
        taxonomy = Taxonomy.load(self.taxonomy_file) if self.taxonomy_file is not None else None
        model = load_model(self.model_dir, taxonomy=taxonomy)
        model.warm_up()  # before serving: the first request must not pay for the lazy builds
        return LoadedModel(model, self.model_dir)

    def load(self) -> LoadedModel:
        """Load (or reload) the model directory and switch to it. Blocking: call from a thread."""
        with self._swap_lock:
            source = self.source_on_disk()
            new = self._load()
            old, self._current = self._current, new
            self._loaded_from = source
        if old is not None:
            log.info("model switched: %s -> %s", old.version, new.version)
        else:
            log.info("model loaded: %s from %s", new.version, self.model_dir)
        return new

    def source_on_disk(self) -> tuple[str, str | None] | None:
        """What a load would read now: the model files' checksums and version (a retrained model
        always differs, whatever its version says) and the taxonomy file's content. None when unreadable, e.g. mid-copy."""
        try:
            files = checksum(read_manifest(self.model_dir))
            routing = None
            if self.taxonomy_file is not None:
                routing = hashlib.sha256(Path(self.taxonomy_file).read_bytes()).hexdigest()
            return files, routing
        except Exception:  # noqa: BLE001 - a half-replaced model dir is retried on the next poll
            return None

    def reload_if_changed(self) -> bool:
        on_disk = self.source_on_disk()
        if on_disk is None or (self._current is not None and on_disk == self._loaded_from):
            return False
        self.load()
        return True
