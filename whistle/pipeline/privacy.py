"""Masking of personal data (phones, ID cards, bank cards, e-mail) before logging or storage."""

from __future__ import annotations

import re

# Order matters: an 18-digit ID card number would also match the bank-card pattern.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])"), "<ID>"),
    (re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"), "<PHONE>"),
    (re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)"), "<PHONE>"),
    (re.compile(r"(?<!\d)\d{16,19}(?!\d)"), "<CARD>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<EMAIL>"),
]


# Every pattern needs 7+ digits in a row or an '@': most messages have neither, so skip them fast.
# One pattern, no alternation, the first digits spelled out: the regex engine scans this form
# several times faster than ``\d{7}|\d{3}[- ]\d{4}`` (it matches the same texts).
_MAYBE_PII = re.compile(r"\d\d\d[- ]?\d{4}")


def mask_pii(text: str) -> str:
    """Replace personal numbers with placeholders; expects half-width digits (normalise first)."""
    if "@" not in text and not _MAYBE_PII.search(text):
        return text
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text
