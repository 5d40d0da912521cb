"""IAM's evaluation logic, limited to what billops' template uses, for one request at a time.

Why not a library: principalmapper's local simulation (the closest maintained-looking one) was last released in 2022,
is AGPL, and silently treats a condition operator it does not know as satisfied (a false allow). This one knows the
operators listed in ``OPERATORS`` (with the ``ForAllValues:`` / ``ForAnyValue:`` qualifiers and the ``IfExists``
suffix) and refuses anything else (``UnsupportedPolicy``), so a new construct in the template stops the check
instead of being misread. tests/unit/iam_check/test_policy_evaluation.py holds the known allow/deny cases.

The decision, for a principal and a resource in the same account (AWS's "policy evaluation logic"):
  1. an explicit Deny that applies, in any of the policies, denies;
  2. a KMS key is allowed only if its key policy allows: a statement naming the principal itself (the role's ARN,
     or the service) is enough on its own; one naming the account (``:root``) only delegates to IAM, so the role's
     policies must allow too;
  3. anything else needs an Allow in the role's policies (and in its permissions boundary, if it has one).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement."""


STRING_OPERATORS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
                    "StringLike", "StringNotLike"}
ARN_OPERATORS = {"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"}
OPERATORS = STRING_OPERATORS | ARN_OPERATORS | {"Bool", "Null"}
NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclass(frozen=True)
class Statement:
    """One statement, with where it comes from (``MerchantApiFunctionRole/MerchantApiFunctionRolePolicy0/ReadSubscriptions``)."""

    where: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    principals: Mapping[str, tuple[str, ...]] | None = None  # resource policies only

    @classmethod
    def from_document(cls, where: str, statement: Mapping[str, Any], *, resource_policy: bool = False) -> Statement:
        for unsupported in ("NotAction", "NotResource", "NotPrincipal"):
            if unsupported in statement:
                raise UnsupportedPolicy(f"{where}: {unsupported} is not supported by iam_check")
        principals = None
        if resource_policy:
            raw = statement.get("Principal")
            if raw == "*":
                principals = {"AWS": ("*",)}
            elif isinstance(raw, Mapping):
                principals = {kind: tuple(str(value) for value in as_list(values)) for kind, values in raw.items()}
            else:
                raise UnsupportedPolicy(f"{where}: a resource policy statement without Principal")
        condition = statement.get("Condition") or {}
        for operator in condition:
            parse_operator(operator, where)
        resources = tuple(str(resource) for resource in as_list(statement.get("Resource", "*")))
        for resource in resources:
            if "${" in resource:
                raise UnsupportedPolicy(f"{where}: policy variables in Resource ({resource}) are not supported")
        return cls(where, str(statement["Effect"]), tuple(str(action) for action in as_list(statement["Action"])),
                   resources, condition, principals)


def statements_of(where: str, document: Mapping[str, Any], *, resource_policy: bool = False) -> list[Statement]:
    found = []
    for index, statement in enumerate(as_list(document.get("Statement"))):
        sid = statement.get("Sid") or f"#{index}"
        found.append(Statement.from_document(f"{where}/{sid}", statement, resource_policy=resource_policy))
    return found


@dataclass(frozen=True)
class Principal:
    """A function's role (``arn``) or a service principal (``service``) acting for the stack."""

    account: str
    arn: str | None = None
    service: str | None = None

    @property
    def root(self) -> str:
        return f"arn:aws:iam::{self.account}:root"


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character; nothing else is special."""
    escaped = "".join("[[]" if char == "[" else char for char in pattern)  # fnmatch's [..] is not IAM's
    return _glob(escaped, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    return glob_match(pattern, action, ignore_case=True)  # action names are case-insensitive


def resource_matches(pattern: str, resource: str) -> bool:
    return glob_match(pattern, resource)


def parse_operator(operator: str, where: str = "") -> tuple[str | None, str, bool]:
    qualifier = None
    name = operator
    if ":" in name:
        qualifier, name = name.split(":", 1)
        if qualifier not in ("ForAllValues", "ForAnyValue"):
            raise UnsupportedPolicy(f"{where}: condition qualifier {qualifier} is not supported")
    if_exists = name.endswith("IfExists")
    base = name[: -len("IfExists")] if if_exists else name
    if base not in OPERATORS:
        raise UnsupportedPolicy(f"{where}: condition operator {operator} is not supported by iam_check")
    return qualifier, base, if_exists


def _value_matches(base: str, policy_value: str, value: str) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return policy_value == value
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return policy_value.lower() == value.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"):
        return glob_match(policy_value, value)
    if base == "Bool":
        return policy_value.lower() == value.lower()
    raise UnsupportedPolicy(base)


def _key_in(context: Mapping[str, Any], key: str) -> tuple[bool, list[str]]:
    for name, value in context.items():
        if name.lower() == key.lower():  # condition key names are case-insensitive
            return True, [str(item) for item in as_list(value)]
    return False, []


def condition_matches(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    for operator, keys in condition.items():
        qualifier, base, if_exists = parse_operator(operator)
        for key, policy_values in keys.items():
            values = [str(value).lower() if isinstance(value, bool) else str(value) for value in as_list(policy_values)]
            if not _one_key(qualifier, base, if_exists, key, values, context):
                return False
    return True


def _one_key(qualifier: str | None, base: str, if_exists: bool, key: str, policy_values: Sequence[str],
             context: Mapping[str, Any]) -> bool:
    present, values = _key_in(context, key)
    if base == "Null":
        wanted_absent = [value.lower() == "true" for value in policy_values]
        return (not present or not values) in wanted_absent
    negated = base in NEGATED
    if qualifier == "ForAllValues":
        if not present or not values:
            return True
        matches = [any(_value_matches(base, policy, value) for policy in policy_values) for value in values]
        return not any(matches) if negated else all(matches)
    if qualifier == "ForAnyValue":
        if not present or not values:
            return False
        matches = [any(_value_matches(base, policy, value) for policy in policy_values) for value in values]
        return not all(matches) if negated else any(matches)
    if not present:
        return True if (if_exists or negated) else False
    matched = any(_value_matches(base, policy, value) for policy in policy_values for value in values)
    return not matched if negated else matched


def applies(statement: Statement, request: Request) -> bool:
    """Action, resource and condition match (the principal is the caller's business)."""
    return (any(action_matches(pattern, request.action) for pattern in statement.actions)
            and any(resource_matches(pattern, request.resource) for pattern in statement.resources)
            and condition_matches(statement.condition, request.context))


def principal_match(statement: Statement, principal: Principal) -> str | None:
    """"direct" (names the role or the service), "account" (the account: delegates to IAM), or None."""
    principals = statement.principals or {}
    if principal.service is not None:
        return "direct" if principal.service in principals.get("Service", ()) else None
    for value in principals.get("AWS", ()):
        if value == "*":
            return "direct"
        if value == principal.arn:
            return "direct"
        if value in (principal.root, principal.account):
            return "account"
    return None


# ----------------------------------------------------------------------------------------------------------------
# The decision
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Decision:
    allowed: bool
    reason: str
    allowed_by: list[Statement] = field(default_factory=list)  # every Allow that applied (identity and key policy)
    denied_by: list[Statement] = field(default_factory=list)


def evaluate(request: Request, identity: Iterable[Statement], *, key_policy: Iterable[Statement] | None = None,
             boundary: Iterable[Statement] | None = None) -> Decision:
    identity = list(identity) if request.principal.arn else []  # a service principal has no IAM policies
    key_statements = list(key_policy) if key_policy is not None else None

    identity_allows = [s for s in identity if s.effect == "Allow" and applies(s, request)]
    denies = [s for s in identity if s.effect == "Deny" and applies(s, request)]
    key_allows: list[tuple[Statement, str]] = []
    for statement in key_statements or []:
        how = principal_match(statement, request.principal)
        if how is None or not applies(statement, request):
            continue
        if statement.effect == "Deny":
            denies.append(statement)
        else:
            key_allows.append((statement, how))
    boundary_statements = list(boundary) if boundary is not None else None
    if boundary_statements is not None:
        denies += [s for s in boundary_statements if s.effect == "Deny" and applies(s, request)]

    allowed_by = identity_allows + [statement for statement, _ in key_allows]
    if denies:
        return Decision(False, "explicitly denied by " + ", ".join(s.where for s in denies), allowed_by, denies)
    if boundary_statements is not None and request.principal.arn and not any(
            s.effect == "Allow" and applies(s, request) for s in boundary_statements):
        return Decision(False, "outside the role's permissions boundary", allowed_by)
    if key_statements is not None:
        if any(how == "direct" for _, how in key_allows):
            return Decision(True, "allowed by the key policy", allowed_by)
        if not key_allows:
            return Decision(False, "no statement of the key policy allows it", allowed_by)
        if identity_allows:
            return Decision(True, "the key policy delegates to IAM, and the role allows it", allowed_by)
        return Decision(False, "the key policy delegates to IAM (" + ", ".join(s.where for s, _ in key_allows)
                        + "), but no statement of the role allows it", allowed_by)
    if identity_allows:
        return Decision(True, "allowed by the role", allowed_by)
    return Decision(False, "no statement of the role allows it", allowed_by)
