"""Text files line by line in UTF-8 or the GBK family, without one bad byte sinking the whole file.

Chinese government exports are often GBK/GB18030. We decode each physical line on its own so an
undecodable line becomes an error on its row instead of an exception that stops the run.
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from chuishao.errors import DataError

AUTO = "auto"
# What a damaged or mislabelled .gz raises while being read (EOFError: cut short).
BROKEN_GZIP = (EOFError, gzip.BadGzipFile, zlib.error)
_SAMPLE = 1 << 16
_CHUNK = 1 << 20


def open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if str(path).endswith(".gz") else path.open("rb")  # type: ignore[return-value]


def head_bytes(path: Path, size: int, line: bool = False) -> bytes:
    """The file's first ``size`` bytes (or its first line, at most that long), a damaged .gz
    being an error that names the file."""
    with open_binary(path) as fh:
        try:
            return fh.readline(size) if line else fh.read(size)
        except BROKEN_GZIP as exc:
            raise DataError(f"{path}: {_gzip_problem(exc)}") from None


def detect_encoding(path: Path) -> str:
    """UTF-8 or GB18030 (a superset of GBK and GB2312), judged line by line on the first 64 KiB.

    A line either decodes as UTF-8 with Chinese in it, or does not decode at all: GBK's byte pairs
    almost never form valid UTF-8. The majority decides, so one bad byte in a UTF-8 file makes one
    row's error, not a whole file of GB18030 mojibake tagged as if it were text."""
    sample = head_bytes(path, _SAMPLE)
    _refuse_utf16(sample, path)
    utf8 = bad = 0
    lines = re.split(rb"\r\n?|\n", sample)
    for n, line in enumerate(lines, start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            utf8 += 1
        except UnicodeDecodeError as exc:
            # a character cut at the sample's end is not evidence against UTF-8
            cut = n == len(lines) and len(sample) == _SAMPLE and exc.reason == "unexpected end of data"
            utf8, bad = (utf8 + 1, bad) if cut else (utf8, bad + 1)
    return "gb18030" if bad > utf8 else "utf-8"


def decode_line(line: bytes) -> tuple[str, str | None]:
    """One line whose encoding nobody told us (stdin): UTF-8, else GB18030 when the bytes are GBK,
    else UTF-8 with a problem to report.

    GB18030 decodes nearly any bytes, so it is chosen only when UTF-8 finds fewer whole Chinese
    characters than broken bytes: a UTF-8 line cut mid-character must not become mojibake that
    reads as Chinese and is classified as if it were text."""
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    as_utf8 = line.decode("utf-8", errors="replace")
    broken = as_utf8.count("\ufffd")
    whole = sum(1 for ch in as_utf8 if ord(ch) >= 0x800) - broken  # three-byte characters (Chinese) that decoded
    if whole <= broken:
        try:
            return line.decode("gb18030"), None
        except UnicodeDecodeError:
            pass
    return as_utf8, f"bytes that are not valid UTF-8 or GBK (byte {first_bad + 1})"


def _refuse_utf16(sample: bytes, path: Path) -> None:
    # Lines are split on the newline byte, which only works for ASCII-compatible encodings.
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or sample[:200].count(b"\x00") > 20:
        raise DataError(f"{path}: looks like UTF-16 (or UTF-32) text, which is not read; "
                        f"save it as UTF-8 (or GBK) and try again")


def check_encoding(encoding: str) -> str:
    """A codec name that lines can be read in, or a clear error (before any work is done)."""
    if encoding == AUTO:
        return encoding
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}; use auto, utf-8, gbk or gb18030") from None
    if name.startswith(("utf-16", "utf-32")):
        raise DataError(f"encoding {encoding!r} is not supported: save the file as UTF-8 (or GBK)")
    return encoding


def resolve_encoding(path: Path, encoding: str) -> str:
    enc = detect_encoding(path) if check_encoding(encoding) == AUTO else encoding
    # GBK files are decoded as GB18030: same bytes for every GBK character, and it knows more.
    return "gb18030" if enc.lower().replace("-", "") in ("gbk", "gb2312", "cp936") else enc


class DecodedLines:
    """Iterate decoded lines; ``bad_lines`` holds the 1-based numbers of lines that did not decode."""

    def __init__(self, fh: BinaryIO, encoding: str, bare_cr: str | None = None, count_quotes: bool = False) -> None:
        """``bare_cr``: a stand-in for a \r inside a line (not its ending). Python's csv module
        rejects one in an unquoted value, while Spark's reader keeps it; the CSV reader swaps it in
        and back (``cr_lines`` holds those lines' numbers) so both engines read the same value.
        ``count_quotes``: add up the double quotes of the lines read in ``quotes`` (the CSV reader
        resets it per row to find a quote that is never closed)."""
        self._fh = fh
        self.encoding = encoding
        self.bad_lines: set[int] = set()
        self.cr_lines: set[int] = set()
        self._bare_cr = bare_cr
        self._count_quotes = count_quotes
        self.quotes = 0
        self.line_no = 0

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._lines()
        except BROKEN_GZIP as exc:  # EOFError alone would end the command as a bare 'Aborted.'
            raise DataError(f"{getattr(self._fh, 'name', 'input')}: {_gzip_problem(exc)}") from None

    def _lines(self) -> Iterator[str]:
        for raw in physical_lines(self._fh):
            self.line_no += 1
            try:
                line = raw.decode(self.encoding)
            except UnicodeDecodeError:
                self.bad_lines.add(self.line_no)
                line = raw.decode(self.encoding, errors="replace")
            if self.line_no == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if self._count_quotes:
                self.quotes += line.count('"')
            if self._bare_cr is not None and "\r" in line:
                body = line.rstrip("\r\n")
                if "\r" in body:
                    line = body.replace("\r", self._bare_cr) + line[len(body):]
                    self.cr_lines.add(self.line_no)
            yield line

    def any_cr(self, first_line: int, last_line: int) -> bool:
        return _any_between(self.cr_lines, first_line, last_line)

    def any_bad(self, first_line: int, last_line: int) -> bool:
        return _any_between(self.bad_lines, first_line, last_line)


def _any_between(line_numbers: set[int], first_line: int, last_line: int) -> bool:
    return bool(line_numbers) and any(n in line_numbers for n in range(first_line, last_line + 1))


def ends_lines_with_bare_cr(head: bytes) -> bool:
    """Whether a file's first bytes show bare \r line endings (old Mac exports)."""
    return b"\r" in head and b"\n" not in head


def physical_lines(fh: BinaryIO) -> Iterator[bytes]:
    """The file's lines with their endings: split on \n (\r\n lines keep their \r), as iterating
    the file gives them, unless its start shows bare \r line endings (old Mac exports), which would
    otherwise make the whole file one line. Splitting bytes on 0x0A or 0x0D is safe for UTF-8 and
    GB18030: neither byte occurs inside a character."""
    peek = getattr(fh, "peek", None)
    head = peek(_SAMPLE) if peek is not None else b""  # the buffer's first bytes (8 KiB or more)
    if not ends_lines_with_bare_cr(head):
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


def _gzip_problem(exc: BaseException) -> str:
    return f"damaged or incomplete gzip file ({exc or 'cut short'})"
