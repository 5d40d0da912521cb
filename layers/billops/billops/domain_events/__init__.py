"""Domain events: what the merchant's systems hear about operations and subscriptions (EventBridge).

Bus ``BILLOPS_EVENT_BUS_NAME``, source ``billops``, detail-types:

* ``OperationSucceeded`` / ``OperationFailed`` / ``OperationRejected`` - the operation reached a final status;
* ``OperationEscalated`` - its outcome stayed unknown and automation stopped: a person must look;
* ``OperationAwaitingConsumer`` - allowUpgrade opened CCBill's 30-minute window: send the consumer to the form in
  the detail (``upgrade_form.url`` + ``upgrade_form.fields``) before ``window_expires_at``;
* ``SubscriptionChanged`` - the projector's fold changed a subscription's state (status, price, dates);
* ``UnexpectedUpgradeSale`` - an UpgradeSuccess / UpSaleSuccess for a subscription that was never
  offered an upgrade link and has no upgrade operation: someone upgraded it with a credential billops did not hand
  out for it (a spliced ``enc``, docs/upgrade-page.md). Also the metric of the same name and its alarm.

Details carry IDs, statuses and CCBill's code and meaning - never personal data (no names, emails, usernames).
A message with ``suppress_domain_events: true`` produces none of the Operation* events.

Delivery is at least once, through a small outbox: the event is written into the record's ``pending_events`` by
the same conditional write that moves the status, then put on the bus and removed. If the put fails the event
stays pending, and the worker (on redelivery) or the reconciliation job publishes it later; ``event_id`` is stable
so consumers can drop a repeat.

The modules: ``events`` (what an event says; pure) and ``publishing`` (putting them on the bus).
"""
