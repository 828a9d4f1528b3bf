"""Saving and loading model directories: ``model.joblib`` plus a readable ``manifest.json``.

The manifest carries what a user or a service must check before trusting a model: label
names, taxonomy name/version/fingerprint, training-data fingerprint, library versions,
held-out figures, and a checksum of the model file that detects corruption.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import joblib
import sklearn

from whistle.errors import ModelLoadError
from whistle.models.classifier import WhistleClassifier
from whistle.resources import default_model_dir
from whistle.taxonomy import Taxonomy
from whistle.version import __version__

FORMAT = "whistle-model/1"
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: WhistleClassifier, directory: str | Path) -> Path:
    """Write the model atomically: a crash never leaves a half-written model behind."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data_fp = str(model.metadata.get("data_fingerprint", "unknown"))
    model.metadata.setdefault("version", f"{model.taxonomy.name}-{created[:10]}-{data_fp[:8]}")
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    try:
        joblib.dump(model, tmp, compress=("zlib", 6))
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / MODEL_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    manifest = {
        "format": FORMAT,
        "version": model.metadata["version"],
        "created": created,
        "whistle": __version__,
        "sklearn": sklearn.__version__,
        "labels": list(model.classes_),
        "sub_labels": sorted(c for scorer in model.sub_models.values() for c in scorer.classes),
        "taxonomy": model.taxonomy.summary(),
        "segmenter": model.preprocessor.segmenter.engine_in_use,
        "config": json.loads(model.config.model_dump_json()),
        "heldout": model.heldout_,
        "training": model.training_summary_,
        "model_sha256": _sha256(directory / MODEL_FILE),
        **{k: v for k, v in model.metadata.items() if k != "version"},
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return directory


def read_manifest(directory: str | Path) -> dict[str, object]:
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    if not path.is_file():
        raise ModelLoadError(f"{directory} is not a whistle model: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: unknown model format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def load_model(directory: str | Path | None = None, expect_taxonomy: Taxonomy | None = None) -> WhistleClassifier:
    """Load and verify a model directory (the bundled default when ``directory`` is None)."""
    directory = Path(directory) if directory is not None else default_model_dir()
    manifest = read_manifest(directory)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ModelLoadError(f"{directory}: {MODEL_FILE} is missing")
    if _sha256(model_path) != manifest.get("model_sha256"):
        raise ModelLoadError(f"{model_path}: checksum mismatch, the file is corrupted or was replaced")
    try:
        model = joblib.load(model_path)
    except Exception as exc:
        raise ModelLoadError(f"{model_path}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, WhistleClassifier):
        raise ModelLoadError(f"{model_path}: holds a {type(model).__name__}, not a WhistleClassifier")
    if expect_taxonomy is not None and model.taxonomy.fingerprint != expect_taxonomy.fingerprint:
        raise ModelLoadError(
            f"{directory}: trained on taxonomy {model.taxonomy.name} v{model.taxonomy.version} "
            f"({model.taxonomy.fingerprint}), but {expect_taxonomy.name} v{expect_taxonomy.version} "
            f"({expect_taxonomy.fingerprint}) is in use: retrain the model on the current taxonomy"
        )
    model.metadata["version"] = manifest["version"]
    model.metadata["directory"] = str(directory)
    return model
