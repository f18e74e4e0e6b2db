"""SecretValue against an in-process Secrets Manager (moto): reading, caching, refreshing and failing safely."""

from __future__ import annotations

import boto3
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from community_milestones.errors import ConfigurationError
from community_milestones.secrets import SecretValue

FIRST_KEY = "rai_first_5c1e0d9a8b7f6e5d4c3b"
SECOND_KEY = "rai_second_a1b2c3d4e5f60718293a"


@pytest.fixture
def secretsmanager(aws: None) -> SecretsManagerClient:
    """Secrets Manager in moto's in-process mock (see the `aws` fixture)."""
    return boto3.client("secretsmanager", region_name="us-east-1")


def create_secret(client: SecretsManagerClient, name: str, value: str) -> str:
    return client.create_secret(Name=name, SecretString=value)["ARN"]


def test_reads_the_value(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret holding the platform key
    arn = create_secret(secretsmanager, "community-milestones/platform-key", FIRST_KEY)

    # WHEN it is read
    value = SecretValue(arn)()

    # THEN the key comes back
    assert value == FIRST_KEY


def test_reads_by_name_with_an_injected_client(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret and a client built by the caller
    create_secret(secretsmanager, "community-milestones/webhook-key", FIRST_KEY)

    # WHEN it is read by name through that client
    value = SecretValue("community-milestones/webhook-key", client=secretsmanager)()

    # THEN the key comes back
    assert value == FIRST_KEY


def test_surrounding_whitespace_is_dropped(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a key pasted with a trailing newline
    arn = create_secret(secretsmanager, "community-milestones/platform-key", f"  {FIRST_KEY}\n")

    # WHEN it is read
    value = SecretValue(arn)()

    # THEN it is usable in a header as it is
    assert value == FIRST_KEY


def test_value_is_cached_within_max_age(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret read once through a five-minute cache
    arn = create_secret(secretsmanager, "community-milestones/platform-key", FIRST_KEY)
    secret = SecretValue(arn, max_age=300)
    assert secret() == FIRST_KEY

    # WHEN the secret is rotated and read again
    secretsmanager.put_secret_value(SecretId=arn, SecretString=SECOND_KEY)
    value = secret()

    # THEN the cached value is returned
    assert value == FIRST_KEY


def test_refresh_returns_the_new_value_and_caches_it(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a cached secret that has since been rotated
    arn = create_secret(secretsmanager, "community-milestones/platform-key", FIRST_KEY)
    secret = SecretValue(arn, max_age=300)
    assert secret() == FIRST_KEY
    secretsmanager.put_secret_value(SecretId=arn, SecretString=SECOND_KEY)

    # WHEN it is read with refresh
    refreshed = secret(refresh=True)

    # THEN the new value comes back, and later reads keep it
    assert refreshed == SECOND_KEY
    assert secret() == SECOND_KEY


def test_zero_max_age_reads_every_time(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret read without caching
    arn = create_secret(secretsmanager, "community-milestones/platform-key", FIRST_KEY)
    secret = SecretValue(arn, max_age=0)
    assert secret() == FIRST_KEY

    # WHEN the secret is rotated and read again
    secretsmanager.put_secret_value(SecretId=arn, SecretString=SECOND_KEY)

    # THEN the new value comes back at once
    assert secret() == SECOND_KEY


def test_missing_secret_is_a_configuration_error_without_values(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret that exists and a secret id that does not
    create_secret(secretsmanager, "community-milestones/platform-key", FIRST_KEY)
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:community-milestones/absent-AbCdEf"

    # WHEN the missing one is read
    with pytest.raises(ConfigurationError) as caught:
        SecretValue(missing)()

    # THEN the error names the secret, holds no secret value and drags no chained exception along
    message = str(caught.value)
    assert missing in message
    assert FIRST_KEY not in message
    assert SECOND_KEY not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_missing_secret_error_says_why(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret id that does not exist
    missing = "community-milestones/absent"

    # WHEN it is read
    with pytest.raises(ConfigurationError) as caught:
        SecretValue(missing)()

    # THEN the error says what Secrets Manager answered, so a missing secret is told from a denied one
    message = str(caught.value)
    assert "NoneType" not in message
    assert "ResourceNotFoundException" in message


@pytest.mark.parametrize("blank", [" ", "   ", "\n\t"])
def test_blank_secret_is_a_configuration_error(secretsmanager: SecretsManagerClient, blank: str) -> None:
    # GIVEN a secret whose value is only whitespace
    arn = create_secret(secretsmanager, "community-milestones/platform-key", blank)

    # WHEN it is read
    with pytest.raises(ConfigurationError) as caught:
        SecretValue(arn)()

    # THEN the error says it holds no value
    assert "holds no text value" in str(caught.value)
    assert arn in str(caught.value)


def test_secret_created_without_a_value_is_a_configuration_error(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret created by the stack but never given a value
    arn = secretsmanager.create_secret(Name="community-milestones/platform-key")["ARN"]

    # WHEN it is read
    with pytest.raises(ConfigurationError) as caught:
        SecretValue(arn)()

    # THEN the error names the secret
    assert arn in str(caught.value)


def test_binary_secret_is_a_configuration_error(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a secret that holds bytes rather than text
    arn = secretsmanager.create_secret(Name="community-milestones/platform-key", SecretBinary=FIRST_KEY.encode())["ARN"]

    # WHEN it is read
    with pytest.raises(ConfigurationError) as caught:
        SecretValue(arn)()

    # THEN it is refused without echoing the bytes
    assert "holds no text value" in str(caught.value)
    assert FIRST_KEY not in str(caught.value)


def test_secret_blanked_after_rotation_is_refused_on_refresh(secretsmanager: SecretsManagerClient) -> None:
    # GIVEN a cached key whose secret was then blanked
    arn = create_secret(secretsmanager, "community-milestones/platform-key", FIRST_KEY)
    secret = SecretValue(arn, max_age=300)
    assert secret() == FIRST_KEY
    secretsmanager.put_secret_value(SecretId=arn, SecretString="   ")

    # WHEN it is read with refresh
    with pytest.raises(ConfigurationError) as caught:
        secret(refresh=True)

    # THEN the blank value is refused, and the old key is not in the error
    assert FIRST_KEY not in str(caught.value)
