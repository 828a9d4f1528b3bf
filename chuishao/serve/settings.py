"""Service settings, read from ``CHUISHAO_*`` environment variables (or a .env file).

Secrets (API keys) come only from the environment or a secrets manager that fills it: they are
never defaults, never logged and never echoed by an endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHUISHAO_", env_file=".env", extra="ignore")

    model_dir: Path | None = Field(None, description="model directory; None serves the bundled default model")
    taxonomy: Path | None = Field(None, description="route with this taxonomy YAML (edited names and departments; "
                                  "codes must be the model's); re-read when the model is reloaded")
    db_url: str = Field("sqlite:///chuishao-feedback.sqlite3", description="SQLAlchemy URL of the feedback store")
    # NoDecode: "k1,k2" in the environment, not JSON.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="keys accepted in X-API-Key; comma-separated in CHUISHAO_API_KEYS")
    classify_requires_key: bool = Field(False, description="also require a key for /v1/classify*")
    max_text_chars: int = Field(20_000, ge=1, description="longer texts are refused with 422")
    max_title_chars: int = Field(500, ge=1)
    max_batch: int = Field(64, ge=1, description="items accepted by /v1/classify/batch")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="larger request bodies get 413")
    micro_batch: int = Field(32, ge=1, description="concurrent single requests scored together, at most")
    model_poll_seconds: float = Field(10.0, ge=0, description="check the model directory for a new version; 0: never")

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
