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
import numpy as np
import sklearn

from chuishao.errors import ModelLoadError
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.resources import default_model_dir
from chuishao.taxonomy import Taxonomy
from chuishao.version import __version__

FORMAT = "chuishao-model/1"
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
# what a fitted ChuishaoClassifier holds; a model pickled by another release may lack some
_FITTED = ("preprocessor", "char_vectorizer", "word_vectorizer", "topic_model", "sub_models", "classes_",
           "temperature_", "review_threshold_", "taxonomy", "config")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version(model: ChuishaoClassifier, created: str) -> str:
    """Taxonomy, day and a hash of everything that makes the model: what it learned (weights,
    offsets, temperature, review threshold), the training data's print, the taxonomy's content
    (departments too) and the recipe. Models that differ in any of these never share a version, so
    a service polling the directory and ``tag --resume`` see the change; retraining the same data
    the same way (reproducible) gives the same version."""
    h = hashlib.sha256()
    topics = model.topic_model
    for array in (topics.weights, topics.intercept):
        h.update(np.ascontiguousarray(array).tobytes())
    for topic in sorted(model.sub_models):
        scorer = model.sub_models[topic]
        h.update(f"{topic}:{scorer.classes}".encode())
        for array in (scorer.weights.data, scorer.weights.indices, scorer.intercept):
            h.update(np.ascontiguousarray(array).tobytes())
    h.update(repr((list(getattr(model, "classes_", [])), getattr(model, "temperature_", None),
                   getattr(model, "review_threshold_", None))).encode())  # getattr: a model missing one is refused at load
    h.update(f"|{model.metadata.get('data_fingerprint', 'unknown')}|{model.taxonomy.fingerprint}|".encode())
    h.update(model.config.model_dump_json().encode())
    return f"{model.taxonomy.name}-{created[:10]}-{h.hexdigest()[:8]}"


def _temporary(directory: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def save_model(model: ChuishaoClassifier, directory: str | Path) -> Path:
    """Write both files in full before either replaces its old copy: a crash or a full disk never
    leaves a half-written model, and an older model in ``directory`` stays usable until then."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    model.metadata.setdefault("version", _version(model, created))
    model_tmp, manifest_tmp = _temporary(directory), _temporary(directory)
    try:
        joblib.dump(model, model_tmp, compress=("zlib", 6))
        manifest = {
            "format": FORMAT,
            "version": model.metadata["version"],
            "created": created,
            "chuishao": __version__,
            "sklearn": sklearn.__version__,
            "labels": list(model.classes_),
            "sub_labels": sorted(c for scorer in model.sub_models.values() for c in scorer.classes),
            "taxonomy": model.taxonomy.summary(),
            "segmenter": model.preprocessor.segmenter.engine_in_use,
            "config": json.loads(model.config.model_dump_json()),
            "heldout": model.heldout_,
            "training": model.training_summary_,
            "model_sha256": _sha256(model_tmp),
            **{k: v for k, v in model.metadata.items() if k != "version"},
        }
        manifest_tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        for tmp in (model_tmp, manifest_tmp):
            os.chmod(tmp, 0o644)
        os.replace(model_tmp, directory / MODEL_FILE)
        os.replace(manifest_tmp, directory / MANIFEST_FILE)
    finally:
        model_tmp.unlink(missing_ok=True)
        manifest_tmp.unlink(missing_ok=True)
    return directory


def read_manifest(directory: str | Path) -> dict[str, object]:
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    if not path.is_file():
        raise ModelLoadError(f"{directory} is not a chuishao model: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path}: not a chuishao manifest (a JSON object is expected)")
    if manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: unknown model format {manifest.get('format')!r}, expected {FORMAT}")
    missing = [key for key in ("version", "model_sha256") if not isinstance(manifest.get(key), str)]
    if missing:
        raise ModelLoadError(f"{path}: the manifest lacks {' and '.join(missing)}; it was edited by hand or not "
                             f"written by chuishao: save the model again (chuishao train)")
    return manifest


def _codes(taxonomy: Taxonomy) -> dict[str, frozenset[str]]:
    """What a model learned to predict: each label with its sub-problem codes."""
    return {label: frozenset(taxonomy.subs_of(label)) for label in taxonomy.labels}


def _only_in(these: dict[str, frozenset[str]], those: dict[str, frozenset[str]]) -> list[str]:
    """Labels of ``these`` that ``those`` lacks, then sub-problems under a label both have."""
    shared = set(these) & set(those)
    return sorted(set(these) - set(those)) + sorted(s for label in shared for s in these[label] - those[label])


def route_with(model: ChuishaoClassifier, taxonomy: Taxonomy, where: str | Path) -> bool:
    """Route ``model``'s answers with ``taxonomy`` (a city's edited file): names and departments may
    change without retraining, codes may not, since the model can only predict what it learned.
    True when the routing changed."""
    if taxonomy.fingerprint == model.taxonomy.fingerprint:
        return False
    mine, theirs = _codes(model.taxonomy), _codes(taxonomy)
    if mine != theirs:  # then one side has a label, or a sub-problem under a shared label, the other lacks
        gone, new = _only_in(mine, theirs), _only_in(theirs, mine)
        detail = "; ".join(part for part in (f"not in the file: {', '.join(gone[:8])}" if gone else "",
                                             f"new in the file: {', '.join(new[:8])}" if new else "") if part)
        raise ModelLoadError(
            f"{where}: trained on taxonomy {model.taxonomy.name} v{model.taxonomy.version}, whose codes differ from "
            f"{taxonomy.name} v{taxonomy.version} ({detail}). An edited taxonomy may change names and departments, "
            f"not codes: retrain the model on it (chuishao train --taxonomy FILE)")
    model.taxonomy = taxonomy
    return True


def load_model(directory: str | Path | None = None, taxonomy: Taxonomy | None = None) -> ChuishaoClassifier:
    """Load and verify a model directory (the bundled default when ``directory`` is None).

    With ``taxonomy`` (an edited taxonomy file) answers are routed with its names and departments;
    a taxonomy with other codes is refused (see ``route_with``)."""
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
    if not isinstance(model, ChuishaoClassifier):
        raise ModelLoadError(f"{model_path}: holds a {type(model).__name__}, not a ChuishaoClassifier")
    lacking = [name for name in _FITTED if not hasattr(model, name)]
    if lacking:
        made_by = manifest.get("chuishao")
        raise ModelLoadError(f"{model_path}: made by chuishao {made_by}, which this chuishao {__version__} cannot use "
                             f"(it lacks {', '.join(lacking)}): retrain it, or use chuishao {made_by}")
    rerouted = taxonomy is not None and route_with(model, taxonomy, directory)
    model.metadata["version"] = manifest["version"]
    if rerouted:  # answers say which routing they used: the same model with other departments is another version
        model.metadata["version"] += f"+routing-{model.taxonomy.fingerprint[:8]}"
    model.metadata["directory"] = str(directory)
    return model
