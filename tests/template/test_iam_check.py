"""The least-privilege check against the real template: the calls the functions make are allowed, and taking away
one statement a call needs makes the check fail, naming the function and the call."""

from __future__ import annotations

import copy
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from iam_check import deployed_template  # noqa: E402
from iam_check.__main__ import main as iam_check_main  # noqa: E402
from iam_check.checking import RecordedCall, check  # noqa: E402

pytestmark = pytest.mark.template

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/billops-local-"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:billops-local-"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:billops-local-"
BILLOPS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/BillopsKey"
PII = {"kms:CallerAccount": ACCOUNT, "kms:EncryptionContext:billops:purpose": "subscriber-pii",
       "kms:EncryptionContextKeys": ["billops:purpose"]}

# What the recorder writes for a few of the calls each function makes (billops_local.aws_call_recording).
CALLS = [
    RecordedCall("WebhookReceiverFunction", "handler", "dynamodb:PutItem", TABLE + "EventsTable",
                 {"dynamodb:LeadingKeys": ["NewSaleSuccess#…"]}, "sample"),
    RecordedCall("WebhookReceiverFunction", "handler", "kms:GenerateDataKey", BILLOPS_KEY, PII, "sample"),
    RecordedCall("WebhookReceiverFunction", "handler", "secretsmanager:GetSecretValue",
                 SECRET + "WebhookTokenSecret-000000", {}, "sample"),
    RecordedCall("SubscriptionProjectorFunction", "event-source-mapping", "dynamodb:GetRecords",
                 TABLE + "EventsTable/stream/LOCAL", {}, "sample"),
    RecordedCall("SubscriptionProjectorFunction", "handler", "dynamodb:BatchWriteItem", TABLE + "DeliveryLogTable",
                 {}, "sample"),
    RecordedCall("SubscriptionProjectorFunction", "handler", "events:PutEvents",
                 f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/billops-local-DomainEventBus", {}, "sample"),
    RecordedCall("OperationWorkerFunction", "event-source-mapping", "sqs:ReceiveMessage",
                 QUEUE + "OperationsQueue.fifo", {}, "sample"),
    RecordedCall("OperationWorkerFunction", "handler", "sqs:SendMessage", QUEUE + "OperationsDeadLetterQueue.fifo",
                 {}, "sample"),
    RecordedCall("MerchantApiFunction", "handler", "dynamodb:GetItem", TABLE + "ApiKeysTable",
                 {"dynamodb:LeadingKeys": ["…"]}, "sample"),
    RecordedCall("MerchantApiFunction", "handler", "dynamodb:UpdateItem", TABLE + "ApiKeysTable",
                 {"dynamodb:LeadingKeys": ["throttle#…"]}, "sample"),
    RecordedCall("MerchantApiFunction", "handler", "kms:Decrypt", BILLOPS_KEY, PII, "sample"),
]


@pytest.fixture(scope="module")
def transformed():
    return deployed_template.transform()


def test_the_sample_calls_are_allowed_with_the_kms_calls_the_services_make(transformed) -> None:
    result = check(CALLS, deployed_template.load(transformed=transformed))
    assert result.ok, "\n".join(denial.describe() for denial in result.denials) + "\n".join(result.problems)
    # The implied KMS calls were checked too: the stream (via streams.dynamodb), the queue (via sqs), the secret,
    # the bus (EventBridge's own principal, for the bus and its archive): 11 more.
    assert result.checked_requests == len(CALLS) + 11


def test_a_key_the_api_may_not_write_is_denied_by_the_leading_keys_condition(transformed) -> None:
    forged = RecordedCall("MerchantApiFunction", "handler", "dynamodb:UpdateItem", TABLE + "ApiKeysTable",
                          {"dynamodb:LeadingKeys": ["…"]}, "sample")
    result = check([forged], deployed_template.load(transformed=transformed))
    assert [denial.request.action for denial in result.denials] == ["dynamodb:UpdateItem"]


def test_the_projector_cannot_decrypt_personal_data(transformed) -> None:
    result = check([RecordedCall("SubscriptionProjectorFunction", "handler", "kms:Decrypt", BILLOPS_KEY, PII, "x")],
                   deployed_template.load(transformed=transformed))
    assert len(result.denials) == 1 and "key policy" in result.denials[0].reason


def _needed_statements(transformed) -> list[tuple[str, int, int]]:
    """(role, policy index, statement index) of every inline statement some sample call (or its KMS call) uses."""
    result = check(CALLS, deployed_template.load(transformed=transformed))
    assert result.ok
    needed = []
    for role_id, resource in transformed["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role" or not role_id.endswith("FunctionRole"):
            continue
        for p, policy in enumerate(resource["Properties"].get("Policies") or []):
            for s, _ in enumerate((policy.get("PolicyDocument") or {}).get("Statement") or []):
                needed.append((role_id, p, s))
    return needed


def test_removing_any_statement_a_call_needs_fails_naming_the_call(transformed) -> None:
    """Each inline statement of the functions' roles, removed on its own: if the sample calls used it, the check
    must now deny one of them (nothing else grants the same thing)."""
    baseline = deployed_template.load(transformed=transformed)
    used = {statement.where for statement, _ in _used_statements(baseline)}
    failures = 0
    for role_id, p, s in _needed_statements(transformed):
        mutated = copy.deepcopy(transformed)
        policy = mutated["Resources"][role_id]["Properties"]["Policies"][p]
        statements = policy["PolicyDocument"]["Statement"]
        removed = statements.pop(s)
        where = f"{role_id}/{policy['PolicyName']}/{removed.get('Sid') or f'#{s}'}"
        if where not in used:
            continue
        result = check(CALLS, deployed_template.load(transformed=mutated))
        assert result.denials, f"removing {where} went unnoticed"
        assert all(denial.call.function == role_id.removesuffix("Role") for denial in result.denials), where
        failures += 1
    assert failures >= 10


def _used_statements(template):
    from iam_check.policy_evaluation import Request, evaluate
    from iam_check.implied_calls import implied_requests
    from iam_check.policy_evaluation import Principal

    for call in CALLS:
        resource = template.local_names.get(call.resource, call.resource)
        request = Request(Principal(ACCOUNT, arn=template.roles[call.function].arn), call.action, resource,
                          call.context)
        for _, each in [("", request), *implied_requests(request, template)]:
            decision = evaluate(each, template.roles[call.function].statements,
                                key_policy=template.key_policies.get(each.resource))
            allowers = [s for s in decision.allowed_by if s.principals is None]
            if len(allowers) == 1:
                yield allowers[0], each


def test_make_check_iam_fails_naming_the_call_when_template_yaml_loses_a_statement(tmp_path, capsys) -> None:
    """The whole command, on a copy of template.yaml without the merchant API's LookUpApiKeys statement."""
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    block = re.search(r"\n            - Sid: LookUpApiKeys\n(?:              .*\n)+", text)
    assert block, "the LookUpApiKeys statement moved: update this test"
    mutated = tmp_path / "template.yaml"
    mutated.write_text(text.replace(block.group(0), "\n", 1), encoding="utf-8")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")  # the nested templates it names
    # sam_transform resolves CodeUri relative to nothing; the local paths are replaced, so the copy stands alone.
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "calls-1.jsonl").write_text(
        '{"action": "dynamodb:GetItem", "context": {"dynamodb:LeadingKeys": ["…"]}, "function": '
        f'"MerchantApiFunction", "resource": "{TABLE}ApiKeysTable", "seen_in": "sample", "via": "handler"}}\n',
        encoding="utf-8")
    assert iam_check_main(["--calls", str(calls), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert iam_check_main(["--calls", str(calls), "--template", str(mutated), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert f"DENIED MerchantApiFunction: dynamodb:GetItem on {TABLE}ApiKeysTable" in out


def test_a_secret_read_by_another_function_in_the_same_process_is_said_so(transformed) -> None:
    """Locally one process runs every function: the reconciliation job reuses the DataLink login the worker read
    (its cache), so its own read is never recorded; the report says why instead of calling the grant unused."""
    worker_read = RecordedCall("OperationWorkerFunction", "handler", "secretsmanager:GetSecretValue",
                               SECRET + "CCBillCredentialsSecret-000000", {}, "sample")
    result = check([worker_read], deployed_template.load(transformed=transformed))
    reasons = {(grant.statement.where.split("/")[0], grant.statement.where.rsplit("/", 1)[-1], grant.action): why
               for grant, why in result.unused}
    assert "read by OperationWorkerFunction" in reasons[
        ("ReconciliationFunctionRole", "#0", "secretsmanager:GetSecretValue")]
    assert "read by OperationWorkerFunction" in reasons[
        ("ReconciliationFunctionRole", "DecryptItsSecretThroughSecretsManager", "kms:Decrypt")]
    assert reasons[("ReconciliationFunctionRole", "UseStorageKeyThroughDynamoDB", "kms:Decrypt")] is None
    assert ("OperationWorkerFunctionRole", "#0", "secretsmanager:GetSecretValue") not in reasons  # its own, used
    assert reasons[("UpgradePostbackFunctionRole", "#0", "secretsmanager:GetSecretValue")] is None  # nobody read it


def test_the_linted_policies_include_those_of_every_nested_part_even_when_off_by_default(tmp_path, capsys) -> None:
    """`make check-iam` lints test-artifacts/iam/policies.json with parliament: the nested templates' roles, key
    policies and bucket policies (the fixed-egress network's, the analytics export's, both off by default) are in it,
    resolved, beside template.yaml's."""
    import json

    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "calls-1.jsonl").write_text(
        '{"action": "dynamodb:GetItem", "context": {"dynamodb:LeadingKeys": ["…"]}, "function": '
        f'"MerchantApiFunction", "resource": "{TABLE}ApiKeysTable", "seen_in": "sample", "via": "handler"}}\n',
        encoding="utf-8")
    assert iam_check_main(["--calls", str(calls), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    linted = {policy["where"]: policy for policy in
              json.loads((tmp_path / "out" / "policies.json").read_text(encoding="utf-8"))}
    for where in ("MerchantApiFunctionRole/MerchantApiFunctionRolePolicy0", "StorageKey key policy",
                  "WorkerVpcFlowLogRole/WriteTheFlowLog",  # templates/egress-network.yaml
                  "FirehoseRole/DeliverToTheBucket", "EventsToFirehoseRole/PutIntoTheDeliveryStream",
                  "AnalyticsKey key policy", "AnalyticsBucketPolicy bucket policy"):  # templates/analytics-export.yaml
        assert where in linted, where
    text = json.dumps(linted["FirehoseRole/DeliverToTheBucket"]["document"])
    assert "arn:aws:s3:::" in text and "Fn::" not in text and "${" not in text  # resolved to concrete ARNs
    # Off by default: the deployment the calls are checked against has none of them.
    assert not {"WorkerVpcFlowLogRole", "FirehoseRole", "AnalyticsKey"} & {
        policy["where"].split("/")[0].split(" ")[0] for policy in deployed_template.load().policies}
