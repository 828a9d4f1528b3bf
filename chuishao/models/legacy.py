"""Models saved with pickle (``model.joblib``; formats whistle-model/1 and chuishao-model/1).

The one place in chuishao that unpickles, used only by ``chuishao model convert``. Unpickling runs
whatever code the file names: only convert models you trust. The old pickles name the package by
its former name ``whistle``, whose modules are aliased to chuishao's while the file is read; the
objects come back with the state their old ``__getstate__`` wrote, which ``_restore`` turns into
what the old ``__setstate__`` methods made, before the model is saved again as data.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from chuishao.errors import ModelLoadError
from chuishao.models.classifier import ChuishaoClassifier
from chuishao.models.linear import LinearScorer, SparseScorer
from chuishao.models.persistence import file_sha256
from chuishao.pipeline.features import NgramTfidf, TermTable

PICKLE_FILE = "model.joblib"
# old module -> chuishao module, for every module an old model pickle names
_MODULES = ("", ".config", ".taxonomy", ".models", ".models.classifier", ".models.linear", ".pipeline",
            ".pipeline.features", ".pipeline.preprocess", ".pipeline.segment")
_RENAMED = {"WhistleClassifier": "ChuishaoClassifier", "WhistleConfig": "ChuishaoConfig"}


@contextlib.contextmanager
def _old_module_names() -> Iterator[None]:
    """While reading: ``whistle.x.y`` is ``chuishao.x.y``, its Whistle* classes the Chuishao* ones."""
    saved = {f"whistle{m}": sys.modules.get(f"whistle{m}") for m in _MODULES}
    try:
        for suffix in _MODULES:
            sys.modules[f"whistle{suffix}"] = _alias(f"whistle{suffix}", importlib.import_module(f"chuishao{suffix}"))
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _alias(name: str, real: types.ModuleType) -> types.ModuleType:
    """A module ``name`` whose attributes are ``real``'s, the Whistle* classes its Chuishao* ones."""
    def attribute(attr: str) -> object:
        return getattr(real, _RENAMED.get(attr, attr))

    alias = types.ModuleType(name)
    vars(alias)["__getattr__"] = attribute  # a module's __getattr__ (PEP 562) lives in its namespace
    return alias


def _unpack(packed: dict[str, Any]) -> sp.csr_matrix:
    """The old half-precision sparse weights (``linear._pack`` of format 1)."""
    return sp.csr_matrix((packed["data"].astype(np.float32), packed["indices"], packed["indptr"]),
                         shape=packed["shape"])


def _restore_vectorizer(vectorizer: NgramTfidf) -> None:
    """The old ``NgramTfidf.__setstate__``: pickles from before TermTable hold the terms as an array."""
    if not isinstance(vectorizer, NgramTfidf):
        raise TypeError(f"a {type(vectorizer).__name__} where a vectorizer was expected")
    if isinstance(vectorizer.terms_, np.ndarray):
        vectorizer.terms_ = TermTable(vectorizer.terms_.tolist())


def _restore(model: ChuishaoClassifier) -> None:
    """What the old ``__setstate__`` methods did: the classes have none now, so pickle put each
    object's saved state in its ``__dict__`` as it was written."""
    for scorer in (model.topic_model, *model.sub_models.values()):
        if not isinstance(scorer, LinearScorer | SparseScorer):
            raise TypeError(f"a {type(scorer).__name__} where a scorer was expected")
        if isinstance(scorer.weights, dict):  # half-precision sparse weights
            weights = _unpack(scorer.weights)
            scorer.weights = np.ascontiguousarray(weights.toarray()) if isinstance(scorer, LinearScorer) else weights
    _restore_vectorizer(model.char_vectorizer)
    _restore_vectorizer(model.word_vectorizer)
    model.preprocessor.segmenter._cut = None  # the engine is built on first use
    if "taxonomy" in vars(model):  # an attribute then, a property over ``_taxonomy`` now
        model.taxonomy = vars(model).pop("taxonomy")


def read_pickled(directory: str | Path) -> tuple[ChuishaoClassifier, dict[str, object]]:
    """The model in an old-format directory and its manifest. UNPICKLES: only for models you trust."""
    import joblib  # scikit-learn's dependency; chuishao itself does not need it

    directory = Path(directory)
    path, manifest_path = directory / PICKLE_FILE, directory / "manifest.json"
    if not path.is_file():
        raise ModelLoadError(f"{directory}: no {PICKLE_FILE}, not a model in the old pickle format")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("model_sha256"), str) \
            or not isinstance(manifest.get("version"), str):
        raise ModelLoadError(f"{manifest_path}: not an old chuishao manifest (version and model_sha256 expected)")
    if file_sha256(path) != manifest["model_sha256"]:
        raise ModelLoadError(f"{path}: checksum mismatch, the file is corrupted or was replaced")
    try:
        with _old_module_names():
            model = joblib.load(path)
        if not isinstance(model, ChuishaoClassifier):
            raise TypeError(f"holds a {type(model).__name__}, not a classifier")
        _restore(model)
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot be converted ({type(exc).__name__}: {exc})") from exc
    return model, manifest


def convert(old_dir: str | Path, new_dir: str | Path) -> ChuishaoClassifier:
    """Save the pickled model of ``old_dir`` in the current format in ``new_dir``, keeping its
    version (the weights are the same) and creation time; return it as loaded from ``new_dir``."""
    from chuishao.models.persistence import load_classical, save_model

    old, manifest = read_pickled(old_dir)
    try:
        model = ChuishaoClassifier.from_state(*old.to_state())  # the checks a load makes
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{old_dir}: cannot be converted ({type(exc).__name__}: {exc})") from exc
    model.metadata["version"] = manifest["version"]
    created = manifest.get("created")
    save_model(model, new_dir, created=created if isinstance(created, str) else None)
    return load_classical(new_dir)
