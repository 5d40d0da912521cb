"""Recorded calls against the deployed template: what would be denied (the check fails) and which grants no call
used (reported, with the reason template.yaml gives for keeping each, if any)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billops_local.aws_call_recording import ACCOUNT_ID

from iam_check.deployed_template import DeployedTemplate, physical_name
from iam_check.implied_calls import implied_requests
from iam_check.policy_evaluation import (
    Principal,
    Request,
    Statement,
    action_matches,
    applies,
    as_list,
    condition_matches,
    evaluate,
    principal_match,
    resource_matches,
)

KEY_ADMINISTRATION_ONLY = {
    "kms:describekey", "kms:getkeypolicy", "kms:putkeypolicy", "kms:listkeypolicies", "kms:getkeyrotationstatus",
    "kms:enablekeyrotation", "kms:disablekeyrotation", "kms:listkeyrotations", "kms:rotatekeyondemand",
    "kms:enablekey", "kms:disablekey", "kms:updatekeydescription", "kms:createalias", "kms:updatealias",
    "kms:deletealias", "kms:listresourcetags", "kms:tagresource", "kms:untagresource", "kms:listgrants",
    "kms:revokegrant", "kms:schedulekeydeletion", "kms:cancelkeydeletion",
}


@dataclass(frozen=True)
class RecordedCall:
    function: str
    via: str
    action: str
    resource: str | None
    context: Mapping[str, Any]
    seen_in: str
    unsupported: str | None = None

    def describe(self) -> str:
        context = ", ".join(f"{key}={value}" for key, value in sorted(self.context.items())
                            if key != "kms:CallerAccount")
        via = " (its event source mapping)" if self.via == "event-source-mapping" else ""
        return f"{self.action} on {self.resource}" + (f" [{context}]" if context else "") + via


def read_recordings(directories: Iterable[Path]) -> list[RecordedCall]:
    """Every distinct call in the ``calls-*.jsonl`` files (one per process) under the directories."""
    calls: dict[str, RecordedCall] = {}
    for directory in directories:
        for path in sorted(Path(directory).rglob("calls-*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                key = json.dumps({name: value for name, value in entry.items() if name != "seen_in"}, sort_keys=True)
                calls.setdefault(key, RecordedCall(entry["function"], entry.get("via", "handler"), entry["action"],
                                                   entry.get("resource"), entry.get("context") or {},
                                                   entry.get("seen_in", "?"), entry.get("unsupported")))
    return list(calls.values())


@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern of one statement: the unit reported as used or unused."""

    statement: Statement
    action: str
    resource: str

    def describe(self) -> str:
        return f"{self.statement.where}: {self.action} on {self.resource}"


@dataclass
class Denial:
    call: RecordedCall
    request: Request
    why: str  # "the call itself" or what the service does for it
    reason: str
    candidates: list[str]  # statements that grant the action but did not match (resource, condition)

    def describe(self) -> str:
        lines = [f"DENIED {self.call.function}: {self.request.action} on {self.request.resource}"
                 + (f" ({self.why}, for {self.call.describe()})" if self.why != "the call itself" else
                    (" (its event source mapping)" if self.call.via == "event-source-mapping" else "")),
                 f"    {self.reason}; context {dict(self.request.context)}",
                 f"    first seen in: {self.call.seen_in}"]
        if self.candidates:
            lines.append("    statements granting the action elsewhere: " + "; ".join(self.candidates))
        else:
            lines.append("    no statement grants this action to the function at all")
        return "\n".join(lines)


@dataclass
class Result:
    calls: list[RecordedCall]
    denials: list[Denial] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # calls that cannot be checked
    unused: list[tuple[Grant, str | None]] = field(default_factory=list)  # (grant, justification)
    unknown_resources: list[RecordedCall] = field(default_factory=list)
    checked_requests: int = 0

    @property
    def ok(self) -> bool:
        return not self.denials and not self.problems


def _principal(template: DeployedTemplate, function: str) -> Principal:
    return Principal(ACCOUNT_ID, arn=template.roles[function].arn)


# DynamoDB actions that act on an index (the others' only resource type is the table: a statement naming a table
# and its indexes together grants them nothing on the indexes, and that is not a grant to report).
_INDEX_ACTIONS = {"dynamodb:query", "dynamodb:scan"}


def _meaningful(action: str, resource: str) -> bool:
    if action.lower().startswith("dynamodb:") and "/index/" in resource:
        return action.lower() in _INDEX_ACTIONS
    return True


def _grants(template: DeployedTemplate) -> list[Grant]:
    """Every grant to the functions: their roles' Allow statements, and key policy statements naming a function's
    role, the account (IAM delegation) or a service principal, key administration excepted."""
    grants: list[Grant] = []
    seen: set[str] = set()
    for role in template.roles.values():
        for statement in role.statements:
            if statement.effect != "Allow" or statement.where in seen:
                continue
            seen.add(statement.where)
            grants += [Grant(statement, action, resource) for action in statement.actions
                       for resource in statement.resources if _meaningful(action, resource)]
    for key, statements in template.key_policies.items():
        for statement in statements:
            if statement.effect != "Allow":
                continue
            if {action.lower() for action in statement.actions} <= KEY_ADMINISTRATION_ONLY:
                continue  # the key's administrators (people, CloudFormation), not the functions
            grants += [Grant(statement, action, key) for action in statement.actions]
    return grants


def _canonical(call: RecordedCall, template: DeployedTemplate) -> str | None:
    if call.resource is None:
        return None
    return template.local_names.get(call.resource, call.resource)


def _known(resource: str, template: DeployedTemplate) -> bool:
    if resource.startswith("arn:aws:dynamodb:"):
        return resource.split("/index/")[0].split("/stream/")[0] in template.resource_names
    return resource in template.resource_names or not resource.startswith(
        ("arn:aws:sqs:", "arn:aws:secretsmanager:", "arn:aws:kms:", "arn:aws:events:"))


def check(calls: list[RecordedCall], template: DeployedTemplate,
          justified: Mapping[tuple[str, str], str] | None = None) -> Result:
    result = Result(calls)
    used: list[tuple[Statement, Request]] = []
    checked: list[tuple[str, Request]] = []  # (function, request) of every allowed request
    for call in calls:
        if call.unsupported:
            result.problems.append(f"{call.function}: {call.action}: {call.unsupported} (seen in {call.seen_in})")
            continue
        if call.function not in template.roles:  # a test's own stand-in function (the pollers' tests)
            result.unknown_resources.append(call)
            continue
        resource = _canonical(call, template)
        if resource is None or resource.endswith("key/unknown"):
            result.unknown_resources.append(call)
            continue
        if not _known(resource, template):
            result.unknown_resources.append(call)
            continue
        principal = _principal(template, call.function)
        context = {"aws:PrincipalArn": principal.arn, "aws:PrincipalAccount": ACCOUNT_ID, **call.context}
        request = Request(principal, call.action, resource, context)
        for why, each in [("the call itself", request), *implied_requests(request, template)]:
            result.checked_requests += 1
            role = template.roles[call.function]
            key_policy = template.key_policies.get(each.resource) if each.action.startswith("kms:") else None
            decision = evaluate(each, role.statements, key_policy=key_policy, boundary=role.boundary)
            if decision.allowed:
                used += [(statement, each) for statement in decision.allowed_by]
                checked.append((call.function, each))
                continue
            candidates = [statement.where for statement in [*role.statements, *(key_policy or [])]
                          if statement.effect == "Allow"
                          and any(action_matches(pattern, each.action) for pattern in statement.actions)
                          and (statement.principals is None or principal_match(statement, each.principal))]
            result.denials.append(Denial(call, each, why, decision.reason, candidates))
    used_grants = set()
    for statement, request in used:
        for action in statement.actions:
            for resource in statement.resources:
                if action_matches(action, request.action) and (
                        resource_matches(resource, request.resource) or statement.principals is not None):
                    used_grants.add((statement.where, action, resource if statement.principals is None else "*"))
    justified = justified or {}
    for grant in _grants(template):
        key = (grant.statement.where, grant.action, grant.resource if grant.statement.principals is None else "*")
        if key not in used_grants:
            why = justification_for(grant.statement, justified, grant.action) or _read_by_another(grant, checked,
                                                                                                  template)
            result.unused.append((grant, why))
    return result


# Reads every container caches (a secret, the decrypted upgrade key): the local stack and the integration tests run
# every function in one process, so the first function to read one serves the others from its cache.
_CACHED_READS = {"secretsmanager:getsecretvalue", "kms:decrypt"}


def _read_by_another(grant: Grant, checked: list[tuple[str, Request]], template: DeployedTemplate) -> str | None:
    if grant.action.lower() not in _CACHED_READS:
        return None
    owner = next((role.function for role in template.roles.values()
                  if grant.statement.where.startswith(role.role + "/")), None)
    if owner is None:  # a key policy statement: which function it names
        owner = next((role.function for role in template.roles.values()
                      if role.arn in (grant.statement.principals or {}).get("AWS", ())), None)
    for function, request in checked:
        if function == owner or not action_matches(grant.action, request.action):
            continue
        if request.context.get("kms:ViaService", "secretsmanager.").split(".")[0] != "secretsmanager":
            continue  # a table's or a queue's key is used by each function's own calls: no cache between them
        if not resource_matches(grant.resource, request.resource) and grant.statement.principals is None:
            continue
        if condition_matches(grant.statement.condition, request.context):
            return (f"read by {function} in the same process (locally one process runs every function, and its "
                    "cache serves the others; in AWS each container reads it)")
    return None


def _mentions(text: str, action: str) -> bool:
    """Does the reason name the action (``kms:DescribeKey``, ``DescribeKey``, ``ReEncrypt*``)?"""
    short = action.split(":", 1)[-1].lower()
    for token in re.findall(r"[A-Za-z]+\*?", text):
        token = token.lower()
        if token == short or (token.endswith("*") and short.startswith(token[:-1])):
            return True
    return False


def justification_for(statement: Statement, justified: Mapping[tuple[str, str], str],
                      action: str | None = None) -> str | None:
    """The reason template.yaml gives (a comment above the statement), or why an AWS managed policy is kept. A
    reason that names some of the statement's actions covers those only; one naming none covers the statement."""
    if "(AWS managed)" in statement.where:
        return ("attached by SAM (Lambda's logs, the event source mapping); its other actions are Lambda's own "
                "use, outside the suites")
    owner, _, rest = statement.where.partition("/")
    sid = statement.where.rsplit("/", 1)[-1]
    if owner.endswith(" key policy"):
        why = justified.get((owner.removesuffix(" key policy"), sid))
    else:
        why = justified.get((owner.removesuffix("Role"), sid))
    if why is None or action is None:
        return why
    named = [each for each in statement.actions if _mentions(why, each)]
    return why if not named or _mentions(why, action) else None


def report(result: Result, template: DeployedTemplate) -> str:
    lines = [f"{len(result.calls)} distinct recorded calls by {len({c.function for c in result.calls})} functions, "
             f"{result.checked_requests} authorization requests checked (with the KMS calls services make for them)."]
    if result.problems:
        lines += ["", "CANNOT CHECK:"] + [f"  {problem}" for problem in result.problems]
    if result.denials:
        lines += ["", f"{len(result.denials)} call(s) the deployed template would DENY:"]
        lines += [denial.describe() for denial in result.denials]
    if result.unknown_resources:
        lines += ["", "Calls by functions or on resources the template does not define (tests' own fixtures), or "
                  "whose resource is unknown (a failed Decrypt), not checked:"]
        lines += sorted({f"  {call.function}: {call.describe()} (seen in {call.seen_in})"
                         for call in result.unknown_resources})
    unjustified = [grant for grant, why in result.unused if why is None]
    justified = [(grant, why) for grant, why in result.unused if why is not None]
    lines += ["", f"{len(result.unused)} grant(s) no recorded call used, {len(unjustified)} without a reason in "
              "template.yaml (add '# Unused by the recorded calls: <why>' above the statement, or remove it):"]
    lines += [f"  UNJUSTIFIED {grant.describe()}" for grant in unjustified]
    lines += [f"  kept: {grant.describe()} -- {why}" for grant, why in justified]
    return "\n".join(lines)


def functions_without_calls(result: Result, template: DeployedTemplate) -> list[str]:
    called = {call.function for call in result.calls}
    return sorted(set(template.roles) - called)


__all__ = ["RecordedCall", "Result", "check", "read_recordings", "report", "applies", "as_list", "physical_name"]
