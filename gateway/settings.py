"""Settings from the environment (prefix ``GATEWAY_``), one object for the whole process.

Secrets are ``SecretStr`` so that a stray ``repr`` or log line shows ``**********``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite+aiosqlite:///./gateway.db"
    cache_url: str = "memory://"
    secret_key: SecretStr | None = None
    public_url: str | None = None
    kounta_addon_token: SecretStr | None = None
    kounta_client_id: str = "gateway-sandbox"
    kounta_client_secret: SecretStr = SecretStr("gateway-sandbox-secret")
    log_level: str = "INFO"
    log_json: bool = True

    # Upstream HTTP behaviour (pos/http.py).
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0)
    upstream_read_timeout_s: float = Field(default=10.0, gt=0)
    upstream_max_retries: int = Field(default=3, ge=0)
    upstream_backoff_base_s: float = Field(default=0.2, ge=0)
    upstream_backoff_max_s: float = Field(default=2.0, ge=0)
    upstream_max_retry_after_s: float = Field(default=10.0, ge=0)
    upstream_breaker_failures: int = Field(default=5, ge=1)
    upstream_breaker_reset_s: float = Field(default=15.0, gt=0)
    upstream_max_connections: int = Field(default=100, ge=1)

    # Cache TTLs (seconds) for upstream reference data.
    cache_ttl_config_s: int = 60
    cache_ttl_catalog_s: int = 300

    # GraphQL limits.
    graphql_max_depth: int = 10
    graphql_max_aliases: int = 30

    # Kounta offers (signed redeem URLs) stay valid this long.
    offer_ttl_s: int = 3600

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @cached_property
    def secret_key_bytes(self) -> bytes:
        """The master secret; everything keyed (encryption, offer signatures) derives from it."""
        if self.secret_key is None or not self.secret_key.get_secret_value():
            raise MissingSecretKey
        return self.secret_key.get_secret_value().encode()


class MissingSecretKey(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "GATEWAY_SECRET_KEY is not set: it encrypts stored POS tokens and signs offers. "
            'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
