"""Authentication of webhook deliveries by the shared key the platform sends."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from community_milestones.errors import DeliveryUnauthorized

SHARED_KEY_HEADER = "x-api-key"


class SharedKeyVerifier:
    """Checks the `x-api-key` header against the webhook key, in constant time.

    Parameters:
        key: returns the current webhook key (read from Secrets Manager and cached by the caller).
    """

    def __init__(self, key: Callable[[], str]) -> None:
        self._key = key

    def verify(self, headers: Mapping[str, str]) -> None:
        """Accept the delivery or raise `DeliveryUnauthorized`; header names are matched case-insensitively."""
        provided = next((value for name, value in headers.items() if name.lower() == SHARED_KEY_HEADER), None)
        if not provided:
            raise DeliveryUnauthorized(f"the {SHARED_KEY_HEADER} header is missing")

        expected = self._key()
        if not expected or not hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8")):
            raise DeliveryUnauthorized(f"the {SHARED_KEY_HEADER} header does not match the webhook key")
