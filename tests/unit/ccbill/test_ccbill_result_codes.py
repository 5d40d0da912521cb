"""Every code of CCBill's result-code table maps to a typed outcome (ccbill-facts.md 2.4, the discount addendum)."""

from __future__ import annotations

import pytest
from billops.ccbill.answer_interpretation import outcome_for_code
from billops.ccbill.outcomes import OutcomeKind, OutcomeStatus
from billops.ccbill.result_codes import DATALINK_ERRORS, RESULT_CODES, result_code

DOCUMENTED = [1, 0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -15, -16, -18, -19, -20, -21, -22, -23, -24]

EXPECTED = {
    # code: (status, retryable)
    1: ("succeeded", False),
    0: ("failed", False),
    -1: ("failed", False),
    -2: ("failed", False),
    -3: ("failed", False),
    -4: ("failed", False),
    -5: ("failed", False),
    -6: ("failed", False),
    -7: ("unknown", True),
    -8: ("failed", False),
    -9: ("failed", False),
    -10: ("failed", False),
    -11: ("failed", False),
    -12: ("failed", True),
    -15: ("failed", False),
    -16: ("failed", False),
    -18: ("failed", False),
    -19: ("failed", False),
    -20: ("failed", False),
    -21: ("failed", False),
    -22: ("failed", False),
    -23: ("failed", True),
    -24: ("failed", True),
}


def test_the_table_holds_exactly_the_documented_codes():
    assert sorted(RESULT_CODES) == sorted(DOCUMENTED)


@pytest.mark.parametrize("code", DOCUMENTED)
def test_every_code_has_a_meaning_a_status_and_a_retry_hint(code):
    outcome = outcome_for_code("cancelSubscription", code)
    status, retryable = EXPECTED[code]
    assert outcome.status.value == status
    assert outcome.retryable is retryable
    assert outcome.code == code
    assert outcome.kind is OutcomeKind.RESULT_CODE
    assert outcome.meaning and outcome.meaning[0].isupper()
    assert outcome.unknown is (status == "unknown")


def test_minus_7_names_its_many_causes_and_asks_to_check_first():
    outcome = outcome_for_code("chargeByPreviousTransactionId", -7)
    assert outcome.status is OutcomeStatus.UNKNOWN
    for cause in ("price", "currency", "password", "too short", "missing argument"):
        assert cause in outcome.meaning
    assert "before sending it again" in outcome.meaning


def test_minus_12_says_when_to_try_again():
    assert outcome_for_code("viewSubscriptionStatus", -12).retry_after_seconds == 3600


@pytest.mark.parametrize("code,param", [(-19, "discountAmount"), (-20, "newRecurringPrice"), (-22, "subscriptionId"),
                                        (-3, "subscriptionId"), (-6, "action")])
def test_codes_name_the_parameter_ccbill_complains_about(code, param):
    assert outcome_for_code("discountSubscription", code).param == param


def test_the_caller_can_say_which_parameter_a_code_is_about():
    outcome = outcome_for_code("discountSubscription", -18, param_hints={-18: "discountAmount"})
    assert outcome.param == "discountAmount"


@pytest.mark.parametrize("code", [-13, -14, -17, -25, 2, 42])
def test_an_undocumented_code_is_unknown_never_success_or_failure(code):
    outcome = outcome_for_code("refundTransaction", code)
    assert outcome.status is OutcomeStatus.UNKNOWN
    assert outcome.kind is OutcomeKind.UNDOCUMENTED_CODE
    assert str(code) in outcome.meaning
    assert result_code(code).name == "UNDOCUMENTED"


def test_datalink_login_errors_are_certain_failures():
    assert set(DATALINK_ERRORS) == {"01", "02", "03", "04"}
    assert all(entry.status is OutcomeStatus.FAILED for entry in DATALINK_ERRORS.values())
    assert DATALINK_ERRORS["01"].retry_after_seconds == 3600


def test_raise_for_outcome_raises_the_matching_error():
    from billops.ccbill.errors import CCBillActionFailed, CCBillOutcomeUnknown

    assert outcome_for_code("cancelSubscription", 1).raise_for_outcome().succeeded
    with pytest.raises(CCBillOutcomeUnknown) as unknown:
        outcome_for_code("cancelSubscription", -7).raise_for_outcome()
    assert unknown.value.outcome.code == -7
    with pytest.raises(CCBillActionFailed, match=r"code -3"):
        outcome_for_code("cancelSubscription", -3).raise_for_outcome()


def test_an_outcome_is_read_only_and_serialisable():
    outcome = outcome_for_code("cancelSubscription", -7)
    with pytest.raises(TypeError):
        outcome.data["x"] = "y"  # type: ignore[index]
    as_dict = outcome.as_dict()
    assert as_dict["status"] == "unknown" and as_dict["code"] == -7
