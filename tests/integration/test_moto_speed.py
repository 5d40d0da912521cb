"""The local stack's moto speed-ups (billops_local.moto_speed) change no answer: a table's Query by its own key gives
what DynamoDB gives (the partition's items in sort-key order, paged, filtered), whatever else the table holds; a
transaction changes all or nothing; KMS keys whose private key is made when first used still encrypt, sign, verify
and give their public key; an SQS send that does not count the queue still deduplicates, validates and leaves the
counts GetQueueAttributes gives right."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from billops_local import moto_speed


@pytest.fixture
def dynamodb():
    moto_speed.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="history", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                  {"AttributeName": "position", "AttributeType": "S"},
                                  {"AttributeName": "kind", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"},
                       {"AttributeName": "position", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"},
                                                   {"AttributeName": "position", "KeyType": "RANGE"}]}])
        for owner in ("a", "b", "c"):
            for n in (3, 1, 4, 15, 9, 2, 6):
                client.put_item(TableName="history", Item={
                    "id": {"S": owner}, "position": {"S": f"e#{n:02d}"}, "kind": {"S": "odd" if n % 2 else "even"},
                    "n": {"N": str(n)}})
        client.put_item(TableName="history", Item={"id": {"S": "b"}, "position": {"S": "subscriber"},
                                                   "kind": {"S": "personal"}})
        yield client


def _query(client, **kwargs) -> list[tuple[str, str]]:
    items, start = [], None
    while True:
        answer = client.query(TableName="history", **kwargs, **({"ExclusiveStartKey": start} if start else {}))
        items += [(item["id"]["S"], item["position"]["S"]) for item in answer["Items"]]
        start = answer.get("LastEvaluatedKey")
        if not start:
            return items


def test_a_partition_is_read_in_sort_key_order_forward_backward_and_paged(dynamodb):
    expected = [("b", f"e#{n:02d}") for n in sorted((3, 1, 4, 15, 9, 2, 6))] + [("b", "subscriber")]
    by_id = {"KeyConditionExpression": "id = :id", "ExpressionAttributeValues": {":id": {"S": "b"}},
             "ConsistentRead": True}
    assert _query(dynamodb, **by_id) == expected
    assert _query(dynamodb, **by_id, ScanIndexForward=False) == expected[::-1]
    assert _query(dynamodb, **by_id, Limit=3) == expected
    assert _query(dynamodb, **by_id, Limit=2, ScanIndexForward=False) == expected[::-1]


def test_key_conditions_and_filters_still_apply(dynamodb):
    found = _query(dynamodb, KeyConditionExpression="id = :id AND begins_with(#p, :e)", FilterExpression="n > :five",
                   ExpressionAttributeNames={"#p": "position"},
                   ExpressionAttributeValues={":id": {"S": "c"}, ":e": {"S": "e#"}, ":five": {"N": "5"}}, Limit=2)
    assert found == [("c", "e#06"), ("c", "e#09"), ("c", "e#15")]
    assert _query(dynamodb, KeyConditionExpression="id = :id", ExpressionAttributeValues={":id": {"S": "nobody"}}) == []


def test_an_index_query_and_a_scan_still_see_every_partition(dynamodb):
    odd = _query(dynamodb, IndexName="by_kind", KeyConditionExpression="kind = :k",
                 ExpressionAttributeValues={":k": {"S": "odd"}})
    assert sorted(odd) == sorted((owner, f"e#{n:02d}") for owner in "abc" for n in (3, 1, 15, 9))
    assert dynamodb.scan(TableName="history")["Count"] == 22


def test_a_failed_transaction_still_changes_nothing_and_a_good_one_everything(dynamodb):
    def item(owner: str, position: str) -> dict | None:
        return dynamodb.get_item(TableName="history", Key={"id": {"S": owner}, "position": {"S": position}},
                                 ConsistentRead=True).get("Item")

    refused = [
        {"Put": {"TableName": "history", "Item": {"id": {"S": "d"}, "position": {"S": "e#01"}}}},
        {"Update": {"TableName": "history", "Key": {"id": {"S": "a"}, "position": {"S": "e#03"}},
                    "UpdateExpression": "SET n = :n", "ExpressionAttributeValues": {":n": {"N": "99"}}}},
        {"Delete": {"TableName": "history", "Key": {"id": {"S": "b"}, "position": {"S": "e#04"}}}},
        {"Put": {"TableName": "history", "Item": {"id": {"S": "c"}, "position": {"S": "e#01"}},
                 "ConditionExpression": "attribute_not_exists(id)"}},  # exists: the transaction is cancelled
    ]
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=refused)
    assert item("d", "e#01") is None and item("a", "e#03")["n"] == {"N": "3"} and item("b", "e#04") is not None
    assert dynamodb.scan(TableName="history")["Count"] == 22

    dynamodb.transact_write_items(TransactItems=refused[:3])
    assert item("d", "e#01") is not None and item("a", "e#03")["n"] == {"N": "99"} and item("b", "e#04") is None
    assert dynamodb.scan(TableName="history")["Count"] == 22


def test_kms_keys_made_lazily_still_encrypt_sign_verify_and_give_their_public_key():
    moto_speed.apply()
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=symmetric, Plaintext=b"personal data")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"personal data"
        assert len(kms.generate_data_key(KeyId=symmetric, KeySpec="AES_256")["Plaintext"]) == 32

        signing = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
        signature = kms.sign(KeyId=signing, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
        assert kms.verify(KeyId=signing, Message=b"m", Signature=signature,
                          SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"] is True
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        public = load_der_public_key(kms.get_public_key(KeyId=signing)["PublicKey"])
        assert public.key_size == 2048


COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
          "ApproximateNumberOfMessagesNotVisible"]


def test_sqs_sends_without_counting_the_queue_still_deduplicate_validate_and_leave_the_counts_right():
    moto_speed.apply()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        standard = sqs.create_queue(QueueName="standard")["QueueUrl"]
        for n in range(4):
            sqs.send_message(QueueUrl=standard, MessageBody=f"m{n}")
        sqs.send_message(QueueUrl=standard, MessageBody="later", DelaySeconds=60)
        sqs.send_message_batch(QueueUrl=standard, Entries=[{"Id": "a", "MessageBody": "a"},
                                                            {"Id": "b", "MessageBody": "b", "DelaySeconds": 60}])
        sqs.receive_message(QueueUrl=standard, MaxNumberOfMessages=2, VisibilityTimeout=60)
        counts = sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=COUNTS)["Attributes"]
        assert counts == {"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesDelayed": "2",
                          "ApproximateNumberOfMessagesNotVisible": "2"}
        every = sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=["All"])["Attributes"]
        assert {name: every[name] for name in COUNTS} == counts

        fifo = sqs.create_queue(QueueName="once.fifo", Attributes={
            "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
        for _ in range(2):
            sqs.send_message(QueueUrl=fifo, MessageBody="same body", MessageGroupId="g")
        sqs.send_message_batch(QueueUrl=fifo, Entries=[
            {"Id": "x", "MessageBody": "same body", "MessageGroupId": "g"},
            {"Id": "y", "MessageBody": "other", "MessageGroupId": "g"}])
        bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]]
        assert bodies == ["same body", "other"]

        explicit = sqs.create_queue(QueueName="explicit.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        with pytest.raises(sqs.exceptions.ClientError, match="MessageDeduplicationId"):
            sqs.send_message(QueueUrl=explicit, MessageBody="b", MessageGroupId="g")
        assert sqs.get_queue_attributes(QueueUrl=explicit, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"] == {"ApproximateNumberOfMessages": "0"}


def test_dynamodb_answers_by_compiled_shapes_are_moto_serializers_byte_for_byte(monkeypatch):
    moto_speed.apply()
    compared: list = []
    monkeypatch.setattr(moto_speed, "shadow_check", compared)
    every_type = {"id": {"S": "a"}, "position": {"S": "e#01"}, "n": {"N": "12.50"}, "blob": {"B": b"\x00\xffbytes"},
                  "strings": {"SS": ["x", "y"]}, "numbers": {"NS": ["1", "2.5"]}, "blobs": {"BS": [b"1", b"2"]},
                  "yes": {"BOOL": True}, "no": {"BOOL": False}, "nothing": {"NULL": True}, "empty": {"S": ""},
                  "nested": {"M": {"list": {"L": [{"S": "s"}, {"N": "1"}, {"M": {"deep": {"BOOL": False}}},
                                                  {"L": []}]}, "map": {"M": {}}}}}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="ttt", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                  {"AttributeName": "position", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"},
                       {"AttributeName": "position", "KeyType": "RANGE"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        client.put_item(TableName="ttt", Item=every_type)
        client.put_item(TableName="ttt", Item={**every_type, "position": {"S": "e#02"}}, ReturnValues="ALL_OLD",
                        ReturnConsumedCapacity="TOTAL")
        client.put_item(TableName="ttt", Item={**every_type, "n": {"N": "3"}}, ReturnValues="ALL_OLD")
        key = {"id": {"S": "a"}, "position": {"S": "e#01"}}
        client.update_item(TableName="ttt", Key=key, UpdateExpression="SET n = n + :one",
                           ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
        client.get_item(TableName="ttt", Key=key, ReturnConsumedCapacity="INDEXES")
        client.get_item(TableName="ttt", Key={"id": {"S": "nobody"}, "position": {"S": "x"}})
        by_id = {"KeyConditionExpression": "id = :id", "ExpressionAttributeValues": {":id": {"S": "a"}}}
        client.query(TableName="ttt", **by_id, Limit=1, ReturnConsumedCapacity="TOTAL")
        client.query(TableName="ttt", **by_id, Select="COUNT")
        client.scan(TableName="ttt", ProjectionExpression="id, nested.#m", ExpressionAttributeNames={"#m": "map"})
        client.scan(TableName="ttt", Limit=1)
        client.batch_get_item(RequestItems={"ttt": {"Keys": [key, {"id": {"S": "a"}, "position": {"S": "none"}}]}})
        client.batch_write_item(RequestItems={"ttt": [
            {"PutRequest": {"Item": {**key, "position": {"S": "e#03"}}}},
            {"DeleteRequest": {"Key": {**key, "position": {"S": "e#02"}}}}]})
        client.transact_get_items(TransactItems=[{"Get": {"TableName": "ttt", "Key": key}}])
        client.transact_write_items(TransactItems=[{"Update": {
            "TableName": "ttt", "Key": key, "UpdateExpression": "SET yes = :no",
            "ExpressionAttributeValues": {":no": {"BOOL": False}}}}])
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(TableName="ttt", Item=every_type, ConditionExpression="attribute_not_exists(id)",
                            ReturnValuesOnConditionCheckFailure="ALL_OLD")
        client.delete_item(TableName="ttt", Key=key, ReturnValues="ALL_OLD")
        client.describe_table(TableName="ttt")
        client.list_tables()

        streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        arn = streams.list_streams(TableName="ttt")["Streams"][0]["StreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert {record["eventName"] for record in records} == {"INSERT", "MODIFY", "REMOVE"}

    mismatches = [(operation, fast, moto) for operation, fast, moto in compared
                  if fast is not None and fast != moto]
    assert mismatches == []
    compiled = {operation for operation, fast, _ in compared if fast is not None}
    assert {"PutItem", "UpdateItem", "GetItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
            "TransactGetItems", "TransactWriteItems", "DeleteItem", "GetRecords", "DescribeStream",
            "DescribeTable"} <= compiled


def test_an_item_sized_once_is_refused_exactly_where_moto_refused_it(dynamodb):
    # DynamoDB's limit as moto sets it: 405,000 bytes of attribute names and values. Here 15 bytes of names and
    # short values ("id", "a", "position", "e#99", "big": 2 + 1 + 8 + 4 + 3 = 18) plus the big value.
    def put(size: int) -> None:
        dynamodb.put_item(TableName="history", Item={"id": {"S": "a"}, "position": {"S": "e#99"},
                                                     "big": {"S": "x" * size}})

    put(405000 - 18)
    assert dynamodb.get_item(TableName="history", Key={"id": {"S": "a"}, "position": {"S": "e#99"}})["Item"][
        "big"]["S"] == "x" * (405000 - 18)
    with pytest.raises(dynamodb.exceptions.ClientError, match="Item size has exceeded the maximum allowed size"):
        put(405000 - 17)
    with pytest.raises(dynamodb.exceptions.ClientError, match="Item size has exceeded the maximum allowed size"):
        dynamodb.put_item(TableName="history", Item={"id": {"S": "a"}, "position": {"S": "e#98"},
                                                     "many": {"L": [{"N": "1" * 38}] * 11000}})
    item = {"id": {"S": "a"}, "position": {"S": "e#97"}, "flag": {"BOOL": True}, "blob": {"B": b"\x01\x02"},
            "nested": {"M": {"k": {"SS": ["é", "b"]}, "n": {"N": "-1.5"}}}}
    dynamodb.put_item(TableName="history", Item=item)
    assert dynamodb.get_item(TableName="history", Key={"id": {"S": "a"}, "position": {"S": "e#97"}})["Item"] == item
