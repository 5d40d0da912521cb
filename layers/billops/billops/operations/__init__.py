"""Operations on subscriptions (issue 4): upgrade, discount, cancel, extend, refresh - each carried out exactly once.

A message on the operations queue becomes an operation record; the record's state machine, moved only by
conditional writes, is what makes a redelivered message, a second message with the same idempotency key or a
crashed worker unable to charge a subscriber twice. docs/operations.md is the contract; the modules:

* operation_messages   the message (pydantic models, JSON schema)
* operation_records    operation IDs, request hashes, the record built from a message
* operation_settings   BILLOPS_OPERATION* settings
* operation_actions    what each operation sends to CCBill (validation and the plan, then the call)
* operation_context    what the runner and the settlement share (one object, built by wiring)
* operation_runner     claim -> call -> record, for one message (the worker)
* settlement           unknown outcomes settled by looking; webhooks settling upgrades
* retry_policy         exponential backoff with full jitter
* operation_queue      putting a message on the queue (enqueue)
* operation_submission recording an operation, then queueing it (the merchant API, allowUpgrade links)
* scheduler            the due sweep (run_at, retry backoff)
* reconciliation       the recurring job: unknowns, stuck leases, upgrade windows, stale subscriptions
* subscription_facts_store  what operations read from and write to the subscriptions table

Elsewhere: the statuses and their transitions (billops.operation_states, below storage: the operations table checks
them), the domain events the outcomes produce (billops.domain_events) and CCBill's upgrade Background Posts
(billops.webhooks.upgrade_postbacks, beside the webhook intake: both are CCBill calling us).
"""
