"""Masking of personal data (phones, ID cards, bank cards, e-mail) before logging or storage.

The patterns match numbers as people really write them: a separator may stand between any two
digits (spaces, dots, hyphens and dashes of every width, zero-width characters: ``138 1234 5678``,
``6222 0212 3456 7890``, ``010-8765 4321``), area codes may be in parentheses and mobiles may carry
a ``+86``/``0086`` prefix. ``mask_pii`` expects text that is already NFKC-normalised (the text
normaliser does that first); ``mask_pii_raw`` normalises on its own, for logs and stored fields.
``pseudonymise_id`` is for message ids, which must stay distinct when masked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable

# What people put inside numbers: white space, hyphens and dashes of every width (NFKC turns the
# full-width and small forms into "-"; the dashes U+2010-2015 and the minus sign stay as they are),
# dots and middle dots, slashes, and zero-width characters (invisible: a copy-paste leaves them).
_SEP_CHARS = "\\s\\-.\u00b7\u2010-\u2015\u2212\u2027\u30fb\u200b-\u200d\u2060\ufeff/_"
_S = f"[{_SEP_CHARS}]{{0,3}}"  # "138 - 1234", but no longer gaps: those are two numbers
_S1 = f"[{_SEP_CHARS}]{{1,3}}"  # a separator that is there
_BEFORE = r"(?<![0-9A-Za-z])"
_AFTER = r"(?![0-9A-Za-z])"


def _spread(*atoms: str) -> str:
    """The atoms (one digit each) with an optional separator between any two."""
    return _S.join(atoms)


_D = r"\d"
_ID18 = _spread("[1-9]", *[_D] * 5, "[12]", *[_D] * 3, "[01]", _D, "[0-3]", _D, *[_D] * 3, "[0-9Xx]")
_ID15 = _spread("[1-9]", *[_D] * 7, "[01]", _D, "[0-3]", _D, *[_D] * 3)
# bank cards: 16-19 digits in one run, in groups of four (the last may be shorter), or 6 and the rest
_CARD = rf"(?:\d{{16,19}}|\d{{4}}(?:{_S1}\d{{4}}){{3}}(?:{_S1}\d{{1,3}})?|\d{{6}}{_S1}\d{{10,13}})"
_CC = rf"(?:(?:\+|00){_S})?86"  # country code
_MOBILE = rf"(?:(?:\({_S}{_CC}{_S}\)|{_CC}){_S})?(?P<n>" + _spread("1", "[3-9]", *[_D] * 9) + ")"
# an area code (0xx or 0xxx, maybe in parentheses; after +86 without its 0), then 7-8 digits,
# maybe split 3-4 or 4-4
_LANDLINE = (rf"(?:(?:\({_S}{_CC}{_S}\)|{_CC}){_S}\(?0?[1-9]\d{{1,2}}\)?|\(0\d{{2,3}}\)|0\d{{2,3}}){_S}"
             rf"(?:\d{{7,8}}|\d{{3,4}}{_S}\d{{4}})")
_GROUP = re.compile(r"[0-9Xx]+")


def _grouped(placeholder: str) -> Callable[[re.Match[str]], str]:
    """A replacement that masks only numbers in groups of three or more digits (138 1234 5678,
    110101 19900307 123X): dates and ranges (2018.07.21-2018.07.20) have groups of one or two."""
    def replace(match: re.Match[str]) -> str:
        number = match.group("n") if "n" in match.re.groupindex else match.group()
        if all(len(g) >= 3 for g in _GROUP.findall(number)):
            return placeholder
        return match.group()
    return replace


# Order matters: an 18-digit ID card number would also match the bank-card pattern, and a card
# number written in groups holds what looks like a phone number.
_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(rf"{_BEFORE}{_ID18}{_AFTER}"), _grouped("<ID>")),
    (re.compile(rf"{_BEFORE}{_CARD}(?!\d)"), "<CARD>"),
    (re.compile(rf"{_BEFORE}{_ID15}{_AFTER}"), _grouped("<ID>")),
    (re.compile(rf"(?<![0-9A-Za-z+]){_MOBILE}(?!\d)"), _grouped("<PHONE>")),
    (re.compile(rf"(?<![0-9A-Za-z+]){_LANDLINE}(?!\d)"), "<PHONE>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<EMAIL>"),
]

# Every number pattern needs 10+ digits (separators allowed between them), the e-mail an '@':
# most messages have neither, so skip them fast.
_MAYBE_PII = re.compile(rf"\d(?:[{_SEP_CHARS}()]{{0,3}}\d){{9}}")
# Zero-width characters that NFKC keeps: invisible, they only hide a number from the patterns.
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def mask_pii(text: str) -> str:
    """Replace personal numbers and e-mail addresses with placeholders; expects NFKC text (half-width
    digits: normalise first, or use ``mask_pii_raw``)."""
    if "@" not in text and not _MAYBE_PII.search(text):
        return text
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def mask_pii_raw(text: str) -> str:
    """``mask_pii`` for text that has not been normalised (logs, stored feedback): it is searched in
    its NFKC form, so full-width or math digits (１３８, 𝟏𝟑𝟖), a full-width ＠ or a full-width hyphen
    do not slip through. Text without personal data comes back unchanged; text with some comes back
    NFKC-normalised and masked."""
    plain = text if text.isascii() else unicodedata.normalize("NFKC", text)
    masked = mask_pii(plain)
    if masked == plain:
        stripped = _INVISIBLE.sub("", plain) if not plain.isascii() else plain
        if stripped == plain:
            return text
        masked = mask_pii(stripped)  # a zero-width character in an e-mail address
        if masked == stripped:
            return text
    return masked


def pseudonymise_id(message_id: str, key: bytes) -> str:
    """A message id as it may be stored: unchanged when it holds no personal data, else its masked
    form, ``#h`` and a keyed hash of the whole id (HMAC-SHA256, 64 bits): ``<PHONE>#h3f2a9c1e0b7d4a66``.
    The same id always gives the same result under one key, and two ids that mask alike (two phone
    numbers) stay two messages, so corrections still group by message; without the key the hash
    cannot be matched against a list of phone numbers. The result is left as it is by this function
    and by ``mask_pii_raw``: the hash follows a letter, so none of its digit runs reads as a number."""
    masked = mask_pii_raw(message_id)
    if masked == message_id:
        return message_id
    digest = hmac.new(key, message_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
    return f"{masked[:110]}#h{digest}"  # at most 128 characters, the stored column's width
