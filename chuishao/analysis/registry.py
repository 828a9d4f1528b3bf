"""A model registry on disk: versioned model directories and a pointer to the one in service.

Layout of a registry folder::

    versions/<version>/     one model directory per version (manifest.json, model.json, model.safetensors;
                            a cascade's manifest.json, cascade.json, classical/, transformer/ ...)
    current -> versions/V   the model in service: `chuishao serve --model REGISTRY/current`
    history.jsonl           every promotion and rollback: time, from, to, gates, forced, reason

The pointer is a relative symlink, replaced atomically (a new symlink renamed over it), so a
reader sees the old model or the new one, never none; the service's watcher follows it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chuishao.errors import DataError, ModelLoadError
from chuishao.models.persistence import CASCADE, CLASSICAL_DIR, copy_model, load_model, read_manifest

REGISTRY_ENV = "CHUISHAO_REGISTRY"
DEFAULT_REGISTRY = "chuishao-registry"  # in the current directory, when neither --registry nor the env var says
VERSIONS = "versions"
CURRENT = "current"
HISTORY = "history.jsonl"


def registry_path(given: str | Path | None) -> Path:
    """--registry, else $CHUISHAO_REGISTRY, else ./chuishao-registry."""
    return Path(given or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entry:
    version: str
    path: Path
    manifest: dict[str, object]

    def row(self, current: str | None) -> dict[str, object]:
        heldout: dict = self.manifest.get("heldout") or {}  # type: ignore[assignment]
        trained = self.manifest  # what the training data were: a cascade's classical part says it
        if self.manifest.get("model_type") == CASCADE:  # the cascade's own figures (its dev split), beside its parts'
            heldout = heldout.get("cascade") or {}
            try:
                trained = read_manifest(self.path / CLASSICAL_DIR)
            except ModelLoadError:
                trained = {}
        labels: list = self.manifest.get("labels") or []  # type: ignore[assignment]
        return {"version": self.version, "current": self.version == current, "created": self.manifest.get("created"),
                "labels": len(labels), "not_learned": len(trained.get("not_learned") or []),  # type: ignore[arg-type]
                "data_fingerprint": trained.get("data_fingerprint"),
                "heldout_macro_f1": heldout.get("macro_f1"), "heldout_accuracy": heldout.get("accuracy")}


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.versions = self.root / VERSIONS
        self.pointer = self.root / CURRENT
        self.history_file = self.root / HISTORY

    # ---- reading --------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every version, oldest first (by the manifest's creation time)."""
        if not self.versions.is_dir():
            return []
        found = []
        for path in self.versions.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue  # a copy in progress
            found.append(Entry(path.name, path, read_manifest(path)))
        return sorted(found, key=lambda e: (str(e.manifest.get("created")), e.version))

    def current(self) -> str | None:
        """The version in service, or None when nothing was promoted."""
        if not self.pointer.is_symlink():
            return None
        return Path(os.readlink(self.pointer)).name

    def path_of(self, version: str) -> Path:
        return self.versions / version

    def resolve(self, ref: str) -> str:
        """A version from its full name or any unique part of it (e.g. its hash)."""
        names = [e.name for e in self.versions.iterdir()] if self.versions.is_dir() else []
        names = [n for n in names if not n.startswith(".")]
        if ref in names:
            return ref
        matches = [n for n in names if ref in n]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise DataError(f"no version {ref!r} in the registry {self.root} (chuishao models list shows them)")
        raise DataError(f"{ref!r} names {len(matches)} versions ({', '.join(sorted(matches)[:5])}): give more of it")

    def history(self) -> list[dict[str, object]]:
        if not self.history_file.is_file():
            return []
        return [json.loads(line) for line in self.history_file.read_text(encoding="utf-8").splitlines() if line.strip()]

    # ---- writing --------------------------------------------------------------------------
    def add(self, model_dir: str | Path) -> tuple[str, bool]:
        """Copy a model directory in, verified (checksums, loadable) before and after the copy.
        Returns its version and whether it was new; the same model again is a no-op, another
        model under an existing version is refused."""
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        load_model(model_dir)  # every check a load makes: checksums, format, taxonomy
        version = str(manifest["version"])
        if "/" in version or version.startswith(".") or not version:
            raise DataError(f"{model_dir}: version {version!r} cannot name a directory")
        dest = self.path_of(version)
        if dest.exists():
            if read_manifest(dest).get("files") == manifest.get("files"):
                return version, False
            raise DataError(f"the registry already holds another model as {version}")
        self.versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=self.versions))
        try:
            copy_model(model_dir, staging, manifest)  # every file the manifest lists, each checked
            load_model(staging)  # the copy, verified
            os.chmod(staging, 0o755)
            os.rename(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version, True

    def _point(self, version: str) -> None:
        """Repoint ``current`` atomically: a new relative symlink renamed over the old one."""
        tmp = self.root / f".current-{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(Path(VERSIONS) / version, tmp)
        os.replace(tmp, self.pointer)

    def _log(self, record: dict[str, object]) -> None:
        with self.history_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def promote(self, version: str, *, gates: dict[str, object] | None = None, forced: bool = False,
                reason: str | None = None) -> dict[str, object]:
        """Put ``version`` in service (the gates were checked by the caller: ``gates`` is their report)."""
        if not self.path_of(version).is_dir():
            raise DataError(f"no version {version!r} in the registry {self.root}")
        record: dict[str, object] = {"time": _now(), "action": "promote", "from": self.current(), "to": version,
                  "forced": forced, "reason": reason, "gates": gates}
        self._point(version)
        self._log(record)
        return record

    def rollback_target(self) -> str:
        """The version that served before the current one was promoted: the history replayed as a
        stack (a promotion pushes, a rollback pops)."""
        stack: list[str] = []
        for rec in self.history():
            if rec["action"] == "promote":
                if not stack and rec.get("from"):
                    stack.append(str(rec["from"]))
                stack.append(str(rec["to"]))
            elif rec["action"] == "rollback" and stack:
                stack.pop()
        current = self.current()
        if current is None and not stack:
            raise DataError(f"nothing to roll back: no version of {self.root} has been promoted yet")
        if not stack or stack[-1] != current:
            raise DataError(f"the history in {self.history_file} does not end at the current version {current}: "
                            f"promote the version wanted instead")
        if len(stack) < 2:
            raise DataError(f"nothing to roll back to: {current} is the first version promoted in {self.root}")
        return stack[-2]

    def rollback(self, reason: str | None = None) -> dict[str, object]:
        target = self.rollback_target()
        if not self.path_of(target).is_dir():
            raise DataError(f"cannot roll back to {target}: it is no longer in {self.versions}")
        load_model(self.path_of(target))  # still intact
        record: dict[str, object] = {"time": _now(), "action": "rollback", "from": self.current(), "to": target, "forced": False,
                  "reason": reason, "gates": None}
        self._point(target)
        self._log(record)
        return record
