"""Issue 12, end to end through running local stacks: `enc` is a bearer credential (the ECB splice), the backend
allowUpgrade post as the default, one upgrade per subscription whatever the keys, the late consumer's second
backend post, upgrades into another account with cancel_original, and failure webhooks settling unknown upgrades.

Three stacks: the shared ``local_stack`` (the local default: a "fixed egress address" the sandbox whitelists, so the
Security Type backend_post), an ``enc_stack`` deployed without it (BILLOPS_FIXED_EGRESS_IP=false: Security Type
encryption, enc links) and a ``short_window_stack`` whose allowUpgrade window is 20 seconds (the late consumer).
Everything goes through public doors: the merchant API, the consumer page, the CCBill sandbox's scripts and admin
API, the tables read-only, the domain events tap.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from html.parser import HTMLParser

import pytest
import requests
from operations_driver import OperationsDriver, wait_for

pytestmark = pytest.mark.e2e

API_KEY = "local-api-key"
RUN = uuid.uuid4().hex[:8]
GOLD_FIELDS = {"upgradeClientAccnum": "900100", "upgradeClientSubacc": "0001", "upgradeTypeId": "0015"}


class Api:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.url = stack.api_url
        self.http = requests.Session()
        self.http.auth = (API_KEY, "")

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(f"{self.url}{path}", timeout=30, **kwargs)

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.url}{path}", timeout=30)

    def operation(self, operation_id: str) -> dict:
        return self.get(f"/v1/operations/{operation_id}").json()["operation"]

    def wait_for_operation(self, operation_id: str, statuses=("succeeded", "failed"), timeout: float = 45.0) -> dict:
        return wait_for(f"operation {operation_id} in {statuses}",
                        lambda: (lambda op: op if op["status"] in statuses else None)(self.operation(operation_id)),
                        timeout=timeout, show=lambda: self.operation(operation_id))


class Form(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.action = attributes["action"]
        if tag in ("input", "button") and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""


def _events(stack, detail_type: str, seen: list[dict]) -> list[dict]:
    seen.extend(stack.domain_events(wait_seconds=1))
    return [event for event in seen if event.get("detail-type") == detail_type]


@pytest.fixture(scope="module")
def enc_stack(start_local_stack):
    with start_local_stack({"BILLOPS_FIXED_EGRESS_IP": "false"}) as stack:
        yield stack


@pytest.fixture(scope="module")
def short_window_stack(start_local_stack):
    with start_local_stack({"BILLOPS_UPGRADE_WINDOW_SECONDS": "20"}) as stack:
        yield stack


# --- 1b. enc is a bearer credential: the splice, and the default path that refuses it -----------------------------


def _blocks(enc: str) -> list[bytes]:
    raw = base64.b64decode(enc)
    return [raw[i:i + 8] for i in range(0, len(raw), 8)]


def test_an_enc_spliced_from_two_pages_upgrades_a_third_subscriber(enc_stack):
    """TripleDES in ECB over ``subscriptionId=<19 digits>`` (34 bytes, 5 blocks): block 4 holds ID digits 9-16,
    block 5 digits 17-18. A consumer holding A = (Y1, Z1) and B = (Y2, Z2) builds the enc of C = (Y1, Z2) from
    A's first four blocks and B's fifth - and the sandbox charges C."""
    ops, api = OperationsDriver(enc_stack), Api(enc_stack)
    a = ops.create_subscription()
    c = ops.create_subscription()  # the victim: the next ID, same block 4 as A
    sequence = int(c[-9:])
    assert sequence % 100 != 0 and c[:17] == a[:17], (a, c)
    for _ in range(99):  # fillers, until an ID whose last two digits are C's again
        filler = ops.create_subscription(wait_for_record=False)
    b = ops.create_subscription()
    assert b[-2:] == c[-2:] and b[9:17] != a[9:17], (filler, b)

    pages = {}
    for attacker_subscription in (a, b):
        link = api.post(f"/v1/subscriptions/{attacker_subscription}/upgrade_link", data={"upgrade_type_id": "15"})
        assert link.status_code == 200, link.text
        body = link.json()["upgrade_link"]
        assert body["method"] == "enc" and "permanent credential" in body["credential_warning"]
        page = requests.get(body["url"], timeout=10)  # what the attacker holds: his own two pages
        assert page.status_code == 200
        pages[attacker_subscription] = Form(page.text)
    blocks_a, blocks_b = _blocks(pages[a].fields["enc"]), _blocks(pages[b].fields["enc"])
    assert len(blocks_a) == len(blocks_b) == 5
    spliced = base64.b64encode(b"".join(blocks_a[:4] + blocks_b[4:])).decode()

    charges_before = len(ops.upgrade_charges(c))
    answer = requests.post(pages[a].action, data={"clientAccnum": "900100", "clientSubacc": "0000", "enc": spliced,
                                                  **GOLD_FIELDS, "submit": "Upgrade Subscription"}, timeout=10)
    assert "Upgrade Approved" in answer.text, answer.text
    assert ops.sandbox_subscription(c)["upgraded_to"], "the third subscriber was upgraded - and charged"
    assert len(ops.upgrade_charges(c)) == charges_before + 1

    # C was never offered an upgrade and has no upgrade operation: the UpgradeSuccess raises the alarm event.
    seen: list[dict] = []
    [event] = wait_for("UnexpectedUpgradeSale for the victim",
                       lambda: [e for e in _events(enc_stack, "UnexpectedUpgradeSale", seen)
                                if e["detail"]["original_subscription_id"] == c], timeout=30)
    assert event["detail"]["event_type"] == "UpgradeSuccess"
    assert not [e for e in _events(enc_stack, "UnexpectedUpgradeSale", seen)
                if e["detail"]["original_subscription_id"] in (a, b)]
    assert "UnexpectedUpgradeSale" in enc_stack.output  # the metric (EMF) behind UnexpectedUpgradeSaleAlarm


def test_the_default_path_with_the_egress_option_refuses_the_splice(local_stack):
    """With a fixed egress IP the Security Type is backend_post: no page carries an enc, CCBill (the sandbox)
    refuses every enc, and the step-2 form works only for the subscription the backend post named."""
    from billops.ccbill.upgrade_encryption import derive_key, encrypt
    from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY

    ops, api = OperationsDriver(local_stack), Api(local_stack)
    attacker, victim = ops.create_subscription(), ops.create_subscription()
    link = api.post(f"/v1/subscriptions/{attacker}/upgrade_link", data={"upgrade_type_id": "15"})
    assert link.status_code == 200, link.text
    body = link.json()["upgrade_link"]
    assert body["method"] == "allow_upgrade" and "enc" not in body["form_fields"]
    enc_link = api.post(f"/v1/subscriptions/{attacker}/upgrade_link", data={"method": "enc", "upgrade_type_id": "15"})
    assert enc_link.status_code == 400 and enc_link.json()["param"] == "method"
    page = wait_for("the attacker's step-2 form", lambda: (lambda r: r if "<form" in r.text else None)(
        requests.get(body["url"], timeout=10)), timeout=30)
    form = Form(page.text)
    assert "enc" not in form.fields

    charges_before = len(ops.upgrade_charges(victim))
    # The splice's result is exactly the enc of the victim's identity (ECB is deterministic): refused.
    spliced = encrypt(derive_key(LOCAL_UPGRADE_KEY), f"subscriptionId={victim}")
    refused = requests.post(form.action, data={"clientAccnum": "900100", "clientSubacc": "0000", "enc": spliced,
                                               **GOLD_FIELDS, "submit": "Upgrade Subscription"}, timeout=10)
    assert "Upgrade Denied" in refused.text and "Backend HTTPS Post" in refused.text
    # Nor does the attacker's step-2 form work for another subscription: no backend post was made for it.
    tampered = requests.post(form.action, data={**form.fields, "subscriptionId": victim}, timeout=10)
    assert "Upgrade Denied" in tampered.text
    assert ops.sandbox_subscription(victim)["upgraded_to"] is None
    assert len(ops.upgrade_charges(victim)) == charges_before
    assert ops.sandbox_subscription(attacker)["status"] == "active"


# --- 1c. one upgrade per subscription, whatever the keys ----------------------------------------------------------


def test_concurrent_upgrade_requests_with_different_keys_charge_once(local_stack):
    ops, api = OperationsDriver(local_stack), Api(local_stack)
    original = ops.create_subscription()
    barrier = threading.Barrier(6)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def request(index: int) -> None:
        headers = {"Idempotency-Key": f"e2e-{RUN}-concurrent-{index}"} if index % 2 else {}  # some with no key
        barrier.wait()
        answer = api.post(f"/v1/subscriptions/{original}/upgrade", json={"method": "api", "upgrade_type_id": "15"},
                          headers=headers)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=request, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202, 409, 409, 409, 409, 409], [answer.text for answer in answers]
    [accepted] = [answer.json()["operation"] for answer in answers if answer.status_code == 202]
    for refused in (answer.json() for answer in answers if answer.status_code == 409):
        assert refused["operation_id"] == accepted["id"] and refused["param"] == "force"
    done = api.wait_for_operation(accepted["id"])
    assert done["status"] == "succeeded"
    assert len(ops.calls("chargeByPreviousTransactionId", original)) == 1, "CCBill received one charge"
    assert len(ops.upgrade_charges(original)) == 1
    # Later, with yet another key: still refused (it succeeded within the window); force goes through.
    later = api.post(f"/v1/subscriptions/{original}/upgrade", json={"method": "api", "upgrade_type_id": "15"})
    assert later.status_code == 409 and later.json()["operation_id"] == accepted["id"]
    forced = api.post(f"/v1/subscriptions/{original}/upgrade",
                      json={"method": "api", "upgrade_type_id": "15", "force": True})
    assert forced.status_code == 202
    assert api.wait_for_operation(forced.json()["operation"]["id"])["status"] == "succeeded"
    assert len(ops.upgrade_charges(original)) == 2


def test_a_queue_message_cannot_bypass_the_rule(local_stack):
    ops, api = OperationsDriver(local_stack), Api(local_stack)
    original = ops.create_subscription()
    first = api.post(f"/v1/subscriptions/{original}/upgrade", json={"method": "api", "upgrade_type_id": "15"})
    assert first.status_code == 202
    ops.send({"operation_type": "upgrade", "subscription_id": original, "idempotency_key": f"e2e-{RUN}-by-queue",
              "parameters": {"method": "charge_by_previous_transaction", "upgrade": "gold"}})
    record = ops.wait_for_operation(f"e2e-{RUN}-by-queue")
    assert record["status"] == "failed" and record["failure_reason"] == "duplicate_upgrade"
    assert record["failure"]["existing_operation_id"] == first.json()["operation"]["id"]
    api.wait_for_operation(first.json()["operation"]["id"])
    assert len(ops.calls("chargeByPreviousTransactionId", original)) == 1


# --- 2. the consumer who comes after the window ---------------------------------------------------------------------


def _visit_until(link: dict, what: str, predicate, timeout: float = 45.0) -> requests.Response:
    """The consumer opens the link again and again (as a browser's meta refresh does) until ``predicate``."""
    # A tuple: a requests.Response of a 4xx is falsy, and wait_for waits for something truthy.
    (page,) = wait_for(what, lambda: (lambda page: (page,) if predicate(page) else None)(
        requests.get(link["url"], timeout=10)), timeout=timeout)
    return page


def test_a_late_consumer_gets_the_backend_post_sent_again_once(short_window_stack):
    ops, api = OperationsDriver(short_window_stack), Api(short_window_stack)
    original = ops.create_subscription()
    link = api.post(f"/v1/subscriptions/{original}/upgrade_link", data={"upgrade_type_id": "15"}).json()[
        "upgrade_link"]
    _visit_until(link, "the first window's form", lambda page: "<form" in page.text)
    # The consumer leaves and comes back after the (20 s) window: the page posts allowUpgrade again.
    _visit_until(link, "the backend post sent again", lambda page: len(ops.calls("allowUpgrade", original)) == 2)
    page = _visit_until(link, "the second window's form", lambda page: "<form" in page.text)
    operations = [op for op in ops.operations_of(original) if op.get("operation_type") == "upgrade"]
    assert len(operations) == 2 and sorted(op["idempotency_key"].endswith(":again") for op in operations) == [
        False, True], "the second post is an operation like the first"
    form = Form(page.text)
    assert "Upgrade Approved" in requests.post(form.action, data=form.fields, timeout=10).text
    assert len(ops.upgrade_charges(original)) == 1


def test_the_second_backend_post_is_made_once_per_link(short_window_stack):
    ops, api = OperationsDriver(short_window_stack), Api(short_window_stack)
    original = ops.create_subscription()
    link = api.post(f"/v1/subscriptions/{original}/upgrade_link", data={"upgrade_type_id": "15"}).json()[
        "upgrade_link"]
    _visit_until(link, "the backend post sent again", lambda page: len(ops.calls("allowUpgrade", original)) == 2)
    expired = _visit_until(link, "the link spent after the second window", lambda page: page.status_code == 410)
    assert "has expired" in expired.text
    for _ in range(3):
        assert requests.get(link["url"], timeout=10).status_code == 410
    assert len(ops.calls("allowUpgrade", original)) == 2, "once per link"
    assert ops.upgrade_charges(original) == []


# --- 3. into another account, cancel_original, failure webhooks -----------------------------------------------------


def test_an_upgrade_into_another_account_with_cancel_original(local_stack):
    ops, api = OperationsDriver(local_stack), Api(local_stack)
    original = ops.create_subscription()
    answer = api.post(f"/v1/subscriptions/{original}/upgrade",
                      json={"method": "api", "upgrade_type_id": "20", "cancel_original": True})
    assert answer.status_code == 202, answer.text
    operation = answer.json()["operation"]
    assert operation["original_subscription"]["cancel_original"] is True
    assert operation["original_subscription"]["keeps_billing"] is False
    done = api.wait_for_operation(operation["id"])
    assert done["status"] == "succeeded"
    new = ops.wait_for_subscription(done["new_subscription_id"], lambda s: s.get("client_accnum") == "900300",
                                    "the destination's UpSaleSuccess")
    assert new["original_subscription_id"] == original
    cancel_id = wait_for("the cancellation's operation", lambda: api.operation(operation["id"])[
        "original_subscription"]["cancel_operation_id"], timeout=30)
    assert api.wait_for_operation(cancel_id)["status"] == "succeeded"
    ops.wait_for_subscription(original, lambda s: s["status"] == "cancelled", "the original's Cancellation")
    assert ops.sandbox_subscription(new["subscription_id"])["status"] == "active"
    assert len(ops.calls("cancelSubscription", original)) == 1
    assert len(ops.calls("chargeByPreviousTransactionId", original)) == 1


def test_without_cancel_original_the_answer_says_the_original_keeps_billing(local_stack):
    ops, api = OperationsDriver(local_stack), Api(local_stack)
    original = ops.create_subscription()
    answer = api.post(f"/v1/subscriptions/{original}/upgrade", json={"method": "api", "upgrade_type_id": "20"})
    note = answer.json()["operation"]["original_subscription"]
    assert note["keeps_billing"] is True and "keeps billing" in note["note"]
    assert api.wait_for_operation(answer.json()["operation"]["id"])["status"] == "succeeded"
    assert ops.sandbox_subscription(original)["status"] == "active"


def test_an_unknown_upgrade_declined_by_a_failure_webhook_is_failed(local_stack):
    ops, api = OperationsDriver(local_stack), Api(local_stack)
    original = ops.create_subscription()
    ops.add_fault("chargeByPreviousTransactionId", "decline_timeout", seconds=1)
    try:
        answer = api.post(f"/v1/subscriptions/{original}/upgrade",
                          json={"method": "api", "upgrade_type_id": "20", "cancel_original": True})
        assert answer.status_code == 202, answer.text
        failed = api.wait_for_operation(answer.json()["operation"]["id"], ("failed",))
    finally:
        ops.clear_faults()
    assert failed["failure"]["reason"] == "upgrade_declined"
    assert re.search("Denied", failed["failure"]["message"]) and failed["escalated"] is False
    assert ops.calls("cancelSubscription", original) == [] and ops.sandbox_subscription(original)["status"] == "active"


# --- 1. a subscriber known by username ------------------------------------------------------------------------------


def test_an_allow_upgrade_link_for_a_subscriber_known_by_username(local_stack, log_leak_scanner):
    ops, api = OperationsDriver(local_stack), Api(local_stack)
    username = f"member{RUN[:6]}"
    log_leak_scanner.add(username, "a subscriber's username")
    original = ops.create_subscription(username=username)
    answer = api.post(f"/v1/subscriptions/{original}/upgrade_link",
                      data={"upgrade_type_id": "15", "identify_by": "username"})
    assert answer.status_code == 200, answer.text
    link = answer.json()["upgrade_link"]
    assert link["identify_by"] == "username" and username not in answer.text
    page = wait_for("the step-2 form", lambda: (lambda r: r if "<form" in r.text else None)(
        requests.get(link["url"], timeout=10)), timeout=45)
    [post] = ops.calls("allowUpgrade")[-1:]
    assert post["params"]["username"] == username and "subscriptionId" not in post["params"]
    record = ops.operations.get(link["operation_id"])
    assert username not in str(record), "the operation holds the username sealed, never in clear"
    form = Form(page.text)
    assert form.fields["username"] == username and "subscriptionId" not in form.fields
    assert "Upgrade Approved" in requests.post(form.action, data=form.fields, timeout=10).text
    assert api.wait_for_operation(link["operation_id"], ("succeeded",))["new_subscription_id"]
    assert len(ops.upgrade_charges(original)) == 1


def test_an_enc_link_for_a_subscriber_known_by_username(enc_stack):
    from billops.ccbill.upgrade_encryption import EncRecipe, decrypt, derive_key
    from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY

    ops, api = OperationsDriver(enc_stack), Api(enc_stack)
    username = f"member{RUN[-6:]}"
    original = ops.create_subscription(username=username)
    answer = api.post(f"/v1/subscriptions/{original}/upgrade_link",
                      data={"upgrade_type_id": "20", "identify_by": "username"})
    assert answer.status_code == 200, answer.text
    link = answer.json()["upgrade_link"]
    assert decrypt(derive_key(LOCAL_UPGRADE_KEY), link["form_fields"]["enc"], EncRecipe()) == f"username={username}"
    page = requests.get(link["url"], timeout=10)
    form = Form(page.text)
    assert form.fields["enc"] == link["form_fields"]["enc"] and username not in page.text
    assert "Upgrade Approved" in requests.post(form.action, data=form.fields, timeout=10).text
    upgraded = ops.sandbox_subscription(original)["upgraded_to"]
    assert ops.sandbox_subscription(upgraded)["client_accnum"] == "900300"
