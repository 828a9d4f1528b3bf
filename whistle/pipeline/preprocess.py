"""From a raw (title, text) pair to a ``Doc``: checks, normalisation, segmentation."""

from __future__ import annotations

from collections.abc import Sequence

from whistle.config import TextConfig
from whistle.pipeline.features import Doc
from whistle.pipeline.normalize import han_ratio, normalize_text
from whistle.pipeline.segment import Segmenter


class TextPreprocessor:
    def __init__(self, config: TextConfig, segmenter: Segmenter | None = None) -> None:
        self.config = config
        self.segmenter = segmenter or Segmenter(engine=config.segmenter)

    def problem(self, title: str | None, text: object) -> str | None:
        """Why this message cannot be classified, or None when it can."""
        if not isinstance(text, str):
            return f"text must be a string, got {type(text).__name__}"
        if title is not None and not isinstance(title, str):
            return f"title must be a string, got {type(title).__name__}"
        full = f"{title or ''}{text}"
        if not text.strip() and not (title or "").strip():
            return "empty text"
        if len(full) > self.config.max_input_chars:
            return f"text too long: {len(full)} characters, the limit is {self.config.max_input_chars}"
        ratio = han_ratio(full)
        if ratio < self.config.min_han_ratio:
            return f"text is not Chinese ({ratio:.0%} Chinese characters, at least {self.config.min_han_ratio:.0%} needed)"
        return None

    def compose(self, title: str | None, text: str) -> str:
        title = (title or "").strip()
        prefix = (title + "。") * self.config.title_repeat if title else ""
        return normalize_text(prefix + text, self.config.max_chars)

    def docs(self, titles: Sequence[str | None], texts: Sequence[str]) -> list[Doc]:
        composed = [self.compose(ti, te) for ti, te in zip(titles, texts)]
        return [Doc(c, tuple(self.segmenter.cut(c))) for c in composed]
