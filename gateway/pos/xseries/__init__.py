"""Lightspeed Retail X-Series (formerly Vend): client and models."""

from gateway.pos.xseries.client import Adjustment, Page, XSeriesClient

__all__ = ["Adjustment", "Page", "XSeriesClient"]
