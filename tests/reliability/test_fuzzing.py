"""Fuzzing the webhook path: decoding, the event models, the whole intake, the receiver handler, and every route of
the running local stack's HTTP API.

Properties, for any input: no exception but the documented ones (MalformedDelivery, EventValidationError), never a
5xx (except the 503 of a storage failure injected on purpose), never 2xx without the delivery stored, never the
consumer's password stored, and each input handled within hypothesis's per-example ``deadline``. Inputs are
arbitrary bytes and text, and CCBill's real payloads (billops_local.webhook_samples) mutated: fields dropped,
replaced with arbitrary text, added, bytes flipped, bodies truncated.

test_atheris_over_the_intake adds a coverage-guided run (atheris / libFuzzer) over decoding + intake, seeded with the
sample bodies, in a subprocess bounded in runs and seconds; a crash's input is kept in test-artifacts/reliability/.

Examples per test: BILLOPS_RELIABILITY_FUZZ_EXAMPLES (default 300; the HTTP test a third of it);
atheris runs: BILLOPS_RELIABILITY_ATHERIS_RUNS (100000, at most 60 s).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from billops.privacy.field_encryption import FieldCipher, is_encrypted
from billops.settings import settings_from_env
from billops.storage.errors import StorageUnavailable
from billops.webhooks.delivery_decoding import (
    MalformedDelivery,
    canonical_payload,
    decode_body,
    raw_body_bytes,
)
from billops.webhooks.event_models import EventValidationError, parse_event
from billops.webhooks.event_types import EventType
from billops.webhooks.intake import WebhookIntake, WebhookRequest
from billops_local.http_api_events import http_api_event
from billops_local.webhook_samples import (
    EVENT_TYPES,
    SAMPLE_PASSWORD,
    encode_body,
    sample_fields,
    webhook_query,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reliability_stack import SANDBOX_SEED, free_ports, running_stack
from webhook_traffic import traffic_generator

pytestmark = pytest.mark.runs_alone  # per-example deadlines: run alone (Makefile, test-reliability)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "reliability"
EXAMPLES = int(os.environ.get("BILLOPS_RELIABILITY_FUZZ_EXAMPLES", "300"))
ATHERIS_RUNS = int(os.environ.get("BILLOPS_RELIABILITY_ATHERIS_RUNS", "100000"))
TOKEN = "fuzz-webhook-token"
CCBILL_IP = "64.38.212.10"

FAST = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=2), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WITH_FIXTURES = settings(FAST, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.function_scoped_fixture])
OVER_HTTP = settings(max_examples=max(20, EXAMPLES // 3), deadline=timedelta(seconds=30), database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.function_scoped_fixture],
                     # No shrinking over HTTP (minutes per failure): the failing request is reported as found.
                     phases=[Phase.explicit, Phase.reuse, Phase.generate])

_counts: dict[str, int] = {}
GENERATOR = traffic_generator(SANDBOX_SEED)
"""The CCBill sandbox's generator, varied: real-shaped deliveries of any version and format (seed in the figures)."""


def _count(name: str) -> None:
    _counts[name] = _counts.get(name, 0) + 1


# --- strategies ----------------------------------------------------------------------------------------------------

CONTENT_TYPES = st.one_of(
    st.sampled_from([None, "", "application/json", "application/x-www-form-urlencoded",
                     "application/x-www-form-encoded", "application/json; charset=utf-8", "text/plain",
                     "application/vnd.ccbill+json", "multipart/form-data; boundary=x", "application/xml",
                     "APPLICATION/JSON", "application/x-www-form-urlencoded; charset=ISO-8859-1"]),
    st.text(max_size=60),
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
ODD_VALUES = st.one_of(
    TEXT,
    st.sampled_from(["", " ", "0", "-1", "19.999", "1e308", "NaN", "9" * 40, "0126015401000000123\x00",
                     "2026-02-30 25:61:61", "4111111111111111", "../../etc/passwd", "<script>", "' OR 1=1 --",
                     "null", "true", "\u202e", "\ud7ff", "١٢٣", "１９．９５"]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_fields(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A real payload of a random type, with fields dropped, replaced by odd values, and added."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    fields = dict(sample_fields(event_type))
    names = sorted(fields)
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        fields.pop(name, None)
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        fields[name] = draw(ODD_VALUES)
    fields.update(draw(st.dictionaries(TEXT, ODD_VALUES, max_size=3)))
    return event_type, fields


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        if not raw:
            break
        position = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(("flip", "delete", "insert", "truncate")))
        if action == "flip":
            raw[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "delete":
            del raw[position]
        elif action == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[position:]
    return bytes(raw)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None, str | None]:
    """(raw body, content type, event type of the query): arbitrary, JSON-shaped, form-shaped or a mutated sample."""
    kind = draw(st.sampled_from(("bytes", "json", "form", "sample", "mutated_sample", "generated")))
    event_type: str | None = draw(st.sampled_from(EVENT_TYPES))
    if kind == "generated":  # a varied delivery of the sandbox's generator, as it is or mutated
        number = draw(st.integers(0, 10**6))
        delivery = GENERATOR.generate(event_type, {}, key=str(number), consumer_key=str(number))
        body = draw(mutated_bytes(delivery.body)) if draw(st.booleans()) else delivery.body
        return body, delivery.content_type, event_type
    if kind == "bytes":
        return draw(st.binary(max_size=300)), draw(CONTENT_TYPES), event_type
    if kind == "json":
        document = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=8) | JSON_VALUES)
        return json.dumps(document).encode(), draw(st.sampled_from(["application/json", None])), event_type
    if kind == "form":
        pairs = draw(st.lists(st.tuples(TEXT, ODD_VALUES), max_size=8))
        return urlencode(pairs).encode(), draw(st.sampled_from(["application/x-www-form-urlencoded", None])), \
            event_type
    if kind == "sample" and draw(st.booleans()):  # a real payload as CCBill sends it: the accepted path
        event_type = draw(st.sampled_from(EVENT_TYPES))
        fields = dict(sample_fields(event_type))
    else:
        event_type, fields = draw(mutated_fields())
    body_format = draw(st.sampled_from(("json", "urlencoded")))
    body, content_type = encode_body(fields, body_format)
    if kind == "mutated_sample":
        body = draw(mutated_bytes(body))
        content_type = draw(st.sampled_from([content_type, None, "text/plain"]))
    return body, content_type, event_type


@st.composite
def webhook_requests(draw: st.DrawFn) -> WebhookRequest:
    body, content_type, event_type = draw(bodies())
    query: dict[str, str] = {}
    if draw(st.integers(0, 9)) > 0:
        query["token"] = TOKEN if draw(st.integers(0, 5)) else draw(TEXT)
    if event_type is not None and draw(st.integers(0, 9)) > 0:
        query["eventType"] = event_type if draw(st.integers(0, 5)) else draw(TEXT)
    if draw(st.integers(0, 3)) == 0:  # odd account fields in the URL (a body disagreeing with them is a 400)
        query.update(draw(st.dictionaries(st.sampled_from(["clientAccnum", "clientSubacc", "eventGroupType"]),
                                          ODD_VALUES, max_size=3)))
    # Mostly an allowed source, so that most examples get past authentication to the parser and the models.
    source_ip = CCBILL_IP if draw(st.integers(0, 3)) else draw(
        st.sampled_from(["127.0.0.1", "203.0.113.9", "::1", "", "not an ip", None]))
    encoded = draw(st.booleans())
    if encoded:
        text = base64.b64encode(body).decode("ascii")
        if draw(st.integers(0, 9)) == 0:
            text = draw(st.text(max_size=40))  # broken base64
    else:
        text = body.decode("utf-8", errors="surrogateescape")
    headers = {"content-type": content_type} if content_type is not None else {}
    return WebhookRequest(source_ip=source_ip, query=query, headers=headers, body=text or None,
                          is_base64_encoded=encoded)


# --- fakes ---------------------------------------------------------------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def put_once(self, item: dict[str, Any]) -> bool:
        json.dumps(item, default=str)  # storable: plain data only
        if item["pk"] in self.items:
            return False
        self.items[item["pk"]] = item
        return True


class FailingStore:
    def put_once(self, item: dict[str, Any]) -> bool:
        raise StorageUnavailable("injected: DynamoDB did not confirm the write")


def _settings():
    return settings_from_env({"BILLOPS_ENV": "local", "BILLOPS_WEBHOOK_TOKEN": TOKEN, "BILLOPS_MAX_BODY_BYTES": "4096"})


@pytest.fixture(scope="module")
def personal_data_kms():
    """(endpoint, key ID): the intake encrypts subscribers' personal fields under a KMS key, here one of moto's
    server on loopback (the data key is cached, so KMS sees a call or two per test, not one per example)."""
    import boto3
    from billops_local.aws_environment import MotoServer

    server = MotoServer("127.0.0.1", free_ports(1)[0])
    server.start()
    kms = boto3.client("kms", endpoint_url=server.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing")
    yield server.endpoint_url, kms.create_key(Description="fuzzing: personal data")["KeyMetadata"]["KeyId"], kms
    server.stop()


@pytest.fixture(scope="module")
def cipher(personal_data_kms):
    _, key_id, kms = personal_data_kms
    return FieldCipher(key_id, lambda: kms)


def _contains(value: Any, text: str) -> bool:
    if isinstance(value, str):
        return text in value
    if isinstance(value, Mapping):
        return any(_contains(key, text) or _contains(item, text) for key, item in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_contains(item, text) for item in value)
    return False


# --- decoding ------------------------------------------------------------------------------------------------------


@FAST
@given(raw=st.binary(max_size=500), content_type=CONTENT_TYPES)
def test_decoding_arbitrary_bytes_gives_fields_or_malformed(raw, content_type):
    try:
        decoded = decode_body(raw, content_type)
    except MalformedDelivery as problem:
        assert problem.message
        _count("decode_malformed")
        return
    _count("decode_ok")
    assert decoded.body_format in ("json", "urlencoded")
    assert decoded.fields and all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.fields.items())
    canonical_payload(decoded.fields)


@FAST
@given(body=st.one_of(st.none(), st.text(max_size=200)), encoded=st.booleans())
def test_base64_unwrapping_gives_bytes_or_malformed(body, encoded):
    try:
        assert isinstance(raw_body_bytes(body, encoded), bytes)
    except MalformedDelivery:
        assert encoded


@FAST
@given(fields=st.dictionaries(st.text(min_size=1, max_size=30), st.text(max_size=40), min_size=1, max_size=12))
def test_both_formats_decode_to_the_same_fields(fields):
    as_json = decode_body(*encode_body(fields, "json"))
    as_form = decode_body(*encode_body(fields, "urlencoded"))
    assert as_json.fields == fields
    assert as_form.fields == fields
    assert canonical_payload(as_json.fields) == canonical_payload(as_form.fields)


@FAST
@given(sample=bodies())
def test_mutated_samples_decode_or_are_malformed(sample):
    raw, content_type, _ = sample
    try:
        decode_body(raw, content_type)
    except MalformedDelivery:
        pass


# --- the event models ------------------------------------------------------------------------------------------------


@FAST
@given(sample=mutated_fields())
def test_event_models_validate_or_raise_validation_errors(sample):
    event_type, fields = sample
    try:
        event = parse_event(EventType(event_type), fields)
    except EventValidationError as error:
        assert error.message
        _count("model_invalid")
        return
    _count("model_valid")
    event.model_dump()


# --- the whole intake ------------------------------------------------------------------------------------------------


@WITH_FIXTURES
@given(request=webhook_requests())
def test_intake_answers_every_request_without_a_5xx(cipher, request):
    store = MemoryStore()
    result = WebhookIntake(_settings(), store, cipher=cipher).receive(request)
    _count(f"intake_{result.status}")
    assert result.status in (200, 400, 403), result
    json.dumps(result.body)
    if result.status == 200:
        assert result.key in store.items and store.items[result.key]["record_type"] == "delivery"
        assert result.body == {"received": True, "duplicate": False, "id": result.key}
        subscriber = store.items[result.key].get("subscriber") or {}
        # A personal field CCBill sent blank (`phoneNumber=`) is kept blank: it holds nothing to encrypt.
        assert all(is_encrypted(value) or value == "" for value in subscriber.values()), \
            "a personal field was stored in clear"
    elif result.status == 400:
        assert set(result.body) == {"message", "type", "api_error_code", "param"}
        assert store.items and next(iter(store.items.values()))["record_type"] == "quarantine"
    else:
        assert not store.items
    assert not _contains(store.items, SAMPLE_PASSWORD), "the consumer's password was stored"


@WITH_FIXTURES
@given(request=webhook_requests())
def test_intake_with_storage_down_answers_503_and_never_2xx(cipher, request):
    result = WebhookIntake(_settings(), FailingStore(), cipher=cipher).receive(request)
    assert result.status in (403, 503), result
    if result.status == 503:
        assert result.body["api_error_code"] == "internal_error"


# --- the receiver handler (HTTP API events, in process) ---------------------------------------------------------------


@pytest.fixture
def receiver(handler_loader, aws_credentials, monkeypatch, cipher):
    monkeypatch.setenv("BILLOPS_ENV", "local")
    monkeypatch.setenv("BILLOPS_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("BILLOPS_EVENTS_TABLE", "fuzz-events")
    module = handler_loader("webhook_receiver")
    module.intake = WebhookIntake(module.intake.settings, MemoryStore(), cipher=cipher)
    return module


METHODS = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
PATHS = st.one_of(st.sampled_from(["/webhooks/ccbill", "/webhooks/ccbill", "/webhooks/ccbill/", "/webhooks",
                                   "/", "/webhooks/CCBILL"]),
                  st.text(st.characters(codec="ascii", exclude_characters="?#"), max_size=30).map(lambda p: "/" + p))


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@WITH_FIXTURES
@given(data=st.data())
def test_receiver_handler_never_answers_5xx(receiver, lambda_context, data):
    request = data.draw(webhook_requests())
    # Half the examples on the receiver's own route, the rest anywhere.
    method, path = (("POST", "/webhooks/ccbill") if data.draw(st.booleans())
                    else (data.draw(METHODS), data.draw(PATHS)))
    raw = raw_or_empty(request)
    headers = dict(request.headers)
    headers.update(data.draw(st.dictionaries(st.sampled_from(["x-forwarded-for", "user-agent", "content-encoding",
                                                              "transfer-encoding", "cookie"]),
                                             st.text(st.characters(codec="ascii"), max_size=30), max_size=3)))
    event = http_api_event(method, path, urlencode(list(request.query.items())), headers, raw,
                           request.source_ip or "127.0.0.1",
                           route_key="POST /webhooks/ccbill" if (method, path) == ("POST", "/webhooks/ccbill")
                           else None)
    receiver.intake.store = MemoryStore()
    answer = receiver.handler(event, lambda_context)
    _count(f"handler_{answer['statusCode']}")
    assert answer["statusCode"] < 500, answer
    assert isinstance(json.loads(answer["body"]), dict)


def raw_or_empty(request: WebhookRequest) -> bytes:
    try:
        return raw_body_bytes(request.body, request.is_base64_encoded)
    except MalformedDelivery:
        return (request.body or "").encode("utf-8", errors="surrogateescape")


# --- every route of the running local stack, over HTTP ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_stack():
    yield from running_stack("fuzzing", {"BILLOPS_LOCAL_SCHEDULE_SECONDS": "0",
                                         "BILLOPS_LOCAL_VISIBILITY_TIMEOUT_SECONDS": "1"}, webhook_token=TOKEN)


def _routes(stack) -> list[str]:
    from billops_local.template_resources import load_template

    return sorted({route.route_key for route in load_template().http_routes})


def _concrete(path: str, draw: st.DrawFn) -> str:
    parts = []
    for segment in path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append("/".join(quote(draw(TEXT), safe="") or "x" for _ in range(draw(st.integers(1, 3)))))
        elif segment.startswith("{"):
            parts.append(quote(draw(st.one_of(TEXT, st.sampled_from(["approval", "denial", "0126015401000000123"]))),
                               safe="") or "x")
        else:
            parts.append(segment)
    return "/" + "/".join(parts)


def _sendable(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return value == value.strip() and not any(ord(c) < 32 or ord(c) == 127 for c in value)


@pytest.mark.timeout(900)
@OVER_HTTP
@given(data=st.data())
def test_every_route_of_the_local_stack_answers_without_5xx(fuzz_stack, data):
    routes = _routes(fuzz_stack)
    route_key = data.draw(st.sampled_from([*routes, "ANY /nowhere"]))
    method, _, path = route_key.partition(" ")
    if method == "ANY" or route_key == "$default":
        method = data.draw(METHODS)
    path = _concrete(path if path.startswith("/") else "/", data.draw)
    body, content_type, event_type = data.draw(bodies())
    query = {"token": data.draw(st.sampled_from([TOKEN, TOKEN, "", "wrong"]))}
    if event_type:
        query.update(webhook_query(event_type, {}, None))
    query.update(data.draw(st.dictionaries(TEXT, ODD_VALUES, max_size=3)))
    headers = {"Content-Type": content_type} if content_type else {}
    headers.update(data.draw(st.dictionaries(st.sampled_from(["Authorization", "Accept", "X-Api-Key",
                                                              "Idempotency-Key", "chargebee-event-actions"]),
                                             st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]),
                                                     max_size=40), max_size=3)))
    # What an HTTP client can send at all (http.client: latin-1, no control characters, no edge whitespace).
    headers = {name: value for name, value in headers.items() if _sendable(value)}
    answer = requests.request(method, f"{fuzz_stack.api_url}{path}?{urlencode(query)}", data=body,
                              headers=headers, timeout=25)
    _count(f"http_{answer.status_code}")
    assert answer.status_code < 500, (route_key, path, answer.status_code, answer.text[:300])


# --- coverage-guided: atheris ----------------------------------------------------------------------------------------

ATHERIS_TARGET = r'''
import base64, json, os, sys
import atheris
import boto3

with atheris.instrument_imports(include=["billops"]):
    from billops.privacy.field_encryption import FieldCipher
    from billops.settings import settings_from_env
    from billops.webhooks.intake import WebhookIntake, WebhookRequest

SETTINGS = settings_from_env({"BILLOPS_ENV": "local", "BILLOPS_WEBHOOK_TOKEN": "t", "BILLOPS_MAX_BODY_BYTES": "4096"})
KMS = boto3.client("kms", endpoint_url=os.environ["FUZZ_KMS_ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
CIPHER = FieldCipher(os.environ["FUZZ_KMS_KEY_ID"], lambda: KMS)
TYPES = ["NewSaleSuccess", "RenewalSuccess", "Cancellation", "Refund", "UpgradeSuccess", "CustomerDataUpdate",
         "Expiration", "Chargeback", "Unknown"]
CONTENT = ["application/json", "application/x-www-form-urlencoded", None, "text/plain"]


class Store:
    def put_once(self, item):
        json.dumps(item, default=str)
        return True


def one(data):
    provider = atheris.FuzzedDataProvider(data)
    event_type = TYPES[provider.ConsumeIntInRange(0, len(TYPES) - 1)]
    content_type = CONTENT[provider.ConsumeIntInRange(0, len(CONTENT) - 1)]
    body = provider.ConsumeBytes(provider.remaining_bytes())
    request = WebhookRequest("64.38.212.10", {"token": "t", "eventType": event_type}, 
                             {"content-type": content_type} if content_type else {},
                             base64.b64encode(body).decode(), True)
    result = WebhookIntake(SETTINGS, Store(), cipher=CIPHER).receive(request)
    if result.status >= 500:
        raise AssertionError(f"{result.status} {result.body}")


atheris.Setup(sys.argv, one)
atheris.Fuzz()
'''


@pytest.mark.timeout(600)
def test_atheris_over_the_intake(tmp_path, personal_data_kms):
    import importlib.util

    assert importlib.util.find_spec("atheris"), "atheris (a dev dependency of the reliability suites) is missing"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, event_type in enumerate(EVENT_TYPES):
        for body_format, selector in (("json", 0), ("urlencoded", 1)):
            body, _ = encode_body(sample_fields(event_type), body_format)
            # Two bytes choose the target's event type and content type, the rest is the body.
            (corpus / f"{event_type}-{body_format}").write_bytes(bytes([index % 9, selector]) + body)
        for number in range(3):  # and varied deliveries of the sandbox's generator (any version, either format)
            delivery = GENERATOR.generate(event_type, {}, key=f"atheris-{number}", consumer_key=f"atheris-{number}")
            selector = 0 if delivery.body_format == "json" else 1
            (corpus / f"{event_type}-generated-{number}").write_bytes(bytes([index % 9, selector]) + delivery.body)
    target = tmp_path / "intake_target.py"
    target.write_text(ATHERIS_TARGET)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [sys.executable, str(target), str(corpus), f"-runs={ATHERIS_RUNS}", "-max_total_time=60", "-max_len=4096",
         "-timeout=10", f"-artifact_prefix={ARTIFACTS}/atheris-", "-print_final_stats=1"],
        check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "FUZZ_KMS_ENDPOINT": personal_data_kms[0], "FUZZ_KMS_KEY_ID": personal_data_kms[1]})
    output = run.stdout + run.stderr
    stats = [line for line in output.splitlines() if line.startswith("stat::") or " DONE " in line]
    _counts["atheris_runs"] = next((int(line.split(":")[-1]) for line in stats if "number_of_executed_units" in line),
                                   0)
    assert run.returncode == 0, output[-3000:]


def test_zz_fuzzing_figures(request, report_figures):
    """Last in the file: the suite's figures (examples by outcome; the failed tests so far are failed properties:
    an unhandled exception, a 5xx, a deadline overrun or a crash)."""
    answered_5xx = sum(count for name, count in _counts.items()
                       if name.rsplit("_", 1)[-1].isdigit() and int(name.rsplit("_", 1)[-1]) >= 500)
    report_figures("fuzzing", {
        "sandbox_seed": SANDBOX_SEED, "examples_per_test": EXAMPLES, **dict(sorted(_counts.items())),
        "answered_5xx": answered_5xx, "failed_properties": request.session.testsfailed,
    })
