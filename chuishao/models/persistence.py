"""Saving and loading model directories as data only: no file runs code when loaded.

A model directory holds three files:

- ``model.safetensors``: every array (vocabularies, idf, weights), read with safetensors;
- ``model.json``: everything else (config, taxonomy content, class names, temperature, review
  threshold, held-out figures, the segmenter's lexicon ...), read with ``json``;
- ``manifest.json``: what a user or a service checks before trusting a model: format, version,
  label names, taxonomy name/version/fingerprint, training-data fingerprint, library versions,
  held-out figures, and the SHA-256 of each data file, which detects corruption.

A cascade directory (``"model_type": "cascade"``, see ``models.cascade``) holds ``cascade.json`` (the mix
weight, gate, temperature, review threshold and dev figures), ``classical/`` (a model directory as above) and
``transformer/`` (the ONNX file, tokenizer and encoder metadata; an ensemble of encoders adds ``transformer-2/`` ...,
the manifest's ``transformer.members`` says how many); its manifest checksums every one of these.

Nothing here unpickles; models saved with pickle (``model.joblib``) are converted once by
``chuishao model convert`` (``models.legacy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import numpy as np
import sklearn
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from chuishao.errors import ChuishaoError, ModelLoadError
from chuishao.models.cascade import CascadeModel, CascadeParams, RoutingModel, onnx_threads
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.models.onnx_encoder import INT8_FILE, META_FILE, ONNX_FILE, load_encoders
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
CASCADE = "cascade"  # manifest model_type of a cascade directory
CASCADE_FILE = "cascade.json"
CLASSICAL_DIR = "classical"
TRANSFORMER_DIR = "transformer"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# metadata that describes one saved copy, not what the model learned: never in the data files
_NOT_SAVED = ("version", "directory")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks (model files are tens of MB)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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
            "files": {name: file_sha256(temporary[name]) for name in DATA_FILES},
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
    cascade = manifest.get("model_type") == CASCADE
    needed = {CASCADE_FILE, f"{CLASSICAL_DIR}/{MANIFEST_FILE}"} if cascade else set(DATA_FILES)
    if not (isinstance(files, dict) and (needed <= set(files) if cascade else set(files) == needed)
            and all(isinstance(v, str) for v in files.values())):
        missing.append(f"the checksums of {' and '.join(sorted(needed))} (files)")
    if missing:
        raise ModelLoadError(f"{path}: the manifest lacks {' and '.join(missing)}; it was edited by hand or not "
                             f"written by chuishao: save the model again (chuishao train)")
    return manifest


def model_files(manifest: dict[str, object]) -> tuple[str, ...]:
    """The data files of a model directory, as paths relative to it (``/``-separated), from its manifest
    (``read_manifest``): ``model.json`` and ``model.safetensors`` for a classical model, every file of a
    cascade (``cascade.json``, ``classical/...``, ``transformer/...``). The manifest itself is not among them.
    A path that would leave the directory is refused (ModelLoadError)."""
    files = manifest["files"]
    names = tuple(str(name) for name in files)  # type: ignore[attr-defined]
    for name in names:
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts or parts == (MANIFEST_FILE,) \
                or Path(name).is_absolute():
            raise ModelLoadError(f"the manifest lists {name!r} among its files: not a file of a model directory")
    return names


def copy_model(source: str | Path, target: str | Path, manifest: dict[str, object] | None = None) -> Path:
    """Copy the model directory ``source`` into the folder ``target`` (created, with any subfolders):
    the data files its manifest lists (``model_files``), each checked against its manifest checksum once
    copied, then the manifest. ModelLoadError when a file is missing or does not match: it changed or
    is corrupted. ``manifest``: ``source``'s, already read."""
    source, target = Path(source), Path(target)
    manifest = manifest if manifest is not None else read_manifest(source)
    expected: dict[str, str] = manifest["files"]  # type: ignore[assignment]
    target.mkdir(parents=True, exist_ok=True)
    for name in model_files(manifest):
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(source / name, dest)
        except OSError as exc:
            raise ModelLoadError(f"{source}: {name} is unreadable ({exc.strerror or exc})") from exc
        if file_sha256(dest) != expected[name]:
            raise ModelLoadError(f"{source / name}: checksum mismatch, the file is corrupted or was replaced")
    shutil.copy2(source / MANIFEST_FILE, target / MANIFEST_FILE)  # last: it vouches for the others
    return target


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


def verify_files(directory: Path, manifest: dict[str, object]) -> None:
    """Every file the manifest lists is there, readable, with its checksum (ModelLoadError otherwise)."""
    files: dict[str, str] = manifest["files"]  # type: ignore[assignment]
    for name in model_files(manifest):  # refuses a name that leaves the directory
        path = directory / name
        if not path.is_file():
            raise ModelLoadError(f"{directory}: {name} is missing")
        try:
            actual = file_sha256(path)
        except OSError as exc:
            raise ModelLoadError(f"{directory}: {name} is unreadable ({exc.strerror or exc})") from exc
        if actual != files[name]:
            raise ModelLoadError(f"{path}: checksum mismatch, the file is corrupted or was replaced")


def _read_data(directory: Path, manifest: dict[str, object]) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """The verified data files: JSON state and arrays (no pickle: json and safetensors only)."""
    verify_files(directory, manifest)
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        arrays = load_file(str(directory / ARRAYS_FILE))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelLoadError(f"{directory}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ModelLoadError(f"{directory / STATE_FILE}: not a model state (a JSON object is expected)")
    return state, arrays


def load_model(directory: str | Path | None = None, taxonomy: Taxonomy | None = None) -> RoutingModel:
    """Load and verify a model directory (the bundled default when ``directory`` is None): a classical
    model, or a cascade (manifest ``model_type`` "cascade").

    With ``taxonomy`` (an edited taxonomy file) answers are routed with its names and departments;
    a taxonomy with other codes is refused (see ``route_with``)."""
    directory = Path(directory) if directory is not None else default_model_dir()
    manifest = read_manifest(directory)
    if manifest.get("model_type") == CASCADE:
        return load_cascade(directory, manifest, taxonomy)
    return load_classical(directory, taxonomy, manifest)


def load_classical(directory: str | Path, taxonomy: Taxonomy | None = None,
                   manifest: dict[str, object] | None = None) -> ChuishaoClassifier:
    """``load_model`` for a classical model directory (a cascade directory is refused)."""
    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    if manifest.get("model_type") == CASCADE:
        raise ModelLoadError(f"{directory}: a cascade model, where a classical model directory is expected")
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


# ---- cascade directories ---------------------------------------------------------------------------
def _cascade_version(classical: dict[str, object], files: dict[str, str], params: dict[str, object],
                     taxonomy: str, created: str) -> str:
    """``chuishao-cascade-`` + taxonomy + day + a hash of both parts (the classical version, the encoder's
    files) and the cascade's parameters."""
    h = hashlib.sha256()
    h.update(str(classical["version"]).encode())
    for name in sorted(files):
        if name.startswith(TRANSFORMER_DIR + "/"):
            h.update(f"|{name}:{files[name]}".encode())
    h.update(json.dumps({k: v for k, v in params.items() if k != "dev"}, sort_keys=True).encode())
    return f"chuishao-cascade-{taxonomy}-{created[:10]}-{h.hexdigest()[:8]}"


def encoder_dirs(members: int) -> list[str]:
    """The folders of a cascade's encoders: ``transformer``, then ``transformer-2``, ``transformer-3`` ..."""
    return [TRANSFORMER_DIR] + [f"{TRANSFORMER_DIR}-{k}" for k in range(2, members + 1)]


def require_exports(onnx_dirs: Sequence[str | Path], *, int8: bool = False) -> str:
    """The ONNX file name a cascade ships (int8 or fp32); a ModelLoadError naming the first encoder folder without
    it or without its metadata."""
    onnx_name = INT8_FILE if int8 else ONNX_FILE
    for d in onnx_dirs:
        if not (Path(d) / onnx_name).is_file() or not (Path(d) / META_FILE).is_file():
            raise ModelLoadError(f"{d}: {onnx_name} or {META_FILE} is missing (chuishao transformer export-onnx"
                                 f"{' --int8' if int8 else ''})")
    return onnx_name


def save_cascade(classical_dir: str | Path, onnx_dir: str | Path | Sequence[str | Path], params: CascadeParams,
                 directory: str | Path, *, int8: bool = False, created: str | None = None,
                 metadata: dict[str, object] | None = None) -> Path:
    """Write a cascade directory: copies of the classical model directory and of each encoder's ONNX file
    (fp32, or int8 with ``int8``) and tokenizer (several encoders: their mean answers), ``cascade.json``, then
    the manifest. Everything is written to a fresh folder beside ``directory`` and swapped in at the end."""
    directory = Path(directory)
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    classical_manifest = read_manifest(classical_dir)
    if classical_manifest.get("model_type") == CASCADE:
        raise ModelLoadError(f"{classical_dir}: a cascade, where a classical model directory is expected")
    onnx_dirs = [Path(onnx_dir)] if isinstance(onnx_dir, str | Path) else [Path(d) for d in onnx_dir]
    if not onnx_dirs:
        raise ModelLoadError("a cascade needs at least one encoder folder")
    onnx_name = require_exports(onnx_dirs, int8=int8)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        (tmp / CLASSICAL_DIR).mkdir()
        for name in (MANIFEST_FILE, *DATA_FILES):
            shutil.copy2(Path(classical_dir) / name, tmp / CLASSICAL_DIR / name)
        for src, sub in zip(onnx_dirs, encoder_dirs(len(onnx_dirs)), strict=True):
            (tmp / sub).mkdir()
            for name in (onnx_name, META_FILE, *TOKENIZER_FILES):
                if (src / name).is_file():
                    shutil.copy2(src / name, tmp / sub / name)
        state = params.to_state()
        (tmp / CASCADE_FILE).write_bytes(_json_bytes(state))
        files = {str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        taxonomy = classical_manifest.get("taxonomy") or {}
        name = str(taxonomy.get("name", "free")) if isinstance(taxonomy, dict) else "free"
        encoder_meta = json.loads((tmp / TRANSFORMER_DIR / META_FILE).read_text(encoding="utf-8"))
        manifest = {
            "format": FORMAT,
            "model_type": CASCADE,
            "version": _cascade_version(classical_manifest, files, state, name, created),
            "created": created,
            "chuishao": __version__,
            "labels": classical_manifest.get("labels"),
            "taxonomy": classical_manifest.get("taxonomy"),
            "classical": {"version": classical_manifest["version"], "heldout": classical_manifest.get("heldout")},
            "transformer": {"file": onnx_name, "int8": int8, "labels": encoder_meta.get("labels"),
                            "max_length": encoder_meta.get("max_length"), "dev": encoder_meta.get("dev"),
                            "members": len(onnx_dirs)},
            "cascade": {k: v for k, v in state.items() if k != "dev"},
            "heldout": {k: v for k, v in params.dev.items() if k != "grid"},
            "files": files,
            **(metadata or {}),
        }
        (tmp / MANIFEST_FILE).write_bytes(_json_bytes(manifest))
        publish_folder(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_cascade(directory: str | Path, manifest: dict[str, object] | None = None,
                 taxonomy: Taxonomy | None = None) -> CascadeModel:
    """A verified cascade directory as a CascadeModel (onnxruntime threads: ``CHUISHAO_ONNX_THREADS``)."""
    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    verify_files(directory, manifest)
    classical = load_classical(directory / CLASSICAL_DIR, taxonomy)
    transformer = manifest.get("transformer")
    int8 = bool(transformer.get("int8")) if isinstance(transformer, dict) else False
    members = transformer.get("members", 1) if isinstance(transformer, dict) else 1
    try:
        if not isinstance(members, int) or members < 1:
            raise ValueError(f"transformer.members {members!r}: a positive count is expected")
        params = CascadeParams.from_state(json.loads((directory / CASCADE_FILE).read_text(encoding="utf-8")))
        encoder = load_encoders([directory / d for d in encoder_dirs(members)], int8=int8, threads=onnx_threads())
        model = CascadeModel(classical, encoder, params)
    except ImportError as exc:
        raise ModelLoadError(f"{directory}: a cascade model needs onnxruntime and tokenizers "
                             f"(pip install 'chuishao[transformer]'): {exc}") from exc
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ModelLoadError(f"{directory}: not a usable cascade ({type(exc).__name__}: {exc})") from exc
    version = str(manifest["version"])
    routed = classical.version.partition("+routing-")[2]
    if routed:
        version += f"+routing-{routed}"
    model.metadata.update({"version": version, "directory": str(directory), "classical_version": classical.version})
    return model


def publish_folder(tmp: Path, directory: Path) -> None:
    """Put a folder written whole under a temporary name (mkdtemp beside ``directory``) in the place of
    ``directory``: readable as files written in place are, the old folder gone only once the new one is there."""
    for p in [tmp, *tmp.rglob("*")]:  # mkdtemp made the folder 0700
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    old = directory.with_name(f".{directory.name}-old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
