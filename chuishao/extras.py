"""Optional dependencies: import one, or tell the user which extra installs it."""

from __future__ import annotations

import importlib

from chuishao.errors import DataError


def need(module: str, extra: str = "batch"):
    """Import an optional dependency, or tell the user which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(f"{module} is needed for this file type: pip install '.[{extra}]' in the chuishao checkout") from exc
