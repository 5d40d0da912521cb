"""Webhook intake: authenticate, decode, validate and store one CCBill delivery, and decide the answer.

The answer's rules: nothing 2xx before the delivery is durably stored; a duplicate is 200 and stored once; a
stranger gets 403; a malformed delivery from CCBill is quarantined with its (redacted) body and answered 400 in
ChargeBee's error model; only our own failures (storage, keys, configuration) are 5xx, so CCBill delivers again.

Only what identifies a delivery can make it malformed: an unreadable body, a missing or contradictory eventType (or
account), a missing subscriptionId where the event cannot exist without one. Any other field that does not parse is
stored as received, flagged on the item (``field_warnings``: field -> why) and counted (``WebhookFieldWarnings``);
the delivery is answered 200 (field_checks.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billops.api_errors import ApiError, param_wrong_value
from billops.privacy.field_encryption import EncryptionUnavailable, FieldCipher, default_cipher
from billops.privacy.subscriber_data import redact_raw_body, scrub_fields, split_personal
from billops.settings import Settings
from billops.storage.errors import StorageUnavailable
from billops.webhooks.ccbill_time import UnknownTimeZone, ccbill_time_to_utc, ccbill_zone
from billops.webhooks.delivery_decoding import MalformedDelivery, decode_body, raw_body_bytes
from billops.webhooks.delivery_key_secret import DeliveryKeyUnavailable, delivery_key_secret
from billops.webhooks.delivery_keys import DeliveryKeys, KeyPlan, same_reversal
from billops.webhooks.event_types import parse_event_type
from billops.webhooks.source_authentication import (
    CROSS_ACCOUNT_TYPES,
    check_account,
    check_delivery_account,
    check_source,
)
from billops.webhooks.webhook_token import TokenUnavailable, expected_token

QUARANTINE_BODY_LIMIT = 32 * 1024
QUERY_FIELDS_FROM_CCBILL = ("clientAccnum", "clientSubacc", "eventGroupType")


@dataclass(frozen=True)
class WebhookRequest:
    """What the receiver needs of an HTTP request, whatever carried it."""

    source_ip: str | None
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: str | None
    is_base64_encoded: bool

    @classmethod
    def from_http_api_event(cls, event: Mapping[str, Any]) -> WebhookRequest:
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        return cls(
            source_ip=http.get("sourceIp"),
            query=dict(event.get("queryStringParameters") or {}),
            headers=headers,
            body=event.get("body"),
            is_base64_encoded=bool(event.get("isBase64Encoded")),
        )


@dataclass(frozen=True)
class IntakeResult:
    status: int
    body: dict[str, Any]
    outcome: str  # accepted | duplicate | rejected | quarantined | unknown_type | storage_failed
    event_type: str | None = None
    key: str | None = None
    metrics: tuple[str, ...] = field(default=())
    field_warnings: tuple[str, ...] = field(default=())
    """Names of the fields stored as received and flagged (never their values)."""


class Store:
    """The storage operations intake needs (an EventsTable satisfies it).

    ``put_once_or_existing`` (reversals) and ``exists`` (keys of deliveries stored before keyed hashes) are optional
    for test doubles: without them a taken key is a duplicate and no older key is looked at.
    """

    def put_once(self, item: dict[str, Any]) -> bool:  # pragma: no cover - protocol
        raise NotImplementedError


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _comparable(name: str, value: str) -> str:
    # clientSubacc is zero-filled (smallint(4) zerofill): "0" from a JSON number is the URL's "0000".
    return value.zfill(4) if name == "clientSubacc" and value.isdigit() else value


class _Unavailable(Exception):
    """Something of ours (a key, a setting) is missing right now: 503, CCBill delivers again."""


class WebhookIntake:
    def __init__(self, settings: Settings, store: Store, clock=_utc_now, cipher: FieldCipher | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._cipher = cipher
        self.keys = DeliveryKeys(self._delivery_key_secret)

    def _delivery_key_secret(self) -> bytes:
        try:
            return delivery_key_secret(self.settings)
        except DeliveryKeyUnavailable as error:
            raise _Unavailable("The delivery key could not be read; deliver again later.") from error

    @property
    def cipher(self) -> FieldCipher:
        """Encrypts personal data before it is stored (the container's cached data key unless one was given)."""
        return self._cipher or default_cipher()

    def receive(self, request: WebhookRequest) -> IntakeResult:
        try:
            token = expected_token(self.settings)
        except TokenUnavailable:
            return self._unavailable("The webhook token could not be read; deliver again later.")
        try:
            check_source(request.source_ip, request.query.get("token"), token, self.settings)
        except ApiError as error:
            return IntakeResult(error.status, error.body(), "rejected", metrics=("WebhookRejected",))
        refused, on_malformed = self._account_gate(request.query, "WebhookRejected", self._quarantine)
        return refused or self._process(request, self.clock(), on_malformed)

    def _account_gate(self, query: Mapping[str, str], metric: str, on_malformed: Callable[..., IntakeResult]
                      ) -> tuple[IntakeResult | None, Callable[..., IntakeResult]]:
        """(the refusal of a delivery for another account, or None; what a malformed body gets).

        An upgrade into another account may still be the merchant's (its original account, the catalogue): that is
        decided on the body (check_delivery_account), and such a body that cannot be read is refused, not kept.
        """
        try:
            check_account(query.get("clientAccnum"), query.get("clientSubacc"), self.settings)
            return None, on_malformed
        except ApiError as error:
            refusal = error  # `error` is unbound when the except block ends; refuse() runs later

        def refuse(*_: Any) -> IntakeResult:
            return IntakeResult(refusal.status, refusal.body(), "rejected", metrics=(metric,))

        return (None if query.get("eventType") in CROSS_ACCOUNT_TYPES else refuse()), refuse

    def replay(self, raw_body: bytes, content_type: str | None, query: Mapping[str, str], *,
               received_at: datetime | None = None, replayed_from: str | None = None) -> IntakeResult:
        """An operator's replay of a delivery received earlier (a quarantined body, once its cause is fixed).

        The webhook's source-address and token checks are skipped: the operator acts with table rights, not as
        CCBill, and the body was authenticated when it arrived. Everything else is receive()'s: the account check,
        the size limit, decoding, validation, the delivery key (a duplicate is stored once) and the one conditional
        put. ``received_at`` keeps the original receipt time (default: now); ``replayed_from`` (the quarantine key)
        and the replay time are recorded on the stored delivery. A body that is still malformed is NOT quarantined
        again - it is in quarantine already: the result is 400 with outcome "quarantined" naming the problem, and
        updating the quarantine record is the caller's business.
        """
        refused, on_malformed = self._account_gate(query, "WebhookReplayRejected", self._still_malformed)
        if refused:
            return refused
        request = WebhookRequest(
            source_ip=None,
            query=dict(query),
            headers={"content-type": content_type} if content_type else {},
            body=base64.b64encode(raw_body).decode("ascii"),
            is_base64_encoded=True,
        )
        extra = {"replayed_at": _iso(self.clock()), "replayed_from": replayed_from}
        return self._process(request, received_at or self.clock(), on_malformed, extra)

    def _process(self, request: WebhookRequest, received_at: datetime,
                 on_malformed: Callable[[WebhookRequest, bytes, datetime, MalformedDelivery], IntakeResult],
                 extra: Mapping[str, Any] | None = None) -> IntakeResult:
        """Size limit, decoding, validation and storage of an authenticated request."""
        try:
            raw = raw_body_bytes(request.body, request.is_base64_encoded)
        except MalformedDelivery as problem:
            return on_malformed(request, b"", received_at, problem)
        if len(raw) > self.settings.max_body_bytes:
            problem = MalformedDelivery(
                f"The body is {len(raw)} bytes; the limit is {self.settings.max_body_bytes}.", code="invalid_request"
            )
            return on_malformed(request, raw, received_at, problem)
        try:
            return self._accept(request, raw, received_at, extra)
        except MalformedDelivery as problem:
            return on_malformed(request, raw, received_at, problem)
        except ApiError as error:
            return IntakeResult(error.status, error.body(), "rejected", metrics=("WebhookRejected",))
        except StorageUnavailable:
            return self._unavailable("The delivery could not be stored; deliver again.")
        except EncryptionUnavailable:
            # Never stored in clear: without a data key nothing is written, and CCBill delivers again.
            return self._unavailable("The delivery could not be encrypted; deliver again.")
        except _Unavailable as missing:
            return self._unavailable(str(missing))

    def _accept(self, request: WebhookRequest, raw: bytes, received_at: datetime,
                extra: Mapping[str, Any] | None = None) -> IntakeResult:
        event_type_name = (request.query.get("eventType") or "").strip()
        decoded = decode_body(raw, request.headers.get("content-type"))
        fields = scrub_fields(decoded.fields)
        body_event_type = (fields.pop("eventType", "") or "").strip()
        if not event_type_name:
            if not body_event_type:
                raise MalformedDelivery("eventType is missing from the webhook URL's query string.", "eventType")
            # CCBill always appends eventType to the URL; a body-only type is accepted but recorded as such.
            event_type_name = body_event_type
        elif body_event_type and body_event_type != event_type_name:
            raise MalformedDelivery("The body's eventType disagrees with the one in the URL.", "eventType")
        for name in QUERY_FIELDS_FROM_CCBILL:
            in_query = (request.query.get(name) or "").strip()
            in_body = (fields.get(name) or "").strip()
            if in_query and in_body and _comparable(name, in_query) != _comparable(name, in_body):
                raise MalformedDelivery(f"The body's {name} disagrees with the one in the URL.", name)
            if in_query and not in_body:
                fields[name] = in_query
        fields.pop("eventGroupType", None)
        event_group_type = (request.query.get("eventGroupType") or decoded.fields.get("eventGroupType") or "").strip()
        legacy_fields = dict(fields)  # what keys were hashed over before keyed hashes and restorations

        event_type = parse_event_type(event_type_name)
        detected_version = None
        warnings = dict(decoded.warnings)
        transaction_id = (fields.get("transactionId") or "").strip() or None
        if event_type is not None:
            from billops.webhooks.event_versions import detect_version
            from billops.webhooks.field_checks import check_fields

            checked = check_fields(event_type, fields, decoded.json_numbers)
            fields, transaction_id = checked.fields, checked.transaction_id
            warnings.update(checked.warnings)
            detected_version = detect_version(event_type, fields.keys())
        check_delivery_account(event_type_name, fields, self.settings)
        plan = self.keys.plan(event_type_name, fields, transaction_id, legacy_fields)
        public, personal = split_personal(fields, self.settings.passthrough_clear_fields)
        # Bound to this delivery's key (a second reversal stored under `<key>#hmac#…` keeps the binding of <key>).
        subscriber, subscriber_keys = self.cipher.encrypt_fields(personal, record_id=plan.key)
        item = {
            "pk": plan.key,
            "record_type": "delivery",
            "event_type": event_type_name,
            "event_group_type": event_group_type or None,
            "known_type": event_type is not None,
            "subscription_id": (fields.get("subscriptionId") or "").strip() or None,
            "transaction_id": (fields.get("transactionId") or "").strip() or None,
            "client_accnum": fields.get("clientAccnum"),
            "client_subacc": fields.get("clientSubacc"),
            "occurred_at": ccbill_time_to_utc(fields.get("timestamp"), self._zone()),
            "received_at": _iso(received_at),
            "body_format": decoded.body_format,
            "detected_version": detected_version,
            "fields": public,
            "subscriber": subscriber,
            "subscriber_keys": subscriber_keys,
            "field_warnings": dict(sorted(warnings.items())) or None,
            "payload_digest": plan.digest if plan.is_reversal else None,
            **(extra or {}),
        }
        stored_key = self._store(item, plan, event_type_name, legacy_fields)
        flagged = tuple(sorted(warnings))
        warning_metrics = ("WebhookFieldWarnings",) if flagged else ()
        if stored_key is not None:
            return IntakeResult(200, {"received": True, "duplicate": True, "id": stored_key}, "duplicate",
                                event_type_name, stored_key, ("WebhookDuplicate",), flagged)
        # No metric for the common case, so a new delivery writes no metrics document (CloudWatch Logs is paid per
        # byte, on every webhook): the template's WebhooksAccepted metric filter counts the access log's 200s.
        metrics = (() if event_type is not None else ("UnknownEventType",)) + warning_metrics
        return IntakeResult(200, {"received": True, "duplicate": False, "id": item["pk"]},
                            "accepted" if event_type is not None else "unknown_type", event_type_name, item["pk"],
                            metrics, flagged)

    def _zone(self):
        try:
            return ccbill_zone(self.settings.ccbill_timezone)
        except UnknownTimeZone as error:
            raise _Unavailable("BILLOPS_CCBILL_TIMEZONE names no time zone; deliver again once it is fixed.") \
                from error

    def _store(self, item: dict[str, Any], plan: KeyPlan, event_type: str,
               legacy_fields: Mapping[str, str]) -> str | None:
        """Store the delivery once. None when stored now (under item["pk"]), else the key it is already stored under.

        One conditional PutItem, but for: a hash-keyed delivery, first looked up under its pre-HMAC key while
        BILLOPS_CHECK_LEGACY_DELIVERY_KEYS is on (one read); a reversal whose transaction already has another
        reversal (a second put, under its own digest).
        """
        if plan.legacy_key and self.settings.check_legacy_delivery_keys:
            exists = getattr(self.store, "exists", None)
            if exists is not None and exists(plan.legacy_key):
                return plan.legacy_key
        if not plan.is_reversal:
            return None if self.store.put_once(item) else plan.key
        put_or_existing = getattr(self.store, "put_once_or_existing", None)
        if put_or_existing is None:
            return None if self.store.put_once(item) else plan.key
        existing = put_or_existing(item)
        if existing is None:
            return None
        if same_reversal(existing, plan.digest, event_type, legacy_fields):
            return plan.key
        item["pk"] = plan.alternate  # another reversal of the same transaction: stored under its own digest
        return None if self.store.put_once(item) else plan.alternate

    def _quarantine(self, request: WebhookRequest, raw: bytes, received_at: datetime,
                    problem: MalformedDelivery) -> IntakeResult:
        query = {name: value for name, value in request.query.items() if name != "token"}
        try:
            key = self.keys.quarantine_key(raw, query)
        except _Unavailable as missing:
            return self._unavailable(str(missing))
        text = raw[:QUARANTINE_BODY_LIMIT].decode("utf-8", errors="replace")
        try:
            # The body may hold personal data: encrypted like the subscriber map (raw_body_text() reads it back).
            sealed, body_keys = self.cipher.encrypt_fields({"raw_body": redact_raw_body(text)}, record_id=key)
        except EncryptionUnavailable:
            return self._unavailable("The delivery could not be encrypted; deliver again.")
        item = {
            "pk": key,
            "record_type": "quarantine",
            "event_type": (request.query.get("eventType") or "").strip() or None,
            "reason": problem.message,
            "param": problem.param,
            "raw_body": sealed.get("raw_body", ""),
            "subscriber_keys": body_keys,
            "raw_body_bytes": len(raw),
            "raw_body_truncated": len(raw) > QUARANTINE_BODY_LIMIT,
            "content_type": request.headers.get("content-type"),
            "query": query,
            "received_at": _iso(received_at),
        }
        try:
            self.store.put_once(item)
        except StorageUnavailable:
            # Refusing with 400 while losing the body would break "what was received is kept": ask for it again.
            return self._unavailable("The delivery could not be stored; deliver again.")
        error = ApiError(400, problem.message, problem.code, "invalid_request", problem.param)
        return IntakeResult(400, error.body(), "quarantined", request.query.get("eventType"), key,
                            ("WebhookQuarantined",))

    def _still_malformed(self, request: WebhookRequest, raw: bytes, received_at: datetime,
                         problem: MalformedDelivery) -> IntakeResult:
        """A replayed body that is still malformed: the answer receive() would give, nothing stored."""
        query = {name: value for name, value in request.query.items() if name != "token"}
        try:
            key = self.keys.quarantine_key(raw, query)
        except _Unavailable as missing:
            return self._unavailable(str(missing))
        error = ApiError(400, problem.message, problem.code, "invalid_request", problem.param)
        return IntakeResult(400, error.body(), "quarantined", request.query.get("eventType"), key,
                            ("WebhookReplayStillMalformed",))

    @staticmethod
    def _unavailable(message: str) -> IntakeResult:
        body = {"message": message, "type": "operation_failed", "api_error_code": "internal_error", "param": None}
        return IntakeResult(503, body, "storage_failed", metrics=("WebhookStorageFailed",))
