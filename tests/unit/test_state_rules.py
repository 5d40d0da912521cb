"""The subscription state fold: what each event does, and that the result ignores arrival order and repeats."""

import itertools
import random

from billops.subscriptions.state_rules import derive_state, history_entry

SUB = "0117240102000000049"


def event(event_type, occurred_at, key=None, **fields):
    delivery = {
        "pk": key or f"{event_type}#{occurred_at}",
        "event_type": event_type,
        "occurred_at": occurred_at,
        "received_at": "2026-11-22T00:00:00.000000Z",
        "fields": {"subscriptionId": SUB, "clientAccnum": "900100", "clientSubacc": "0000", **fields},
    }
    return history_entry(delivery)


NEW_SALE = event(
    "NewSaleSuccess", "2026-01-01T10:00:00Z", subscriptionInitialPrice="2.95", subscriptionRecurringPrice="19.9",
    subscriptionCurrencyCode="840", billedInitialPrice="2.95", billedRecurringPrice="19.90", billedCurrencyCode="978",
    initialPeriod="3", recurringPeriod="30", rebills="99", nextRenewalDate="2026-01-04", bin="411111", last4="1111",
    expDate="0129", email="never@kept.example",
)
RENEWAL_1 = event("RenewalSuccess", "2026-01-04T10:00:00Z", transactionId="1", nextRenewalDate="2026-02-03")
RENEWAL_FAILED = event("RenewalFailure", "2026-02-03T10:00:00Z", transactionId="2", failureCode="BE-31",
                       failureReason="Insufficient Funds", nextRetryDate="2026-02-06", renewalDate="2026-02-03")
RENEWAL_2 = event("RenewalSuccess", "2026-02-06T10:00:00Z", transactionId="3", nextRenewalDate="2026-03-08")
REFUND = event("Refund", "2026-02-07T10:00:00Z", transactionId="4", amount="19.90")
CANCEL = event("Cancellation", "2026-02-08T10:00:00Z", reason="Satisfied Customer")
EXPIRE = event("Expiration", "2026-03-08T10:00:00Z")
LIFECYCLE = [NEW_SALE, RENEWAL_1, RENEWAL_FAILED, RENEWAL_2, REFUND, CANCEL, EXPIRE]


def test_a_new_sale_gives_an_active_subscription_with_prices_and_currency():
    state = derive_state(SUB, [NEW_SALE])
    assert state["status"] == "active"
    assert (state["initial_price"], state["recurring_price"]) == ("2.95", "19.90")
    assert (state["currency"], state["currency_code"]) == ("USD", "840")
    assert state["billed"] == {"initial_price": "2.95", "recurring_price": "19.90", "currency": "EUR",
                               "currency_code": "978"}
    assert (state["initial_period"], state["recurring_period"], state["rebills"]) == (3, 30, 99)
    assert state["next_renewal_date"] == "2026-01-04"
    assert state["card"]["bin"] == "411111" and state["card"]["last4"] == "1111"
    assert state["card"]["exp_date"] == "0129"
    assert "never@kept.example" not in repr(state)


def test_the_full_lifecycle():
    state = derive_state(SUB, LIFECYCLE)
    assert state["status"] == "expired"
    assert state["times_rebilled"] == 2
    assert state["refunds"] == 1
    assert state["cancelled_at"] == "2026-02-08T10:00:00Z"
    assert state["expired_at"] == "2026-03-08T10:00:00Z"
    failure = state["last_renewal_failure"]
    assert failure["failure_code"] == "BE-31" and failure["decline_text"] == "Insufficient Funds"
    assert failure["next_retry_date"] == "2026-02-06"


def test_cancelled_means_paid_through():
    state = derive_state(SUB, [NEW_SALE, RENEWAL_1, CANCEL])
    assert state["status"] == "cancelled"
    assert state["next_renewal_date"] == "2026-02-03"


def test_every_order_and_any_repeats_give_the_same_state():
    expected = derive_state(SUB, LIFECYCLE)
    rng = random.Random(7)
    for _ in range(200):
        shuffled = LIFECYCLE + rng.sample(LIFECYCLE, 3)
        rng.shuffle(shuffled)
        assert derive_state(SUB, shuffled) == expected


def test_a_renewal_before_its_sale_is_kept_and_converges():
    early = derive_state(SUB, [RENEWAL_1])
    assert early["status"] == "active" and early["times_rebilled"] == 1 and not early["known_from_sale"]
    assert derive_state(SUB, [RENEWAL_1, NEW_SALE]) == derive_state(SUB, [NEW_SALE, RENEWAL_1])


def test_same_second_events_follow_the_lifecycle_order():
    same_time = "2026-02-08T10:00:00Z"
    cancel = event("Cancellation", same_time)
    reactivate = event("UserReactivation", same_time, transactionId="9")
    for order in itertools.permutations([NEW_SALE, cancel, reactivate]):
        assert derive_state(SUB, order)["status"] == "active"


def test_upgrades_record_their_lineage():
    upgrade = event("UpgradeSuccess", "2026-01-10T00:00:00Z", originalSubscriptionId="0117240102000000001",
                    originalClientAccnum="900100", originalClientSubacc="0001", subscriptionRecurringPrice="29.95",
                    subscriptionCurrencyCode="840")
    state = derive_state(SUB, [upgrade])
    assert state["original_subscription_id"] == "0117240102000000001"
    assert state["original_client_subacc"] == "0001"
    assert state["recurring_price"] == "29.95"


def test_reactivation_after_cancellation_and_billing_date_change():
    changed = event("BillingDateChange", "2026-02-09T00:00:00Z", nextRenewalDate="2026-03-20")
    reactivated = event("UserReactivation", "2026-02-10T00:00:00Z", transactionId="8")
    state = derive_state(SUB, [NEW_SALE, CANCEL, changed, reactivated])
    assert state["status"] == "active" and state["cancelled_at"] is None
    assert state["next_renewal_date"] == "2026-03-20"


def test_unknown_event_types_are_kept_without_changing_state():
    unknown = event("SomethingNew", "2026-01-02T00:00:00Z")
    assert derive_state(SUB, [NEW_SALE, unknown])["status"] == derive_state(SUB, [NEW_SALE])["status"]
