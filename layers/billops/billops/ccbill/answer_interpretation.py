"""From an HTTP status and a body to a CCBillOutcome, for each kind of answer an action expects.

Pure functions (no HTTP library here), so that every code and every odd body is unit-tested without a network.
The transport failures (timeouts, resets, refused connections) are classified in client.py, next to the HTTP
library whose exceptions they are.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from billops.ccbill.outcomes import CCBillOutcome, OutcomeKind, OutcomeStatus
from billops.ccbill.responses import BodyKind, ParsedBody, parse_body, parse_code
from billops.ccbill.result_codes import DATALINK_ERRORS, result_code
from billops.reference.decline_codes import DECLINE_TEXT


class Expectation(StrEnum):
    RESULT_CODE = "result_code"  # cancel, discount, extend, refund, void, voidOrRefund: "results" 1 / code
    STATUS_DOCUMENT = "status_document"  # viewSubscriptionStatus: a document of status fields
    APPROVAL = "approval"  # billingApi.cgi: approved=1 + subscriptionId, approved=0 + decline fields, or a code
    ALLOW_UPGRADE = "allow_upgrade"  # upgradeSubscription.cgi allowUpgrade: "1" or a refusal


# The allowUpgrade return table lost its numbers in every public copy (ccbill-subscription-upgrade-system.txt);
# only 1 = success is certain, so any other value is reported with the whole list of documented refusals.
ALLOW_UPGRADE_REFUSALS = (
    "Authorization Denied (either the account is not set up to upgrade, or the IP address is not allowed); "
    "Username or Subscription ID not provided; No active subscriptions found; Invalid Subscription ID; "
    "Internal Error, Contact CCBill"
)


def interpret_http(action: str, expectation: Expectation, http_status: int, body: bytes | str,
                   *, param_hints: dict[int, str] | None = None, location: str | None = None) -> CCBillOutcome:
    """The outcome of one HTTP answer.

    Only a 2xx answer carries a result CCBill documents. Any other status proves nothing about what the script did
    before it answered: a 5xx after running, a 3xx from a front end that may sit after the script (CCBill documents
    no redirect of its API), a 4xx from a proxy or WAF. So, for an action that changes something (it can charge,
    refund, cancel...), anything but 2xx is *unknown* - settled by looking like a timeout, never ``failed``: a
    merchant who retries a "failed" charge can charge twice. Reads (viewSubscriptionStatus, allowUpgrade) change
    nothing, so a 4xx there is simply a failed read.
    """
    if 200 <= http_status <= 299:
        outcome = interpret_body(action, expectation, parse_body(body), param_hints=param_hints)
        return _with_http_status(outcome, http_status)
    changes_something = expectation in (Expectation.RESULT_CODE, Expectation.APPROVAL)
    if 500 <= http_status <= 599:
        # The script may have run before the server failed: unknown, like a read timeout.
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, f"CCBill answered HTTP {http_status}; the request may "
                             "have been applied.", True, OutcomeKind.HTTP_STATUS, http_status=http_status)
    if 300 <= http_status <= 399:
        where = f" to {location}" if location else ""
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, f"CCBill answered a redirect (HTTP {http_status}){where}, "
                             "which its API never documents; it was not followed and the request may have been "
                             "applied (check the configured URL).", True, OutcomeKind.HTTP_STATUS,
                             http_status=http_status)
    retryable = http_status in (408, 429)
    if changes_something:
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, f"CCBill's server answered HTTP {http_status}, not a "
                             "result CCBill documents; the request may have been applied.", True,
                             OutcomeKind.HTTP_STATUS, http_status=http_status)
    return CCBillOutcome(action, OutcomeStatus.FAILED, f"CCBill's server refused the request with HTTP "
                         f"{http_status}.", retryable, OutcomeKind.HTTP_STATUS, http_status=http_status)


def _with_http_status(outcome: CCBillOutcome, http_status: int) -> CCBillOutcome:
    return replace(outcome, http_status=http_status)


def interpret_body(action: str, expectation: Expectation, parsed: ParsedBody,
                   *, param_hints: dict[int, str] | None = None) -> CCBillOutcome:
    if parsed.kind is BodyKind.DATALINK_ERROR:
        return _datalink_error(action, parsed)
    if parsed.kind is BodyKind.UNREADABLE:
        # Safe-to-repeat actions (status, allowUpgrade) may simply ask again; the others must check first.
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, f"CCBill's answer could not be read ({parsed.detail}); "
                             "the request may have been applied.", True, OutcomeKind.UNREADABLE_RESPONSE)

    if expectation is Expectation.ALLOW_UPGRADE:
        return _allow_upgrade(action, parsed)

    if parsed.kind is BodyKind.CODE:
        if parsed.code is None:  # a CODE body always carries its code (responses.py)
            raise ValueError("a code answer without its code")
        if expectation is Expectation.STATUS_DOCUMENT and parsed.code == 1:
            return CCBillOutcome(action, OutcomeStatus.UNKNOWN, "CCBill answered 1 but no subscription status.",
                                 True, OutcomeKind.UNREADABLE_RESPONSE, code=1)
        if expectation is Expectation.APPROVAL and parsed.code == 1:
            # "1" alone is not "approved with subscription X": the charge may exist, its ID is unknown.
            return CCBillOutcome(action, OutcomeStatus.UNKNOWN, "CCBill answered 1 without approved/subscriptionId; "
                                 "find the new subscription before charging again.", False,
                                 OutcomeKind.UNREADABLE_RESPONSE, code=1)
        return outcome_for_code(action, parsed.code, param_hints=param_hints)

    fields = parsed.fields
    if expectation is Expectation.STATUS_DOCUMENT:
        return _status_document(action, fields, param_hints)
    if expectation is Expectation.APPROVAL:
        return _approval(action, fields, param_hints)
    # A result-code action answered with a document: read its "results" if it has one.
    code = parse_code(fields.get("results"))
    if code is not None:
        outcome = outcome_for_code(action, code, param_hints=param_hints)
        return replace(outcome, data=fields)
    return CCBillOutcome(action, OutcomeStatus.UNKNOWN, "CCBill answered a document without a result code; the "
                         "request may have been applied.", True, OutcomeKind.UNREADABLE_RESPONSE, data=fields)


def outcome_for_code(action: str, code: int, *, param_hints: dict[int, str] | None = None) -> CCBillOutcome:
    entry = result_code(code)
    meaning = entry.meaning if not entry.advice else f"{entry.meaning} {entry.advice}"
    kind = OutcomeKind.RESULT_CODE if entry.name != "UNDOCUMENTED" else OutcomeKind.UNDOCUMENTED_CODE
    param = (param_hints or {}).get(code, entry.param)
    return CCBillOutcome(action, entry.status, meaning, entry.retryable, kind, code=code, param=param,
                         retry_after_seconds=entry.retry_after_seconds)


def _datalink_error(action: str, parsed: ParsedBody) -> CCBillOutcome:
    entry = DATALINK_ERRORS.get(parsed.datalink_code or "")
    if entry is None:
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, f"DataLink answered an error this client does not know: "
                             f"{parsed.detail}", False, OutcomeKind.DATALINK_ERROR)
    return CCBillOutcome(action, entry.status, f"{entry.meaning} ({parsed.detail})", entry.retryable,
                         OutcomeKind.DATALINK_ERROR, param=entry.param,
                         retry_after_seconds=entry.retry_after_seconds,
                         data={"datalinkError": parsed.datalink_code or ""})


STATUS_VALUES = frozenset({"0", "1", "2"})
"""viewSubscriptionStatus's subscriptionStatus: 0 inactive, 1 cancelled (or non-recurring), 2 active recurring
(ccbill-facts.md 2.3; open-rails' live captures show 0 and 2)."""


def _status_document(action: str, fields: dict[str, str], param_hints: dict[int, str] | None) -> CCBillOutcome:
    """A status answer is a success only when it carries the status itself: any two-line document is not one
    ("Unauthorized" / "Invalid credentials", "Maintenance" / "Please retry later", a subscriptionId alone...).
    Not repeated by the client at once (retryable=False): such a text may be a refused login, and three of those in
    an hour lock the account."""
    code = parse_code(fields.get("results"))
    if code is not None and code != 1:
        return replace(outcome_for_code(action, code, param_hints=param_hints), data=fields)
    status = (fields.get("subscriptionStatus") or "").strip()
    if status not in STATUS_VALUES:
        what = f"subscriptionStatus {status[:20]!r} is not one CCBill documents" if status else \
            "it has no subscriptionStatus"
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, f"CCBill's answer is not a subscription status ({what}; "
                             f"fields: {', '.join(sorted(fields))[:200]})", False, OutcomeKind.UNREADABLE_RESPONSE)
    return CCBillOutcome(action, OutcomeStatus.SUCCEEDED, "Success.", False, OutcomeKind.DATA, code=1, data=fields)


def _approval(action: str, fields: dict[str, str], param_hints: dict[int, str] | None) -> CCBillOutcome:
    approved = (fields.get("approved") or "").strip()
    if approved == "1":
        if not (fields.get("subscriptionId") or "").strip():
            return CCBillOutcome(action, OutcomeStatus.SUCCEEDED, "Approved, but CCBill sent no subscriptionId.",
                                 False, OutcomeKind.DATA, code=1, data=fields)
        return CCBillOutcome(action, OutcomeStatus.SUCCEEDED, "Approved.", False, OutcomeKind.DATA, code=1,
                             data=fields)
    if approved == "0":
        decline_code = parse_code(fields.get("declineCode"))
        text = (fields.get("declineText") or "").strip() or DECLINE_TEXT.get(decline_code or -1, "")
        detail = f" (decline code {decline_code}: {text})" if decline_code is not None else (
            f" ({text})" if text else "")
        return CCBillOutcome(action, OutcomeStatus.FAILED, f"The charge was declined{detail}.", False,
                             OutcomeKind.DECLINED, code=0, data=fields)
    code = parse_code(fields.get("results"))
    if code is not None and code != 1:
        outcome = outcome_for_code(action, code, param_hints=param_hints)
        return replace(outcome, data=fields)
    return CCBillOutcome(action, OutcomeStatus.UNKNOWN, "CCBill's answer has no readable 'approved' value; the "
                         "charge may have happened.", False, OutcomeKind.UNREADABLE_RESPONSE, data=fields)


def _allow_upgrade(action: str, parsed: ParsedBody) -> CCBillOutcome:
    code = parsed.code if parsed.kind is BodyKind.CODE else parse_code(parsed.fields.get("results"))
    if code == 1:
        return CCBillOutcome(action, OutcomeStatus.SUCCEEDED, "The upgrade is allowed: send the consumer to the "
                             "upgrade form within 30 minutes.", False, OutcomeKind.RESULT_CODE, code=1)
    if code is None:
        return CCBillOutcome(action, OutcomeStatus.UNKNOWN, "CCBill's answer to allowUpgrade could not be read.",
                             True, OutcomeKind.UNREADABLE_RESPONSE, data=parsed.fields)
    return CCBillOutcome(action, OutcomeStatus.FAILED, f"CCBill did not allow the upgrade (value {code}). CCBill "
                         f"documents these refusals without their values: {ALLOW_UPGRADE_REFUSALS}.", False,
                         OutcomeKind.RESULT_CODE, code=code)
