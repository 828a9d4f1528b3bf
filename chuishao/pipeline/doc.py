"""``Doc``: one message as the preprocessor makes it and the vectorizers read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Doc:
    """One message after normalisation: the text and its words."""

    text: str
    tokens: tuple[str, ...]
