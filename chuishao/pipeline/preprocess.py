"""From a raw (title, text) pair to a ``Doc``: checks, normalisation, segmentation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chuishao.config import TextConfig
from chuishao.pipeline.doc import Doc
from chuishao.pipeline.normalize import han_ratio, normalize_text, without_emoticons
from chuishao.pipeline.segment import Segmenter


class TextPreprocessor:
    def __init__(self, config: TextConfig, segmenter: Segmenter | None = None) -> None:
        self.config = config
        self.segmenter = segmenter or Segmenter(engine=config.segmenter)

    def to_state(self) -> dict[str, object]:
        """The segmenter; the text settings are the model config's ``text`` section."""
        return {"segmenter": self.segmenter.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], config: TextConfig) -> TextPreprocessor:
        return cls(config, Segmenter.from_state(state["segmenter"]))

    def problem(self, text: object, *, title: str | None = None) -> str | None:
        """Why this message cannot be classified, or None when it can."""
        if not isinstance(text, str):
            return f"text must be a string, got {type(text).__name__}"
        if title is not None and not isinstance(title, str):
            return f"title must be a string, got {type(title).__name__}"
        title = title or ""
        length = len(title) + len(text)
        if length > self.config.max_input_chars:
            both = " (title and text together)" if title else ""
            return f"text too long: {length} characters{both}, the limit is {self.config.max_input_chars}"
        body, head = without_emoticons(text).strip(), without_emoticons(title).strip()
        if not body and not head:
            return "empty text" + (" (only emoticons)" if (text + title).strip() else "")
        # Chinese enough if the text or the title is: a URL as title must not make a Chinese
        # message 'not Chinese', and a Chinese title over an English body still says what it is about
        ratio = max(han_ratio(body), han_ratio(head))
        if ratio < self.config.min_han_ratio:
            return f"text is not Chinese ({ratio:.0%} Chinese characters, at least {self.config.min_han_ratio:.0%} needed)"
        return None

    def compose(self, text: str, *, title: str | None = None) -> str:
        title = (title or "").strip()
        prefix = (title + "。") * self.config.title_repeat if title else ""
        return normalize_text(prefix + text, self.config.max_chars)

    def docs(self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None) -> list[Doc]:
        titles = titles if titles is not None else [None] * len(texts)
        composed = [self.compose(te, title=ti) for te, ti in zip(texts, titles, strict=True)]
        return [Doc(c, tuple(self.segmenter.cut(c))) for c in composed]
