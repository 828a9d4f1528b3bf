"""The secret that keys the stored form of message ids holding personal data (privacy.pseudonymise_id).

``CHUISHAO_ID_KEY`` when set (one secret for every host writing to one database), else a random key
made once in the user data directory (``id-key``, mode 0600). Not stored in the database: with the
key beside the hashes, a leaked database could be matched against every phone number."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from chuishao.errors import ChuishaoError
from chuishao.serve.settings import ServeSettings, data_dir


def default_key_file() -> Path:
    return data_dir() / "id-key"


def load_key(secret: str | None = None, path: Path | None = None) -> bytes:
    """The key: ``secret`` (or CHUISHAO_ID_KEY), else the key file, made on first use. Two
    processes making it at once end with one key: it is linked into place, never overwritten."""
    secret = secret if secret is not None else os.environ.get("CHUISHAO_ID_KEY")
    if secret:
        return secret.encode()
    path = path or default_key_file()
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it first: its key is the key
                pass
            finally:
                tmp.unlink()
        except OSError as exc:
            raise ChuishaoError(f"cannot make the message-id key {path}: {exc}; set CHUISHAO_ID_KEY "
                                "(or CHUISHAO_ID_KEY_FILE) instead") from exc
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChuishaoError(f"cannot read the message-id key {path}: {exc}") from exc
    if not key:
        raise ChuishaoError(f"the message-id key file {path} is empty: delete it to make a new key (ids stored "
                            "with the old one no longer group with new ones) or restore it")
    return key.encode()


def key_of(settings: ServeSettings) -> bytes:
    return load_key(settings.id_key.get_secret_value() if settings.id_key is not None else None, settings.id_key_file)
