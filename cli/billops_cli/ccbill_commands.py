"""``billops ccbill check|resume``: verify a live CCBill account without moving money; resume paused CCBill calls.

Both run inside the stack's ReconciliationFunction (lambda:InvokeFunction; locally ``POST /__local/schedules/
ReconciliationFunction`` with the command as the event): the check's status read must leave from the stack's own
egress address with the stack's DataLink login, as every CCBill call does. The checks and what each proves:
billops.ccbill.account_check; why each matters: docs/ccbill-assumptions.md.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from billops_cli.output import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, CliError, Output, render_table
from billops_cli.targets import Target

FUNCTION = "ReconciliationFunction"
MARK = {"pass": "PASS", "fail": "FAIL", "cannot tell": "CANNOT TELL"}  # nosec B105  # verdicts, not passwords


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("ccbill", help="check the CCBill account without moving money; resume paused calls")
    actions = group.add_subparsers(dest="ccbill_action", required=True, metavar="ACTION")
    check = actions.add_parser("check", parents=[common],
                               help="verify the DataLink login, the egress IP, the subaccounts and the upgrade key; "
                                    "print a test upgrade link")
    check.add_argument("--subscription", required=True, metavar="ID",
                       help="a subscription of this account to read the status of (viewSubscriptionStatus: one "
                            "read, nothing changes)")
    check.add_argument("--upgrade-subscription", metavar="ID",
                       help="the subscription to build the test upgrade link for (default: --subscription)")
    check.set_defaults(handler=run_check)
    resume = actions.add_parser("resume", parents=[common],
                                help="resume CCBill calls paused after consecutive -7 answers (fix the login first)")
    resume.add_argument("--reason", default="", help="why (kept on the breaker and in CCBillCallsResumed)")
    resume.set_defaults(handler=run_resume)


def _invoke(target: Target, payload: dict[str, Any]) -> dict[str, Any]:
    answer = target.run_schedule(FUNCTION, payload)
    if not isinstance(answer, dict):
        raise CliError(f"{FUNCTION} answered {str(answer)[:200]!r}")
    if answer.get("error"):
        raise CliError(str(answer["error"]), EXIT_USAGE)
    return answer


def run_check(args: argparse.Namespace, target: Target, out: Output) -> int:
    payload = {"billops_command": "ccbill_check", "subscription_id": args.subscription.strip()}
    if args.upgrade_subscription:
        payload["upgrade_subscription_id"] = args.upgrade_subscription.strip()
    answer = _invoke(target, payload)
    checks = answer.get("checks") or []
    rows = [{"check": check["name"], "verdict": MARK.get(check["verdict"], check["verdict"]), "why": check["why"]}
            for check in checks]
    human = [f"CCBill account check of {target.description}, with subscription {answer.get('subscription_id')}:",
             render_table(rows, [("check", "check"), ("verdict", "verdict"), ("why", "why")])]
    link = next((check.get("details", {}).get("link") for check in checks if check["name"] == "upgrade_link"
                 and check.get("details", {}).get("link")), None)
    if link:
        human += ["", "Test upgrade link (open it in a browser; CCBill's form showing proves the enc recipe; do NOT "
                      "submit it - that charges):", link]
    if not answer.get("known_to_billops"):
        human.append("\n(billops has no record of this subscription: the read ran without a subaccount scope)")
    human.append(f"\nSummary: {MARK.get(answer.get('summary'), answer.get('summary'))}")
    out.emit({"target": target.description, **answer}, "\n".join(human))
    summary = answer.get("summary")
    return EXIT_FAILED if summary == "fail" else EXIT_UNKNOWN if summary == "cannot tell" else EXIT_OK


def run_resume(args: argparse.Namespace, target: Target, out: Output) -> int:
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): say so
        who = "unknown user"
    answer = _invoke(target, {"billops_command": "ccbill_resume", "by": f"billops ccbill resume ({who})",
                              "reason": args.reason or "an operator resumed CCBill calls"})
    if answer.get("resumed"):
        text = "CCBill calls resumed: operations that were waiting run at their next due time (within a minute)."
    else:
        text = (f"CCBill calls were not paused (run of -7: {answer.get('consecutive_minus7')} of "
                f"{answer.get('threshold')}); nothing to resume.")
    out.emit({"target": target.description, **answer}, text)
    return EXIT_OK
