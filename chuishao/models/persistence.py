"""Saving and loading model directories as data only: no file runs code when loaded.

A model directory holds three files:

- ``model.safetensors``: every array (vocabularies, idf, weights), read with safetensors;
- ``model.json``: everything else (config, taxonomy content, class names, temperature, review
  threshold, held-out figures, the segmenter's lexicon ...), read with ``json``;
- ``manifest.json``: what a user or a service checks before trusting a model: format, version,
  label names, taxonomy name/version/fingerprint, training-data fingerprint, library versions,
  held-out figures, and the SHA-256 of each data file, which detects corruption.

Nothing here unpickles; models saved with pickle (``model.joblib``) are converted once by
``chuishao model convert`` (``models.legacy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sklearn
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from chuishao.errors import ChuishaoError, ModelLoadError
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.resources import default_model_dir
from chuishao.taxonomy import Taxonomy
from chuishao.version import __version__

FORMAT = "chuishao-model/2"
OLD_FORMATS = ("whistle-model/1", "chuishao-model/1")  # pickled with joblib: convert them
STATE_FILE = "model.json"
ARRAYS_FILE = "model.safetensors"
DATA_FILES = (STATE_FILE, ARRAYS_FILE)
MANIFEST_FILE = "manifest.json"
PICKLE_FILE = "model.joblib"  # the old format's file
# the prints of the training rows (pipeline.rowprint), an array in model.safetensors beside the
# weights; older models lack it and then cannot tell whether test rows were trained on
TRAINING_ROWS = "training_rows"
# metadata that describes one saved copy, not what the model learned: never in the data files
_NOT_SAVED = ("version", "directory")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _learned(state: dict[str, object], arrays: dict[str, np.ndarray]) -> str:
    """Hash of what a model learned and how: every array (weights, offsets, vocabulary) and the
    JSON state (config, taxonomy content, classes, temperature, review threshold ...) except
    the metadata, plus the training data's print."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}|".encode())
        h.update(array.tobytes())
    h.update(json.dumps({k: v for k, v in state.items() if k != "metadata"}, sort_keys=True).encode())
    metadata = state["metadata"]
    h.update(f"|{metadata.get('data_fingerprint', 'unknown')}".encode())  # type: ignore[attr-defined]
    return h.hexdigest()


def _version(model: ChuishaoClassifier, created: str) -> str:
    """``chuishao-`` + taxonomy + day + a hash of everything that makes the model (``_learned``).
    Models that differ in weights, data, taxonomy content (departments too) or recipe never share
    a version, so a service polling the directory and ``tag --resume`` see the change; retraining
    the same data the same way (reproducible) gives the same version."""
    return _version_of(*_state(model), model.taxonomy.name, created)


def _state(model: ChuishaoClassifier) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """What is saved of a model: its state, and its arrays with the training rows' prints."""
    state, arrays = model.to_state()
    if model.training_rows_ is not None:
        arrays[TRAINING_ROWS] = np.ascontiguousarray(model.training_rows_, dtype=np.uint64)
    return state, arrays


def _version_of(state: dict[str, object], arrays: dict[str, np.ndarray], taxonomy: str, created: str) -> str:
    return f"chuishao-{taxonomy}-{created[:10]}-{_learned(state, arrays)[:8]}"


def _temporary(directory: Path, suffix: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=suffix + ".tmp")
    os.close(fd)
    return Path(tmp)


def _json_bytes(value: object) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def save_model(model: ChuishaoClassifier, directory: str | Path, *, created: str | None = None) -> Path:
    """Write every file in full before any replaces its old copy: a crash or a full disk never
    leaves a half-written model, and an older model in ``directory`` stays usable until then.
    The same model saved twice gives byte-identical data files; only the manifest's ``created``
    differs. ``created``: the manifest's time (the converter keeps the old model's)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    state, arrays = _state(model)
    state["metadata"] = {k: v for k, v in model.metadata.items() if k not in _NOT_SAVED}
    model.metadata.setdefault("version", _version_of(state, arrays, model.taxonomy.name, created))
    temporary = {name: _temporary(directory, name) for name in (*DATA_FILES, MANIFEST_FILE)}
    try:
        save_file(arrays, str(temporary[ARRAYS_FILE]))
        temporary[STATE_FILE].write_bytes(_json_bytes(state))
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
            "config": state["config"],
            "heldout": model.heldout_,
            "training": model.training_summary_,
            "files": {name: _sha256(temporary[name]) for name in DATA_FILES},
            **state["metadata"],  # type: ignore[dict-item]
        }
        temporary[MANIFEST_FILE].write_bytes(_json_bytes(manifest))
        for tmp in temporary.values():
            os.chmod(tmp, 0o644)
        for name in (*DATA_FILES, MANIFEST_FILE):  # the manifest last: it vouches for the others
            os.replace(temporary[name], directory / name)
    finally:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
    return directory


def _convert_hint(directory: Path) -> str:
    return (f"convert it once with: chuishao model convert {directory} -o NEW_DIR "
            f"(it unpickles the old file: only convert models you trust)")


def read_manifest(directory: str | Path) -> dict[str, object]:
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    if (directory / PICKLE_FILE).is_file() and not (directory / ARRAYS_FILE).is_file():
        raise ModelLoadError(f"{directory}: a model saved with pickle ({PICKLE_FILE}), which chuishao no longer "
                             f"loads; {_convert_hint(directory)}")
    if not path.is_file():
        raise ModelLoadError(f"{directory} is not a chuishao model: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path}: not a chuishao manifest (a JSON object is expected)")
    if manifest.get("format") in OLD_FORMATS:
        raise ModelLoadError(f"{path}: a model in the old pickle format {manifest['format']}, which chuishao no "
                             f"longer loads; {_convert_hint(directory)}")
    if manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: unknown model format {manifest.get('format')!r}, expected {FORMAT}")
    files = manifest.get("files")
    missing = [key for key in ("version",) if not isinstance(manifest.get(key), str)]
    if not (isinstance(files, dict) and set(files) == set(DATA_FILES) and all(isinstance(v, str) for v in files.values())):
        missing.append(f"the checksums of {' and '.join(DATA_FILES)} (files)")
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


def _read_data(directory: Path, manifest: dict[str, object]) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """The verified data files: JSON state and arrays (no pickle: json and safetensors only)."""
    for name, checksum in manifest["files"].items():  # type: ignore[attr-defined]
        path = directory / name
        if not path.is_file():
            raise ModelLoadError(f"{directory}: {name} is missing")
        if _sha256(path) != checksum:
            raise ModelLoadError(f"{path}: checksum mismatch, the file is corrupted or was replaced")
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        arrays = load_file(str(directory / ARRAYS_FILE))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelLoadError(f"{directory}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ModelLoadError(f"{directory / STATE_FILE}: not a model state (a JSON object is expected)")
    return state, arrays


def load_model(directory: str | Path | None = None, taxonomy: Taxonomy | None = None) -> ChuishaoClassifier:
    """Load and verify a model directory (the bundled default when ``directory`` is None).

    With ``taxonomy`` (an edited taxonomy file) answers are routed with its names and departments;
    a taxonomy with other codes is refused (see ``route_with``)."""
    directory = Path(directory) if directory is not None else default_model_dir()
    manifest = read_manifest(directory)
    state, arrays = _read_data(directory, manifest)
    training_rows = arrays.pop(TRAINING_ROWS, None)
    try:
        model = ChuishaoClassifier.from_state(state, arrays)
    except (KeyError, TypeError, ValueError, AttributeError, ChuishaoError) as exc:
        made_by = manifest.get("chuishao")
        problem = f"it lacks {exc.args[0]}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ModelLoadError(f"{directory}: made by chuishao {made_by}, which this chuishao {__version__} cannot use "
                             f"({problem}): retrain it, or use chuishao {made_by}") from exc
    model.training_rows_ = training_rows
    rerouted = taxonomy is not None and route_with(model, taxonomy, directory)
    version = str(manifest["version"])
    if rerouted:  # answers say which routing they used: the same model with other departments is another version
        version += f"+routing-{model.taxonomy.fingerprint[:8]}"
    model.metadata["version"] = version
    model.metadata["directory"] = str(directory)
    return model


def checksum(manifest: dict[str, object]) -> str:
    """One string for a saved model: its data files' checksums and its version (the same weights
    saved under another version are another model to serve)."""
    return json.dumps({"files": manifest["files"], "version": manifest["version"]}, sort_keys=True)
