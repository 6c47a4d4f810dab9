"""Reading a customer's loyalty history (``Customer.activity``): newest first, by pages
whose cursors stay valid while new movements arrive (``domain/cursors.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain import cursors
from gateway.domain.activity import Activity
from gateway.domain.customers import Customer
from gateway.domain.errors import ValidationError
from gateway.runtime import Runtime
from gateway.services import members
from gateway.services.context import Scope
from gateway.store import activity as store
from gateway.store.crypto import derive_keys

MAX_PAGE = 100  # README, "GraphQL": ``first`` is capped


@dataclass(frozen=True)
class Entry:
    cursor: str
    activity: Activity


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    has_next: bool
    member_id: str | None  # None: the customer holds no balance here, so has no history


def check_first(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise ValidationError(f"first must be between 1 and {MAX_PAGE}", field="first")
    return first


def cursor_keys(runtime: Runtime) -> tuple[bytes, ...]:
    """The current key first; the others read cursors handed out before a key rotation."""
    return derive_keys(runtime.settings.secret_keys_bytes, "gateway/activity-cursors/v1")


async def member_id_of(scope: Scope, customer: Customer) -> str | None:
    """Whose history a customer sees: their member's (a linked Kounta customer sees the
    X-Series balance's); None for a customer who is no member."""
    try:
        return (await members.member_of(scope, customer)).id
    except ValidationError:
        return None


async def page(scope: Scope, customer: Customer, *, first: int, after: str | None) -> Page:
    first = check_first(first)
    member_id = await member_id_of(scope, customer)
    key, *previous = cursor_keys(scope.runtime)
    owner = _owner(scope, member_id or "")
    place = None if after is None else cursors.decode(key, owner, after, "after", previous=previous)
    if member_id is None:
        return Page([], False, None)
    async with scope.runtime.db.read() as session:
        found, more = await store.page(
            session, scope.merchant.id, member_id, first=first, after=place
        )
    entries = [Entry(cursors.encode(key, owner, a.occurred_at, a.id), a) for a in found]
    return Page(entries, more, member_id)


async def count(scope: Scope, member_id: str) -> int:
    async with scope.runtime.db.read() as session:
        return await store.count(session, scope.merchant.id, member_id)


async def get_activity(scope: Scope, activity_id: str) -> Activity | None:
    async with scope.runtime.db.read() as session:
        return await store.get(session, scope.merchant.id, activity_id)


def _owner(scope: Scope, member_id: str) -> str:
    return f"{scope.merchant.id}:{member_id}"
