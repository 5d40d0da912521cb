"""CCBill answers other projects published (their tests, mocks and live captures) and CCBill's own examples, run
through the real client over HTTP: each must come out as the classification it proves - success, failure with
CCBill's code, or unknown. A body that does not say success is not success (responses.py), and an answer that is not
a documented result to a call that changes something is unknown (answer_interpretation.py).

The corpus and where each answer was published: published_answers/published_ccbill_answers.json.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from billops.ccbill.client import CCBillClient, new_session
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentials, StaticCredentials
from billops.ccbill.subaccount_settings import SubaccountDirectory
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue

CORPUS = json.loads((Path(__file__).parent / "published_answers" / "published_ccbill_answers.json")
                    .read_text(encoding="utf-8"))["answers"]
SUBSCRIPTION = "0126015401000000123"
CLASSIFICATION = {"success": "succeeded", "failure": "failed", "unknown": "unknown"}


class ScriptedCCBill(BaseHTTPRequestHandler):
    """Answers every POST with the status and body the test scripted, and remembers what it received."""

    answer: tuple[int, bytes] = (200, b"")
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        type(self).received.append({"path": self.path, "body": self.rfile.read(length).decode()})
        status, body = type(self).answer
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/login")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def ccbill_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedCCBill)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def client_for(url: str) -> CCBillClient:
    subaccounts = SubaccountDirectory.from_config(json.dumps([
        {"client_accnum": "900100", "client_subacc": "0000"},
        {"client_accnum": "900100", "client_subacc": "0001", "min_price": "2.95", "max_price": "100.00",
         "recurring_periods": [30]},
    ]))
    settings = CCBillClientSettings(environment="local", sms_url=f"{url}/utils/subscriptionManagement.cgi",
                                    billing_api_url=f"{url}/jpost/billingApi.cgi",
                                    upgrade_url=f"{url}/jpost/upgradeSubscription.cgi", status_retries=0)
    return CCBillClient(settings, StaticCredentials(CCBillCredentials("900100", "datalink-user", "secret-pw")),
                        session=new_session(), catalogue=UpgradeCatalogue.from_config("[]"), subaccounts=subaccounts)


CALLS = {
    "viewSubscriptionStatus": lambda c: c.view_subscription_status(SUBSCRIPTION),
    "cancelSubscription": lambda c: c.cancel_subscription(SUBSCRIPTION),
    "refundTransaction": lambda c: c.refund_transaction(SUBSCRIPTION),
    "voidTransaction": lambda c: c.void_transaction(SUBSCRIPTION),
    "voidOrRefundTransaction": lambda c: c.void_or_refund_transaction(SUBSCRIPTION, amount="9.99"),
    "discountSubscription": lambda c: c.discount_subscription(SUBSCRIPTION, discount_amount="2.00"),
    "chargeByPreviousTransactionId": lambda c: c.charge_by_previous_transaction_id(
        SUBSCRIPTION, new_client_accnum="900100", new_client_subacc="0001", initial_price="19.95",
        initial_period=30),
}


def test_the_corpus_is_the_published_answers_with_their_sources():
    assert len(CORPUS) >= 51
    assert len({answer["id"] for answer in CORPUS}) == len(CORPUS)
    for answer in CORPUS:
        source = answer["source"]
        assert source["project"] and source["path"] and source["what"], answer["id"]
        assert answer["action"] in CALLS, answer["id"]
        assert answer["expected"] in CLASSIFICATION, answer["id"]
        assert isinstance(answer["body"], str), answer["id"]
    # Every kind of verdict is represented, and each project the brief names.
    assert {answer["expected"] for answer in CORPUS} == set(CLASSIFICATION)
    projects = {answer["source"]["project"] for answer in CORPUS}
    for name in ("open-rails/openrails", "datinglibre/ccbill", "strangerstudios/pmpro-ccbill",
                 "DmytroVasin/ccbill_ruby", "MCProHosting/ccbill-php", "mixer/ccbill-node", "overdoll/codebase"):
        assert name in projects


@pytest.mark.parametrize("answer", CORPUS, ids=[answer["id"] for answer in CORPUS])
def test_each_published_answer_is_classified_as_it_proves(answer, ccbill_url):
    ScriptedCCBill.answer = (answer["http_status"], answer["body"].encode("utf-8"))
    ScriptedCCBill.received = []
    outcome = CALLS[answer["action"]](client_for(ccbill_url))

    assert len(ScriptedCCBill.received) == 1, "sent once, never repeated"
    assert f"action={answer['action']}" in ScriptedCCBill.received[0]["body"]
    assert outcome.status.value == CLASSIFICATION[answer["expected"]], (answer["id"], outcome.meaning)
    if "code" in answer:
        assert outcome.code == answer["code"], (answer["id"], outcome.meaning)
    if outcome.succeeded and answer["action"] == "viewSubscriptionStatus":
        # What a refresh keeps as CCBill's view: the status itself, never someone else's text.
        assert outcome.data.get("subscriptionStatus") in ("0", "1", "2")


@pytest.mark.parametrize("body", [
    "Unauthorized\nInvalid credentials",
    "Maintenance\nPlease retry later",
    '"subscriptionId"\n"0126015401000000123"',
    '"Unauthorized","Invalid credentials"\n"1","2"',
])
def test_two_line_documents_without_a_status_are_not_a_status(body, ccbill_url):
    # The shapes issue 12 found read as success (and stored as CCBill's view): a status answer without the status.
    ScriptedCCBill.answer = (200, body.encode())
    ScriptedCCBill.received = []
    outcome = client_for(ccbill_url).view_subscription_status(SUBSCRIPTION)
    assert outcome.unknown and not outcome.data
    assert len(ScriptedCCBill.received) == 1, "not asked again at once: such a text may be a refused login"
