"""Least privilege and encryption at rest, over the CloudFormation the SAM transform makes of template.yaml and of
every nested template it names (one flattened document: sam_transform.flattened_template): no statement anywhere
grants a wildcard action, roles name their resources, KMS is used only through the services that store the data, and
everything that stores data is encrypted with the stack's own key.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sam_transform import flattened_template

pytestmark = pytest.mark.template

STORAGE_KEY_ARN = {"Fn::GetAtt": ["StorageKey", "Arn"]}
# The optional analytics export (templates/analytics-export.yaml) encrypts its bucket, buffer and log with a key of
# its own (AnalyticsKey): the export can be turned off and its key scheduled for deletion without touching the rest.
EXPORT_TEMPLATE = "templates/analytics-export.yaml"
EXPORT_KEY_ARN = {"Fn::GetAtt": ["AnalyticsKey", "Arn"]}
# What each resource type that stores data names its KMS key with.
ENCRYPTION_PROPERTY = {
    "AWS::SQS::Queue": ("KmsMasterKeyId",),
    "AWS::SecretsManager::Secret": ("KmsKeyId",),
    "AWS::Logs::LogGroup": ("KmsKeyId",),
    "AWS::Events::EventBus": ("KmsKeyIdentifier",),
    "AWS::Events::Archive": ("KmsKeyIdentifier",),
    "AWS::SNS::Topic": ("KmsMasterKeyId",),
    "AWS::DynamoDB::Table": ("SSESpecification", "KMSMasterKeyId"),
}
KEY_ADMINISTRATION = {
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:ListKeyPolicies", "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:ListKeyRotations", "kms:RotateKeyOnDemand",
    "kms:EnableKey", "kms:DisableKey", "kms:UpdateKeyDescription", "kms:CreateAlias", "kms:UpdateAlias",
    "kms:DeleteAlias", "kms:ListResourceTags", "kms:TagResource", "kms:UntagResource", "kms:ListGrants",
    "kms:RevokeGrant", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return flattened_template()


@pytest.fixture(scope="module")
def resources(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return document["Resources"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_documents(resources: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, document) for every policy document of the template: role policies (both branches of an !If),
    managed and inline IAM policies, key policies, queue / topic / bus policies, trust policies."""
    found: list[tuple[str, dict[str, Any]]] = []

    def add(where: str, policy: Any) -> None:
        if isinstance(policy, dict) and "Fn::If" in policy:
            for branch in policy["Fn::If"][1:]:
                add(where, branch)
        elif isinstance(policy, dict) and "PolicyDocument" in policy:
            found.append((f"{where}:{policy.get('PolicyName')}", policy["PolicyDocument"]))
        elif isinstance(policy, dict) and "Statement" in policy:
            found.append((where, policy))

    for name, resource in resources.items():
        properties = resource.get("Properties") or {}
        for key in ("Policies",):
            for policy in properties.get(key) or []:
                add(name, policy)
        for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument", "Policy"):
            if isinstance(properties.get(key), dict):
                add(f"{name}.{key}", properties[key])
    return found


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements, those behind an !If included (both branches; AWS::NoValue dropped)."""
    found = []
    for statement in _as_list(document.get("Statement") or []):
        if isinstance(statement, dict) and "Fn::If" in statement:
            found += [branch for branch in statement["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
        else:
            found.append(statement)
    return found


def test_the_scan_sees_every_role_and_key(resources: dict[str, dict[str, Any]]) -> None:
    """The checks below would pass vacuously if the walk found nothing."""
    where = {place.split(":")[0].split(".")[0] for place, _ in _policy_documents(resources)}
    roles = {name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    keys = {name for name, r in resources.items() if r["Type"] == "AWS::KMS::Key"}
    assert len(roles) >= 8 and keys == {"BillopsKey", "StorageKey", "AnalyticsKey"}
    assert roles | keys | {"PersonalDataReader"} <= where


def test_no_policy_statement_grants_a_wildcard_action(resources: dict[str, dict[str, Any]]) -> None:
    """A Deny may be wide (the export bucket's "s3:* without TLS"): it takes away, never grants."""
    for where, document in _policy_documents(resources):
        for statement in _statements(document):
            assert "NotAction" not in statement and "NotResource" not in statement, where
            assert "NotPrincipal" not in statement, where
            if statement["Effect"] == "Deny":
                continue
            for action in _as_list(statement.get("Action")):
                assert isinstance(action, str) and "*" not in action, f"{where}: wildcard action {action!r}"


def test_no_principal_is_everyone(resources: dict[str, dict[str, Any]]) -> None:
    for where, document in _policy_documents(resources):
        for statement in _statements(document):
            if statement["Effect"] == "Deny":
                continue  # denying everyone (insecure transport) is the point
            principal = statement.get("Principal")
            assert principal != "*", where
            if isinstance(principal, dict):
                for value in principal.values():
                    assert "*" not in _as_list(value), where


def test_roles_and_managed_policies_allow_only_named_resources(resources: dict[str, dict[str, Any]]) -> None:
    """Key policies' "*" means "this key"; anywhere else an Allow on every resource is a finding."""
    for where, document in _policy_documents(resources):
        if ".KeyPolicy" in where or ".AssumeRolePolicyDocument" in where:
            continue
        for statement in _statements(document):
            if statement["Effect"] == "Allow":
                for resource in _as_list(statement["Resource"]):
                    assert resource != "*" and not (isinstance(resource, str) and resource.endswith(":*")), (
                        f"{where}: {statement.get('Sid')} on {resource!r}")


def test_functions_use_the_storage_key_only_through_the_services(resources: dict[str, dict[str, Any]]) -> None:
    functions = [name for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 8
    for function in functions:
        role = resources[f"{function}Role"]["Properties"]
        kms = [statement for policy in role["Policies"] if "PolicyDocument" in policy
               for statement in _statements(policy["PolicyDocument"])
               if any(action.startswith("kms:") for action in _as_list(statement["Action"]))]
        assert kms, f"{function} cannot read its encrypted tables"
        for statement in kms:
            assert statement["Resource"] == STORAGE_KEY_ARN, f"{function}: {statement['Sid']}"
            conditions = statement["Condition"]["StringEquals"]
            service = json.dumps(conditions["kms:ViaService"])
            assert any(f"{name}.${{AWS::Region}}.amazonaws.com" in service
                       for name in ("dynamodb", "sqs", "secretsmanager")), f"{function}: {statement['Sid']}"
            if "sqs." in service:
                assert conditions["kms:EncryptionContext:aws:sqs:arn"], function  # its queues only
            if "secretsmanager." in service:
                assert conditions["kms:EncryptionContext:SecretARN"], function  # its secret only
                assert _as_list(statement["Action"]) == ["kms:Decrypt"], function


def test_the_projector_cannot_decrypt_personal_data(resources: dict[str, dict[str, Any]]) -> None:
    key_policy = resources["BillopsKey"]["Properties"]["KeyPolicy"]
    assert "SubscriptionProjectorFunctionRole" not in json.dumps(key_policy)
    role = json.dumps(resources["SubscriptionProjectorFunctionRole"]["Properties"])
    assert "BillopsKey" not in role and "subscriber-pii" not in role


def test_every_key_rotates_and_every_use_is_conditional(resources: dict[str, dict[str, Any]]) -> None:
    for name in ("BillopsKey", "StorageKey", "AnalyticsKey"):
        key = resources[name]
        assert key["Properties"]["EnableKeyRotation"] is True, name
        assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain"), name
        for statement in _statements(key["Properties"]["KeyPolicy"]):
            actions = set(_as_list(statement["Action"]))
            if actions <= KEY_ADMINISTRATION:
                continue
            # Using the key (Decrypt, GenerateDataKey, ...) always comes with a context, a service or a source.
            assert statement.get("Condition"), f"{name}: {statement['Sid']} grants {sorted(actions)} unconditionally"


def test_everything_that_stores_data_is_encrypted_with_the_storage_key(resources: dict[str, dict[str, Any]]) -> None:
    from billops_local.template_resources import load_yaml
    from sam_transform import ROOT

    exported = set(load_yaml(ROOT / EXPORT_TEMPLATE)["Resources"])
    checked = 0
    for name, resource in resources.items():
        path = ENCRYPTION_PROPERTY.get(resource["Type"])
        if path is None:
            continue
        value: Any = resource.get("Properties") or {}
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        key = EXPORT_KEY_ARN if name in exported else STORAGE_KEY_ARN
        assert value == key, f"{name} ({resource['Type']}) is not encrypted with {key['Fn::GetAtt'][0]}"
        checked += 1
    assert checked >= 20


def test_queues_reuse_their_data_keys_to_save_kms_calls(resources: dict[str, dict[str, Any]]) -> None:
    for name, resource in resources.items():
        if resource["Type"] == "AWS::SQS::Queue":
            assert 300 <= resource["Properties"]["KmsDataKeyReusePeriodSeconds"] <= 86400, name


def test_the_fixed_egress_vpc_is_optional_and_only_the_worker_uses_it(document: dict[str, Any],
                                                                     resources: dict[str, dict[str, Any]]) -> None:
    network = {name: r for name, r in resources.items() if r["Type"].startswith("AWS::EC2::")}
    assert {r["Type"] for r in network.values()} >= {
        "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP",
        "AWS::EC2::Route", "AWS::EC2::SecurityGroup", "AWS::EC2::VPCEndpoint", "AWS::EC2::FlowLog"}
    for name, resource in network.items():
        condition = resource.get("Condition")
        # Its own condition (the Elastic IP: unless the merchant gives one) is "and" the stack's.
        assert condition == "HasFixedEgressIp" or {"Condition": "HasFixedEgressIp"} in document["Conditions"][
            condition]["Fn::And"], f"{name} exists when the VPC is off"
    subnets = [r["Properties"] for r in network.values() if r["Type"] == "AWS::EC2::Subnet"]
    assert len(subnets) == 3 and not any(subnet.get("MapPublicIpOnLaunch") for subnet in subnets)
    (endpoint,) = [r["Properties"] for r in network.values() if r["Type"] == "AWS::EC2::VPCEndpoint"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.dynamodb"}
    (group,) = [r["Properties"] for r in network.values() if r["Type"] == "AWS::EC2::SecurityGroup"]
    assert "SecurityGroupIngress" not in group
    assert [(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in group["SecurityGroupEgress"]] == [
        ("tcp", 443, 443)]
    in_a_vpc = {name for name, r in resources.items()
                if r["Type"] == "AWS::Lambda::Function" and "VpcConfig" in r["Properties"]}
    assert in_a_vpc == {"OperationWorkerFunction", "ReconciliationFunction"}  # the DataLink callers
    for function in in_a_vpc:
        condition, when_on, when_off = resources[function]["Properties"]["VpcConfig"]["Fn::If"]
        assert (condition, when_off) == ("HasFixedEgressIp", {"Ref": "AWS::NoValue"})
        # The nested network's outputs, in its own terms: its security group, its two private subnets.
        assert when_on["SecurityGroupIds"] == [{"Ref": "WorkerSecurityGroup"}]
        assert when_on["SubnetIds"] == {"Fn::Split": [",", {"Fn::Join": [",", [
            {"Ref": "WorkerPrivateSubnetA"}, {"Ref": "WorkerPrivateSubnetB"}]]}]}
        # SAM attaches its VPC policy whenever VpcConfig is there: outside the VPC an explicit deny takes it back.
        (deny_outside,) = [p for p in resources[f"{function}Role"]["Properties"]["Policies"] if "Fn::If" in p]
        assert deny_outside["Fn::If"][:2] == ["HasFixedEgressIp", {"Ref": "AWS::NoValue"}]
        (deny,) = deny_outside["Fn::If"][2]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and "ec2:CreateNetworkInterface" in deny["Action"]


def test_the_egress_ip_is_an_output_kept_when_the_stack_goes() -> None:
    from billops_local.template_resources import DEFAULT_TEMPLATE, load_yaml

    template = load_yaml(DEFAULT_TEMPLATE)
    parameter = template["Parameters"]["WorkerFixedEgressIp"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["true", "false"])
    network = template["Resources"]["EgressNetwork"]
    assert (network["Type"], network["Condition"]) == ("AWS::Serverless::Application", "HasFixedEgressIp")
    assert network["Properties"]["Location"] == "templates/egress-network.yaml"
    output = template["Outputs"]["WorkerEgressIp"]
    assert (output["Condition"], output["Value"]) == (
        "HasFixedEgressIp", {"Fn::GetAtt": ["EgressNetwork", "Outputs.EgressIp"]})
    nested = load_yaml(DEFAULT_TEMPLATE.parent / "templates" / "egress-network.yaml")
    eip = nested["Resources"]["WorkerNatEip"]
    assert (eip["DeletionPolicy"], eip["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # An Elastic IP of the merchant's own (already whitelisted at CCBill) replaces the one the stack would make.
    assert eip["Condition"] == "AllocatesItsOwnEip"
    assert network["Properties"]["Parameters"]["EgressEipAllocationId"] == {"Ref": "WorkerEgressEipAllocationId"}
    allocation = nested["Resources"]["WorkerNatGateway"]["Properties"]["AllocationId"]
    assert allocation == {"Fn::If": ["AllocatesItsOwnEip", {"Fn::GetAtt": ["WorkerNatEip", "AllocationId"]},
                                     {"Ref": "EgressEipAllocationId"}]}


def test_personal_data_is_readable_only_by_the_named_people_and_the_functions() -> None:
    """Security review: BillopsKey let the whole account decrypt with the subscriber-pii context, so any role with a
    broad kms:Decrypt (PowerUserAccess's kms:*) could read personal data without PersonalDataReader. Now the
    account's grant is limited to the principals in PersonalDataReaderPrincipals (none by default)."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.insert(0, root)
    from iam_check import deployed_template
    from iam_check.policy_evaluation import Principal, Request, evaluate, statements_of

    account = "123456789012"
    pii = {"kms:EncryptionContext:billops:purpose": "subscriber-pii", "kms:CallerAccount": account}
    power_user = f"arn:aws:iam::{account}:role/PowerUser"
    support = f"arn:aws:iam::{account}:role/support-alice"
    kms_star = statements_of("PowerUserAccess", {"Statement": [{"Effect": "Allow", "Action": "kms:*",
                                                                 "Resource": "*"}]})
    reader = statements_of("PersonalDataReader", {"Statement": [{
        "Effect": "Allow", "Action": "kms:Decrypt", "Resource": f"arn:aws:kms:us-east-1:{account}:key/BillopsKey",
        "Condition": {"StringEquals": {"kms:EncryptionContext:billops:purpose": "subscriber-pii"}}}]})

    def decrypts(template, role: str, policies) -> bool:
        key = next(arn for arn in template.key_policies if arn.endswith("/BillopsKey"))
        request = Request(Principal(account, arn=role), "kms:Decrypt", key, {**pii, "aws:PrincipalArn": role})
        return evaluate(request, policies, key_policy=template.key_policies[key]).allowed

    transformed = deployed_template.transform()
    default = deployed_template.load(transformed=transformed)
    assert not decrypts(default, power_user, kms_star)
    assert not decrypts(default, support, reader)
    named = deployed_template.load(transformed=transformed, parameter_overrides={
        "PersonalDataReaderPrincipals": f"arn:aws:iam::{account}:role/support-*"})
    assert decrypts(named, support, reader)
    assert not decrypts(named, support, [])  # the key policy only delegates: the IAM policy is needed too
    assert not decrypts(named, power_user, kms_star)
    merchant_api = default.roles["MerchantApiFunction"]
    assert decrypts(default, merchant_api.arn, merchant_api.statements)
