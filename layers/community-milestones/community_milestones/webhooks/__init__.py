"""Webhook deliveries from Returning.AI: authentication and parsing."""

from community_milestones.webhooks.auth import SharedKeyVerifier
from community_milestones.webhooks.deliveries import Delivery, parse_delivery

__all__ = ["Delivery", "SharedKeyVerifier", "parse_delivery"]
