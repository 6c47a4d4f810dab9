"""Settings from the environment (prefix ``GATEWAY_``), one object for the whole process.

Secrets are ``SecretStr`` so that a stray ``repr`` or log line shows ``**********``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
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
    # Where the secret key is kept instead, when it is not in the environment (the demo).
    secret_key_file: Path | None = None
    # Keys retired by a rotation (docs/operations.md, "Rotating GATEWAY_SECRET_KEY"),
    # comma-separated: still read (stored tokens, signed links and cursors), never written.
    previous_secret_keys: SecretStr | None = None
    public_url: str | None = None
    kounta_addon_token: SecretStr | None = None
    # The gateway's OAuth apps at each POS (defaults: the sandboxes' development app).
    kounta_client_id: str = "gateway-sandbox"
    kounta_client_secret: SecretStr = SecretStr("gateway-sandbox-secret")
    kounta_authorize_url: str = "https://my.kounta.com/authorize"
    kounta_api_url: str = "https://api.kounta.com"
    xseries_client_id: str = "gateway-sandbox"
    xseries_client_secret: SecretStr = SecretStr("gateway-sandbox-secret")
    xseries_connect_url: str = "https://secure.retail.lightspeed.app/connect"
    # A store's API: {domain_prefix} is the store's, from the consent's callback; an address
    # without it is used as it is (a sandbox).
    xseries_api_url: str = "https://{domain_prefix}.retail.lightspeed.app"
    # How long a connect link (``gateway merchants invite``) and an OAuth state stay good.
    invite_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    oauth_state_ttl_s: int = Field(default=15 * 60, gt=0)
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
    # The share of each POS rate window (pos/budget.py) kept for calls a caller waits on:
    # background work (the worker, webhook registration, earnings) stops when less is left.
    upstream_budget_reserve: float = Field(default=0.2, ge=0, lt=1)

    # Exactly once (docs/architecture.md, "Settling" and "Leases"). A write whose answer
    # was lost is read back only once this long has passed since it was sent: real POS
    # servers finish a request whose client went away, so it may land late.
    upstream_settle_s: float = Field(default=60.0, ge=0)
    # How long an operation may go without proving it is alive before another may take
    # over (a crashed process's work is resumed after this).
    lease_s: float = Field(default=30.0, gt=0)
    # The recovery loop (``gateway worker``) also runs inside ``gateway serve``; turn it off
    # there when a separate worker process runs.
    worker_in_process: bool = True
    worker_interval_s: float = Field(default=10.0, gt=0)
    # Reconciliation (docs/architecture.md, "Reconciliation"): how often the worker asks each
    # POS what changed since its checkpoint, and how far back it ever looks (an order or sale
    # changed longer ago than this, with every webhook lost, is not looked at again).
    reconcile_interval_s: float = Field(default=300.0, gt=0)
    reconcile_lookback_s: float = Field(default=3 * 24 * 3600.0, gt=0)

    # How long a caller is kept waiting, end to end (gateway/deadline.py). Kounta's POS
    # waits on the adapters while staff and a customer stand at the counter; past about
    # 8 s a cashier gives up or retries, so an honest "try again" is better than a hang.
    # GraphQL callers are frontends with their own spinners: a little longer.
    kounta_deadline_s: float = Field(default=8.0, gt=0)
    graphql_deadline_s: float = Field(default=10.0, gt=0)

    # Requests: the largest body read (JSON, forms) and how deeply JSON may nest. The
    # depth has a ceiling because Python's own JSON parser recurses once per level.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=256)

    # Test-only fault hook (gateway/faults.py): the process dies at this named step.
    # Refused in production.
    crash_at: str | None = None

    # Cache TTLs (seconds) for upstream reference data.
    cache_ttl_config_s: int = 60
    cache_ttl_catalog_s: int = 300
    # How long a customer read from X-Series (their balance) may be shown from the cache
    # (docs/architecture.md, "Caching and freshness"): the gateway's own writes and the
    # POS's webhooks forget it at once; this bounds how late a change made at the till
    # shows when its webhook is lost. Decisions (redeeming, paying, the rewards offered)
    # never read it.
    cache_ttl_customer_s: float = Field(default=30.0, gt=0, le=3600)

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

    @model_validator(mode="after")
    def _no_crash_hook_in_production(self) -> Settings:
        if self.crash_at and self.is_production:
            raise ValueError("GATEWAY_CRASH_AT is a test-only fault hook: not in production")
        return self

    @cached_property
    def secret_key_bytes(self) -> bytes:
        """The master secret; everything keyed (encryption, offer signatures) derives from it."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value().encode()
        if self.secret_key_file is not None:
            try:
                key = self.secret_key_file.read_text().strip()
            except OSError as exc:
                raise MissingSecretKey(
                    f"cannot read {self.secret_key_file}: {exc.strerror}"
                ) from None
            if key:
                return key.encode()
        raise MissingSecretKey

    @cached_property
    def previous_secret_keys_bytes(self) -> tuple[bytes, ...]:
        """The retired keys, newest first as listed; what they signed or encrypted is still
        accepted, so a rotation never strands a stored token or a link in flight."""
        if self.previous_secret_keys is None:
            return ()
        listed = self.previous_secret_keys.get_secret_value().split(",")
        return tuple(key.strip().encode() for key in listed if key.strip())

    @cached_property
    def secret_keys_bytes(self) -> tuple[bytes, ...]:
        """Every key that may be read with: the current one first (the only one written)."""
        return (self.secret_key_bytes, *self.previous_secret_keys_bytes)


class MissingSecretKey(RuntimeError):
    def __init__(self, why: str = "GATEWAY_SECRET_KEY is not set") -> None:
        super().__init__(
            f"{why}: it encrypts stored POS tokens and signs offers. Set GATEWAY_SECRET_KEY "
            "(or GATEWAY_SECRET_KEY_FILE, a file holding it); generate one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
