"""What an order or sale's points become after it is refunded, voided, rejected or deleted
(docs/architecture.md, "The life of a sale"). Pure arithmetic: the services read the POS and
the history, and these say how many points move.

Reversals are cumulative targets, not events: each time the order is seen, what it should
have given back by now is worked out from its state alone, and only the part not given back
yet moves. So an event reported five times, or seen by a webhook and by the poll, moves once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.domain.merchant import VoidPolicy
from gateway.domain.money import ZERO, round_money


def reversal_target(earned: Decimal, refunded: Decimal, total: Decimal, *, gone: bool) -> Decimal:
    """How much of what an order earned it gives back in all: everything when it is gone
    (rejected, deleted) or refunded in full; else in proportion of the refund to the order's
    total (tax included), half-up to the cent; never more than it earned, never below 0."""
    if earned <= 0:
        return ZERO
    if gone or refunded >= total or total <= 0:
        return earned
    if refunded <= 0:
        return ZERO
    return min(earned, round_money(earned * refunded / total))


@dataclass(frozen=True)
class Take:
    """A take-back against a balance that never goes below zero: what is taken, and what
    could not be (already spent), which the history tells."""

    taken: Decimal
    shortfall: Decimal


def take(wanted: Decimal, balance: Decimal) -> Take:
    taken = max(ZERO, min(wanted, balance))
    return Take(taken, wanted - taken)


def redeemed_to_give(
    policy: VoidPolicy, redeemed_net: Decimal, returned_by_pos: Decimal
) -> Decimal:
    """What the gateway gives back (or, negative, takes back) for what was redeemed on a
    voided, rejected or deleted order or sale.

    ``redeemed_net``: the points the gateway's redemptions took from the balance on it, net
    of what they gave back themselves (a reward not applied) and of top-ups (a top-up is
    negative here). ``returned_by_pos``: what the POS put back by itself on the void (X-Series
    returns its loyalty payments, docs/pos-contracts.md). ``RETURN`` ends with the customer
    as before the redemptions; ``KEEP`` with the points still spent."""
    if policy is VoidPolicy.RETURN:
        return redeemed_net
    return -returned_by_pos
