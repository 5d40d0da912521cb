"""The client without a network: what it sends, what it never repeats, what it never shows."""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import requests
import urllib3.exceptions as u3
from billops.ccbill.client import CCBillClient, classify_transport_error, new_session
from billops.ccbill.client_settings import CCBillClientSettings
from billops.ccbill.credentials import CCBillCredentials, CCBillCredentialsUnavailable, StaticCredentials
from billops.ccbill.errors import CCBillConfigurationError, CCBillRequestInvalid
from billops.ccbill.outcomes import OutcomeKind, OutcomeStatus
from billops.ccbill.subaccount_settings import SubaccountDirectory
from billops.ccbill.subscription_facts import SubscriptionFacts, SubscriptionState
from billops.ccbill.upgrade_catalogue import UpgradeCatalogue

SUB = "0126015401000000123"
PASSWORD = "Sup3r-s3cret-DataLink"
USERNAME = "datalink-user-xyz"
CREDENTIALS = CCBillCredentials("900100", USERNAME, PASSWORD)
XML = "<?xml version='1.0' standalone='yes'?>\n"
OK = XML + "<results>1</results>"


@dataclass
class FakeResponse:
    status_code: int
    content: bytes
    headers: dict = field(default_factory=dict)


class FakeSession:
    def __init__(self, *answers):
        self.answers = deque(answers)
        self.calls: list[dict] = []

    def post(self, url, data=None, timeout=None, allow_redirects=True):
        self.calls.append({"url": url, "data": dict(data), "timeout": timeout, "allow_redirects": allow_redirects})
        answer = self.answers.popleft() if self.answers else (200, OK)
        if isinstance(answer, BaseException):
            raise answer
        status, body = answer
        return FakeResponse(status, body.encode() if isinstance(body, str) else body)


class RotatingCredentials:
    def __init__(self, *versions):
        self.versions = list(versions)
        self.reads: list[bool] = []

    def get(self, *, force_refresh=False):
        self.reads.append(force_refresh)
        if force_refresh and len(self.versions) > 1:
            self.versions.pop(0)
        return self.versions[0]


SUBACCOUNTS = SubaccountDirectory.from_config(json.dumps([
    {"client_accnum": "900100", "client_subacc": "0000", "username_min_length": 6},
    {"client_accnum": "900100", "client_subacc": "0001", "min_price": "2.95", "max_price": "100.00",
     "recurring_periods": [30, 60, 90], "username_min_length": 6},
    {"client_accnum": "948701", "client_subacc": "0001", "min_price": "2.95", "max_price": "50.00",
     "username_min_length": 10},
]))
CATALOGUE = UpgradeCatalogue.from_config(json.dumps([
    {"key": "gold", "client_accnum": "900100", "client_subacc": "0001", "subscription_type_id": "0015",
     "initial_price": "19.95", "initial_period": 30, "recurring_price": "19.95", "recurring_period": 30,
     "rebills": 99, "currency_code": "840"},
    {"key": "vip", "client_accnum": "948701", "client_subacc": "0001", "subscription_type_id": "0016"},
]))


def make_client(*answers, credentials=None, **settings):
    session = FakeSession(*answers)
    sleeps: list[float] = []
    client = CCBillClient(
        CCBillClientSettings(sms_url="https://sms.test/utils/subscriptionManagement.cgi",
                             billing_api_url="https://bill.test/jpost/billingApi.cgi",
                             upgrade_url="https://bill.test/jpost/upgradeSubscription.cgi", **settings),
        credentials or StaticCredentials(CREDENTIALS),
        session=session, catalogue=CATALOGUE, subaccounts=SUBACCOUNTS, sleep=sleeps.append,
    )
    return client, session, sleeps


def connection_refused():
    reason = u3.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.exceptions.ConnectionError(u3.MaxRetryError(None, "/", reason))


def dns_failure():
    reason = u3.NameResolutionError("datalink.ccbill.com", None, OSError("Name or service not known"))
    return requests.exceptions.ConnectionError(u3.MaxRetryError(None, "/", reason))


def reset_after_send():
    return requests.exceptions.ConnectionError(
        u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))


SETTINGS = CCBillClientSettings()


@pytest.mark.parametrize("exc,status,retryable", [
    (requests.exceptions.ConnectTimeout("connect timed out"), OutcomeStatus.FAILED, True),
    (connection_refused(), OutcomeStatus.FAILED, True),
    (dns_failure(), OutcomeStatus.FAILED, True),
    (requests.exceptions.SSLError("certificate verify failed"), OutcomeStatus.FAILED, False),
    (requests.exceptions.ReadTimeout("read timed out"), OutcomeStatus.UNKNOWN, True),
    (reset_after_send(), OutcomeStatus.UNKNOWN, True),
    (requests.exceptions.ConnectionError(u3.ProtocolError("Connection aborted.", OSError("Remote end closed"))),
     OutcomeStatus.UNKNOWN, True),
    (requests.exceptions.ChunkedEncodingError("cut"), OutcomeStatus.UNKNOWN, True),
    (RuntimeError("???"), OutcomeStatus.UNKNOWN, False),
])
def test_transport_failures(exc, status, retryable):
    outcome = classify_transport_error("chargeByPreviousTransactionId", exc, SETTINGS)
    assert outcome.status is status
    assert outcome.retryable is retryable
    assert outcome.kind is OutcomeKind.TRANSPORT


def test_a_call_is_a_form_post_with_credentials_in_the_body_and_explicit_timeouts():
    client, session, _ = make_client(connect_timeout=2.0, read_timeout=9.0)
    assert client.cancel_subscription(SUB).succeeded
    call = session.calls[0]
    assert call["url"] == "https://sms.test/utils/subscriptionManagement.cgi"
    assert PASSWORD not in call["url"]
    assert call["data"] == {"clientAccnum": "900100", "username": USERNAME, "password": PASSWORD,
                            "subscriptionId": SUB, "action": "cancelSubscription", "returnXML": "1"}
    assert call["timeout"] == (2.0, 9.0)
    assert call["allow_redirects"] is False


def test_csv_format_leaves_return_xml_out():
    client, session, _ = make_client((200, '"results"\n"1"\n'), response_format="csv")
    assert client.cancel_subscription(SUB).succeeded
    assert "returnXML" not in session.calls[0]["data"]


def test_the_subaccount_scope_is_sent_as_using_subacc_for_a_main_level_user():
    client, session, _ = make_client()
    client.extend_subscription(SUB, 7, client_subacc="1")
    assert session.calls[0]["data"]["usingSubacc"] == "0001"
    assert session.calls[0]["data"]["extendLength"] == "7"


@pytest.mark.parametrize("call", [
    lambda c: c.cancel_subscription(SUB),
    lambda c: c.refund_transaction(SUB, amount="5.00"),
    lambda c: c.void_transaction(SUB),
    lambda c: c.void_or_refund_transaction(SUB),
    lambda c: c.extend_subscription(SUB, 3),
    lambda c: c.discount_subscription(SUB, discount_amount="1.00"),
    lambda c: c.upgrade_by_previous_transaction(SUB, "gold"),
    lambda c: c.upgrade_subscription(SUB, "gold"),
])
@pytest.mark.parametrize("failure", [
    lambda: requests.exceptions.ReadTimeout("read timed out"),
    reset_after_send,
    lambda: (500, "<html>Internal Server Error</html>"),
    lambda: (200, XML + "<results>-7</results>"),
    lambda: (200, ""),
    lambda: requests.exceptions.ConnectTimeout("connect timed out"),
    connection_refused,
])
def test_nothing_that_changes_a_subscription_or_moves_money_is_ever_sent_twice(call, failure):
    client, session, sleeps = make_client(failure(), (200, OK))
    outcome = call(client)
    assert not outcome.succeeded
    assert len(session.calls) == 1
    assert outcome.attempts == 1 and sleeps == []


def test_a_status_read_is_asked_again_after_a_lost_answer():
    status = XML + "<results><subscriptionStatus>2</subscriptionStatus></results>"
    client, session, sleeps = make_client(requests.exceptions.ReadTimeout("t"), (502, "bad gateway"), (200, status))
    outcome = client.view_subscription_status(SUB)
    assert outcome.succeeded and outcome.attempts == 3
    assert len(session.calls) == 3 and sleeps == [0.25, 0.5]


def test_a_status_read_is_not_repeated_after_minus_7_which_may_be_a_wrong_password():
    client, session, _ = make_client((200, XML + "<results>-7</results>"))
    assert client.view_subscription_status(SUB).unknown
    assert len(session.calls) == 1


def test_status_retries_are_bounded():
    client, session, _ = make_client(*[(503, "")] * 5, status_retries=1)
    outcome = client.view_subscription_status(SUB)
    assert outcome.unknown and outcome.attempts == 2 and len(session.calls) == 2


def test_a_refused_login_is_retried_once_with_rotated_credentials():
    rotated = CCBillCredentials("900100", USERNAME, "the-new-password")
    provider = RotatingCredentials(CREDENTIALS, rotated)
    client, session, _ = make_client((200, XML + "<results>-1</results>"), (200, OK), credentials=provider)
    outcome = client.refund_transaction(SUB)
    assert outcome.succeeded and outcome.attempts == 2
    assert [c["data"]["password"] for c in session.calls] == [PASSWORD, "the-new-password"]


def test_a_refused_login_with_unchanged_credentials_is_not_retried():
    client, session, _ = make_client((200, "Error: 02 Failed login"))
    outcome = client.cancel_subscription(SUB)
    assert outcome.failed and outcome.kind is OutcomeKind.DATALINK_ERROR
    assert len(session.calls) == 1


def test_after_minus_7_the_next_call_reads_the_secret_afresh_but_nothing_is_resent():
    provider = RotatingCredentials(CREDENTIALS, CCBillCredentials("900100", USERNAME, "rotated"))
    client, session, _ = make_client((200, XML + "<results>-7</results>"), (200, OK), credentials=provider)
    assert client.cancel_subscription(SUB).unknown
    assert len(session.calls) == 1
    assert client.cancel_subscription(SUB).succeeded
    assert session.calls[1]["data"]["password"] == "rotated"


def test_credentials_unavailable_is_a_retryable_failure_without_a_call():
    class Broken:
        def get(self, *, force_refresh=False):
            raise CCBillCredentialsUnavailable("cannot read the CCBill credentials from arn:x (GetParameterError)")

    client, session, _ = make_client(credentials=Broken())
    for outcome in (client.cancel_subscription(SUB), client.allow_upgrade("0000", subscription_id=SUB,
                                                                          upgrade="gold")):
        assert outcome.failed and outcome.retryable and outcome.kind is OutcomeKind.CREDENTIALS_UNAVAILABLE
    assert session.calls == []


@pytest.mark.parametrize("call,param", [
    (lambda c: c.cancel_subscription("12-34"), "subscriptionId"),
    (lambda c: c.refund_transaction(SUB, amount="$5"), "amount"),
    (lambda c: c.extend_subscription(SUB, "a week"), "extendLength"),
    (lambda c: c.discount_subscription(SUB, new_recurring_price="25.00", facts=SubscriptionFacts(
        state=SubscriptionState.ACTIVE, is_recurring=True, recurring_price=Decimal("19.95"))), "newRecurringPrice"),
    (lambda c: c.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="1",
                                                   initial_price="19.95.1", initial_period=30), "initialPrice"),
    (lambda c: c.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="1",
                                                   initial_price="75.00", initial_period=30), "initialPrice"),
    (lambda c: c.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="1",
                                                   initial_price="19.95", initial_period=30, currency_code="BTC"),
     "currencyCode"),
    (lambda c: c.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="1",
                                                   initial_price="19.95", initial_period=30,
                                                   recurring_price="19.95"), "recurringPeriod"),
    (lambda c: c.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="2",
                                                   initial_price="19.95", initial_period=30), "newClientSubacc"),
    (lambda c: c.charge_by_previous_transaction_id(
        SUB, new_client_accnum="948701", new_client_subacc="1", initial_price="19.95", initial_period=30,
        facts=SubscriptionFacts(username="shorty", client_subacc="0000")), "username"),
    (lambda c: c.upgrade_subscription(SUB, "vip", facts=SubscriptionFacts(username="shorty")), "username"),
    (lambda c: c.upgrade_subscription(SUB), "upgrade"),
    (lambda c: c.allow_upgrade("0000", subscription_id=SUB, username="jane"), "username"),
    (lambda c: c.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="1",
                                                   initial_price="19.95", initial_period=30,
                                                   pass_through={"initialPrice": "0.01"}), "initialPrice"),
])
def test_invalid_requests_never_reach_ccbill_and_name_the_parameter(call, param):
    client, session, _ = make_client()
    with pytest.raises(CCBillRequestInvalid) as error:
        call(client)
    assert error.value.param == param
    assert session.calls == []


def test_charge_by_previous_transaction_id_sends_ccbills_parameters():
    approved = XML + "<results><approved>1</approved><subscriptionId>0126015401000000999</subscriptionId></results>"
    client, session, _ = make_client((200, approved))
    outcome = client.charge_by_previous_transaction_id(
        SUB, new_client_accnum="948701", new_client_subacc="1", initial_price=Decimal("19.95"), initial_period=30,
        recurring_price="12.95", recurring_period=30, rebills=99, currency_code="USD", special_offer=True,
        shared_authentication=False, pass_through={"X-orderRef": "abc"},
        facts=SubscriptionFacts(username="longusername", client_subacc="0000"))
    assert outcome.succeeded and outcome.data["subscriptionId"] == "0126015401000000999"
    data = session.calls[0]["data"]
    assert session.calls[0]["url"] == "https://bill.test/jpost/billingApi.cgi"
    assert {k: data[k] for k in ("action", "subscriptionId", "newClientAccnum", "newClientSubacc", "initialPrice",
                                 "initialPeriod", "recurringPrice", "recurringPeriod", "rebills", "currencyCode",
                                 "specialOffer", "sharedAuthentication", "X-orderRef")} == {
        "action": "chargeByPreviousTransactionId", "subscriptionId": SUB, "newClientAccnum": "948701",
        "newClientSubacc": "0001", "initialPrice": "19.95", "initialPeriod": "30", "recurringPrice": "12.95",
        "recurringPeriod": "30", "rebills": "99", "currencyCode": "840", "specialOffer": "1",
        "sharedAuthentication": "0", "X-orderRef": "abc"}


def test_a_single_charge_price_point_names_its_recurring_terms_as_zeros():
    client, session, _ = make_client()
    client.charge_by_previous_transaction_id(SUB, new_client_accnum="948701", new_client_subacc="1",
                                             initial_price="9.95", initial_period=30)
    data = session.calls[0]["data"]
    assert (data["recurringPrice"], data["recurringPeriod"], data["rebills"]) == ("0.00", "0", "0")


def test_upgrade_subscription_names_the_upgrade():
    client, session, _ = make_client()
    client.upgrade_subscription(SUB, "vip", facts=SubscriptionFacts(username="longusername"))
    data = session.calls[0]["data"]
    assert (data["upgradeClientAccnum"], data["upgradeClientSubacc"], data["upgradeTypeId"]) == (
        "948701", "0001", "0016")


def test_allow_upgrade_sends_no_login():
    client, session, _ = make_client((200, "1\n"))
    outcome = client.allow_upgrade("0", subscription_id=SUB, upgrade="gold")
    assert outcome.succeeded
    data = session.calls[0]["data"]
    assert "password" not in data and "username" not in data and "returnXML" not in data
    assert data == {"clientAccnum": "900100", "clientSubacc": "0000", "subscriptionId": SUB,
                    "upgradeClientAccnum": "900100", "upgradeClientSubacc": "0001", "upgradeTypeId": "0015",
                    "action": "allowUpgrade"}


def test_the_backend_post_spells_the_upgrade_variables_as_configured():
    client, session, _ = make_client((200, "1\n"), upgrade_variable_spelling="tables")
    client.allow_upgrade("0", username="janedoe", upgrade="vip")
    data = session.calls[0]["data"]
    # The guide's Option 2 tables: upgradeclientAccnum / upgradeclientSubacc / upgradeTypeID.
    assert {k: v for k, v in data.items() if k.lower().startswith("upgrade")} == {
        "upgradeclientAccnum": "948701", "upgradeclientSubacc": "0001", "upgradeTypeID": "0016"}
    assert data["username"] == "janedoe" and "subscriptionId" not in data
    step_two = client.upgrade_form("0", username="janedoe", upgrade="vip", method="backend_post")
    assert step_two.fields["upgradeTypeID"] == "0016"
    with pytest.raises(CCBillConfigurationError, match="SPELLING"):
        CCBillClientSettings.from_env({"BILLOPS_UPGRADE_VARIABLE_SPELLING": "camel"})


def test_the_enc_form_holds_the_identity_and_the_upgrade_variables_beside_it():
    from billops.ccbill.upgrade_encryption import EncRecipe, UpgradeEncryptor, decrypt, derive_key

    key = derive_key("8745921457")
    client, session, _ = make_client(upgrade_variable_spelling="tables")
    client._encryptor = UpgradeEncryptor(lambda: key)
    form = client.upgrade_form("0", username="janedoe", upgrade="vip")
    assert set(form.fields) == {"clientAccnum", "clientSubacc", "enc", "upgradeClientAccnum", "upgradeClientSubacc",
                                "upgradeTypeId"}, "the enc form always uses the spelling its table and example share"
    assert decrypt(key, form.fields["enc"], EncRecipe()) == "username=janedoe"
    assert session.calls == []


def test_the_enc_form_needs_a_key():
    client, _, _ = make_client()
    with pytest.raises(CCBillConfigurationError, match="no upgrade key"):
        client.upgrade_form("0000", subscription_id=SUB, upgrade="gold")
    form = client.upgrade_form("0000", subscription_id=SUB, upgrade="gold", method="backend_post")
    assert form.fields["action"] == "upgradeSubscription" and form.fields["upgradeTypeId"] == "0015"


def test_no_secret_in_logs_outcomes_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    client, _, _ = make_client((200, XML + "<results>-7</results>"), requests.exceptions.ReadTimeout("t"),
                               (200, "Error: 02 Failed login"))
    outcomes = [client.cancel_subscription(SUB), client.refund_transaction(SUB), client.void_transaction(SUB)]
    texts = [caplog.text, *(repr(o) for o in outcomes), *(json.dumps(o.as_dict()) for o in outcomes), repr(client)]
    for text in texts:
        assert PASSWORD not in text and USERNAME not in text
    assert any(r.ccbill_params["password"] == "***" for r in caplog.records if hasattr(r, "ccbill_params"))


def test_the_session_never_retries_by_itself():
    session = new_session()
    for prefix in ("https://", "http://"):
        retries = session.get_adapter(prefix + "datalink.ccbill.com").max_retries
        assert retries.total == 0 and retries.read is False
