"""Where bundled files live: inside the installed wheel, or in the source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# A wheel carries data/ and models/ under chuishao/_data (see pyproject force-include);
# an editable or source checkout has them beside the package.
_WHEEL_DATA = _PACKAGE_DIR / "_data"
_REPO_ROOT = _PACKAGE_DIR.parent


def _resolve(wheel_rel: str, repo_rel: str) -> Path:
    packaged = _WHEEL_DATA / wheel_rel
    return packaged if packaged.exists() else _REPO_ROOT / repo_rel


def default_taxonomy_path() -> Path:
    return _resolve("taxonomy/whistle-15.yaml", "data/taxonomy/whistle-15.yaml")


def default_lexicon_path() -> Path:
    return _resolve("lexicon/userdict.txt", "data/lexicon/userdict.txt")


def default_model_dir() -> Path:
    return _resolve("models/default", "models/default")


def default_urgency_path() -> Path:
    return _resolve("urgency/urgency.yaml", "data/urgency/urgency.yaml")


def default_gazetteer_path() -> Path:
    return _resolve("gazetteer/example.yaml", "data/gazetteer/example.yaml")
