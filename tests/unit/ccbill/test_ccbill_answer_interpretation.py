"""HTTP status + body -> outcome, for each kind of answer an action expects."""

from __future__ import annotations

import pytest
from billops.ccbill.answer_interpretation import Expectation, interpret_http
from billops.ccbill.outcomes import OutcomeKind, OutcomeStatus

XML = "<?xml version='1.0' standalone='yes'?>\n"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unknown(status):
    outcome = interpret_http("refundTransaction", Expectation.RESULT_CODE, status, "<html>oops</html>")
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.kind is OutcomeKind.HTTP_STATUS
    assert outcome.http_status == status


@pytest.mark.parametrize("status,retryable", [(400, False), (403, False), (404, False), (408, True), (429, True)])
def test_4xx_to_a_read_is_a_refusal(status, retryable):
    outcome = interpret_http("viewSubscriptionStatus", Expectation.STATUS_DOCUMENT, status, "")
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.retryable is retryable


@pytest.mark.parametrize("expectation,action", [(Expectation.RESULT_CODE, "cancelSubscription"),
                                                (Expectation.RESULT_CODE, "refundTransaction"),
                                                (Expectation.APPROVAL, "chargeByPreviousTransactionId")])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 400, 401, 403, 404, 408, 429, 204 + 100])
def test_any_other_answer_to_a_call_that_changes_something_is_unknown(expectation, action, status):
    # Not a documented result: the script may have run behind whatever answered. Never "failed", which a merchant
    # would retry (and charge twice).
    outcome = interpret_http(action, expectation, status, "", location="https://example.com/login")
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.kind is OutcomeKind.HTTP_STATUS and outcome.http_status == status


def test_a_redirect_is_not_followed_and_names_the_target():
    outcome = interpret_http("cancelSubscription", Expectation.RESULT_CODE, 302, "",
                             location="https://example.com/login")
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert "https://example.com/login" in outcome.meaning


@pytest.mark.parametrize("body", ["", "<html>maintenance</html>", "OK", '"results"\n"x"'])
def test_unreadable_answers_to_a_mutation_are_unknown(body):
    outcome = interpret_http("voidTransaction", Expectation.RESULT_CODE, 200, body)
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.kind is OutcomeKind.UNREADABLE_RESPONSE


def test_a_result_code_answer():
    outcome = interpret_http("cancelSubscription", Expectation.RESULT_CODE, 200, '"results"\n"1"\n')
    assert outcome.succeeded and outcome.code == 1 and outcome.http_status == 200


def test_a_status_document():
    body = XML + "<results><subscriptionStatus>2</subscriptionStatus><timesRebilled>3</timesRebilled></results>"
    outcome = interpret_http("viewSubscriptionStatus", Expectation.STATUS_DOCUMENT, 200, body)
    assert outcome.succeeded
    assert outcome.data == {"subscriptionStatus": "2", "timesRebilled": "3"}


def test_a_status_request_answered_with_a_code():
    outcome = interpret_http("viewSubscriptionStatus", Expectation.STATUS_DOCUMENT, 200, XML + "<results>-3</results>")
    assert outcome.failed and outcome.code == -3
    bare_one = interpret_http("viewSubscriptionStatus", Expectation.STATUS_DOCUMENT, 200, '"results"\n"1"')
    assert bare_one.unknown


def test_an_approval_carries_the_new_subscription():
    body = XML + "<results><approved>1</approved><subscriptionId>0126015401000000302</subscriptionId></results>"
    outcome = interpret_http("chargeByPreviousTransactionId", Expectation.APPROVAL, 200, body)
    assert outcome.succeeded
    assert outcome.data["subscriptionId"] == "0126015401000000302"


def test_an_approval_in_csv():
    outcome = interpret_http("chargeByPreviousTransactionId", Expectation.APPROVAL, 200,
                             '"approved","subscriptionId"\n"1","0126015401000000302"\n')
    assert outcome.succeeded and outcome.data["subscriptionId"] == "0126015401000000302"


def test_a_decline_is_a_certain_failure_with_the_decline_text():
    body = XML + ("<results><approved>0</approved><denialId>0126015401000000900</denialId>"
                  "<declineCode>24</declineCode><declineText></declineText></results>")
    outcome = interpret_http("chargeByPreviousTransactionId", Expectation.APPROVAL, 200, body)
    assert outcome.failed and outcome.kind is OutcomeKind.DECLINED and not outcome.retryable
    assert "Transaction Denied by Bank" in outcome.meaning  # Appendix B's text for decline code 24
    assert outcome.data["denialId"] == "0126015401000000900"


def test_a_charge_answered_1_without_approval_data_is_unknown():
    outcome = interpret_http("chargeByPreviousTransactionId", Expectation.APPROVAL, 200, '"results"\n"1"')
    assert outcome.unknown and not outcome.retryable


def test_a_charge_answered_minus_7_is_unknown():
    outcome = interpret_http("chargeByPreviousTransactionId", Expectation.APPROVAL, 200, XML + "<results>-7</results>")
    assert outcome.unknown and outcome.code == -7


def test_an_approval_document_without_approved_is_unknown():
    outcome = interpret_http("upgradeSubscription", Expectation.APPROVAL, 200, XML + "<results><x>1</x></results>")
    assert outcome.unknown


def test_allow_upgrade():
    assert interpret_http("allowUpgrade", Expectation.ALLOW_UPGRADE, 200, "1\n").succeeded
    refused = interpret_http("allowUpgrade", Expectation.ALLOW_UPGRADE, 200, "0\n")
    assert refused.failed and "Authorization Denied" in refused.meaning
    assert interpret_http("allowUpgrade", Expectation.ALLOW_UPGRADE, 200, "<html></html>").unknown


def test_datalink_errors_become_outcomes():
    failed_login = interpret_http("cancelSubscription", Expectation.RESULT_CODE, 200, "Error: 02 Failed login")
    assert failed_login.failed and failed_login.kind is OutcomeKind.DATALINK_ERROR
    assert failed_login.data["datalinkError"] == "02"
    strange = interpret_http("cancelSubscription", Expectation.RESULT_CODE, 200, "Error: database on fire")
    assert strange.unknown
