"""The gateway's tables. Money columns are ``Numeric``; secrets are stored encrypted or hashed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Points(TypeDecorator[Decimal]):
    """Exact decimals as integers of 1/100000: SQLite would keep NUMERIC as a float, and
    integer sums (the ledger's balances) are exact on every backend."""

    impl = BigInteger
    cache_ok = True
    SCALE = Decimal(100000)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        units = value * self.SCALE
        if units != units.to_integral_value():
            raise ValueError(f"{value} has more than five decimal places")
        return int(units)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value) / self.SCALE


class MerchantRow(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    points_source: Mapped[str] = mapped_column(String(16))
    points_label: Mapped[str] = mapped_column(String(40), default="Points")
    # Earning ratio for merchants whose balance is the gateway's ledger (no X-Series config).
    loyalty_ratio: Mapped[Decimal | None] = mapped_column(Points(), nullable=True)
    # What redeemed points do when their order or sale is voided: RETURN or KEEP.
    redeemed_points_on_void: Mapped[str] = mapped_column(
        String(16), default="RETURN", server_default="RETURN"
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PosCredentialRow(Base):
    """How the gateway reaches one POS account of a merchant; tokens Fernet-encrypted."""

    __tablename__ = "pos_credentials"
    __table_args__ = (UniqueConstraint("merchant_id", "pos"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    pos: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(String(500))
    # None once disconnected: the tokens are forgotten, the connection's history kept.
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # CONNECTED, RECONNECT_NEEDED (refresh refused, token revoked, scope missing) or
    # DISCONNECTED, and why, in words an operator can act on.
    status: Mapped[str] = mapped_column(String(24), default="CONNECTED", server_default="CONNECTED")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # POS-specific settings that are not secret (Kounta company id, payment method id ...).
    account_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    # The Authorization header the POS sends with its webhooks (encrypted).
    webhook_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class InviteRow(Base):
    """A one-time link a merchant connects its POS with (``/connect/{invite}``)."""

    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class OAuthStateRow(Base):
    """An OAuth ``state`` handed to a POS's consent page: single use, expiring, bound to
    the invite it was started from."""

    __tablename__ = "oauth_states"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invite_id: Mapped[str] = mapped_column(ForeignKey("invites.id", ondelete="CASCADE"))
    pos: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class IdempotencyRow(Base):
    """One operation per (merchant, key): its input fingerprint, progress and first result.

    Whoever works on it holds the lease named after it (``store/leases.py``)."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_unfinished", "status", "updated_at"),)

    merchant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # What an interrupted attempt had reached, so a retry can reconcile instead of redo.
    checkpoint_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PosWriteRow(Base):
    """A write to a POS that is not idempotent, recorded before it is sent: until its
    answer (or a read-back after the settle window) says whether it landed, nothing else
    the gateway does may write to its target (docs/architecture.md, "Settling")."""

    __tablename__ = "pos_writes"
    __table_args__ = (
        Index("ix_pos_writes_owner", "merchant_id", "owner"),
        Index("ix_pos_writes_status", "status", "sent_at"),
        Index("ix_pos_writes_follow_up", "follow_up", "follow_up_at"),
        # At most one unsettled write per order or sale, whoever sends it.
        Index(
            "uq_pos_writes_pending_target",
            "target",
            unique=True,
            sqlite_where=text("status = 'PENDING'"),
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    # The idempotency key of the operation that sent it.
    owner: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    # How to recognise it on a read-back (a payment ref, the payments before, a source id).
    intent_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    outcome_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # What is left to do once it landed, and when to look next (the worker): "rule5" for a
    # loyalty payment on a sale that was still open (services/pay_with_loyalty.py).
    follow_up: Mapped[str | None] = mapped_column(String(16), nullable=True)
    follow_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LockRow(Base):
    """A named lease: held by ``owner`` until ``expires_at`` (``store/leases.py``)."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RewardRow(Base):
    __tablename__ = "rewards"

    merchant_id: Mapped[str] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    terms: Mapped[str | None] = mapped_column(Text, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    points_required: Mapped[Decimal] = mapped_column(Points())
    value: Mapped[Decimal] = mapped_column(Points())
    variable_quantity: Mapped[bool] = mapped_column(Boolean, default=False)
    action_label: Mapped[str] = mapped_column(String(40), default="Redeem")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LedgerEntryRow(Base):
    """Append-only: a balance is the sum of its member's entries."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_ledger_entries_member", "merchant_id", "member_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    member_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Points())
    key: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ActivityRow(Base):
    """One movement of a member's balance, made or seen by the gateway, once (by its key)."""

    __tablename__ = "loyalty_activity"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_loyalty_activity_member", "merchant_id", "member_id", "occurred_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    member_id: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[Decimal] = mapped_column(Points())
    balance_after: Mapped[Decimal | None] = mapped_column(Points(), nullable=True)
    pos: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sale_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reward_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text)


class RedemptionRow(Base):
    """A reward redeemed on an order or sale, and how far it got (docs/architecture.md,
    "The flows")."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_redemptions_unfinished", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(512))
    reward_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str] = mapped_column(String(100))
    target_pos: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[Decimal | None] = mapped_column(Points(), nullable=True)
    points: Mapped[Decimal] = mapped_column(Points())
    amount: Mapped[Decimal] = mapped_column(Points())
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Refused tries at giving back (each next one is a new adjustment: a refused one is
    # final at X-Series, and replaying it would answer its refusal again).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the redemption looked like in its request, to resume it exactly (JSON).
    request_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TakeBackRow(Base):
    """Points to take from a balance that never goes below zero (a refund's share of what an
    order earned; what a POS gave back on a void the merchant keeps), written with what will
    be taken before it is taken, so a crash resumes the same take-back (docs/architecture.md,
    "The life of a sale")."""

    __tablename__ = "take_backs"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_take_backs_sale", "merchant_id", "pos", "sale_id"),
        Index("ix_take_backs_pending", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    member_id: Mapped[str] = mapped_column(String(100))
    pos: Mapped[str] = mapped_column(String(16))
    sale_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    wanted: Mapped[Decimal] = mapped_column(Points())
    taken: Mapped[Decimal] = mapped_column(Points())
    shortfall: Mapped[Decimal] = mapped_column(Points())
    # Refused tries (the balance fell meanwhile): each next one is a new movement key.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SyncCheckpointRow(Base):
    """How far reconciliation has read a merchant's POS: changes up to ``position`` are
    applied (docs/architecture.md, "Reconciliation")."""

    __tablename__ = "sync_checkpoints"

    merchant_id: Mapped[str] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True
    )
    pos: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WorkerPassRow(Base):
    """When the recovery worker last finished a pass (``gateway doctor`` reads it): one row
    per worker kind, overwritten each pass, so its age is the worker's lag."""

    __tablename__ = "worker_passes"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The loop's pace, so a reader knows when the next pass is overdue (None: ``--once``).
    interval_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    reconciled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
