"""End to end: subscribers' personal data over HTTP against the running local stack - encrypted in every table,
masked by the API unless a pii key asks for it, and the consumer's password and card numbers never kept.

Every value sent here is unique to the run and registered with the session's log check (tests/e2e/conftest.py), so
the same values are also searched for in every process's log when the session ends.
"""

from __future__ import annotations

import json
import random
from urllib.parse import quote, quote_plus, urlencode

import pytest
import requests
from billops_local.webhook_samples import encode_body, sample_fields, webhook_query
from support.waiting import eventually

pytestmark = pytest.mark.e2e

RUN = f"{random.randrange(10**6):06d}"
SUBSCRIPTION_ID = f"0126{RUN}02{random.randrange(10**7):07d}"
API_KEY = "local-api-key"  # the local stack's seeded key: read, write and pii
KEYS_TABLE = "billops-local-ApiKeysTable"
PERSONAL = {
    "firstName": f"Privacyfirst{RUN}",
    "lastName": f"Privacylast{RUN}",
    "address1": f"{RUN} Confidential Road",
    "city": f"Secretville{RUN}",
    "email": f"privacy.{RUN}@example.net",
    "phoneNumber": f"+1-555-{RUN}",
    "ipAddress": f"198.18.{int(RUN[:3]) % 256}.{int(RUN[3:]) % 256}",
    "username": f"priv{RUN}",
}
NEW_EMAIL = f"privacy.new.{RUN}@example.net"
PASSWORD = f"Consumer-Pw-{RUN}!"
CARD_NUMBER = "4111111111111111"  # a Luhn-valid test card number, sent where no card number belongs
GROUPED_CARD_NUMBER = "5555 5555 5555 4444"


@pytest.fixture(scope="module")
def sent(local_stack, log_leak_scanner):
    """Three deliveries with the run's personal data: a sale (form-encoded), a later data update (JSON), and a
    malformed one that is quarantined. Returns the subscription as the API shows it once both are folded in."""
    for name, value in PERSONAL.items():
        log_leak_scanner.add(value, f"this run's subscriber data ({name})")
    for value, what in ((NEW_EMAIL, "this run's subscriber data (email)"), (PASSWORD, "this run's consumer password"),
                        (CARD_NUMBER, "a full card number"), (GROUPED_CARD_NUMBER, "a full card number")):
        log_leak_scanner.add(value, what)

    sale = sample_fields("NewSaleSuccess", subscriptionId=SUBSCRIPTION_ID, transactionId=SUBSCRIPTION_ID,
                         timestamp="2026-06-01 10:00:00", password=PASSWORD, address2=CARD_NUMBER,
                         **{"X-note": f"card {GROUPED_CARD_NUMBER}"}, **PERSONAL)
    update = sample_fields("CustomerDataUpdate", subscriptionId=SUBSCRIPTION_ID,
                           transactionId=f"0126{RUN}02{random.randrange(10**7):07d}", timestamp="2026-06-02 10:00:00",
                           **{**PERSONAL, "email": NEW_EMAIL})
    # malformed by its identity (issue 11: any other field that does not parse is stored as received)
    broken = sample_fields("NewSaleSuccess", subscriptionId=f"0126-{RUN}-{random.randrange(10**7):07d}",
                           password=PASSWORD, **PERSONAL)
    assert _post(local_stack, "NewSaleSuccess", sale, "urlencoded").status_code == 200
    assert _post(local_stack, "CustomerDataUpdate", update, "json").status_code == 200
    refused = _post(local_stack, "NewSaleSuccess", broken, "urlencoded")
    assert refused.status_code == 400 and refused.json()["param"] == "subscriptionId"
    # Both deliveries folded (the newest e-mail address is asserted below), and all three in the delivery log (its
    # table is checked for clear values too): the projector writes both from the events table's stream.
    eventually(lambda: len(_history(local_stack)) == 2, what="the sale and the data update folded",
               show=lambda: _history(local_stack))
    from billops.webhooks.delivery_keys import DeliveryKeys

    # Quarantine keys are keyed hashes: computed here with the stack's own key, as its receiver does.
    key_secret = local_stack.boto3_client("secretsmanager").get_secret_value(
        SecretId="billops-local-DeliveryKeySecret")["SecretString"].encode()
    quarantine_key = DeliveryKeys(lambda: key_secret).quarantine_key

    broken_body, _ = encode_body(broken, "urlencoded")
    broken_query = {name: value for name, value in webhook_query("NewSaleSuccess", broken, "").items()
                    if name != "token"}
    logged = {f"NewSaleSuccess#txn#{SUBSCRIPTION_ID}", f"CustomerDataUpdate#txn#{update['transactionId']}",
              str(quarantine_key(broken_body, broken_query))}
    eventually(lambda: logged <= _logged_deliveries(local_stack), what="the three deliveries in the delivery log",
               show=lambda: _logged_deliveries(local_stack))
    answer = _get(local_stack, f"/v1/subscriptions/{SUBSCRIPTION_ID}")
    assert answer.status_code == 200, answer.text
    return answer.json()["subscription"]


def _post(local_stack, event_type: str, fields: dict, body_format: str) -> requests.Response:
    body, content_type = encode_body(fields, body_format)
    query = urlencode(webhook_query(event_type, fields, local_stack.webhook_token))
    return requests.post(f"{local_stack.api_url}/webhooks/ccbill?{query}", data=body,
                         headers={"Content-Type": content_type}, timeout=10)


def _get(local_stack, path: str, key: str = API_KEY, **params: str) -> requests.Response:
    return requests.get(f"{local_stack.api_url}{path}", params=params, auth=(key, ""), timeout=30)


def _history(local_stack) -> list[str]:
    from billops.storage.subscriptions_table import SubscriptionsTable

    record = SubscriptionsTable("billops-local-SubscriptionsTable", local_stack.boto3_client("dynamodb"),
                                "billops-local-SubscriptionHistoryTable").get(SUBSCRIPTION_ID)
    return [entry["key"] for entry in (record or {}).get("history", [])]


def _logged_deliveries(local_stack) -> set[str]:
    """The delivery keys in the log's items (billops.storage.delivery_log_table: each item packs a batch's minute of
    deliveries as JSON text)."""
    items = local_stack.boto3_client("dynamodb").scan(TableName="billops-local-DeliveryLogTable")["Items"]
    return {entry["delivery_key"] for item in items for entry in json.loads(item["deliveries"]["S"])}


def _every_form(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


def test_no_table_holds_personal_data_a_password_or_a_card_number_in_clear(local_stack, sent):
    dynamodb = local_stack.boto3_client("dynamodb")
    tables = dynamodb.list_tables()["TableNames"]
    assert {"billops-local-EventsTable", "billops-local-SubscriptionsTable", "billops-local-OperationsTable"} <= set(
        tables)
    dumped: dict[str, str] = {}
    for table in tables:
        items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
        dumped[table] = json.dumps(items)  # every attribute, nested maps and lists included
    assert RUN in dumped["billops-local-EventsTable"] and SUBSCRIPTION_ID in dumped["billops-local-SubscriptionsTable"]
    secrets = [*PERSONAL.values(), NEW_EMAIL, PASSWORD, CARD_NUMBER, GROUPED_CARD_NUMBER]
    found = [(table, secret) for table, text in dumped.items() for secret in secrets
             for form in _every_form(secret) if form in text]
    assert found == [], f"in clear: {[(table, '<' + str(len(secret)) + ' chars>') for table, secret in found]}"


def test_the_api_masks_personal_data_by_default(local_stack, sent):
    customer = sent["customer"]
    assert set(customer) >= {"first_name", "last_name", "email", "address1", "phone_number", "ip_address", "username"}
    assert set(customer.values()) == {"***"}
    assert "password" not in customer
    assert not any(value in json.dumps(sent) for value in PERSONAL.values())


def test_a_pii_key_that_asks_sees_the_newest_values_and_no_card_number(local_stack, sent):
    answer = _get(local_stack, f"/v1/subscriptions/{SUBSCRIPTION_ID}", include="customer")
    assert answer.status_code == 200, answer.text
    customer = answer.json()["subscription"]["customer"]
    assert customer["email"] == NEW_EMAIL  # the update came after the sale
    assert (customer["first_name"], customer["last_name"], customer["username"]) == (
        PERSONAL["firstName"], PERSONAL["lastName"], PERSONAL["username"])
    assert customer["ip_address"] == PERSONAL["ipAddress"] and customer["phone_number"] == PERSONAL["phoneNumber"]
    assert CARD_NUMBER not in answer.text and customer.get("address2") == "[redacted: looks like a card number]"
    assert PASSWORD not in answer.text and "password" not in customer


def test_a_key_without_the_pii_scope_cannot_reveal(local_stack, sent):
    from billops.merchant_api.api_keys import ApiKeysTable, create_key, revoke_key

    table = ApiKeysTable(KEYS_TABLE, local_stack.boto3_client("dynamodb"))
    key_id, reader = create_key(table, f"privacy reader {RUN}", ["read", "write"], environment="local")
    try:
        masked = _get(local_stack, f"/v1/subscriptions/{SUBSCRIPTION_ID}", key=reader)
        assert masked.status_code == 200 and masked.json()["subscription"]["customer"]["email"] == "***"
        refused = _get(local_stack, f"/v1/subscriptions/{SUBSCRIPTION_ID}", key=reader, include="customer")
        assert refused.status_code == 403
        assert refused.json()["api_error_code"] == "api_authorization_failed" and "pii" in refused.json()["message"]
        assert NEW_EMAIL not in refused.text
    finally:
        revoke_key(table, key_id)
