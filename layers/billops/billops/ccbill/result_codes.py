"""CCBill's API result codes and what each one means for the caller.

Source: ccbill-facts.md section 2.4 (the table gathered from CCBill's API guide, the discount addendum and the -7
article), ccbill-discount-subscription.txt (-2, -18 ... -22) and ccbill-api-error-7-and-upgrades.txt (-7).
Codes -13, -14 and -17 appear nowhere in public material; any number not in this table is treated as *unknown*,
because nobody can say whether CCBill applied the request.

-7 is the code that bites: CCBill uses it for an internal error *and* for a bad price format, an out-of-range
price, a failed currency conversion, wrong DataLink credentials, a username/password too short for the
destination subaccount and a missing argument. Some of those mean "nothing happened", one ("an internal CCBill
server did not successfully establish a connection") does not say. So -7 is *unknown*: find out, then retry.
Validation (request_validation.py) keeps the avoidable causes from ever reaching CCBill.
"""

from __future__ import annotations

from dataclasses import dataclass

from billops.ccbill.outcomes import OutcomeStatus

SUCCEEDED = OutcomeStatus.SUCCEEDED
FAILED = OutcomeStatus.FAILED
UNKNOWN = OutcomeStatus.UNKNOWN


@dataclass(frozen=True)
class ResultCode:
    code: int
    name: str
    meaning: str  # CCBill's own words, lightly completed from its "More Information" column
    status: OutcomeStatus
    retryable: bool  # may sending the same request again give another answer (for unknown: after checking)?
    param: str | None = None  # the request parameter CCBill is complaining about, when the code names one
    retry_after_seconds: int | None = None
    advice: str = ""  # what a person should do about it


_TABLE = (
    ResultCode(1, "SUCCESS", "Success.", SUCCEEDED, False),
    ResultCode(0, "ACTION_FAILED", "The requested action failed.", FAILED, False,
               advice="CCBill refused the action without saying why; check the subscription in the Admin Portal."),
    ResultCode(-1, "AUTHENTICATION_INVALID", "The authentication arguments are invalid or missing.", FAILED, False,
               advice="Check clientAccnum, the DataLink username and password, and clientSubacc/usingSubacc."),
    ResultCode(-2, "SUBSCRIPTION_INVALID_OR_UNSUPPORTED",
               "The subscription ID provided was invalid or the subscription type is not supported by the "
               "requested action (for example a new recurring price for a non-recurring subscription).",
               FAILED, False, param="subscriptionId"),
    ResultCode(-3, "NO_RECORD", "No record was found for the given subscription.", FAILED, False,
               param="subscriptionId"),
    ResultCode(-4, "SUBSCRIPTION_NOT_FOR_ACCOUNT",
               "The given subscription is not for the account the merchant authenticated against.", FAILED, False,
               param="subscriptionId",
               advice="Check clientAccnum and the subaccount scope (clientSubacc / usingSubacc)."),
    ResultCode(-5, "ARGUMENTS_INVALID", "The arguments provided for the requested action are invalid or missing.",
               FAILED, False),
    ResultCode(-6, "ACTION_INVALID", "The requested action is invalid.", FAILED, False, param="action"),
    ResultCode(-7, "INTERNAL_ERROR",
               "There was an internal error or a database error (CCBill also answers -7 for a badly formatted or "
               "out-of-range price, a failed currency conversion, a wrong DataLink username or password, a "
               "username or password too short for the destination subaccount, a missing argument, and transient "
               "system errors).",
               UNKNOWN, True,
               advice="Find out whether the action happened (webhooks, viewSubscriptionStatus) before sending it "
                      "again; if it keeps coming back, contact CCBill Merchant Support."),
    ResultCode(-8, "IP_NOT_ALLOWED", "The IP address the request came from is not in the allowed range.", FAILED,
               False, advice="Add the caller's fixed egress IP to the DataLink user's allowed IPs."),
    ResultCode(-9, "DATALINK_DEACTIVATED_OR_NOT_PERMITTED",
               "The account has been deactivated for DataLink use or is not permitted to perform the requested "
               "action.", FAILED, False,
               advice="Grant the DataLink user the SMS subsystem for this action."),
    ResultCode(-10, "DATALINK_NOT_SET_UP", "The merchant has not been set up to use the DataLink system.", FAILED,
               False),
    ResultCode(-11, "NOT_ELIGIBLE_FOR_DISCOUNT",
               "The subscription is not eligible for a discount: its recurring price is less than $5.00.", FAILED,
               False),
    ResultCode(-12, "TOO_MANY_FAILED_LOGINS",
               "The merchant has failed to log in three or more times in the last hour; wait an hour before "
               "trying again.", FAILED, True, retry_after_seconds=3600),
    ResultCode(-15, "REFUND_THRESHOLD", "The merchant is over its refund threshold.", FAILED, False),
    ResultCode(-16, "VOID_THRESHOLD", "The merchant is over its void threshold.", FAILED, False),
    ResultCode(-18, "RECURRING_PRICE_BELOW_MINIMUM",
               "The recurring price is less than the minimum allowable: a discount cannot result in a price lower "
               "than 5.00 units (currency notwithstanding).", FAILED, False),
    ResultCode(-19, "DISCOUNT_BELOW_MINIMUM",
               "The discount amount is less than the minimum allowable (0.01 units, currency notwithstanding).",
               FAILED, False, param="discountAmount"),
    ResultCode(-20, "NEW_PRICE_ABOVE_CURRENT",
               "The new recurring price is greater than the subscription's recurring price.", FAILED, False,
               param="newRecurringPrice"),
    ResultCode(-21, "CANNOT_REPLACE_CANCEL_DISCOUNT",
               "A cancel discount cannot be replaced with a smaller amount: the discount must result in a lower "
               "price than the existing cancel discount.", FAILED, False),
    ResultCode(-22, "NOT_ELIGIBLE_FOR_DISCOUNT_STATE",
               "The subscription is not eligible for a discount: discounts apply only to an active trial or an "
               "active recurring subscription.", FAILED, False, param="subscriptionId"),
    ResultCode(-23, "TRANSACTION_LIMIT_REACHED", "The transaction limit has been reached (velocity controls).",
               FAILED, True, advice="Try later, or ask CCBill to raise the velocity limits."),
    ResultCode(-24, "PURCHASE_LIMIT_REACHED", "The purchase limit has been reached (velocity controls).", FAILED,
               True, advice="Try later, or ask CCBill to raise the velocity limits."),
)

RESULT_CODES: dict[int, ResultCode] = {entry.code: entry for entry in _TABLE}
"""Every code of CCBill's table, by number."""


def result_code(code: int) -> ResultCode:
    """The table entry for ``code``; a code CCBill does not document is *unknown* (it may have been applied)."""
    known = RESULT_CODES.get(code)
    if known is not None:
        return known
    return ResultCode(
        code,
        "UNDOCUMENTED",
        f"CCBill answered result code {code}, which its documentation does not list.",
        UNKNOWN,
        False,
        advice="Find out whether the action happened before sending it again, and ask CCBill what the code means.",
    )


# DataLink answers "Error: NN ..." text before the API itself runs (ccbill-facts.md 2.1, https://ccbill.com/doc/
# datalink-user). These four are login-level refusals: the action certainly did not run.
DATALINK_ERRORS: dict[str, ResultCode] = {
    "01": ResultCode(0, "DATALINK_TOO_MANY_FAILED_LOGINS", "DataLink: too many failed logins.", FAILED, True,
                     param="password", retry_after_seconds=3600),
    "02": ResultCode(0, "DATALINK_LOGIN_FAILED", "DataLink: failed login.", FAILED, False, param="password"),
    "03": ResultCode(0, "DATALINK_USERNAME_INACTIVE", "DataLink: inactive username.", FAILED, False,
                     param="username"),
    "04": ResultCode(0, "DATALINK_IP_CHECK_FAILED",
                     "DataLink: the check of the caller's IP address failed.", FAILED, False),
}
