"""Lightspeed Retail X-Series (formerly Vend): client and models."""

from gateway.pos.xseries.client import Adjustment, Page, XSeriesClient
from gateway.pos.xseries.models import AdjustmentApplied, AdjustmentOutcome, AdjustmentRefused

__all__ = [
    "Adjustment",
    "AdjustmentApplied",
    "AdjustmentOutcome",
    "AdjustmentRefused",
    "Page",
    "XSeriesClient",
]
