"""The bodies the Kounta URLs answer with, as models: the adapters (``gateway/api/kounta.py``)
build every answer from these, and the published contract
(``schema/kounta-adapters.openapi.json``, ``gateway/api/kounta_openapi.py``) is generated
from them, so the two cannot say different things.

Every model forbids extra members, so the contract is exact: a field added to an answer
without being added here fails validation in the tests before a POS ever sees it. The
spelling choices themselves (a number for ``points_required``, a string for
``current_points``) are explained in ``gateway/api/kounta.py`` and docs/pos-contracts.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

# A JSON number written from a Decimal's exact text (``gateway/jsonx.py``), never a string.
JsonNumber = Annotated[Decimal, WithJsonSchema({"type": "number", "minimum": 0})]
# Two places, never negative: what the member can spend (``current_points``).
PointsText = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]{2}$")]


class KountaAnswer(BaseModel):
    """An answer body; exact (no extra members), every member required."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    def body(self) -> dict[str, Any]:
        """The answer for ``jsonx.dumps``, Decimals kept as they are (exact number text)."""
        return self.model_dump(mode="python")


class KountaReward(KountaAnswer):
    """A reward the member can redeem now; ``redeem_url`` carries a signed offer."""

    id: str
    title: str
    terms: str
    points_required: JsonNumber
    points_label: str
    action_label: str
    variable_quantity: bool
    redeem_url: str


class KountaMember(KountaAnswer):
    """One member: the reward lookup's whole answer, and each entry of the search's map."""

    id: str
    first_name: str
    last_name: str
    email_address: str
    current_points: PointsText
    points_label: str
    intro_text: str
    params: dict[str, str]
    rewards: list[KountaReward]


class KountaMembers(KountaAnswer):
    """The customer search: members keyed by their id (empty when none matched)."""

    members: dict[str, KountaMember]


class RedeemDone(KountaAnswer):
    success: Literal[True] = True


class RedeemRefused(KountaAnswer):
    """Nothing was redeemed (or it was given back); ``error`` is shown to the cashier."""

    success: Literal[False] = False
    error: str


class KountaError(KountaAnswer):
    """Any other refusal (bad token, unknown company, bad parameter, POS unavailable)."""

    error: str
