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
_CHUNK = 1 << 20


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

    def __init__(self, fh: BinaryIO, encoding: str, bare_cr: str | None = None) -> None:
        """``bare_cr``: a stand-in for a \r inside a line (not its ending). Python's csv module
        rejects one in an unquoted value, while Spark's reader keeps it; the CSV reader swaps it in
        and back (``cr_lines`` holds those lines' numbers) so both engines read the same value."""
        self._fh = fh
        self.encoding = encoding
        self.bad_lines: set[int] = set()
        self.cr_lines: set[int] = set()
        self._bare_cr = bare_cr
        self.line_no = 0

    def __iter__(self) -> Iterator[str]:
        for raw in physical_lines(self._fh):
            self.line_no += 1
            try:
                line = raw.decode(self.encoding)
            except UnicodeDecodeError:
                self.bad_lines.add(self.line_no)
                line = raw.decode(self.encoding, errors="replace")
            if self.line_no == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if self._bare_cr is not None and "\r" in line:
                body = line.rstrip("\r\n")
                if "\r" in body:
                    line = body.replace("\r", self._bare_cr) + line[len(body):]
                    self.cr_lines.add(self.line_no)
            yield line

    def any_cr(self, first_line: int, last_line: int) -> bool:
        return bool(self.cr_lines) and any(n in self.cr_lines for n in range(first_line, last_line + 1))

    def any_bad(self, first_line: int, last_line: int) -> bool:
        return bool(self.bad_lines) and any(n in self.bad_lines for n in range(first_line, last_line + 1))


def physical_lines(fh: BinaryIO) -> Iterator[bytes]:
    """The file's lines with their endings: split on \n (\r\n lines keep their \r), as iterating
    the file gives them, unless its start shows bare \r line endings (old Mac exports), which would
    otherwise make the whole file one line. Splitting bytes on 0x0A or 0x0D is safe for UTF-8 and
    GB18030: neither byte occurs inside a character."""
    peek = getattr(fh, "peek", None)
    head = peek(_SAMPLE) if peek is not None else b""  # the buffer's first bytes (8 KiB or more)
    if b"\r" not in head or b"\n" in head:
        yield from fh
        return
    rest = b""
    while chunk := fh.read(_CHUNK):
        lines = (rest + chunk).split(b"\r")
        rest = lines.pop()
        for line in lines:
            yield line + b"\r"
    if rest:
        yield rest
