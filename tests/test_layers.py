"""The import layering of pyproject.toml's [tool.importlinter] contracts holds (``lint-imports``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter not installed (pip install '.[test]')")

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    # this checkout's package first on the path, whatever copy of chuishao is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
