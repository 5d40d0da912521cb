"""The KMS calls AWS services make for a function when it uses a resource encrypted with a customer managed key.

moto stores data in clear, so these calls never happen locally; without them every ``kms:ViaService`` grant would be
reported unused, and a missing one would go unnoticed until production. They are derived from the recorded service
calls, each rule from the service's documentation of how it uses AWS KMS:

* DynamoDB (tables, their indexes and streams): a request makes DynamoDB decrypt the table key with the caller's
  permissions ("How Amazon DynamoDB uses AWS KMS": the plaintext table key is cached per principal, and refreshed
  with a new Decrypt call after five minutes of inactivity) -> ``kms:Decrypt``, ``kms:ViaService`` =
  ``dynamodb.<region>.amazonaws.com`` (``streams.dynamodb.<region>.amazonaws.com`` for the stream API), encryption
  context ``aws:dynamodb:tableName`` and ``aws:dynamodb:subscriberId`` (the account).
* SQS with SSE-KMS: "a producer needs kms:GenerateDataKey and kms:Decrypt, a consumer kms:Decrypt" (the data key is
  reused KmsDataKeyReusePeriodSeconds) -> on SendMessage ``kms:GenerateDataKey`` and ``kms:Decrypt``, on
  ReceiveMessage ``kms:Decrypt``; ``kms:ViaService`` = ``sqs.<region>.amazonaws.com``, encryption context
  ``aws:sqs:arn`` = the queue's ARN.
* Secrets Manager: GetSecretValue decrypts the secret's version with the caller's permissions -> ``kms:Decrypt``,
  ``kms:ViaService`` = ``secretsmanager.<region>.amazonaws.com``, encryption context ``SecretARN`` = the secret's ARN.
* EventBridge: a bus (and its archives) encrypted with a customer managed key are encrypted by EventBridge itself,
  as the service principal ``events.amazonaws.com`` (the key policy must allow it, with ``aws:SourceArn`` = the bus,
  or the archive) -> ``kms:GenerateDataKey`` for the bus and for each of its archives, per PutEvents.

Not derived (no call the functions make causes them): key administration, CreateGrant / DescribeKey at table
creation (CloudFormation's principal), CloudWatch Logs encrypting the log groups, CloudWatch alarms publishing to
the alarm topic. iam_check reports their grants as unused; template.yaml says why each stays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from billops_local.aws_call_recording import ACCOUNT_ID

from iam_check.deployed_template import REGION, DeployedTemplate
from iam_check.policy_evaluation import Principal, Request

_DYNAMODB_STREAM_ACTIONS = {"dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream",
                            "dynamodb:ListStreams"}
_SQS_SENDS = {"sqs:SendMessage"}
_SQS_RECEIVES = {"sqs:ReceiveMessage"}


def _table_arn(resource: str) -> str:
    head, separator, rest = resource.partition(":table/")
    return f"{head}{separator}{rest.split('/', 1)[0]}" if separator else resource


def implied_requests(request: Request, template: DeployedTemplate) -> Iterator[tuple[str, Request]]:
    """(why, request) for each KMS call a service makes because of ``request``."""
    action = request.action
    service = action.split(":", 1)[0]
    base: dict[str, Any] = {"kms:CallerAccount": ACCOUNT_ID, **{key: value for key, value in request.context.items()
                                                               if key.startswith("aws:Principal")}}
    if service == "dynamodb":
        table = _table_arn(request.resource)
        key = template.encryption.get(table)
        if key is None:
            return
        via = (f"streams.dynamodb.{REGION}.amazonaws.com" if action in _DYNAMODB_STREAM_ACTIONS
               else f"dynamodb.{REGION}.amazonaws.com")
        context = {**base, "kms:ViaService": via,
                   "kms:EncryptionContext:aws:dynamodb:tableName": table.rsplit("/", 1)[-1],
                   "kms:EncryptionContext:aws:dynamodb:subscriberId": ACCOUNT_ID}
        yield f"DynamoDB decrypts the table key of {table.rsplit('/', 1)[-1]}", Request(
            request.principal, "kms:Decrypt", key, context)
    elif service == "sqs" and (action in _SQS_SENDS or action in _SQS_RECEIVES):
        key = template.encryption.get(request.resource)
        if key is None:
            return
        context = {**base, "kms:ViaService": f"sqs.{REGION}.amazonaws.com",
                   "kms:EncryptionContext:aws:sqs:arn": request.resource}
        why = f"SQS {'encrypts for' if action in _SQS_SENDS else 'decrypts from'} {request.resource.rsplit(':', 1)[-1]}"
        if action in _SQS_SENDS:
            yield why, Request(request.principal, "kms:GenerateDataKey", key, context)
        yield why, Request(request.principal, "kms:Decrypt", key, context)
    elif action == "secretsmanager:GetSecretValue":
        key = template.encryption.get(request.resource)
        if key is None:
            return
        context = {**base, "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
                   "kms:EncryptionContext:SecretARN": request.resource}
        yield "Secrets Manager decrypts the secret", Request(request.principal, "kms:Decrypt", key, context)
    elif action == "events:PutEvents":
        key = template.encryption.get(request.resource)
        if key is None:
            return
        events = Principal(ACCOUNT_ID, service="events.amazonaws.com")
        for source in [request.resource, *template.archives.get(request.resource, [])]:
            context: Mapping[str, Any] = {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT_ID,
                                          "kms:EncryptionContext:aws:events:event-bus:arn": request.resource}
            yield f"EventBridge encrypts the event for {source.rsplit(':', 1)[-1]}", Request(
                events, "kms:GenerateDataKey", key, context)
