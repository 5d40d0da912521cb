"""``billops ccbill check``'s verdicts: what one status answer proves about the login, the egress IP and the
subscription (pass / fail / cannot tell), from CCBill's real answer shapes."""

from __future__ import annotations

import pytest
from billops.ccbill.account_check import CANNOT_TELL, FAIL, PASS, login_checks
from billops.ccbill.answer_interpretation import Expectation, interpret_http

SUB = "0126015401000000123"
XML = "<?xml version='1.0' standalone='yes'?>\n"


def verdicts(status: int, body: str) -> dict[str, str]:
    outcome = interpret_http("viewSubscriptionStatus", Expectation.STATUS_DOCUMENT, status, body)
    return {check.name: check.verdict for check in login_checks(outcome, SUB)}


@pytest.mark.parametrize("status,body,login,egress,subscription", [
    (200, XML + "<results><subscriptionStatus>2</subscriptionStatus></results>", PASS, PASS, PASS),
    (200, XML + "<results>-3</results>", PASS, PASS, FAIL),
    (200, XML + "<results>-4</results>", PASS, PASS, FAIL),
    (200, XML + "<results>-7</results>", FAIL, CANNOT_TELL, CANNOT_TELL),
    (200, XML + "<results>-1</results>", FAIL, CANNOT_TELL, CANNOT_TELL),
    (200, XML + "<results>-12</results>", FAIL, CANNOT_TELL, CANNOT_TELL),
    (200, XML + "<results>-9</results>", FAIL, CANNOT_TELL, CANNOT_TELL),
    (200, XML + "<results>-8</results>", CANNOT_TELL, FAIL, CANNOT_TELL),
    (200, "Error: 04 Check IP failed", CANNOT_TELL, FAIL, CANNOT_TELL),
    (200, "Error: 02 Failed login", FAIL, CANNOT_TELL, CANNOT_TELL),
    (200, "Unauthorized\nInvalid credentials", CANNOT_TELL, CANNOT_TELL, CANNOT_TELL),
    (302, "", CANNOT_TELL, CANNOT_TELL, CANNOT_TELL),
    (500, "<html>oops</html>", CANNOT_TELL, CANNOT_TELL, CANNOT_TELL),
])
def test_what_one_status_answer_proves(status, body, login, egress, subscription):
    assert verdicts(status, body) == {"datalink_login": login, "egress_ip": egress, "subscription": subscription}


def test_a_wrong_password_is_named_and_the_lock_out_warned_of():
    outcome = interpret_http("viewSubscriptionStatus", Expectation.STATUS_DOCUMENT, 200, XML + "<results>-7</results>")
    login = login_checks(outcome, SUB)[0]
    assert "wrong DataLink username or password" in login.why and "lock-out" in login.why
