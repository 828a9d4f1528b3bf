"""Service settings, read from ``CHUISHAO_*`` environment variables (or a .env file).

Secrets (API keys) come only from the environment or a secrets manager that fills it: they are
never defaults, never logged and never echoed by an endpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def data_dir() -> Path:
    """The per-user data directory of chuishao (platformdirs' user_data_dir; XDG_DATA_HOME or
    ~/.local/share/chuishao without platformdirs)."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "chuishao"
    return Path(platformdirs.user_data_dir("chuishao", appauthor=False))


def default_db_url() -> str:
    return f"sqlite:///{data_dir() / 'feedback.sqlite3'}"


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHUISHAO_", env_file=".env", extra="ignore")

    model_dir: Path | None = Field(None, description="model directory; None serves the bundled default model")
    taxonomy: Path | None = Field(None, description="route with this taxonomy YAML (edited names and departments; "
                                  "codes must be the model's); re-read when the model is reloaded")
    gazetteer: str | None = Field(None, description="the city's places (YAML) for each answer's jurisdiction; None: the "
                                  "bundled example; none: no place extraction; re-read when the model is reloaded")
    db_url: str = Field(default_factory=default_db_url,
                        description="SQLAlchemy URL of the feedback store; default: feedback.sqlite3 in the user data directory")
    events_config: Path | None = Field(None, description="events config YAML for /v1/similar (threshold, window_days, "
                                       "whistle_size, ...: the keys of chuishao events --config); default: the defaults")
    similar_retention_days: float = Field(30.0, gt=0, description="recent reports older than this are dropped")
    # NoDecode: "k1,k2" in the environment, not JSON.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="keys accepted in X-API-Key; comma-separated in CHUISHAO_API_KEYS")
    classify_requires_key: bool = Field(False, description="also require a key for /v1/classify*")
    id_key: SecretStr | None = Field(None, description="secret keying the stored form of message ids that hold "
                                     "personal data (a phone number as id); default: a key made once in id_key_file")
    id_key_file: Path | None = Field(None, description="where the message-id key is made and kept; default: id-key in "
                                     "the user data directory")
    max_text_chars: int = Field(20_000, ge=1, description="longer texts are refused with 422")
    max_title_chars: int = Field(500, ge=1)
    max_batch: int = Field(64, ge=1, description="items accepted by /v1/classify/batch")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="larger request bodies get 413")
    micro_batch: int = Field(32, ge=1, description="concurrent single requests scored together, at most")
    model_poll_seconds: float = Field(10.0, ge=0, description="check the model directory for a new version; 0: never")
    model_fallback_dir: Path | None = Field(
        None, description="verified copies of the model in service (set by chuishao serve): a worker starts on the "
                          "latest one when the model directory does not load")
    worker_start_timeout: int = Field(60, ge=1, description="seconds a new worker may take to load before uvicorn "
                                      "gives up on it (a SIGHUP replacement is then aborted)")
    max_queue: int = Field(512, ge=1, description="messages waiting for or in scoring per worker; more get 503")
    auth_max_failures: int = Field(10, ge=1, description="wrong API keys from one client address before a lockout")
    auth_lockout_seconds: float = Field(60.0, gt=0, description="how long a client that sent too many wrong keys "
                                        "gets 429 (the failures are counted over the same period)")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    def key_ok(self, given: str | None) -> bool:
        import hmac

        if not given:
            return False
        return any(hmac.compare_digest(given.encode(), k.get_secret_value().encode()) for k in self.api_keys)
