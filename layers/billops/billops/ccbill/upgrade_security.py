"""Which of the Subscription Upgrade System's two "Transmission Security" methods this deployment uses.

CCBill's guide: "Merchants must choose between two different authorization methods when sending consumers to the
upgrade form" - the Admin Portal's Upgrade Security Setup holds one Security Type per account:

* ``encryption``: the consumer's form carries ``enc``, the TripleDES encryption of the subscriber's identity. It is a
  bearer credential (upgrade_encryption.ENC_CREDENTIAL_WARNING): permanent, the same for every link, its ECB blocks
  recombinable across subscriptions.
* ``backend_post``: billops posts ``allowUpgrade`` from the merchant's whitelisted IP, and the consumer has 30
  minutes to use the form; nothing in the page outlives that window. It needs a fixed egress IP
  (``WorkerFixedEgressIp=true``, README "Fixed egress IP").

``BILLOPS_UPGRADE_SECURITY`` (template parameter ``UpgradeSecurity``): ``auto`` (default) is ``backend_post``
wherever the stack can make the post - ``BILLOPS_FIXED_EGRESS_IP=true`` - and ``encryption`` elsewhere; or name one.
The merchant sets the same Security Type in CCBill's Admin Portal. Upgrade links default to the matching method
and refuse the other (CCBill would refuse it too); allowUpgrade operations are refused under ``encryption``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from billops.settings.ccbill import UpgradeSecuritySettings


class UpgradeSecurity(StrEnum):
    ENCRYPTION = "encryption"
    BACKEND_POST = "backend_post"

    @property
    def link_method(self) -> str:
        """The upgrade link method (and page flow) of this Security Type."""
        return "enc" if self is UpgradeSecurity.ENCRYPTION else "allow_upgrade"


def fixed_egress_ip(env: Mapping[str, str] | None = None) -> bool:
    return UpgradeSecuritySettings.from_env(env).fixed_egress_ip


def upgrade_security_of(settings: UpgradeSecuritySettings) -> UpgradeSecurity:
    """``auto`` is ``backend_post`` wherever the stack has a fixed egress IP, else ``encryption``."""
    if settings.upgrade_security == "auto":
        return UpgradeSecurity.BACKEND_POST if settings.fixed_egress_ip else UpgradeSecurity.ENCRYPTION
    return UpgradeSecurity(settings.upgrade_security)


def upgrade_security_from_env(env: Mapping[str, str] | None = None) -> UpgradeSecurity:
    return upgrade_security_of(UpgradeSecuritySettings.from_env(env))


def method_refusal(security: UpgradeSecurity, method: str) -> str | None:
    """Why ``method`` ("enc" | "allow_upgrade") cannot work under ``security``, or None when it can."""
    if method == security.link_method:
        return None
    if security is UpgradeSecurity.BACKEND_POST:
        return ("This deployment's upgrade Security Type is backend_post (the allowUpgrade post from the fixed "
                "egress IP): CCBill accepts no enc for the account. Use method allow_upgrade (the default).")
    return ("This deployment's upgrade Security Type is encryption: it has no fixed egress IP for CCBill to "
            "whitelist, so CCBill would refuse the allowUpgrade post. Use method enc (the default), or deploy with "
            "WorkerFixedEgressIp=true (or UpgradeSecurity=backend_post) and set the Security Type at CCBill to "
            "Backend HTTPS Post.")


__all__ = ["UpgradeSecurity", "fixed_egress_ip", "method_refusal", "upgrade_security_from_env", "upgrade_security_of"]
