"""How a stored record's personal data is shown: masked by default, revealed only to those allowed to read it.

Records keep personal fields in their `subscriber` map (encrypted field by field once issue 6 is in place, with the
data keys in `subscriber_keys`). Masking needs no key at all, so the default view never touches KMS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "***"


def masked_subscriber(record: Mapping[str, Any]) -> dict[str, str]:
    """Which personal fields exist, with their values hidden."""
    return {name: MASK for name, value in (record.get("subscriber") or {}).items() if value not in (None, "")}


def revealed_subscriber(record: Mapping[str, Any]) -> dict[str, str]:
    """The personal fields in clear. Needs kms:Decrypt on the personal-data key when they are encrypted."""
    from billops.privacy.field_encryption import default_cipher, is_encrypted

    subscriber = {name: str(value) for name, value in (record.get("subscriber") or {}).items()
                  if value not in (None, "")}
    if not any(is_encrypted(value) for value in subscriber.values()):
        return subscriber
    return default_cipher().decrypt_fields(subscriber, record.get("subscriber_keys") or {})
