"""``billops ccbill check``: what can be verified on a live CCBill account without moving money.

Each check answers ``pass``, ``fail`` or ``cannot tell``, and why (docs/ccbill-assumptions.md says what each one
settles). It runs where CCBill is called from - the reconciliation function of a deployed stack, i.e. from the
fixed egress IP when the stack has one - so that the DataLink login *and* the caller's IP are what CCBill sees:

``datalink_login``  one viewSubscriptionStatus of a subscription the merchant names, in its subaccount's scope
``egress_ip``       the same answer: CCBill's -8 / DataLink "Error: 04" mean the caller's IP is not whitelisted
``subscription``    the same answer: CCBill knows the subscription (-3 / -4 / -2 say why not)
``subaccounts``     BILLOPS_CCBILL_SUBACCOUNTS: readable, the login's account configured, every upgrade destination
                    and the named subscription's subaccount configured (the status read above ran in its scope)
``upgrade_key``     the upgrade key decrypts (KMS) and becomes a TripleDES key under BILLOPS_UPGRADE_ENC_* (never
                    shown); ``cannot tell`` whether it is the key CCBill holds - only the link below can tell
``upgrade_link``    a test link to CCBill's upgrade form for a named subscription: opened in a browser, CCBill's
                    form showing proves the ``enc`` recipe (do not submit it: that charges)
``circuit_breaker`` the -7 breaker: a passing login check closes it (it is the "check call" that resumes)

The status read is the only call made, once, never repeated: with a wrong password each call is a failed login, and
three in an hour lock the account. Its -7 counts toward the breaker like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from billops.ccbill.outcomes import CCBillOutcome, OutcomeKind

logger = logging.getLogger(__name__)

PASS = "pass"  # nosec B105  # a check's verdict, not a password
FAIL = "fail"
CANNOT_TELL = "cannot tell"

LOGIN_FAILS = {
    -1: "CCBill answered -1: the authentication arguments are invalid or missing (clientAccnum, username, password, "
        "or the subaccount scope).",
    -7: "CCBill answered -7: with a known subscription and no price involved, that is most likely a wrong DataLink "
        "username or password (-7 is also an internal CCBill error: try once later before changing anything; each "
        "wrong login counts toward CCBill's lock-out).",
    -9: "CCBill answered -9: the account is deactivated for DataLink, or the DataLink user may not use "
        "viewSubscriptionStatus (grant it the SMS subsystems in the Admin Portal).",
    -10: "CCBill answered -10: the account is not set up for DataLink.",
    -12: "CCBill answered -12: three or more failed logins in the last hour; wait an hour, then check again.",
}
DATALINK_LOGIN_FAILS = {
    "01": "DataLink answered 'Error: 01': too many failed logins; wait an hour.",
    "02": "DataLink answered 'Error: 02': failed login (username or password).",
    "03": "DataLink answered 'Error: 03': the DataLink username is inactive.",
}
SUBSCRIPTION_FAILS = {
    -2: "CCBill answered -2: the subscription ID is invalid.",
    -3: "CCBill answered -3: it has no record of this subscription.",
    -4: "CCBill answered -4: the subscription is not of this account, or outside the DataLink user's subaccount scope.",
}


@dataclass
class CheckResult:
    name: str
    verdict: str
    why: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the status read: login, egress IP, subscription -----------------------------------------------------------------


def login_checks(outcome: CCBillOutcome, subscription_id: str) -> list[CheckResult]:
    """datalink_login, egress_ip and subscription from the one viewSubscriptionStatus answer."""
    said = {"ccbill_status": outcome.status.value, "ccbill_kind": outcome.kind.value, "ccbill_code": outcome.code,
            "http_status": outcome.http_status}
    if outcome.succeeded:
        state = outcome.data.get("subscriptionStatus")
        return [
            CheckResult("datalink_login", PASS, "CCBill accepted the DataLink login and answered a subscription "
                                                "status.", said),
            CheckResult("egress_ip", PASS, "CCBill answered from this stack's egress address: it is whitelisted "
                                           "for this DataLink user.", said),
            CheckResult("subscription", PASS, f"CCBill knows {subscription_id} (subscriptionStatus {state}: 0 "
                                              "inactive, 1 cancelled, 2 active recurring).",
                        {**said, "ccbill_view": dict(outcome.data)}),
        ]
    if outcome.kind is OutcomeKind.RESULT_CODE and outcome.code in SUBSCRIPTION_FAILS:
        # The login and the IP were accepted: CCBill looked for the subscription.
        return [
            CheckResult("datalink_login", PASS, f"CCBill accepted the login (it answered {outcome.code}, a "
                                                "subscription-level answer).", said),
            CheckResult("egress_ip", PASS, "CCBill accepted the caller's address (it looked for the subscription).",
                        said),
            CheckResult("subscription", FAIL, SUBSCRIPTION_FAILS[outcome.code or 0], said),
        ]
    unknown_subscription = CheckResult("subscription", CANNOT_TELL, "CCBill did not get as far as the "
                                                                    "subscription.", said)
    if outcome.kind is OutcomeKind.RESULT_CODE and outcome.code == -8:
        return [CheckResult("datalink_login", CANNOT_TELL, "CCBill refused the caller's address before the login "
                                                           "could be judged.", said),
                CheckResult("egress_ip", FAIL, "CCBill answered -8: this stack's egress address is not in the "
                                               "DataLink user's allowed IPs (send the WorkerEgressIp output to "
                                               "CCBill support).", said),
                unknown_subscription]
    if outcome.kind is OutcomeKind.DATALINK_ERROR and outcome.data.get("datalinkError") == "04":
        return [CheckResult("datalink_login", CANNOT_TELL, "DataLink refused the caller's address first.", said),
                CheckResult("egress_ip", FAIL, "DataLink answered 'Error: 04': the check of the caller's IP failed "
                                               "(whitelist the WorkerEgressIp output).", said),
                unknown_subscription]
    if outcome.kind is OutcomeKind.RESULT_CODE and outcome.code in LOGIN_FAILS:
        return [CheckResult("datalink_login", FAIL, LOGIN_FAILS[outcome.code or 0], said),
                CheckResult("egress_ip", CANNOT_TELL, "The login was refused; CCBill does not say whether it checked "
                                                      "the address first.", said),
                unknown_subscription]
    if outcome.kind is OutcomeKind.DATALINK_ERROR and outcome.data.get("datalinkError") in DATALINK_LOGIN_FAILS:
        return [CheckResult("datalink_login", FAIL, DATALINK_LOGIN_FAILS[str(outcome.data["datalinkError"])], said),
                CheckResult("egress_ip", CANNOT_TELL, "The login was refused first.", said), unknown_subscription]
    if outcome.kind is OutcomeKind.CREDENTIALS_UNAVAILABLE:
        return [CheckResult("datalink_login", FAIL, f"The DataLink login could not be read: {outcome.meaning}", said),
                CheckResult("egress_ip", CANNOT_TELL, "Nothing was sent.", said), unknown_subscription]
    why = f"CCBill's answer proves nothing ({outcome.meaning[:300]})"
    return [CheckResult("datalink_login", CANNOT_TELL, why, said), CheckResult("egress_ip", CANNOT_TELL, why, said),
            unknown_subscription]


# --- configuration: subaccounts -------------------------------------------------------------------------------------


def subaccounts_check(client: Any, login_accnum: str | None, subscription_subacc: str | None,
                      login_passed: bool) -> CheckResult:
    """Is BILLOPS_CCBILL_SUBACCOUNTS complete for what billops sends?"""
    directory = client.subaccounts
    configured = sorted(f"{entry.client_accnum}/{entry.client_subacc}" for entry in directory)
    details: dict[str, Any] = {"configured": configured}
    if not configured:
        return CheckResult("subaccounts", CANNOT_TELL, "BILLOPS_CCBILL_SUBACCOUNTS is empty: nothing is checked "
                                                       "before calling CCBill (prices, periods, username/password "
                                                       "lengths), so CCBill's -7 would be the first word.", details)
    missing = []
    if login_accnum and not any(name.startswith(f"{login_accnum}/") for name in configured):
        missing.append(f"the DataLink login's account {login_accnum}")
    for option in client.catalogue:
        name = f"{option.client_accnum}/{option.client_subacc}"
        if name not in configured:
            missing.append(f"upgrade {option.key}'s destination {name}")
    if subscription_subacc and login_accnum and f"{login_accnum}/{subscription_subacc}" not in configured:
        missing.append(f"the subscription's subaccount {login_accnum}/{subscription_subacc}")
    if missing:
        return CheckResult("subaccounts", FAIL, "Not configured in BILLOPS_CCBILL_SUBACCOUNTS: "
                                                f"{'; '.join(missing)}.", details)
    scope = f" CCBill accepted the status read in subaccount {subscription_subacc}'s scope." if (
        subscription_subacc and login_passed) else ""
    return CheckResult("subaccounts", PASS, f"{len(configured)} subaccounts configured, covering the login's account "
                                            f"and every upgrade destination.{scope} Their price ranges and "
                                            "username/password lengths can only be compared with CCBill's Pricing "
                                            "and User Management pages by a person.", details)


# --- the upgrade key and a test link (the one place the check touches `enc`) ------------------------------------


def upgrade_checks(client: Any, subscription_id: str | None, client_subacc: str | None) -> list[CheckResult]:
    """upgrade_key and upgrade_link, through the client's own `enc` form (billops.ccbill.upgrade_encryption)."""
    if getattr(client, "_encryptor", None) is None:
        return [CheckResult("upgrade_key", CANNOT_TELL, "No upgrade key is configured (BILLOPS_UPGRADE_KEY_CIPHERTEXT "
                                                        "/ BILLOPS_UPGRADE_KEY_SECRET_ARN): no `enc` links are made."),
                CheckResult("upgrade_link", CANNOT_TELL, "No upgrade key: no `enc` link to test.")]
    if not subscription_id or not client_subacc:
        return [CheckResult("upgrade_key", CANNOT_TELL, "Name a subscription whose subaccount billops knows "
                                                        "(--upgrade-subscription) to build the test link."),
                CheckResult("upgrade_link", CANNOT_TELL, "No subscription to build a link for.")]
    # The link proves the `enc` recipe, which is the same whichever upgrade it offers: with several configured,
    # the first one (named in the details).
    catalogue = list(getattr(client, "catalogue", None) or ())
    upgrade = catalogue[0].key if len(catalogue) > 1 else None
    try:
        form = client.upgrade_form(client_subacc, subscription_id=subscription_id, method="enc", upgrade=upgrade)
    except Exception as error:  # noqa: BLE001 - the key's or the catalogue's problem, reported (never the key)
        message = str(error)[:300]
        return [CheckResult("upgrade_key", FAIL, f"The upgrade key cannot make `enc`: {message}"),
                CheckResult("upgrade_link", FAIL, "No link: the key or the upgrade catalogue is unusable.")]
    link = f"{form.url}?{urlencode(form.fields)}"
    recipe = getattr(client._encryptor, "recipe", None)
    recipe_text = ", ".join(f"{name}={getattr(value, 'value', value)}" for name, value in vars(recipe).items()) \
        if recipe is not None else "default"
    return [
        CheckResult("upgrade_key", PASS, "The upgrade key decrypts and makes a TripleDES key with the configured "
                                         f"recipe ({recipe_text}). Whether it is the key CCBill holds, only the "
                                         "link below can tell."),
        CheckResult("upgrade_link", CANNOT_TELL,
                    "Open the link in a browser: CCBill's upgrade form showing for this subscription proves the "
                    "`enc` recipe; a denial or an error page disproves it. Do not submit the form (it charges). "
                    "`enc` is a permanent credential of this subscription: the link works for anyone, for as long "
                    "as the key is unchanged - keep it to yourself.",
                    {"link": link, "url": form.url, "fields": dict(form.fields),
                     **({"upgrade": upgrade} if upgrade else {})}),
    ]


# --- the whole check ------------------------------------------------------------------------------------------------


def run_check(client: Any, *, subscription_id: str, client_subacc: str | None = None,
              upgrade_subscription_id: str | None = None, upgrade_client_subacc: str | None = None,
              breaker: Any = None, credentials_accnum: Callable[[], str | None] | None = None) -> dict[str, Any]:
    """Every check; ``client`` must have no breaker of its own (this read is the check call), ``breaker`` is told of
    its answer and closed when the login passes."""
    outcome = client.view_subscription_status(subscription_id, client_subacc=client_subacc)
    results = login_checks(outcome, subscription_id)
    login_passed = results[0].verdict == PASS
    accnum = None
    try:
        accnum = credentials_accnum() if credentials_accnum else client._load_credentials().client_accnum
    except Exception:  # noqa: BLE001 - reported by the login check already
        accnum = None
    results.append(subaccounts_check(client, accnum, client_subacc, login_passed))
    results.extend(upgrade_checks(client, upgrade_subscription_id or subscription_id,
                                  upgrade_client_subacc if upgrade_subscription_id else client_subacc))
    results.append(_breaker_check(breaker, outcome, login_passed))
    verdicts = [result.verdict for result in results]
    summary = FAIL if FAIL in verdicts else (CANNOT_TELL if CANNOT_TELL in verdicts else PASS)
    return {"summary": summary, "subscription_id": subscription_id, "checks": [r.as_dict() for r in results]}


def _breaker_check(breaker: Any, outcome: CCBillOutcome, login_passed: bool) -> CheckResult:
    if breaker is None:
        return CheckResult("circuit_breaker", CANNOT_TELL, "No circuit breaker in this process.")
    breaker.record(outcome)
    status = breaker.status()
    if status.open and login_passed:
        breaker.close(by="billops ccbill check", reason="the DataLink login check passed")
        return CheckResult("circuit_breaker", PASS, "CCBill calls were paused; this check's login passed, so they "
                                                    "are resumed.", {"was_open": True})
    if status.open:
        return CheckResult("circuit_breaker", FAIL, f"CCBill calls are paused ({status.consecutive_minus7} "
                                                    "consecutive -7); they stay paused until the login check passes "
                                                    "or `billops ccbill resume`.",
                           {"consecutive_minus7": status.consecutive_minus7})
    return CheckResult("circuit_breaker", PASS, f"CCBill calls are not paused (run of -7: "
                                                f"{status.consecutive_minus7} of {status.threshold}).",
                       {"consecutive_minus7": status.consecutive_minus7})
