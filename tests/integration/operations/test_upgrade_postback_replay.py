"""A replayed or forged upgrade postback settles nothing twice and moves nothing it should not.

CCBill signs its Background Posts as little as its webhooks: a post captured once (a proxy log, a browser's
history) may be sent again, by CCBill or by someone else. Authentication (source range, token) is the gate; past it,
settling is idempotent: a second copy of the approval finds the operation already settled, a forged approval naming
another new subscription finds no open window, and a denial after the approval cannot undo it.
"""

from __future__ import annotations

from test_operation_upgrade_system import _allow_upgrade, _approval, _consumer_uses_the_form


def test_a_replayed_approval_is_answered_but_changes_nothing(ops):
    original = ops.new_subscription()
    ops.send(_allow_upgrade(original, "replay-1"))
    ops.work()
    record = ops.operation("replay-1")
    new_id = _consumer_uses_the_form(ops, record)
    post = _approval(original, new_id)
    first = ops.post_upgrade_postback("approval", post)
    assert first["status"] == 200 and first["body"]["status"] == "succeeded"
    settled = ops.operation("replay-1")

    for _ in range(2):  # the same post again, byte for byte
        again = ops.post_upgrade_postback("approval", post)
        assert again == first
    forged = ops.post_upgrade_postback("approval", _approval(original, "0126999902000000777"))
    assert forged == {"status": 200, "body": {"received": True, "matched": False}}
    denial = ops.post_upgrade_postback("denial", {**_approval(original), "reasonForDeclineCode": "15"})
    assert denial["status"] == 200

    record = ops.operation("replay-1")
    assert (record["status"], record["new_subscription_id"]) == ("succeeded", new_id)
    assert record["settled_by"] == settled["settled_by"] and record["completed_at"] == settled["completed_at"]
    assert len(ops.events_of("OperationSucceeded", record["operation_id"])) == 1
    assert ops.events_of("OperationFailed", record["operation_id"]) == []
    assert len(ops.calls("allowUpgrade")) == 1 and len(ops.calls("upgradeSubscription")) == 1


def test_a_postback_without_the_token_or_from_outside_the_ranges_is_refused(ops):
    original = ops.new_subscription()
    ops.send(_allow_upgrade(original, "replay-2"))
    ops.work()
    post = _approval(original, "0126999902000000778")
    assert ops.post_upgrade_postback("approval", post, token="")["status"] == 403
    assert ops.post_upgrade_postback("approval", post, token="guessed-token")["status"] == 403
    assert ops.post_upgrade_postback("approval", post, source_ip="198.51.100.20")["status"] == 403
    assert ops.operation("replay-2")["status"] == "awaiting_consumer"
