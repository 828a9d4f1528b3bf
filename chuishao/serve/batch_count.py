"""Count the items of a batch body while it arrives, so an over-limit batch is refused after its
``limit + 1``-th item whatever follows: the rest is neither kept, decoded nor parsed."""

from __future__ import annotations

import codecs
import json
import re

_WS = re.compile(r"[ \t\n\r]*")
# the C scanner json.loads uses: one JSON value from an index, (value, end) or StopIteration/ValueError
_SCAN = vars(json.JSONDecoder())["scan_once"]


class _NeedMore(Exception):
    """The text so far ends inside the token being read: try again with more of it."""


class _NotABatch(Exception):
    """Not a JSON object with an ``"items"`` array: the app's own parsing answers it."""


class ItemCounter:
    """Feeds on the raw body, chunk by chunk; ``count`` is the number of elements of the top-level
    ``"items"`` array read so far, and ``over`` turns true at the ``limit + 1``-th.

    Complete tokens are consumed and dropped, so only the unfinished tail is held. A value split
    over chunks is read again from its start, but only once the tail has doubled since the last
    try: a single huge string costs a constant number of passes, not one per chunk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.over = False
        self.done = False  # the array's end was read, or the body is not a batch: nothing more to count
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pieces: list[str] = []
        self._held = 0  # characters in _pieces
        self._next_try = 0  # try again once this many characters are held
        self._stage = "object"  # object, key, first, item
        self._first_chunk = True

    def feed(self, chunk: bytes, final: bool = False) -> None:
        """Raises UnicodeDecodeError when the body is not UTF-8 (also at its end, for a cut sequence)."""
        if self.over:  # refused: the rest is not even decoded
            return
        text = self._decoder.decode(chunk, final)
        if self._first_chunk and text:
            text = text.removeprefix("\ufeff")
            self._first_chunk = False
        if "\x00" in text:  # UTF-16/32 text of ASCII JSON is valid UTF-8 with NULs: not JSON text the API reads
            raise UnicodeDecodeError("utf-8", chunk, 0, len(chunk), "NUL character: UTF-16 or UTF-32 text")
        if self.done:  # counted: the rest is only checked to be UTF-8 text
            return
        if text:
            self._pieces.append(text)
            self._held += len(text)
        if self._held < self._next_try and not final:
            return
        held = "".join(self._pieces)
        try:
            used = self._consume(held)
        except _NotABatch:
            self.done = True
            self._pieces = []
            return
        rest = held[used:]
        self._pieces = [rest] if rest else []
        self._held = len(rest)
        self._next_try = 2 * self._held  # the unfinished token is read again once it has doubled
        if final:
            self.done = True

    def _consume(self, text: str) -> int:
        """Read as many complete tokens as ``text`` holds; returns where the unfinished one starts."""
        at = 0
        try:
            while not self.done:
                at = self._step(text, at)
        except _NeedMore:
            pass
        return at

    def _step(self, text: str, i: int) -> int:
        """One whole step of the batch's grammar from ``i``; returns the index after it."""
        i = _skip(text, i)
        if self._stage == "object":
            if _char(text, i) != "{":
                raise _NotABatch
            self._stage = "key"
            return i + 1
        if self._stage == "key":  # a member: "key": value, or the object's end
            c = _char(text, i)
            if c == ",":
                i = _skip(text, i + 1)
                c = _char(text, i)
            if c != '"':
                raise _NotABatch  # the end of the object without items, or broken JSON
            key, i = _scan(text, i)
            i = _skip(text, i)
            if _char(text, i) != ":":
                raise _NotABatch
            i = _skip(text, i + 1)
            if key == "items" and _char(text, i) == "[":
                self._stage = "first"
                return i + 1
            _, i = _scan(text, i)
            _char(text, _skip(text, i))  # the separator after the value must be here too
            return i
        if self._stage == "first":
            if _char(text, i) == "]":
                self.done = True
                return i + 1
            self._stage = "item"
            return i
        # an item, then its separator
        _, i = _scan(text, i)
        i = _skip(text, i)
        c = _char(text, i)
        if c not in ",]":
            raise _NotABatch
        self.count += 1
        if self.count > self.limit:
            self.over = self.done = True
        elif c == "]":
            self.done = True
        return i + 1


def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


def _char(text: str, i: int) -> str:
    if i >= len(text):
        raise _NeedMore
    return text[i]


_AFTER_VALUE = frozenset(' \t\n\r,]}:')


def _scan(text: str, i: int) -> tuple[object, int]:
    """One JSON value at ``i``. A value cut by the end of the text is a _NeedMore, and so is one
    not followed by what may follow a value: the scanner reads "1." or "2e" as the number 1 or 2,
    whose rest is in the next chunk."""
    try:
        value, end = _SCAN(text, i)
    except (StopIteration, ValueError) as exc:
        raise _NeedMore from exc  # broken JSON is told apart at the end of the body, by the app's parser
    if end >= len(text) or text[end] not in _AFTER_VALUE:
        raise _NeedMore
    return value, end
