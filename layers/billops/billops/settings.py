"""The project's settings, read from BILLOPS_* environment variables once per container.

Every setting is documented in the README's configuration table. Secrets are never held here in clear unless the
deployment put them in the environment itself (the local stack does; AWS deployments give a Secrets Manager ARN).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

CCBILL_WEBHOOK_CIDRS = ("64.38.212.0/24", "64.38.215.0/24", "64.38.240.0/24", "64.38.241.0/24")
"""CCBill's documented webhook source ranges (ccbill-facts.md section 1.2)."""

LOOPBACK_CIDR = "127.0.0.0/8"
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


class SettingsError(ValueError):
    """A setting that cannot be honoured: raised at start-up (container init), with the setting's name."""


@dataclass(frozen=True)
class Settings:
    environment: str = "local"
    events_table: str = "billops-events"
    subscriptions_table: str = "billops-subscriptions"
    delivery_log_table: str = "billops-delivery-log"
    webhook_token: str | None = None
    webhook_token_secret_arn: str | None = None
    allowed_cidrs: tuple[str, ...] = CCBILL_WEBHOOK_CIDRS
    client_accnum: str | None = None
    client_subaccs: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=(), repr=False)
    passthrough_clear_fields: tuple[str, ...] = ()
    """Pass-through fields (X-..., referringUrl) the merchant declared safe to keep in clear; every other one is
    personal data (billops.privacy.subscriber_data)."""
    customer_reference_field: str | None = None
    """The clear pass-through field that becomes a subscription's customer_reference (e.g. X-user_id)."""
    ccbill_timezone: str = "America/Phoenix"
    """The zone of CCBill's webhook timestamps (billops.webhooks.ccbill_time, docs/ccbill-assumptions.md)."""
    delivery_key_secret: str | None = field(default=None, repr=False)
    """The HMAC key of hashed delivery keys, given in clear (setups without Secrets Manager); wins over the ARN."""
    delivery_key_secret_arn: str | None = None
    check_legacy_delivery_keys: bool = True
    """Look for a hash-keyed delivery under its pre-HMAC key too (deliveries stored before the upgrade)."""
    upgrade_catalogue: str | None = None
    """BILLOPS_UPGRADE_CATALOGUE: upgrades into these accounts/subaccounts are accepted from another account."""

    @property
    def is_local(self) -> bool:
        return self.environment == "local"


def settings_from_env(env: Mapping[str, str] = os.environ) -> Settings:
    """The settings; raises SettingsError when one cannot be honoured (the container refuses to start)."""
    environment = env.get("BILLOPS_ENV", "local").strip() or "local"
    cidrs = _csv(env.get("BILLOPS_ALLOWED_CIDRS")) if "BILLOPS_ALLOWED_CIDRS" in env else CCBILL_WEBHOOK_CIDRS
    trust_loopback = env.get("BILLOPS_LOCAL_ALLOW_LOOPBACK", "true").strip().lower() not in ("false", "0", "no")
    if environment == "local" and trust_loopback and LOOPBACK_CIDR not in cidrs:
        # The local stack's sandbox and curl post from 127.0.0.1; this never applies in an AWS environment.
        # BILLOPS_LOCAL_ALLOW_LOOPBACK=false turns it off, so that a refusal by source address can be seen over HTTP.
        cidrs = (*cidrs, LOOPBACK_CIDR)
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            # A typo in the list must not widen access: the bad entry is dropped, the rest still apply.
            continue
    try:
        max_body = int(env.get("BILLOPS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
    except ValueError:
        max_body = DEFAULT_MAX_BODY_BYTES
    clear_fields, reference_field = _pass_through_settings(env)
    return Settings(
        environment=environment,
        events_table=env.get("BILLOPS_EVENTS_TABLE", "billops-events"),
        subscriptions_table=env.get("BILLOPS_SUBSCRIPTIONS_TABLE", "billops-subscriptions"),
        delivery_log_table=env.get("BILLOPS_DELIVERY_LOG_TABLE", "billops-delivery-log"),
        webhook_token=env.get("BILLOPS_WEBHOOK_TOKEN") or None,
        webhook_token_secret_arn=env.get("BILLOPS_WEBHOOK_TOKEN_SECRET_ARN") or None,
        allowed_cidrs=cidrs,
        client_accnum=(env.get("BILLOPS_CLIENT_ACCNUM") or "").strip() or None,
        client_subaccs=_csv(env.get("BILLOPS_CLIENT_SUBACCS")),
        max_body_bytes=max_body,
        allowed_networks=tuple(networks),
        passthrough_clear_fields=clear_fields,
        customer_reference_field=reference_field,
        ccbill_timezone=(env.get("BILLOPS_CCBILL_TIMEZONE") or "").strip() or "America/Phoenix",
        delivery_key_secret=env.get("BILLOPS_DELIVERY_KEY_SECRET") or None,
        delivery_key_secret_arn=env.get("BILLOPS_DELIVERY_KEY_SECRET_ARN") or None,
        check_legacy_delivery_keys=env.get("BILLOPS_CHECK_LEGACY_DELIVERY_KEYS", "true").strip().lower()
        not in ("false", "0", "no", "off"),
        upgrade_catalogue=env.get("BILLOPS_UPGRADE_CATALOGUE") or None,
    )


def _pass_through_settings(env: Mapping[str, str]) -> tuple[tuple[str, ...], str | None]:
    """BILLOPS_PASSTHROUGH_CLEAR_FIELDS and BILLOPS_CUSTOMER_REFERENCE_FIELD, refused when they would put personal
    data in clear: only pass-through fields can be declared clear, and the reference must be one of them."""
    from billops.privacy.subscriber_data import is_pass_through

    clear_fields = _csv(env.get("BILLOPS_PASSTHROUGH_CLEAR_FIELDS"))
    for name in clear_fields:
        if not is_pass_through(name):
            raise SettingsError(f"BILLOPS_PASSTHROUGH_CLEAR_FIELDS names {name!r}, which is not a pass-through field: "
                                "only X-... fields (and referringUrl) can be declared safe to keep in clear.")
    reference = (env.get("BILLOPS_CUSTOMER_REFERENCE_FIELD") or "").strip() or None
    if reference is not None and reference.lower() not in {name.lower() for name in clear_fields}:
        raise SettingsError(f"BILLOPS_CUSTOMER_REFERENCE_FIELD is {reference!r}, which BILLOPS_PASSTHROUGH_CLEAR_FIELDS "
                            "does not declare clear: a customer reference is stored and indexed in clear, so add "
                            f"{reference} to BILLOPS_PASSTHROUGH_CLEAR_FIELDS (if it holds no personal data) or "
                            "unset BILLOPS_CUSTOMER_REFERENCE_FIELD.")
    return clear_fields, reference


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this container; tests that change the environment call get_settings.cache_clear()."""
    return settings_from_env()
