"""A subscriber's username, sealed for the Subscription Upgrade System when it is the identity CCBill is given.

The guide lets the backend post and its step-2 form name the subscriber by ``username`` instead of
``subscriptionId``. A username is personal data: it may not sit in clear in the operations table, a queue message
or a domain event. So when an upgrade is made by username, the merchant API (which may reveal subscribers' data)
seals it with KMS (``Encrypt`` under BillopsKey, ``BILLOPS_PII_KEY_ID``) and the encryption context
``{"billops:purpose": "upgrade-identity", "billops:subscription": <subscription id>}``: the ciphertext travels in
the operation's parameters (``username_ciphertext``) and can be opened only for that subscription, only by the two
roles the key policy names for this purpose - the worker (it posts allowUpgrade) and the upgrade page (it fills
the step-2 form) - neither of which may read any other personal data (their context is not ``subscriber-pii``).
A sender of its own queue messages seals the same way::

    aws kms encrypt --key-id alias/billops-<env> --plaintext fileb://<(printf %s "$USERNAME") \\
      --encryption-context billops:purpose=upgrade-identity,billops:subscription=<id> \\
      --query CiphertextBlob --output text
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

PURPOSE = "upgrade-identity"


class UpgradeIdentityUnavailable(RuntimeError):
    """The username could not be sealed or opened (KMS refused it, or it was made for another subscription)."""


def _context(subscription_id: str) -> dict[str, str]:
    return {"billops:purpose": PURPOSE, "billops:subscription": subscription_id}


def _kms(client: Any) -> Any:
    if client is not None:
        return client
    from billops.storage.aws_clients import aws_client

    return aws_client("kms")


def seal_username(subscription_id: str, username: str, *, key_id: str | None = None, kms: Any = None) -> str:
    if not key_id:
        from billops.settings.privacy import PersonalDataSettings

        key_id = PersonalDataSettings.from_env().pii_key_id
    key = key_id or ""
    if not key:
        raise UpgradeIdentityUnavailable("BILLOPS_PII_KEY_ID is not set: a username cannot be sealed")
    try:
        blob = _kms(kms).encrypt(KeyId=key, Plaintext=username.encode("utf-8"),
                                 EncryptionContext=_context(subscription_id))["CiphertextBlob"]
    except Exception as error:  # noqa: BLE001 - any botocore error; its text never holds the username
        raise UpgradeIdentityUnavailable(f"KMS could not seal the username ({type(error).__name__})") from None
    return base64.b64encode(blob).decode("ascii")


def open_username(subscription_id: str, ciphertext: str, *, kms: Any = None) -> str:
    try:
        blob = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise UpgradeIdentityUnavailable("the sealed username is not Base64") from None
    try:
        clear = _kms(kms).decrypt(CiphertextBlob=blob, EncryptionContext=_context(subscription_id))["Plaintext"]
    except Exception as error:  # noqa: BLE001 - wrong subscription, wrong key, KMS down: the same answer
        raise UpgradeIdentityUnavailable(f"KMS could not open the username ({type(error).__name__})") from None
    return clear.decode("utf-8")


__all__ = ["PURPOSE", "UpgradeIdentityUnavailable", "open_username", "seal_username"]
