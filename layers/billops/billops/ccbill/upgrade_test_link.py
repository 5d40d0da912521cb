"""A test upgrade link for a merchant to open in a browser, and a check of the upgrade key (``billops ccbill check``).

CCBill publishes no test vector for ``enc`` (docs/ccbill-assumptions.md): the one proof that the recipe
(BILLOPS_UPGRADE_ENC_*) matches the account is CCBill's own upgrade form showing for a real subscription. This
builds that link - a GET URL of ``upgradeSubscription.cgi`` with the form's fields - for a subscription the merchant
names; opening it shows CCBill's form (or its denial page); nothing is charged until the consumer submits the form
there. Under the backend_post Security Type the link is the step-2 form: post ``allowUpgrade`` first
(``CCBillClient.allow_upgrade``, which moves no money), then open the link within 30 minutes.

    from billops.ccbill.upgrade_test_link import build_test_upgrade_link, upgrade_key_check
    link = build_test_upgrade_link(client, "0000", subscription_id="0126…", upgrade="gold")
    print(link.url, link.warning)
    verdict, reason = upgrade_key_check(client_encryptor)      # ("pass" | "fail" | "cannot tell", why)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from billops.ccbill.client import SUBMIT_BUTTON, CCBillClient
from billops.ccbill.errors import CCBillConfigurationError, CCBillError
from billops.ccbill.upgrade_encryption import ENC_CREDENTIAL_WARNING, key_strength_note


@dataclass(frozen=True)
class TestUpgradeLink:
    url: str
    method: str  # "enc" | "backend_post"
    fields: dict[str, str] = field(default_factory=dict)
    warning: str | None = None
    """enc: the link carries a permanent credential of the subscription (share it with no one)."""


def build_test_upgrade_link(client: CCBillClient, client_subacc: str, *, subscription_id: str | None = None,
                            username: str | None = None, upgrade: str | None = None,
                            method: str = "enc") -> TestUpgradeLink:
    """The link (see the module docstring). Raises CCBillRequestInvalid / CCBillConfigurationError like
    ``CCBillClient.upgrade_form``, whose fields it carries, plus the form's button."""
    form = client.upgrade_form(client_subacc, subscription_id=subscription_id, username=username, upgrade=upgrade,
                               method=method)
    fields = {**form.fields, SUBMIT_BUTTON[0]: SUBMIT_BUTTON[1]}
    return TestUpgradeLink(f"{form.url}?{urlencode(fields)}", method, fields,
                           ENC_CREDENTIAL_WARNING if method == "enc" else None)


def upgrade_key_check(encryptor: Any) -> tuple[str, str]:
    """Whether the configured upgrade key can work: ("pass" | "fail" | "cannot tell", the reason, never the key).

    "pass" means it decrypts (KMS) and is a usable TripleDES key under the configured derivation; whether CCBill
    derives it the same way only the test link can show."""
    if encryptor is None:
        return "cannot tell", "no upgrade key is configured (BILLOPS_UPGRADE_KEY_CIPHERTEXT): enc links are off"
    try:
        key = encryptor.key()
    except (CCBillConfigurationError, CCBillError) as problem:
        return "fail", str(problem)
    note = key_strength_note(key)
    derivation = encryptor.recipe.key_encoding.value
    if note is not None:
        return "pass", f"usable with key derivation {derivation!r}, but {note}"
    return "pass", f"usable with key derivation {derivation!r}; open the test link to see CCBill accept the recipe"


__all__ = ["TestUpgradeLink", "build_test_upgrade_link", "upgrade_key_check"]
