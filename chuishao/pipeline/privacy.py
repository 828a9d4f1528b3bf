"""Masking of personal data (phones, ID cards, bank cards, e-mail) before logging or storage."""

from __future__ import annotations

import re

# Order matters: an 18-digit ID card number would also match the bank-card pattern.
_SEP = r"[-.\s\u2013\u2014]?"  # what people put inside numbers: hyphens, dots, spaces, dashes
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # ID card: 18 digits (also written 6-8-4), and the old 15-digit form
    (re.compile(rf"(?<![0-9A-Za-z])[1-9]\d{{5}}{_SEP}(?:18|19|20)\d{{2}}{_DATE}{_SEP}\d{{3}}[0-9Xx](?![0-9A-Za-z])"), "<ID>"),
    (re.compile(rf"(?<![0-9A-Za-z])[1-9]\d{{7}}{_DATE}\d{{3}}(?![0-9A-Za-z])"), "<ID>"),
    # mobile, with or without +86 and separators
    (re.compile(rf"(?<!\d)(?:\+?86{_SEP})?1[3-9]\d{_SEP}\d{{4}}{_SEP}\d{{4}}(?!\d)"), "<PHONE>"),
    # landline: area code (0xx or 0xxx, maybe in brackets) and 7-8 digits
    (re.compile(rf"(?<!\d)(?:\(0\d{{2,3}}\)\s?|0\d{{2,3}}{_SEP})\d{{7,8}}(?!\d)"), "<PHONE>"),
    (re.compile(r"(?<!\d)\d{16,19}(?!\d)"), "<CARD>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<EMAIL>"),
]


# Every pattern needs 7+ digits (or 3 and 4 around a separator) or an '@': most messages have
# neither, so skip them fast. One pattern, no alternation, the first digits spelled out: the regex
# engine scans this form several times faster than ``\d{7}|\d{3}[- ]\d{4}`` (it matches the same texts).
_MAYBE_PII = re.compile(r"\d\d\d[-.\s\u2013\u2014]?\d{4}")
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９＋－（）", "0123456789+-()")


def mask_pii(text: str) -> str:
    """Replace personal numbers with placeholders; expects half-width digits (normalise first)."""
    if "@" not in text and not _MAYBE_PII.search(text):
        return text
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def mask_pii_raw(text: str) -> str:
    """``mask_pii`` for text that has not been normalised (logs, stored feedback): full-width
    digits are made half-width first, so a full-width number does not slip through."""
    if any("\uff10" <= ch <= "\uff19" for ch in text):
        text = text.translate(_FULLWIDTH_DIGITS)
    return mask_pii(text)
