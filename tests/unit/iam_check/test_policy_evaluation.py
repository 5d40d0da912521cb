"""iam_check's evaluator on known allow/deny cases (AWS's documented evaluation logic and condition semantics)."""

from __future__ import annotations

import pytest

from iam_check.policy_evaluation import (
    Principal,
    Request,
    UnsupportedPolicy,
    condition_matches,
    evaluate,
    statements_of,
)

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/billops-local-MerchantApiFunctionRole"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/someone-else"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/BillopsKey"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/billops-local-ApiKeysTable"
ME = Principal(ACCOUNT, arn=ROLE)


def role(*statements: dict) -> list:
    return statements_of("role", {"Statement": list(statements)})


def key_policy(*statements: dict) -> list:
    return statements_of("key", {"Statement": list(statements)}, resource_policy=True)


def allow(action, resource, condition=None, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **({"Condition": condition} if condition else {}),
            **extra}


def test_an_allow_on_the_resource_allows_and_another_resource_is_denied() -> None:
    policy = role(allow(["dynamodb:GetItem"], TABLE))
    assert evaluate(Request(ME, "dynamodb:GetItem", TABLE), policy).allowed
    assert not evaluate(Request(ME, "dynamodb:GetItem", TABLE + "x"), policy).allowed
    assert not evaluate(Request(ME, "dynamodb:PutItem", TABLE), policy).allowed


def test_actions_match_case_insensitively_and_with_wildcards_resources_case_sensitively() -> None:
    assert evaluate(Request(ME, "DynamoDB:getitem", TABLE), role(allow("dynamodb:Get*", TABLE))).allowed
    assert evaluate(Request(ME, "dynamodb:Query", TABLE + "/index/by_status"),
                    role(allow("dynamodb:Query", TABLE + "/index/*"))).allowed
    assert not evaluate(Request(ME, "dynamodb:Query", TABLE + "/index/by_status"),
                        role(allow("dynamodb:Query", TABLE))).allowed  # the table's ARN does not cover its index
    assert not evaluate(Request(ME, "dynamodb:GetItem", TABLE.upper()), role(allow("dynamodb:GetItem", TABLE))).allowed
    assert evaluate(Request(ME, "dynamodb:GetItem", TABLE), role(allow("dynamodb:GetItem", TABLE[:-5] + "?able"))).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    policy = role(allow("ec2:CreateNetworkInterface", "*"),
                  {"Effect": "Deny", "Action": ["ec2:CreateNetworkInterface"], "Resource": "*"})
    decision = evaluate(Request(ME, "ec2:CreateNetworkInterface", "*"), policy)
    assert not decision.allowed and "explicitly denied" in decision.reason


def test_for_all_values_string_like_holds_for_every_value_and_for_none() -> None:
    condition = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["throttle#*"]}}
    assert condition_matches(condition, {"dynamodb:LeadingKeys": ["throttle#…"]})
    assert not condition_matches(condition, {"dynamodb:LeadingKeys": ["throttle#…", "key#…"]})
    assert not condition_matches(condition, {"dynamodb:LeadingKeys": ["…"]})
    assert condition_matches(condition, {})  # AWS: ForAllValues over a missing key is true


def test_for_any_value_needs_a_value() -> None:
    condition = {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["billops:purpose"]}}
    assert condition_matches(condition, {"kms:EncryptionContextKeys": ["other", "billops:purpose"]})
    assert not condition_matches(condition, {})


def test_single_valued_operators_missing_keys_negation_and_if_exists() -> None:
    equals = {"StringEquals": {"kms:ViaService": ["dynamodb.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com"]}}
    assert condition_matches(equals, {"kms:ViaService": "sqs.us-east-1.amazonaws.com"})
    assert not condition_matches(equals, {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"})
    assert not condition_matches(equals, {})  # a direct call has no kms:ViaService
    assert condition_matches({"StringEqualsIfExists": equals["StringEquals"]}, {})
    assert condition_matches({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}, {})
    assert not condition_matches({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}, {"aws:SourceAccount": ACCOUNT})
    assert condition_matches({"StringEquals": {"KMS:viaservice": "x"}}, {"kms:ViaService": "x"})  # key names
    both = {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com",
                             "kms:EncryptionContext:aws:sqs:arn": "arn:aws:sqs:us-east-1:1:q"}}
    assert not condition_matches(both, {"kms:ViaService": "sqs.us-east-1.amazonaws.com"})  # keys are ANDed
    assert condition_matches({"Null": {"kms:ViaService": "true"}}, {})
    assert not condition_matches({"Null": {"kms:ViaService": "true"}}, {"kms:ViaService": "x"})


def test_arn_like_patterns() -> None:
    condition = {"ArnLike": {"aws:SourceArn": [f"arn:aws:events:us-east-1:{ACCOUNT}:archive/*"]}}
    assert condition_matches(condition, {"aws:SourceArn": f"arn:aws:events:us-east-1:{ACCOUNT}:archive/a"})
    assert not condition_matches(condition, {"aws:SourceArn": f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/b"})


def test_an_operator_it_does_not_know_stops_the_check_instead_of_matching() -> None:
    with pytest.raises(UnsupportedPolicy):
        role(allow("s3:GetObject", "*", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    with pytest.raises(UnsupportedPolicy):
        role({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})


def test_a_key_policy_naming_the_role_allows_without_any_iam_policy() -> None:
    policy = key_policy(allow("kms:Decrypt", "*", {"StringEquals": {"kms:EncryptionContext:billops:purpose":
                                                                    "subscriber-pii"}}, Principal={"AWS": ROLE}))
    pii = {"kms:EncryptionContext:billops:purpose": "subscriber-pii"}
    assert evaluate(Request(ME, "kms:Decrypt", KEY, pii), [], key_policy=policy).allowed
    assert not evaluate(Request(ME, "kms:Decrypt", KEY, {"kms:EncryptionContext:billops:purpose": "other"}), [],
                        key_policy=policy).allowed
    stranger = Principal(ACCOUNT, arn=OTHER_ROLE)
    decision = evaluate(Request(stranger, "kms:Decrypt", KEY, pii), role(allow("kms:*", "*")), key_policy=policy)
    assert not decision.allowed and "key policy" in decision.reason  # IAM alone never opens a key


def test_a_key_policy_naming_the_account_needs_the_role_to_allow_too() -> None:
    policy = key_policy(allow("kms:Decrypt", "*", {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}},
                              Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    via_sqs = {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}
    decision = evaluate(Request(ME, "kms:Decrypt", KEY, via_sqs), [], key_policy=policy)
    assert not decision.allowed and "delegates to IAM" in decision.reason
    assert evaluate(Request(ME, "kms:Decrypt", KEY, via_sqs), role(allow("kms:Decrypt", KEY)), key_policy=policy).allowed
    assert not evaluate(Request(ME, "kms:Decrypt", KEY, {}), role(allow("kms:Decrypt", KEY)), key_policy=policy).allowed


def test_a_key_policy_deny_wins_and_a_service_principal_is_matched_by_name() -> None:
    events = Principal(ACCOUNT, service="events.amazonaws.com")
    policy = key_policy(
        allow("kms:GenerateDataKey", "*", {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
              Principal={"Service": "events.amazonaws.com"}),
        {"Effect": "Deny", "Principal": {"AWS": ROLE}, "Action": "kms:GenerateDataKey", "Resource": "*"},
        allow("kms:GenerateDataKey", "*", Principal={"AWS": ROLE}))
    assert evaluate(Request(events, "kms:GenerateDataKey", KEY, {"aws:SourceAccount": ACCOUNT}), [],
                    key_policy=policy).allowed
    assert not evaluate(Request(events, "kms:GenerateDataKey", KEY, {"aws:SourceAccount": "999"}), [],
                        key_policy=policy).allowed
    assert not evaluate(Request(ME, "kms:GenerateDataKey", KEY), [], key_policy=policy).allowed


def test_a_permissions_boundary_caps_the_role() -> None:
    boundary = role(allow("dynamodb:GetItem", "*"))
    policy = role(allow(["dynamodb:GetItem", "dynamodb:PutItem"], TABLE))
    assert evaluate(Request(ME, "dynamodb:GetItem", TABLE), policy, boundary=boundary).allowed
    assert not evaluate(Request(ME, "dynamodb:PutItem", TABLE), policy, boundary=boundary).allowed
