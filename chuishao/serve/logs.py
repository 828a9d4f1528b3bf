"""Logging that never writes an unmasked phone, ID-card or bank-card number.

A log-record factory masks every record of the process at creation, whatever logger made it
(uvicorn, FastAPI, a library's exception message): safer than trusting each call site. The access
log gets a filter too (``QueryStringMask``): a query string is decoded as a URL is (``+`` is a
space, ``%E2%80%8B`` a zero-width space, ``%EF%BC%91`` a full-width 1) before it is masked.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, unquote_plus

from chuishao.pipeline.privacy import mask_pii_raw

# Percent-encoded bytes, as in a logged URL (?phone=%31%33%38...).
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def mask_for_log(text: str) -> str:
    """The text masked; percent-encoded bytes are decoded first, or an encoded number slips past
    the patterns. A text without personal data comes back as it was."""
    if "%" in text and _ENCODED.search(text):
        decoded = unquote(text, errors="replace")
        masked = mask_pii_raw(decoded)
        return text if masked == decoded else masked
    return mask_pii_raw(text)


def mask_query(target: str) -> str:
    """A request target (path and query string) with the query decoded and masked if it holds
    personal data; left as is otherwise."""
    path, sep, query = target.partition("?")
    if not sep:
        return mask_for_log(target)
    decoded = unquote_plus(query, errors="replace")
    masked = mask_pii_raw(decoded)
    return f"{mask_for_log(path)}?{masked if masked != decoded else query}"


class QueryStringMask(logging.Filter):
    """Masks the query string of uvicorn's access-log records (their third argument is the target)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], mask_query(args[2]), *args[3:])
        return True


def install_access_log_masking() -> None:
    """Idempotent: the filter on uvicorn's access logger (``chuishao serve`` also names it in its
    logging configuration)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QueryStringMask) for f in access.filters):
        access.addFilter(QueryStringMask())


def install_pii_masking() -> None:
    """Idempotent: wraps the current record factory once, and filters the access log."""
    install_access_log_masking()
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
