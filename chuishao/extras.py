"""Optional dependencies: import one, or tell the user which extra installs it."""

from __future__ import annotations

import importlib
import importlib.util

from chuishao.errors import DataError


def need(module: str, extra: str = "batch"):
    """Import an optional dependency, or tell the user which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(f"{module} is needed for this file type: pip install '.[{extra}]' in the chuishao checkout") from exc


TRANSFORMER_MODULES = ("torch", "transformers", "datasets", "onnx", "onnxruntime")


def require(modules: tuple[str, ...] | list[str], what: str, extra: str = "transformer") -> None:
    """A DataError naming the missing modules and the extra that installs them, before any work starts."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        hint = " (torch==2.13.0 is the CPU wheel)" if extra == "transformer" else ""
        raise DataError(f"{what} needs {', '.join(missing)}: pip install '.[{extra}]' in the chuishao checkout{hint}")
