"""CCBill's upgrade postbacks fail closed: without a configured token or source ranges, nothing is accepted and no
operation is touched, whatever the request carries."""

from __future__ import annotations

from typing import Any

import pytest
from billops.webhooks.upgrade_postbacks import UpgradePostbacks
from billops.settings import settings_from_env
from billops.webhooks.intake import WebhookRequest

CCBILL_IP = "64.38.212.10"
BODY = "originalSubscriptionId=0123456789&originalClientAccnum=900100&originalClientSubacc=0000"


class RecordingSettler:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.notes: list[Any] = []

    def settle_from_postback(self, *args: Any) -> dict[str, Any]:
        self.calls.append(args)
        return {"operation_id": "op_1", "status": "succeeded"}

    def note_postback(self, operation_id: str, note: dict[str, str]) -> None:
        self.notes.append((operation_id, note))


def _request(token: str | None) -> WebhookRequest:
    return WebhookRequest(source_ip=CCBILL_IP, query={"token": token} if token is not None else {},
                          headers={"content-type": "application/x-www-form-urlencoded"}, body=BODY,
                          is_base64_encoded=False)


@pytest.mark.parametrize("env, token", [
    ({"BILLOPS_ENV": "prod"}, "anything"),  # no token configured at all
    ({"BILLOPS_ENV": "prod"}, ""),
    ({"BILLOPS_ENV": "prod", "BILLOPS_WEBHOOK_TOKEN": "s3cret", "BILLOPS_ALLOWED_CIDRS": ""}, "s3cret"),  # no ranges
])
def test_missing_configuration_refuses_every_postback(env: dict[str, str], token: str) -> None:
    settler = RecordingSettler()
    result = UpgradePostbacks(settings_from_env(env), settler).receive("approval", _request(token))
    assert (result.status, result.outcome) == (403, "rejected")
    assert result.body["api_error_code"] == "api_authorization_failed"
    assert settler.calls == [] and settler.notes == []


def test_the_same_postback_is_accepted_once_configured() -> None:
    settler = RecordingSettler()
    settings = settings_from_env({"BILLOPS_ENV": "prod", "BILLOPS_WEBHOOK_TOKEN": "s3cret"})
    result = UpgradePostbacks(settings, settler).receive("approval", _request("s3cret"))
    assert (result.status, result.outcome) == (200, "settled")
    assert len(settler.calls) == 1
    assert settler.notes == [("op_1", {"outcome": "approval", "originalSubscriptionId": "0123456789",
                                       "originalClientAccnum": "900100", "originalClientSubacc": "0000"})]
