"""In-process time per delivery, p50 and p99, of billops' receiver and of the baseline, with the AWS transport
stubbed: botocore's ``Endpoint._send`` (the one place a prepared HTTP request leaves for the network) answers at
once from a small in-memory DynamoDB / Secrets Manager, so the time is our code plus the SDK's own work
(serialising, signing, parsing) and nothing of the network or of an emulator.

The fake answers what the handlers need and no more: PutItem (a ConditionExpression with ``attribute_not_exists``
fails when the key is there, answering ``ConditionalCheckFailedException`` with the old item when
``ReturnValuesOnConditionCheckFailure`` is ALL_OLD, as DynamoDB does), UpdateItem (``SET`` clauses), GetItem,
GetSecretValue and KMS GenerateDataKey (the personal-data key the receiver encrypts with).

Both the wall time and the thread's CPU time of each delivery are kept: on a shared machine the wall time also
counts the time the process waited for a CPU, so the cost model uses the CPU time (mean).

Run per target in a fresh interpreter (``python -m bench.hot_path_timing ours|baseline``) with stdout to a file:
the handlers' log output is then measured in bytes per delivery, the input of the CloudWatch Logs cost. Events are
built before the clock starts; each timed delivery is distinct (new) or a repeat of one already stored (duplicate).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import resource
import time
import uuid
from typing import Any

from bench.isolated import stdout_position, write_result
from bench.stats import summary

TOKEN = "bench-webhook-token"
TOKEN_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-webhook-token-AbCdEf"
DELIVERY_KEY_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-delivery-key-AbCdEf"
KEY_NAMES = ("pk", "id", "subscription_id", "operation_id")


class FakeAws:
    """An instant DynamoDB and Secrets Manager behind botocore's HTTP layer."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict]] = {}
        self.requests = 0
        self._original = None

    def install(self) -> None:
        from botocore.endpoint import Endpoint

        fake = self
        self._original = Endpoint._send

        def _send(endpoint_self, request):
            return fake.answer(request)

        Endpoint._send = _send

    def uninstall(self) -> None:
        from botocore.endpoint import Endpoint

        if self._original is not None:
            Endpoint._send = self._original

    def answer(self, request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        self.requests += 1
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        params = json.loads(body or b"{}")
        operation = target.rsplit(".", 1)[-1]
        status, payload = self._dispatch(target, operation, params)
        response = AWSResponse(request.url, status, {"x-amzn-RequestId": str(uuid.uuid4()),
                                                     "Content-Type": "application/x-amz-json-1.0"}, None)
        response._content = json.dumps(payload).encode()
        return response

    def _dispatch(self, target: str, operation: str, params: dict) -> tuple[int, dict]:
        if target.startswith("TrentService.") and operation == "GenerateDataKey":
            # The personal-data key: the receiver asks once per container (then per rotation) for a data key.
            plaintext = os.urandom(32)
            return 200, {"KeyId": params.get("KeyId"), "Plaintext": base64.b64encode(plaintext).decode(),
                         "CiphertextBlob": base64.b64encode(b"bench-wrapped:" + plaintext).decode()}
        if target.startswith("secretsmanager.") and operation == "GetSecretValue":
            # The webhook token, or the HMAC key of the delivery keys (read once per container, then cached).
            secret = "bench-delivery-key" if params.get("SecretId") == DELIVERY_KEY_SECRET_ARN else TOKEN
            return 200, {"ARN": params.get("SecretId"), "Name": "bench-webhook-token", "SecretString": secret,
                         "VersionId": "v1", "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.7e9}
        if target.startswith("DynamoDB_"):
            table = self.tables.setdefault(params.get("TableName", ""), {})
            if operation == "PutItem":
                item = params["Item"]
                key = _key(item)
                if "attribute_not_exists" in (params.get("ConditionExpression") or "") and key in table:
                    error = {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                             "message": "The conditional request failed"}
                    if params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                        error["Item"] = table[key]
                    return 400, error
                table[key] = item
                return 200, {}
            if operation == "UpdateItem":
                key = _key(params["Key"])
                item = dict(table.get(key) or params["Key"])
                names = params.get("ExpressionAttributeNames") or {}
                values = params.get("ExpressionAttributeValues") or {}
                expression = (params.get("UpdateExpression") or "").strip()
                if expression.upper().startswith("SET "):
                    for clause in expression[4:].split(","):
                        name, _, value = (part.strip() for part in clause.partition("="))
                        item[names.get(name, name)] = values[value]
                table[key] = item
                return 200, {}
            if operation == "GetItem":
                item = table.get(_key(params["Key"]))
                return 200, ({"Item": item} if item else {})
        return 400, {"__type": "UnknownOperationException", "message": f"bench fake: {target}"}


def _key(item: dict) -> str:
    for name in KEY_NAMES:
        if name in item:
            return json.dumps(item[name], sort_keys=True)
    return json.dumps(item, sort_keys=True)


def _environment(target: str) -> None:
    if target == "ours":
        os.environ.update({
            "POWERTOOLS_SERVICE_NAME": "billops", "POWERTOOLS_METRICS_NAMESPACE": "Billops",
            "POWERTOOLS_LOG_LEVEL": "INFO", "BILLOPS_ENV": "dev",
            "BILLOPS_EVENTS_TABLE": "billops-dev-EventsTable", "BILLOPS_SUBSCRIPTIONS_TABLE": "billops-dev-Subs",
            "BILLOPS_WEBHOOK_TOKEN_SECRET_ARN": TOKEN_SECRET_ARN,
            "BILLOPS_DELIVERY_KEY_SECRET_ARN": DELIVERY_KEY_SECRET_ARN,
            "BILLOPS_PII_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/bench-pii",
            "BILLOPS_ALLOWED_CIDRS": "64.38.212.0/24,64.38.215.0/24,64.38.240.0/24,64.38.241.0/24",
            "BILLOPS_CLIENT_ACCNUM": "", "BILLOPS_CLIENT_SUBACCS": "", "BILLOPS_MAX_BODY_BYTES": "65536",
        })
    else:
        from bench.aws_request_counting import baseline_environment

        os.environ.update(baseline_environment())


def measure(target: str, iterations: int, warmup: int) -> dict[str, Any]:
    from bench.lambda_runtime import BASELINE_HANDLER, LambdaContext, function_specs, load_module
    from bench.payloads import delivery_mix, http_api_v2_event, rest_api_v1_event

    _environment(target)
    fake = FakeAws()
    fake.install()
    if target == "ours":
        spec = function_specs()["WebhookReceiverFunction"]
        module = load_module(spec.module_path)
        handler, build, memory = module.handler, http_api_v2_event, spec.memory_size
    else:
        module = load_module(BASELINE_HANDLER, "baseline_receiver")
        handler, build, memory = module.lambda_handler, rest_api_v1_event, module.MEMORY_SIZE_MB
    context = LambdaContext(f"{target}-webhook-receiver", memory)

    deliveries = list(delivery_mix(1 + warmup + iterations, run=31))
    events = [build(delivery, TOKEN) for delivery in deliveries]
    repeats = [copy.deepcopy(event) for event in events[1 + warmup:]]

    def invoke(event: dict) -> tuple[int, int]:
        cpu = time.thread_time_ns()
        started = time.perf_counter_ns()
        answer = handler(event, context.fresh())
        elapsed = time.perf_counter_ns() - started
        cpu = time.thread_time_ns() - cpu
        assert answer["statusCode"] == 200, answer
        return elapsed, cpu

    position = stdout_position()
    requests_before = fake.requests
    first_ms = invoke(events[0])[0] / 1e6
    cold_log_bytes = stdout_position() - position
    cold_requests = fake.requests - requests_before
    for event in events[1:1 + warmup]:
        invoke(event)

    def phase(batch: list[dict]) -> dict[str, Any]:
        start_bytes, start_requests = stdout_position(), fake.requests
        measured = [invoke(event) for event in batch]
        return {"ms": summary([wall / 1e6 for wall, _ in measured]),
                "cpu_ms": summary([cpu / 1e6 for _, cpu in measured]),
                "log_bytes_per_delivery": (stdout_position() - start_bytes) / len(batch),
                "requests_per_delivery": (fake.requests - start_requests) / len(batch)}

    new = phase(events[1 + warmup:])
    duplicate = phase(repeats)
    fake.uninstall()
    with open("/proc/self/status") as status:
        rss = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    return {
        "target": target,
        "memory_mb": memory,
        "iterations": iterations,
        "first_invocation_ms": first_ms,
        "first_invocation_requests": cold_requests,
        "first_invocation_log_bytes": cold_log_bytes,
        "new": new,
        "duplicate": duplicate,
        "load_average": os.getloadavg(),
        "peak_rss_mb": rss / 1024 if rss else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_path_timing")
    parser.add_argument("target", choices=("ours", "baseline"))
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--result", required=True)
    arguments = parser.parse_args(argv)
    write_result(arguments.result, measure(arguments.target, arguments.iterations, arguments.warmup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
