"""chuishao: sort Chinese resident complaints into the 15 whistle topics and route them."""

from chuishao.version import __version__

__all__ = ["__version__", "load_model"]


def load_model(path: str | None = None):
    """Load a saved model directory; the bundled default model when ``path`` is None."""
    from chuishao.models.persistence import load_model as _load

    return _load(path)
