"""Text files line by line in UTF-8 or the GBK family, without one bad byte sinking the whole file.

Chinese government exports are often GBK/GB18030. We decode each physical line on its own so an
undecodable line becomes an error on its row instead of an exception that stops the run.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

AUTO = "auto"
_SAMPLE = 1 << 16


def open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if str(path).endswith(".gz") else path.open("rb")  # type: ignore[return-value]


def detect_encoding(path: Path) -> str:
    """UTF-8 when the first 64 KiB decode as UTF-8, else GB18030 (a superset of GBK and GB2312)."""
    with open_binary(path) as fh:
        sample = fh.read(_SAMPLE)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is not evidence against UTF-8.
        if exc.start < len(sample) - 4:
            return "gb18030"
    return "utf-8"


def resolve_encoding(path: Path, encoding: str) -> str:
    enc = detect_encoding(path) if encoding == AUTO else encoding
    # GBK files are decoded as GB18030: same bytes for every GBK character, and it knows more.
    return "gb18030" if enc.lower().replace("-", "") in ("gbk", "gb2312", "cp936") else enc


class DecodedLines:
    """Iterate decoded lines; ``bad_lines`` holds the 1-based numbers of lines that did not decode."""

    def __init__(self, fh: BinaryIO, encoding: str) -> None:
        self._fh = fh
        self.encoding = encoding
        self.bad_lines: set[int] = set()
        self.line_no = 0

    def __iter__(self) -> Iterator[str]:
        # Splitting bytes on b"\n" is safe for UTF-8 and GB18030: 0x0A never occurs inside a character.
        for raw in self._fh:
            self.line_no += 1
            try:
                line = raw.decode(self.encoding)
            except UnicodeDecodeError:
                self.bad_lines.add(self.line_no)
                line = raw.decode(self.encoding, errors="replace")
            if self.line_no == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line

    def any_bad(self, first_line: int, last_line: int) -> bool:
        return bool(self.bad_lines) and any(n in self.bad_lines for n in range(first_line, last_line + 1))
