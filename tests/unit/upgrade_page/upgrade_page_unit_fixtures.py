"""Constants and records shared by the upgrade page's unit tests (imported by name: unique module name)."""

from __future__ import annotations

from typing import Any

UPGRADE_KEY = "0123456789abcdeffedcba987654321089abcdef01234567"
SIGNING_SECRET = "s" * 32 + "e" * 32
BASE_URL = "https://billing.example.test"
GOLD = {"key": "gold", "name": "Gold membership", "description": "HD videos & <b>extras</b>",
        "client_accnum": "900100", "client_subacc": "0001", "subscription_type_id": "0015",
        "initial_price": "19.95", "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30,
        "rebills": 99, "currency_code": "840"}
PLATINUM = {"key": "platinum", "client_accnum": "900100", "client_subacc": "0002", "subscription_type_id": "0016",
            "initial_price": "2.95", "initial_period": 3, "recurring_price": "29.95", "recurring_period": 30,
            "rebills": 99, "currency_code": "978"}


def subscription_record(**overrides: Any) -> dict[str, Any]:
    record = {"subscription_id": "0126001234000000017", "status": "active", "client_accnum": "900100",
              "client_subacc": "0000", "initial_price": "9.95", "initial_period": 30, "recurring_price": "9.95",
              "recurring_period": 30, "rebills": 99, "recurring": True, "currency": "USD", "currency_code": "840",
              "next_renewal_date": "2026-02-01", "subscriber": {"email": "jane@example.com", "username": "janedoe1"}}
    record.update(overrides)
    return record
