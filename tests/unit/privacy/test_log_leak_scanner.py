"""The end-to-end suite's log check (billops_local.log_leaks) finds what it must, in every form, and says where
without repeating the value."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

from billops_local.log_leaks import CapturedLogs, LeakScanner, seeded_scanner
from billops_local.webhook_samples import SAMPLE_PASSWORD, sample_fields


def test_a_clean_log_has_no_findings():
    scanner = seeded_scanner("e2e-webhook-token")
    lines = [
        ('{"level":"INFO","message":"webhook answered","outcome":"accepted","delivery_key":'
         '"NewSaleSuccess#txn#0126015401000000123","status":200}'),
        '{"timestamp":1795320940311,"subscription_id":"0126015401000000123","bin":"411111","last4":"1111"}',
        '127.0.0.1 - - [22/Nov/2026 04:15:40] "POST / HTTP/1.1" 200 -',
    ]
    log = "\n".join(lines)
    assert scanner.scan_text(log, "clean.log") == []


def test_personal_data_passwords_and_tokens_are_found_in_every_form():
    scanner = seeded_scanner("e2e-webhook-token")
    fields = sample_fields("NewSaleSuccess")
    lines = [
        f'{{"message": "debug", "email": "{fields["email"]}"}}',  # as is
        "body=" + urlencode({"password": SAMPLE_PASSWORD}),  # URL-encoded
        json.dumps({"address": fields["address1"]}),
        "POST /webhooks/ccbill?token=e2e-webhook-token&eventType=NewSaleSuccess",
        f"ip {fields['ipAddress']}",
        "sandbox consumer member0042@example.com paid",  # an address the run made up: found by pattern
        "card 4111 1111 1111 1111 declined",  # a full card number, grouped
        "Authorization: Basic bo_local_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6",
    ]
    leaks = scanner.scan_text("\n".join(lines), "leaky.log")
    assert sorted({leak.line_number for leak in leaks}) == list(range(1, len(lines) + 1))
    assert {leak.what for leak in leaks} >= {"a consumer's password", "the webhook token", "a full card number",
                                             "a merchant API key", "a subscriber's e-mail address"}
    report = "\n".join(map(str, leaks))
    assert "leaky.log:4: the webhook token" in report
    for value in (fields["email"], SAMPLE_PASSWORD, "e2e-webhook-token", "4111 1111 1111 1111"):
        assert value not in report  # the report never repeats what leaked


def test_key_material_is_found_as_base64_and_hex():
    scanner = LeakScanner()
    key = bytes(range(32))
    scanner.add_binary(key, "a data key")
    assert scanner.scan_text(f"key={base64.b64encode(key).decode()}", "a")[0].what == "a data key"
    assert scanner.scan_text(f"key={key.hex()}", "b")[0].what == "a data key"


def test_json_secrets_are_searched_value_by_value():
    scanner = LeakScanner()
    scanner.add_secret_string(json.dumps({"clientAccnum": "900100", "username": "dl", "password": "s3cret-pw"}),
                              "the DataLink credentials")
    assert scanner.scan_text("login with s3cret-pw", "x")[0].what == "the DataLink credentials"
    assert scanner.scan_text("account 900100", "x") == []  # an account number is not a secret


def test_the_start_up_banner_is_not_a_log_but_what_follows_it_is():
    scanner = seeded_scanner("e2e-webhook-token")
    banner = ["billops local stack", "  http-api ...", "Webhook URL:",
              "  http://127.0.0.1:3000/webhooks/ccbill?token=e2e-webhook-token", "billops local stack ready"]
    assert scanner.scan_text("\n".join(banner), "stack.log") == []
    leaks = scanner.scan_text("\n".join([*banner, "GET /webhooks/ccbill?token=e2e-webhook-token"]), "stack.log")
    assert [(leak.line_number, leak.what) for leak in leaks] == [(6, "the webhook token")]


def test_the_session_check_fails_on_a_leak_and_on_a_collector_that_failed(tmp_path):
    logs = CapturedLogs(tmp_path, seeded_scanner("e2e-webhook-token"))
    logs.append(logs.directory / "test-process.log", "all quiet\n")
    assert logs.check() == [] and not (tmp_path / "leaks.txt").exists()
    logs.append(logs.directory / "test-process.log", f"oops {SAMPLE_PASSWORD}\n")
    assert [str(leak) for leak in logs.check()] == [f"{tmp_path / 'test-process.log'}:2: a consumer's password"]
    assert SAMPLE_PASSWORD not in (tmp_path / "leaks.txt").read_text()

    def unreachable() -> None:
        raise ConnectionError("moto is gone")

    logs.collect(unreachable)
    assert any("could not collect" in leak.what for leak in logs.check())


def test_pass_through_values_are_looked_for_those_of_the_samples_and_those_a_stack_stored():
    from billops.privacy.field_encryption import FieldCipher
    from billops_local.log_leaks import _add_pass_through_values

    scanner = seeded_scanner("e2e-webhook-token")
    fields = sample_fields("NewSaleSuccess")
    sample_values = [fields[name] for name in fields if name.startswith("X-") or name == "referringUrl"]
    assert sample_values
    for value in sample_values:
        assert [leak.what for leak in scanner.scan_text(f"debug {value}", "a")], value

    class FakeKms:
        def generate_data_key(self, **_):
            return {"Plaintext": bytes(32), "CiphertextBlob": b"wrapped-data-key"}

        def decrypt(self, **_):
            return {"Plaintext": bytes(32)}

    kms = FakeKms()
    sealed, keys = FieldCipher("key", lambda: kms).encrypt_fields({"X-email": "someone.unknown@example.org"})
    _add_pass_through_values(scanner, kms, [("X-email", sealed["X-email"], keys)])
    found = scanner.scan_text('{"message": "oops", "value": "someone.unknown@example.org"}', "b")
    assert "a pass-through field (X-email)" in {leak.what for leak in found}


def test_a_placeholder_value_is_not_a_needle_a_real_one_is():
    # Published deliveries carry "X-mpp_subscriber_id": "000000": as a needle it would match every timestamp.
    scanner = LeakScanner()
    scanner.add("000000", "a pass-through field (X-mpp_subscriber_id)")
    scanner.add("1212121", "a pass-through field (X-user_id)")
    scanner.add("mpp-48213", "a pass-through field (X-mpp_subscriber_id)")
    log = '{"timestamp":"2026-12-05 20:00:00,000000"}\n{"x":"1212121"}\n{"y":"mpp-48213"}'
    assert [leak.line_number for leak in scanner.scan_text(log, "x.log")] == [3]


def test_a_numeric_value_is_found_as_a_number_of_its_own_not_inside_a_longer_one():
    # A sandbox consumer's X-user_id (up to 6 digits) was found inside a metrics line's epoch-millisecond timestamp.
    scanner = LeakScanner()
    scanner.add("531387", "a pass-through field (X-user_id)")
    log = ('{"_aws":{"Timestamp":1796531387587},"OperationClaimed":[1.0]}\n'
           '{"message":"x","X-user_id":"531387"}\n'
           'body=a&X-user_id=531387&b=1\n'
           '{"id":"5313870"}')
    assert [leak.line_number for leak in scanner.scan_text(log, "x.log")] == [2, 3]
