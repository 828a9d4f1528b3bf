"""Logging that never writes an unmasked phone, ID-card or bank-card number.

A log-record factory masks every record of the process at creation, whatever logger made it
(uvicorn, FastAPI, a library's exception message): safer than trusting each call site.
"""

from __future__ import annotations

import logging
import re

from chuishao.pipeline.privacy import mask_pii_raw

# Percent-encoded digits and separators, as in a logged query string (?phone=%31%33%38...).
_ENCODED = re.compile(r"%(3[0-9]|2[0BDEbde])")


def mask_for_log(text: str) -> str:
    if "%" in text:  # decode them, or an encoded number slips past the patterns
        text = _ENCODED.sub(lambda m: chr(int(m.group(1), 16)), text)
    return mask_pii_raw(text)


def install_pii_masking() -> None:
    """Idempotent: wraps the current record factory once."""
    old = logging.getLogRecordFactory()
    if getattr(old, "_chuishao_masking", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old(*args, **kwargs)
        if isinstance(record.args, tuple) and record.args:
            # Mask arguments in place first: uvicorn's access formatter unpacks record.args.
            record.args = tuple(mask_for_log(a) if isinstance(a, str) else a for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logged as is
            return record
        masked = mask_for_log(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_for_log(logging.Formatter().formatException(record.exc_info))
        return record

    factory._chuishao_masking = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
