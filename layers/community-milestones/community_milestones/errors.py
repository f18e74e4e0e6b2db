"""Errors raised by the community milestones package.

The hierarchy lets callers catch by kind::

    MilestonesError
    ├── ConfigurationError          a setting, secret or rules file is unusable; fix it, then redeploy or retry
    │   ├── RulesError              the rules file is invalid
    │   └── SecretUnavailable       a secret cannot be read or is empty; worth retrying once it is fixed
    ├── DeliveryError               a webhook delivery was refused (maps to a 4xx)
    │   ├── DeliveryUnauthorized    the shared key is missing or wrong (401)
    │   ├── MalformedDelivery       the body cannot be used (400)
    │   └── DeliveryTooLarge        the body is too large to be a delivery (413)
    ├── EvaluationDeferred          an evaluation was not attempted in this invocation; it waits on the queue
    │   ├── OutOfTime               too little of the invocation was left
    │   └── KeyRefusedInBatch       the API key was refused earlier in the batch
    └── PlatformError               a call to the Returning.AI API failed
        ├── PlatformAuthError       401 or 403: the API key is invalid, expired or lacks a permission
        ├── PlatformRequestRejected 400: the platform refused the request as sent
        ├── MemberNotFound          404: the platform does not know the member
        ├── PlatformUnavailable     429, 5xx or a network failure: worth retrying later
        └── ContractViolation       a response that breaks the documented contract

`retryable` tells a worker whether trying the same work again can succeed.
"""

from __future__ import annotations

from pydantic import ValidationError


class MilestonesError(Exception):
    """Base class of every error this package raises."""

    retryable: bool = False


class ConfigurationError(MilestonesError):
    """A setting, secret or rules file is missing or invalid."""


class RulesError(ConfigurationError):
    """The milestone rules file cannot be used."""


class SecretUnavailable(ConfigurationError):
    """A secret cannot be read, or holds nothing usable."""

    # Secrets Manager may be throttling, or the operator may be filling the secret in.
    retryable = True


class DeliveryError(MilestonesError):
    """A webhook delivery was refused."""

    status_code: int = 400


class DeliveryUnauthorized(DeliveryError):
    """The delivery did not carry the shared webhook key."""

    status_code = 401


class MalformedDelivery(DeliveryError):
    """The delivery body cannot be turned into work."""

    status_code = 400


class DeliveryTooLarge(DeliveryError):
    """The delivery body is larger than any delivery the platform sends."""

    status_code = 413


class EvaluationDeferred(MilestonesError):
    """An evaluation was not attempted in this invocation and waits on the queue for the next one."""

    retryable = True


class OutOfTime(EvaluationDeferred):
    """Too little of the invocation was left for another platform call."""


class KeyRefusedInBatch(EvaluationDeferred):
    """The platform refused the API key earlier in the batch, so the rest of the batch does not call it."""


class PlatformError(MilestonesError):
    """A call to the Returning.AI API failed."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class PlatformAuthError(PlatformError):
    """The API key was refused (401) or lacks a permission (403)."""

    # The key may be rotated in Secrets Manager while the work waits in the queue.
    retryable = True


class PlatformRequestRejected(PlatformError):
    """The platform answered 400: the request as configured cannot succeed."""


class MemberNotFound(PlatformError):
    """The platform does not know the member (404)."""


class PlatformUnavailable(PlatformError):
    """Rate limited, a server error or a network failure: worth retrying later."""

    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class ContractViolation(PlatformError):
    """A platform response that breaks the documented contract."""


def describe(exc: ValidationError) -> str:
    """Where and why validation failed, one clause per error, without the rejected values."""
    return "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors())
