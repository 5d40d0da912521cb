"""Every fault mode, through the client over real HTTP: an ambiguous answer never becomes a double charge."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from billops.ccbill.outcomes import OutcomeKind, OutcomeStatus
from support.waiting import eventually

CBPT = "chargeByPreviousTransactionId"


def upgrade(client, sub):
    return client.charge_by_previous_transaction_id(
        sub, new_client_accnum="900100", new_client_subacc="0001", initial_price="19.95", initial_period=30,
        recurring_price="19.95", recurring_period=30, rebills=99)


def charges(sandbox):
    return [entry for entry in sandbox.ledger() if entry["kind"] == "charge"]


def test_code_fault_answers_the_code_without_applying(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault(CBPT, "code:-7")
    outcome = upgrade(client, sub)
    assert outcome.status is OutcomeStatus.UNKNOWN and outcome.code == -7
    assert len(charges(sandbox)) == 1
    assert upgrade(client, sub).succeeded  # count 1: the next call is normal
    assert len(charges(sandbox)) == 2


@pytest.mark.parametrize("code,status", [(-23, OutcomeStatus.FAILED), (-15, OutcomeStatus.FAILED),
                                         (-13, OutcomeStatus.UNKNOWN), (0, OutcomeStatus.FAILED)])
def test_code_faults_for_codes_the_sandbox_never_gives_on_its_own(sandbox, client, new_subscription, code, status):
    sub = new_subscription()
    sandbox.add_fault("refundTransaction", f"code:{code}")
    outcome = client.refund_transaction(sub)
    assert outcome.status is status and outcome.code == code


def test_timeout_before_is_unknown_and_nothing_happened(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault(CBPT, "timeout_before", seconds=3)
    started = time.monotonic()
    outcome = upgrade(client, sub)
    assert time.monotonic() - started < 2.5  # the client's read timeout (1 s), not the sandbox's hold
    assert outcome.unknown and outcome.kind is OutcomeKind.TRANSPORT and outcome.attempts == 1
    assert len(charges(sandbox)) == 1
    call = sandbox.calls()[-1]
    assert call["fault"] == "timeout_before" and call["applied"] is False


def test_timeout_after_is_unknown_the_charge_happened_once_and_was_not_repeated(sandbox, client, receiver,
                                                                               new_subscription):
    sub = new_subscription()
    sandbox.add_fault(CBPT, "timeout_after", seconds=3)
    outcome = upgrade(client, sub)
    assert outcome.unknown and outcome.retryable
    assert len(charges(sandbox)) == 2  # the original sale and exactly one upgrade charge
    calls = [c for c in sandbox.calls() if c["action"] == CBPT]
    assert len(calls) == 1 and calls[0]["applied"] is True
    assert "approved" in calls[0]["answer"]["would_have_answered"]
    # What the caller must do: find out. The webhook says what happened.
    assert sandbox.wait_for_webhooks()
    assert [d.fields["originalSubscriptionId"] for d in receiver.of_type("UpSaleSuccess")] == [sub]


def test_a_cancel_that_timed_out_after_applying_is_visible_in_the_status(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("cancelSubscription", "timeout_after", seconds=2)
    assert client.cancel_subscription(sub).unknown
    status = client.view_subscription_status(sub)
    assert status.succeeded and status.data["subscriptionStatus"] == "1"


def test_http_500_is_unknown_and_not_applied(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("voidTransaction", "http_500")
    outcome = client.void_transaction(sub)
    assert outcome.unknown and outcome.http_status == 500
    assert sandbox.subscription(sub)["charges"][0]["voided"] is False


def test_slow_answers_normally_within_the_read_timeout(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("extendSubscription", "slow", seconds=0.3)
    started = time.monotonic()
    assert client.extend_subscription(sub, 3).succeeded
    assert time.monotonic() - started >= 0.3


def test_slow_beyond_the_read_timeout_is_unknown_but_applied(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("extendSubscription", "slow", seconds=1.5)
    assert client.extend_subscription(sub, 3).unknown
    # The sandbox goes on with the call after the client gave up waiting: applied a moment later.
    eventually(lambda: sandbox.calls()[-1]["applied"] is True, 10, 0.05, what="the slow call to be applied")


def test_reset_before_is_unknown(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault(CBPT, "reset_before")
    outcome = upgrade(client, sub)
    assert outcome.unknown and outcome.kind is OutcomeKind.TRANSPORT
    assert len(charges(sandbox)) == 1


def test_reset_after_is_unknown_and_applied_once(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault(CBPT, "reset_after")
    outcome = upgrade(client, sub)
    assert outcome.unknown and outcome.attempts == 1
    assert len(charges(sandbox)) == 2


@pytest.mark.parametrize("mode", ["empty_body", "html_200"])
def test_unreadable_answers_are_unknown(sandbox, client, new_subscription, mode):
    sub = new_subscription()
    sandbox.add_fault("refundTransaction", mode)
    outcome = client.refund_transaction(sub)
    assert outcome.unknown and outcome.kind is OutcomeKind.UNREADABLE_RESPONSE
    assert len([c for c in sandbox.calls() if c["action"] == "refundTransaction"]) == 1


def test_datalink_errors(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("cancelSubscription", "datalink_error:04")
    outcome = client.cancel_subscription(sub)
    assert outcome.failed and outcome.kind is OutcomeKind.DATALINK_ERROR and "IP" in outcome.meaning
    sandbox.add_fault("cancelSubscription", "datalink_error:02")
    assert client.cancel_subscription(sub).failed
    assert len([c for c in sandbox.calls() if c["action"] == "cancelSubscription"]) == 2  # not resent


def test_decline(sandbox, client, receiver, new_subscription):
    sub = new_subscription()
    sandbox.add_fault(CBPT, "decline")
    outcome = upgrade(client, sub)
    assert outcome.failed and outcome.kind is OutcomeKind.DECLINED and not outcome.retryable
    assert outcome.data["declineCode"] == "24" and "Denied" in outcome.meaning
    assert len(charges(sandbox)) == 1
    assert sandbox.wait_for_webhooks()
    failure = receiver.of_type("UpSaleFailure")[0].fields
    assert failure["failureCode"] == "24" and "subscriptionId" not in failure


def test_a_fault_counts_down_and_a_star_matches_any_action(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("*", "http_500", count=2)
    assert client.cancel_subscription(sub).unknown
    assert client.extend_subscription(sub, 1).unknown
    assert client.cancel_subscription(sub).succeeded


def test_a_status_read_survives_transient_faults(sandbox, client, new_subscription):
    sub = new_subscription()
    sandbox.add_fault("viewSubscriptionStatus", "http_500")
    sandbox.add_fault("viewSubscriptionStatus", "timeout_before", seconds=2)
    outcome = client.view_subscription_status(sub)
    assert outcome.succeeded and outcome.attempts == 3


def test_allow_upgrade_is_repeated_after_a_lost_answer(post_sandbox, client_factory, new_subscription):
    sub = new_subscription(post_sandbox)
    post_sandbox.add_fault("allowUpgrade", "reset_before")
    outcome = client_factory(post_sandbox).allow_upgrade("0000", subscription_id=sub, upgrade="gold")
    assert outcome.succeeded and outcome.attempts == 2


def test_connection_refused_is_a_certain_retryable_failure(client_factory, sandbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_factory()
    client.settings = client.settings.model_copy(
        update={"sms_url": f"http://127.0.0.1:{port}/utils/subscriptionManagement.cgi"})
    outcome = client.cancel_subscription("0126015401000000001")
    assert outcome.failed and outcome.retryable and outcome.kind is OutcomeKind.TRANSPORT
    assert "not sent" in outcome.meaning


def test_fault_validation_over_http(sandbox):
    bad = requests.post(sandbox.url + "/sandbox/faults", json={"action": "x", "mode": "explode"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["param"] == "mode"
    bad = requests.post(sandbox.url + "/sandbox/faults", json={"action": "x", "mode": "slow", "count": 0}, timeout=5)
    assert bad.status_code == 400 and bad.json()["param"] == "count"
    ok = requests.post(sandbox.url + "/sandbox/faults", json={"action": "cancelSubscription", "mode": "code:-7",
                                                              "count": 2}, timeout=5)
    assert ok.status_code == 201
    assert requests.get(sandbox.url + "/sandbox/faults", timeout=5).json() == [
        {"action": "cancelSubscription", "mode": "code:-7", "remaining": 2, "seconds": 0.0}]
    assert requests.delete(sandbox.url + "/sandbox/faults", timeout=5).status_code == 200
    assert requests.get(sandbox.url + "/sandbox/faults", timeout=5).json() == []


@pytest.mark.parametrize("action,call", [
    ("refundTransaction", lambda client, sub: client.refund_transaction(sub, amount="5.00")),
    ("cancelSubscription", lambda client, sub: client.cancel_subscription(sub)),
    (CBPT, upgrade),
])
def test_http_302_applies_then_redirects_and_the_outcome_is_unknown(sandbox, client, receiver, new_subscription,
                                                                    action, call):
    # A redirect is no result CCBill documents: the action ran behind it, so "failed" would invite a second one.
    sub = new_subscription()
    sandbox.add_fault(action, "http_302")
    outcome = call(client, sub)
    assert outcome.unknown and outcome.kind is OutcomeKind.HTTP_STATUS and outcome.http_status == 302
    assert "/login.cgi" in outcome.meaning
    [made] = [c for c in sandbox.calls() if c["action"] == action]
    assert made["fault"] == "http_302" and made["applied"] is True and made["answer"]["http_status"] == 302
    assert sandbox.wait_for_webhooks()
    expected = {"refundTransaction": "Refund", "cancelSubscription": "Cancellation", CBPT: "UpSaleSuccess"}[action]
    assert receiver.of_type(expected), "the change really happened at the sandbox"
