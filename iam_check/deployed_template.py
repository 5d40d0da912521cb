"""The deployed form of template.yaml and its nested templates (SAM's transform, tests/template/sam_transform.py,
the nested stacks flattened into one document), resolved to the canonical
names the AWS call recorder writes (billops_local.aws_call_recording): each function's role with every policy it
gets (inline, SAM policy templates expanded, AWS managed, a permissions boundary if any), the key policies, and which
key encrypts which table, queue, secret and bus.

Canonical names are the local stack's (``billops-local-<LogicalId>``, billops_local.template_resources), except
where the template names a resource itself (the event bus ``billops-${Environment}``: a key policy names it that
way) and where moto's identifiers are random (keys: ``key/<LogicalId>``; secrets: ``<name>-000000``).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billops_local.aws_call_recording import ACCOUNT_ID, STREAM_LABEL, canonical_key_arn, canonical_secret_arn
from billops_local.template_resources import (
    DEFAULT_TEMPLATE,
    LOCAL_REGION,
    IntrinsicResolver,
    TemplateError,
    _local_parameters,
    physical_name,
)

from iam_check.managed_policies import MANAGED_POLICIES
from iam_check.policy_evaluation import Statement, UnsupportedPolicy, as_list, statements_of

ROOT = Path(__file__).resolve().parents[1]
REGION = LOCAL_REGION


def _sam_transform():
    spec = importlib.util.spec_from_file_location("sam_transform", ROOT / "tests" / "template" / "sam_transform.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transform(template_path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """The template and every nested template it names (templates/*.yaml) as one document: a role, a key or a
    policy moved into a nested stack is checked like one in template.yaml (sam_transform.flattened_template)."""
    return _sam_transform().flattened_template(Path(template_path))


def every_option_on(template_path: Path = DEFAULT_TEMPLATE) -> dict[str, str]:
    """Parameter overrides turning on every optional part ("true"/"false" parameters), so that the policies of
    parts that are off by default (the fixed-egress network, ...) are linted too."""
    from billops_local.template_resources import load_yaml

    declared = load_yaml(template_path).get("Parameters") or {}
    return {name: "true" for name, declaration in declared.items()
            if sorted(map(str, (declaration or {}).get("AllowedValues") or [])) == ["false", "true"]}


@dataclass
class FunctionRole:
    function: str  # the function's logical ID
    role: str  # the role's logical ID
    arn: str
    statements: list[Statement] = field(default_factory=list)
    boundary: list[Statement] | None = None


@dataclass
class DeployedTemplate:
    roles: dict[str, FunctionRole]  # by function logical ID
    key_policies: dict[str, list[Statement]]  # by canonical key ARN
    key_names: dict[str, str]  # canonical key ARN -> logical ID
    encryption: dict[str, str]  # canonical resource ARN (table, queue, secret, bus) -> canonical key ARN
    archives: dict[str, list[str]]  # bus ARN -> its archives' ARNs
    resource_names: dict[str, str]  # canonical ARN -> logical ID (tables, queues, secrets, buses, keys)
    local_names: dict[str, str]  # an ARN as the local stack makes it -> its canonical ARN (where they differ)
    policies: list[dict[str, Any]]  # every resolved policy document, for the linter: {"where", "kind", "document"}


def _names(resources: Mapping[str, Any], resolver: IntrinsicResolver) -> tuple[dict[str, str],
                                                                              dict[tuple[str, str], str]]:
    """What Ref and GetAtt give for every resource, canonically."""
    refs: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        properties = resource.get("Properties") or {}
        name = physical_name(logical_id)
        refs[logical_id] = name
        if kind == "AWS::DynamoDB::Table":
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
            attributes[(logical_id, "Arn")] = arn
            attributes[(logical_id, "StreamArn")] = f"{arn}/stream/{STREAM_LABEL}"
        elif kind == "AWS::SQS::Queue":
            if str(properties.get("FifoQueue")).lower() == "true":
                name += ".fifo"
            refs[logical_id] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
            attributes[(logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
            attributes[(logical_id, "QueueName")] = name
            attributes[(logical_id, "QueueUrl")] = refs[logical_id]
        elif kind == "AWS::SecretsManager::Secret":
            refs[logical_id] = attributes[(logical_id, "Id")] = canonical_secret_arn(name, REGION)
        elif kind == "AWS::KMS::Key":
            refs[logical_id] = logical_id
            attributes[(logical_id, "Arn")] = canonical_key_arn(logical_id, REGION)
            attributes[(logical_id, "KeyId")] = logical_id
        elif kind == "AWS::KMS::Alias":
            refs[logical_id] = f"alias/{name}"
        elif kind == "AWS::IAM::Role":
            attributes[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
        elif kind == "AWS::Lambda::Function":
            attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        elif kind == "AWS::Logs::LogGroup":
            attributes[(logical_id, "Arn")] = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"
        elif kind == "AWS::SNS::Topic":
            refs[logical_id] = attributes[(logical_id, "TopicArn")] = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}"
        # The analytics export's (templates/analytics-export.yaml): linted, never called by a function.
        elif kind == "AWS::S3::Bucket":
            refs[logical_id] = name.lower()
            attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name.lower()}"
        elif kind == "AWS::KinesisFirehose::DeliveryStream":
            attributes[(logical_id, "Arn")] = f"arn:aws:firehose:{REGION}:{ACCOUNT_ID}:deliverystream/{name}"
        elif kind == "AWS::Events::Rule":
            attributes[(logical_id, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{name}"
    # Names the template gives itself (and that policies spell out), resolved once the rest is known.
    named = IntrinsicResolver(resolver.parameters, resolver.condition_definitions, refs, attributes, resolver.pseudo)
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        properties = resource.get("Properties") or {}
        if kind == "AWS::Events::EventBus":
            name = named.resolve(properties["Name"]) if "Name" in properties else physical_name(logical_id)
            refs[logical_id] = attributes[(logical_id, "Name")] = name
            attributes[(logical_id, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{name}"
        elif kind == "AWS::IAM::ManagedPolicy":
            name = named.resolve(properties.get("ManagedPolicyName", physical_name(logical_id)))
            refs[logical_id] = f"arn:aws:iam::{ACCOUNT_ID}:policy/{name}"
        elif kind == "AWS::SSM::Parameter" and "Name" in properties:
            refs[logical_id] = named.resolve(properties["Name"])
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Events::Archive":
            name = physical_name(logical_id)
            refs[logical_id] = name
            attributes[(logical_id, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:archive/{name}"
    return refs, attributes


def _policy_entries(resolver: IntrinsicResolver, policies: Any) -> list[dict[str, Any]]:
    """A role's inline policies after Fn::If (AWS::NoValue dropped)."""
    resolved = resolver.resolve(as_list(policies))
    return [policy for policy in resolved if isinstance(policy, dict) and "PolicyDocument" in policy]


def load(template_path: Path = DEFAULT_TEMPLATE, *, parameter_overrides: Mapping[str, Any] | None = None,
         transformed: dict[str, Any] | None = None) -> DeployedTemplate:
    document = transformed if transformed is not None else transform(template_path)
    parameters = _local_parameters(document.get("Parameters") or {}, parameter_overrides or {})
    base = IntrinsicResolver(parameters, document.get("Conditions") or {})
    resources = {logical_id: resource for logical_id, resource in document["Resources"].items()
                 if "Condition" not in resource or base.condition(resource["Condition"])}
    refs, attributes = _names(resources, base)
    resolver = base.with_resources(refs, attributes)
    policies: list[dict[str, Any]] = []

    roles: dict[str, FunctionRole] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role_ref = (resource.get("Properties") or {}).get("Role")
        if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
            raise TemplateError(f"{logical_id}: iam_check needs the role SAM makes (or !GetAtt <Role>.Arn)")
        role_id = role_ref["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        entry = FunctionRole(logical_id, role_id, attributes[(role_id, "Arn")])
        for policy in _policy_entries(resolver, role.get("Policies")):
            where = f"{role_id}/{policy['PolicyName']}"
            entry.statements += statements_of(where, policy["PolicyDocument"])
            policies.append({"where": where, "kind": "identity", "document": policy["PolicyDocument"]})
        for arn in resolver.resolve(as_list(role.get("ManagedPolicyArns"))):
            if arn in MANAGED_POLICIES:
                entry.statements += statements_of(f"{arn.rsplit('/', 1)[-1]} (AWS managed)", MANAGED_POLICIES[arn])
                continue
            owned = [other for other, value in refs.items() if value == arn
                     and resources[other]["Type"] == "AWS::IAM::ManagedPolicy"]
            if not owned:
                raise UnsupportedPolicy(f"{role_id}: managed policy {arn} is unknown to iam_check/managed_policies.py")
            document = resolver.resolve(resources[owned[0]]["Properties"]["PolicyDocument"])
            entry.statements += statements_of(owned[0], document)
        if role.get("PermissionsBoundary"):
            arn = resolver.resolve(role["PermissionsBoundary"])
            owned = [other for other, value in refs.items() if value == arn]
            if not owned:
                raise UnsupportedPolicy(f"{role_id}: permissions boundary {arn} is not a policy of the template")
            entry.boundary = statements_of(f"{owned[0]} (boundary)",
                                           resolver.resolve(resources[owned[0]]["Properties"]["PolicyDocument"]))
        roles[logical_id] = entry
    # The other roles (a VPC flow log's, a delivery stream's): not checked against calls, linted all the same.
    function_roles = {entry.role for entry in roles.values()}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role" and logical_id not in function_roles:
            for policy in _policy_entries(resolver, (resource.get("Properties") or {}).get("Policies")):
                policies.append({"where": f"{logical_id}/{policy['PolicyName']}", "kind": "identity",
                                 "document": policy["PolicyDocument"]})
    # Customer managed policies attached to a role by the policy itself (Roles: [...]).
    by_role = {entry.role: entry for entry in roles.values()}
    for logical_id, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            properties = resource["Properties"]
            document = resolver.resolve(properties["PolicyDocument"])
            policies.append({"where": logical_id, "kind": "identity", "document": document})
            for role_name in resolver.resolve(as_list(properties.get("Roles"))):
                for entry in by_role.values():
                    if physical_name(entry.role) == role_name:
                        entry.statements += statements_of(logical_id, document)
        elif resource["Type"] == "AWS::S3::BucketPolicy":
            # No function reads or writes the bucket (the analytics export's: Firehose and Athena do): linted only.
            policies.append({"where": f"{logical_id} bucket policy", "kind": "resource",
                             "document": resolver.resolve(resource["Properties"]["PolicyDocument"])})
        elif resource["Type"] in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::Events::EventBusPolicy",
                                  "AWS::SecretsManager::ResourcePolicy", "AWS::DynamoDB::ResourcePolicy"):
            raise UnsupportedPolicy(f"{logical_id}: {resource['Type']} is not evaluated by iam_check yet")

    key_policies: dict[str, list[Statement]] = {}
    key_names: dict[str, str] = {}
    encryption: dict[str, str] = {}
    archives: dict[str, list[str]] = {}
    resource_names: dict[str, str] = {}
    local_names: dict[str, str] = {}
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        properties = resource.get("Properties") or {}
        if kind == "AWS::KMS::Key":
            arn = attributes[(logical_id, "Arn")]
            document = resolver.resolve(properties["KeyPolicy"])
            key_policies[arn] = statements_of(f"{logical_id} key policy", document, resource_policy=True)
            key_names[arn] = logical_id
            resource_names[arn] = logical_id
            policies.append({"where": f"{logical_id} key policy", "kind": "resource", "document": document})
            continue
        key = None
        if kind == "AWS::DynamoDB::Table":
            sse = properties.get("SSESpecification") or {}
            key = sse.get("KMSMasterKeyId") if str(sse.get("SSEEnabled")).lower() == "true" else None
            arn = attributes[(logical_id, "Arn")]
        elif kind == "AWS::SQS::Queue":
            key, arn = properties.get("KmsMasterKeyId"), attributes[(logical_id, "Arn")]
        elif kind == "AWS::SecretsManager::Secret":
            key, arn = properties.get("KmsKeyId"), refs[logical_id]
        elif kind == "AWS::Events::EventBus":
            key, arn = properties.get("KmsKeyIdentifier"), attributes[(logical_id, "Arn")]
            local_names[f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{physical_name(logical_id)}"] = arn
        elif kind == "AWS::Events::Archive":
            source = resolver.resolve(properties["SourceArn"])
            archives.setdefault(source, []).append(attributes[(logical_id, "Arn")])
            continue
        else:
            continue
        resource_names[arn] = logical_id
        if key is not None:
            resolved = resolver.resolve(key)
            encryption[arn] = _key_arn(resolved, key_names or {attributes[(k, "Arn")]: k for k, r in
                                                               resources.items() if r["Type"] == "AWS::KMS::Key"})
    return DeployedTemplate(roles, key_policies, key_names, encryption, archives, resource_names, local_names,
                            policies)


def _key_arn(value: str, keys: Mapping[str, str]) -> str:
    """A KMS key given by ARN, key ID or logical ID -> its canonical ARN."""
    if value in keys:
        return value
    for arn, logical_id in keys.items():
        if value in (logical_id, arn.rsplit("/", 1)[-1]):
            return arn
    return value


# ----------------------------------------------------------------------------------------------------------------
# Justifications written in template.yaml
# ----------------------------------------------------------------------------------------------------------------

JUSTIFICATION = re.compile(r"Unused by the recorded calls:\s*(?P<why>.+)$", re.IGNORECASE)
_SID = re.compile(r"^\s*-?\s*Sid:\s*(?P<sid>\S+)\s*$")
_RESOURCE = re.compile(r"^  (?P<id>[A-Za-z0-9]+):\s*$")


def justifications(template_path: Path = DEFAULT_TEMPLATE) -> dict[tuple[str, str], str]:
    """(resource logical ID, Sid) -> why its grants may go unused: a comment ``# Unused by the recorded calls: <why>``
    in the comment block right above the statement's ``- Sid:`` line (continued on the comment lines below it), in
    the template or any nested template it names."""
    found: dict[tuple[str, str], str] = {}
    for part in _sam_transform().template_parts(Path(template_path)).values():
        found.update(_justifications_in(part))
    return found


def _justifications_in(template_path: Path) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    resource = ""
    comments: list[str] = []
    for line in Path(template_path).read_text(encoding="utf-8").splitlines():
        if match := _RESOURCE.match(line):
            resource = match.group("id")
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        if (match := _SID.match(line)) and comments:
            text = " ".join(comment.lstrip("#").strip() for comment in comments)
            justified = JUSTIFICATION.search(text)
            if justified:
                found[(resource, match.group("sid"))] = justified.group("why").strip()
        comments = []
    return found
