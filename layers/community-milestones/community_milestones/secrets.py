"""Secrets read from Secrets Manager through Powertools' parameters utility, cached in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from community_milestones.errors import SecretUnavailable

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretValue:
    """One secret's current string value, cached for `max_age` seconds.

    Call it with `refresh=True` to bypass the cache, e.g. after the platform refused a key
    that may have been rotated. The value itself is never logged nor put in an error.
    """

    def __init__(self, secret_id: str, *, max_age: int = 300, client: SecretsManagerClient | None = None) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._provider = SecretsProvider(boto3_client=client)

    def __call__(self, *, refresh: bool = False) -> str:
        try:
            value = self._provider.get(self._secret_id, max_age=self._max_age, force_fetch=refresh)
        except GetParameterError as exc:
            raise SecretUnavailable(
                f"cannot read the secret {self._secret_id} ({type(exc.__cause__ or exc.__context__).__name__})"
            ) from None
        if not isinstance(value, str) or not value.strip():
            raise SecretUnavailable(f"the secret {self._secret_id} holds no text value")
        return value.strip()
