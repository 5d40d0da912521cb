"""What iam_check reports as unused, and the reasons template.yaml gives for keeping a grant."""

from __future__ import annotations

from iam_check.checking import justification_for
from iam_check.deployed_template import justifications
from iam_check.policy_evaluation import statements_of

TEMPLATE = """\
Resources:
  SomeFunction:
    Properties:
      Policies:
        - Statement:
            # The tables are encrypted with StorageKey.
            # Unused by the recorded calls: kms:DescribeKey (metadata only;
            # a second line of the reason).
            - Sid: UseStorageKey
              Action: [kms:Decrypt, kms:DescribeKey]
            - Sid: NotExplained
              Action: dynamodb:GetItem
  SomeKey:
    Properties:
      KeyPolicy:
        Statement:
          # Unused by the recorded calls: CloudWatch Logs' own principal.
          - Sid: Logs
            Action: [kms:Encrypt, kms:ReEncryptFrom]
          # Unused by the recorded calls: CreateGrant and ReEncrypt* at creation.
          - Sid: Services
            Action: [kms:Decrypt, kms:CreateGrant, kms:ReEncryptFrom, kms:ReEncryptTo]
"""


def test_reasons_are_read_from_the_comment_block_above_each_statement(tmp_path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    found = justifications(path)
    assert set(found) == {("SomeFunction", "UseStorageKey"), ("SomeKey", "Logs"), ("SomeKey", "Services")}
    assert found[("SomeFunction", "UseStorageKey")].endswith("a second line of the reason).")


def test_a_reason_naming_actions_covers_those_only() -> None:
    found = {("SomeFunction", "UseStorageKey"): "kms:DescribeKey (metadata only)",
             ("SomeKey", "Logs"): "CloudWatch Logs' own principal.",
             ("SomeKey", "Services"): "CreateGrant and ReEncrypt* at creation."}
    (role_statement,) = statements_of("SomeFunctionRole/SomeFunctionRolePolicy0", {"Statement": [
        {"Sid": "UseStorageKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}]})
    assert justification_for(role_statement, found, "kms:DescribeKey")
    assert justification_for(role_statement, found, "kms:Decrypt") is None  # it must be used, or said why
    logs, services = statements_of("SomeKey key policy", {"Statement": [
        {"Sid": "Logs", "Effect": "Allow", "Principal": {"Service": "logs"}, "Action": ["kms:Encrypt"],
         "Resource": "*"},
        {"Sid": "Services", "Effect": "Allow", "Principal": {"AWS": "x"}, "Resource": "*",
         "Action": ["kms:Decrypt", "kms:CreateGrant", "kms:ReEncryptFrom", "kms:ReEncryptTo"]}]},
        resource_policy=True)
    assert justification_for(logs, found, "kms:Encrypt")  # names no action: the whole statement
    assert justification_for(services, found, "kms:ReEncryptTo") and justification_for(services, found,
                                                                                      "kms:CreateGrant")
    assert justification_for(services, found, "kms:Decrypt") is None
