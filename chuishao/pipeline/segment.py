"""Word segmentation with jieba's dictionary and algorithm plus a domain user dictionary.

``rjieba`` is jieba-rs, a Rust port of the same dictionary and algorithm (identical output,
about 20x faster); it is used when installed, else the reference ``jieba``. Either way the
user dictionary keeps domain words (小区, 物业, 占道经营, 群租 ...) whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chuishao.resources import default_lexicon_path


def read_lexicon(path: str | Path | None = None) -> list[tuple[str, int, str]]:
    """Read a jieba user dictionary: ``word [freq [tag]]`` per line."""
    path = Path(path) if path is not None else default_lexicon_path()
    entries: list[tuple[str, int, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        freq = int(parts[1]) if len(parts) > 1 else 20000
        tag = parts[2] if len(parts) > 2 else "n"
        entries.append((parts[0], freq, tag))
    return entries


class Segmenter:
    """Segmenter over a lexicon; the engine is built on first use."""

    def __init__(self, lexicon: list[tuple[str, int, str]] | None = None, engine: str = "auto") -> None:
        self.lexicon = list(lexicon) if lexicon is not None else read_lexicon()
        self.engine = engine
        self._cut: Callable[[str], Iterable[str]] | None = None

    def to_state(self) -> dict[str, object]:
        """The engine asked for and the lexicon, as JSON-ready values."""
        return {"engine": self.engine, "lexicon": [list(entry) for entry in self.lexicon]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Segmenter:
        return cls([(str(w), int(f), str(t)) for w, f, t in state["lexicon"]], str(state["engine"]))

    @property
    def engine_in_use(self) -> str:
        self._ensure()
        return self._engine_name

    def _ensure(self) -> Callable[[str], Iterable[str]]:
        """The engine's cut function, built on first use."""
        if self._cut is not None:
            return self._cut
        engine = self.engine
        if engine == "auto":
            try:
                import rjieba

                engine = "rjieba"
            except ImportError:
                engine = "jieba"
        if engine == "rjieba":
            import rjieba

            tokenizer = rjieba.Jieba()
            for word, freq, tag in self.lexicon:
                tokenizer.add_word(word, freq, tag)
            self._cut = lambda text: tokenizer.cut(text, False)
        elif engine == "jieba":
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            for word, freq, tag in self.lexicon:
                tokenizer.add_word(word, freq, tag)
            self._cut = lambda text: tokenizer.lcut(text, HMM=False)
        else:
            raise ValueError(f"unknown segmentation engine {engine!r} (auto, rjieba, jieba)")
        self._engine_name = engine
        return self._cut

    def cut(self, text: str) -> list[str]:
        """Words of ``text``, without whitespace and punctuation tokens."""
        # str.isalnum is C-fast and true for Chinese words, letters and digits alike
        return list(filter(str.isalnum, self._ensure()(text)))
