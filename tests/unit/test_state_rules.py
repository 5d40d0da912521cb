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


# --- declined purchases (issue 11, part 4) --------------------------------------------------------------------------

SALE_FAILURES = ("NewSaleFailure", "UpgradeFailure", "UpSaleFailure", "CrossSaleFailure")


def declined(event_type, occurred_at, **fields):
    return event(event_type, occurred_at, key=f"{event_type}#sha256#{occurred_at}", failureCode="BE-31",
                 failureReason="Insufficient Funds", subscriptionInitialPrice="2.95", initialPeriod="3", **fields)


def test_a_declined_purchase_that_names_a_subscription_never_makes_it_active():
    for event_type in SALE_FAILURES:
        state = derive_state(SUB, [declined(event_type, "2026-01-01T10:00:00Z")])
        assert state["status"] == "declined", event_type
        assert state["signed_up_at"] is None and state["initial_price"] is None and not state["known_from_sale"]


def test_declined_purchases_never_reactivate_a_subscription_nor_move_it():
    expired = [NEW_SALE, RENEWAL_1, CANCEL, EXPIRE]
    cancelled = [NEW_SALE, RENEWAL_1, CANCEL]
    for history, status in ((expired, "expired"), (cancelled, "cancelled")):
        before = derive_state(SUB, history)
        for event_type in SALE_FAILURES:
            for moment in ("2025-12-31T00:00:00Z", "2026-02-09T00:00:00Z", "2026-04-01T00:00:00Z"):
                failure = declined(event_type, moment, clientSubacc="0009")
                after = derive_state(SUB, [*history, failure])
                assert after["status"] == status, (event_type, moment)
                assert after["client_subacc"] == "0000"  # a declined up-sale into another subaccount moves nothing
                assert {k: v for k, v in after.items() if k != "last_event_at"} == {
                    k: v for k, v in before.items() if k != "last_event_at"}


def test_a_sale_after_a_declined_attempt_is_active_in_any_order():
    failure = declined("NewSaleFailure", "2025-12-31T23:00:00Z")
    for order in itertools.permutations([failure, NEW_SALE, RENEWAL_1]):
        state = derive_state(SUB, order)
        assert state["status"] == "active" and state["known_from_sale"]


def test_a_renewal_failure_keeps_the_status_and_records_the_decline():
    for history, status in (([NEW_SALE], "active"), ([NEW_SALE, CANCEL], "cancelled"),
                            ([NEW_SALE, CANCEL, EXPIRE], "expired")):
        failure = event("RenewalFailure", "2026-03-09T10:00:00Z", transactionId="77", failureCode="BE-29",
                        failureReason="Card Expired", nextRetryDate="2026-03-12", renewalDate="2026-03-09")
        state = derive_state(SUB, [*history, failure])
        assert state["status"] == status
        assert state["last_renewal_failure"] == {
            "transaction_id": "77", "failure_code": "BE-29", "failure_reason": "Card Expired",
            "decline_text": "Card Expired", "renewal_date": "2026-03-09", "next_retry_date": "2026-03-12",
            "occurred_at": "2026-03-09T10:00:00Z"}


# --- events without a timestamp (issue 11, part 6) ------------------------------------------------------------------


def received(event_type, received_at, occurred_at=None, key=None, **fields):
    delivery = {
        "pk": key or f"{event_type}#{received_at}",
        "event_type": event_type,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "fields": {"subscriptionId": SUB, "clientAccnum": "900100", "clientSubacc": "0000", **fields},
    }
    return history_entry(delivery)


def test_a_reactivation_received_in_the_second_of_an_expiration_sorts_after_it():
    # CCBill's timestamps have whole seconds; ours have microseconds. The expiration happened before CCBill sent
    # the reactivation, so within 10:00:00 it cannot be later than a reactivation received at 10:00:00.5.
    expire = received("Expiration", "2026-03-08T10:00:00.200000Z", "2026-03-08T10:00:00Z")
    reactivate = received("UserReactivation", "2026-03-08T10:00:00.500000Z", transactionId="91")
    for order in itertools.permutations([NEW_SALE, expire, reactivate]):
        assert derive_state(SUB, order)["status"] == "active"


def test_a_reactivation_sorts_after_what_was_received_before_it_whatever_its_timestamp_says():
    # CCBill's clock or zone runs ahead of ours: the cancellation reads 15:00 though it reached us at 10:00:01.
    # The reactivation we received at 12:00 came after it (CCBill sent it later) and must win.
    cancel = received("Cancellation", "2026-02-08T10:00:01.000000Z", "2026-02-08T15:00:00Z", reason="Other")
    expire = received("Expiration", "2026-02-08T11:00:00.000000Z", "2026-02-08T16:00:00Z")
    reactivate = received("UserReactivation", "2026-02-08T12:00:00.000000Z", transactionId="92")
    for order in itertools.permutations([NEW_SALE, cancel, expire, reactivate]):
        state = derive_state(SUB, order)
        assert state["status"] == "active" and state["cancelled_at"] is None and state["expired_at"] is None
        assert state["reactivated_at"] == "2026-02-08T12:00:00.000000Z"


def test_a_cancellation_sent_after_a_reactivation_still_cancels():
    expire = received("Expiration", "2026-02-08T10:00:01.000000Z", "2026-02-08T10:00:00Z")
    reactivate = received("UserReactivation", "2026-02-08T12:00:00.000000Z", transactionId="93")
    cancel_later = received("Cancellation", "2026-02-09T09:00:00.000000Z", "2026-02-09T09:00:00Z", reason="Other")
    for order in itertools.permutations([NEW_SALE, expire, reactivate, cancel_later]):
        assert derive_state(SUB, order)["status"] == "cancelled"


def test_histories_with_reactivations_converge_in_every_order_and_with_repeats():
    history = [NEW_SALE, RENEWAL_1,
               received("Cancellation", "2026-02-08T10:00:01.000000Z", "2026-02-08T15:00:00Z"),
               received("UserReactivation", "2026-02-08T12:00:00.000000Z", transactionId="94"),
               received("RenewalSuccess", "2026-03-10T10:00:02.000000Z", "2026-03-10T10:00:00Z", transactionId="95"),
               received("Cancellation", "2026-03-20T10:00:01.000000Z", "2026-03-20T10:00:00Z", key="second-cancel"),
               received("UserReactivation", "2026-03-21T08:00:00.000000Z", transactionId="96"),
               received("Expiration", "2026-04-20T10:00:01.000000Z", "2026-04-20T10:00:00Z")]
    expected = derive_state(SUB, history)
    assert expected["status"] == "expired" and expected["times_rebilled"] == 2
    rng = random.Random(11)
    for _ in range(200):
        shuffled = history + rng.sample(history, 3)
        rng.shuffle(shuffled)
        assert derive_state(SUB, shuffled) == expected


# --- the customer reference (issue 11, part 5) ----------------------------------------------------------------------


def test_the_customer_reference_comes_from_the_declared_field_newest_first():
    def with_reference(event_type, occurred_at, value, **fields):
        delivery = {"pk": f"{event_type}#{occurred_at}", "event_type": event_type, "occurred_at": occurred_at,
                    "received_at": "2026-11-22T00:00:00.000000Z",
                    "fields": {"subscriptionId": SUB, "X-user_id": value, **fields}}
        return history_entry(delivery, "x-USER_ID")

    sale = with_reference("NewSaleSuccess", "2026-01-01T10:00:00Z", " 1234 ")
    assert sale["customer_reference"] == "1234"
    assert "X-user_id" not in sale["fields"]  # the history keeps no pass-through field itself
    update = with_reference("CustomerDataUpdate", "2026-02-01T10:00:00Z", "5678")
    for order in itertools.permutations([sale, update, RENEWAL_1]):
        assert derive_state(SUB, order)["customer_reference"] == "5678"
    assert derive_state(SUB, [NEW_SALE])["customer_reference"] is None
    assert "customer_reference" not in history_entry({"pk": "k", "event_type": "Expiration", "fields": {}}, None)


# --- the newest delivery alone (issue 14: a bounded record folds it without reading the history) ---------------------


def test_an_entry_received_after_everything_folds_onto_the_state_as_the_whole_history_would():
    """place_after says where a newly received entry goes without the history, or that only the history can tell;
    when it tells, the entry is last and fold_step onto the state equals derive_state over everything."""
    from billops.subscriptions.state_rules import fold_step, place_after, placements

    pool = [NEW_SALE, RENEWAL_1, RENEWAL_FAILED, RENEWAL_2, REFUND, CANCEL, EXPIRE,
            event("NewSaleFailure", "2026-01-01T09:00:00Z", key="decline-1", failureCode="BE-31"),
            event("UpSaleFailure", "2026-03-09T09:00:00Z", key="decline-2")]
    rng = random.Random(5)
    told = incremental = 0
    for _ in range(300):
        chosen = rng.sample(pool, rng.randint(1, len(pool)))
        # Arrival order = received order; untimed reactivations arrive among them, received at their turn.
        arrivals, clock = [], 0
        for entry in chosen + [None] * rng.randint(0, 2):
            clock += rng.randint(1, 40)
            moment = f"2026-{1 + clock // 28:02d}-{1 + clock % 28:02d}T10:00:00.{clock:06d}Z"
            if entry is None:
                arrivals.append(received("UserReactivation", moment, key=f"reactivation-{clock}"))
            else:
                arrivals.append({**entry, "received_at": moment})
        state, last = None, None
        for index, entry in enumerate(arrivals):
            so_far = arrivals[:index + 1]
            place = place_after(entry, last)
            if index and place is not None and place > last:
                told += 1
                assert placements(so_far)[-1][0] == place
                state = fold_step(state, SUB, entry)
                incremental += 1
            else:
                state = derive_state(SUB, so_far)
            last = placements(so_far)[-1][0]
            assert state == derive_state(SUB, so_far)
    assert incremental > 100 and told == incremental  # the common case takes the short way
