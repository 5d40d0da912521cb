"""What each route of the merchant API does, given an authenticated key and the request's parts.

The handler (functions/merchant_api/merchant_api_handler.py) parses nothing and decides nothing: it authenticates,
calls one method here, and turns the ``Answer`` (or the MerchantApiError raised) into an HTTP response.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_authentication import Authenticator, require_scope
from billops.merchant_api.api_keys import PII, READ, WRITE, ApiKey, ApiKeysTable, KeyStore
from billops.merchant_api.api_settings import ApiSettings, api_settings_from_env
from billops.merchant_api.failed_auth_limits import FailedAuthLimits
from billops.merchant_api.idempotent_responses import IdempotentResponses, request_hash
from billops.merchant_api.operation_requests import OperationRequest, OperationRequests, check_idempotency_key
from billops.merchant_api.pagination import decode_offset, dynamodb_key, page, parse_limit
from billops.storage.list_queries import SUBSCRIPTION_STATUSES, MerchantQueries
from billops.merchant_api.request_bodies import parse_query, refuse_unknown
from billops.merchant_api.resources import (
    delivery_resource,
    history_event_resource,
    operation_resource,
    subscription_resource,
)
from billops.storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)

EVENT_ACTIONS_HEADERS = ("billops-event-actions", "chargebee-event-actions")
"""``<header>: all-disabled`` switches off the domain events of the operation a request creates (ChargeBee's
``chargebee-event-actions``, accepted under its own name too)."""
ALL_DISABLED = "all-disabled"
UPGRADE_LINK_PARAMETERS = ("method", "upgrade_client_accnum", "upgrade_client_subacc", "upgrade_type_id",
                           "identify_by")
UPGRADE_LINK_METHODS = {"enc": "enc", "allow_upgrade": "allow_upgrade"}
MAX_LOOKBACK_DAYS = 31


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _suppress_domain_events(headers: Mapping[str, str]) -> bool:
    for name in EVENT_ACTIONS_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if value.strip().lower() != ALL_DISABLED:
            raise failures.param_wrong_value(f"{name} takes the value {ALL_DISABLED} (or is left out).", name)
        return True
    return False


MAX_CUSTOMER_REFERENCE_CHARS = 200


def _customer_reference(value: str | None) -> str | None:
    """A customer reference to search by (stored as the pass-through field carried it, stripped)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if not text or len(text) > MAX_CUSTOMER_REFERENCE_CHARS or any(ord(char) < 32 or ord(char) == 127
                                                                   for char in text):
        raise failures.param_wrong_value(f"customer_reference must be 1 to {MAX_CUSTOMER_REFERENCE_CHARS} characters, "
                                         "without control characters.", "customer_reference")
    return text


def _digits(value: str | None, param: str, *, length: int) -> str | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > length:
        raise failures.param_wrong_value(f"{param} must be up to {length} digits.", param)
    return value


class MerchantApi:
    def __init__(self, *, settings: ApiSettings, authenticator: Authenticator, requests: OperationRequests,
                 queries: MerchantQueries, idempotent: IdempotentResponses,
                 link_factory: Callable[..., dict[str, Any]] | None = None,
                 reveal: Callable[[Mapping[str, Any]], dict[str, str]] | None = None,
                 on_metric: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.requests = requests
        self.queries = queries
        self.idempotent = idempotent
        self._link_factory = link_factory
        self._reveal = reveal
        self.on_metric = on_metric or (lambda name: None)

    @classmethod
    def from_env(cls, *, on_metric: Callable[[str], None] | None = None, dynamodb: Any = None,
                 sqs: Any = None) -> MerchantApi:
        from billops.operations.operation_settings import operation_settings_from_env
        from billops.operations.subscription_facts_store import SubscriptionFactsStore
        from billops.settings import get_settings
        from billops.storage.dynamodb_client import dynamodb_client
        from billops.storage.operations_table import OperationsTable
        from billops.storage.subscriptions_table import SubscriptionsTable

        settings = api_settings_from_env()
        operation_settings = operation_settings_from_env()
        base = get_settings()
        keys_table = ApiKeysTable(settings.keys_table, dynamodb)
        authenticator = Authenticator(
            KeyStore(keys_table, settings.key_cache_seconds),
            FailedAuthLimits(keys_table, settings.failure_limit, settings.failure_window_seconds))
        requests = OperationRequests(OperationsTable(operation_settings.operations_table, dynamodb),
                                     SubscriptionFactsStore(SubscriptionsTable(base.subscriptions_table, dynamodb)),
                                     operation_settings, sqs=sqs)
        queries = MerchantQueries(lambda: dynamodb or dynamodb_client(),
                                  subscriptions_table=base.subscriptions_table,
                                  operations_table=operation_settings.operations_table,
                                  delivery_log_table=base.delivery_log_table)
        return cls(settings=settings, authenticator=authenticator, requests=requests, queries=queries,
                   idempotent=IdempotentResponses(keys_table), on_metric=on_metric)

    # --- who ------------------------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, source_ip: str) -> ApiKey:
        try:
            return self.authenticator.authenticate(authorization, source_ip)
        except failures.MerchantApiError as error:
            self.on_metric("ApiRequestThrottled" if error.status == 429 else "ApiAuthenticationFailed")
            raise

    # --- subscriptions --------------------------------------------------------------------------------------------

    def retrieve_subscription(self, key: ApiKey, subscription_id: str, raw_query: str | None) -> Answer:
        require_scope(key, READ)
        query = parse_query(raw_query, ("include",))
        include = {part.strip() for part in (query.get("include") or "").split(",") if part.strip()}
        for name in include:
            if name != "customer":
                raise failures.param_wrong_value("include takes customer (the subscriber's personal data, for keys "
                                                 "with the pii scope).", "include")
        record = self.requests.subscription(subscription_id)
        customer = None
        if "customer" in include:
            require_scope(key, PII)
            customer = self._revealed(record, key)
        return Answer(200, {"subscription": subscription_resource(record, customer=customer)})

    def _revealed(self, record: Mapping[str, Any], key: ApiKey) -> dict[str, str]:
        reveal = self._reveal
        if reveal is None:
            from billops.privacy.subscriber_view import revealed_subscriber as reveal
        try:
            customer = reveal(record)
        except Exception:
            logger.exception("personal data could not be revealed", extra={
                "subscription_id": record.get("subscription_id"), "key_id": key.key_id})
            raise failures.service_unavailable() from None
        # An audit line: who saw whose personal data (never the data itself).
        logger.info("personal data revealed", extra={"subscription_id": record.get("subscription_id"),
                                                     "key_id": key.key_id, "fields": sorted(customer)})
        self.on_metric("PersonalDataRevealed")
        return customer

    def list_subscriptions(self, key: ApiKey, raw_query: str | None) -> Answer:
        require_scope(key, READ)
        query = parse_query(raw_query, ("status", "client_subacc", "customer_reference", "limit", "offset"))
        status = query.get("status") or None
        if status is not None and status not in SUBSCRIPTION_STATUSES:
            raise failures.param_wrong_value(f"status must be one of {', '.join(SUBSCRIPTION_STATUSES)}.", "status")
        subacc = _digits(query.get("client_subacc"), "client_subacc", length=4)
        customer_reference = _customer_reference(query.get("customer_reference"))
        limit = parse_limit(query.get("limit"))
        position = decode_offset(query.get("offset"))
        found = self._read(lambda: self.queries.subscriptions(
            status=status, client_subacc=subacc.zfill(4) if subacc else None, limit=limit, position=position,
            start_key=dynamodb_key(position), customer_reference=customer_reference))
        return Answer(200, page([{"subscription": subscription_resource(item)} for item in found.items],
                                found.next_position))

    def list_subscription_events(self, key: ApiKey, subscription_id: str, raw_query: str | None) -> Answer:
        require_scope(key, READ)
        query = parse_query(raw_query, ("limit", "offset"))
        limit = parse_limit(query.get("limit"))
        position = decode_offset(query.get("offset")) or {}
        start = position.get("i", 0)
        if not isinstance(start, int) or start < 0:
            raise failures.param_wrong_value("offset is not an offset this API gave.", "offset")
        record = self.requests.subscription(subscription_id)
        history = list(reversed(record.get("history") or []))  # newest first
        items = history[start:start + limit]
        more = start + limit < len(history)
        return Answer(200, page([{"event": history_event_resource(entry)} for entry in items],
                                {"i": start + limit} if more else None))

    def list_subscription_operations(self, key: ApiKey, subscription_id: str, raw_query: str | None) -> Answer:
        require_scope(key, READ)
        query = parse_query(raw_query, ("limit", "offset"))
        limit = parse_limit(query.get("limit"))
        position = decode_offset(query.get("offset"))
        self.requests.subscription(subscription_id)
        found = self._read(lambda: self.queries.operations_of(subscription_id, limit=limit,
                                                              start_key=dynamodb_key(position)))
        return Answer(200, page([{"operation": operation_resource(item)} for item in found.items],
                                found.next_position))

    # --- operations -----------------------------------------------------------------------------------------------

    def request_operation(self, key: ApiKey, operation_type: str, subscription_id: str, body: Mapping[str, Any],
                          headers: Mapping[str, str]) -> Answer:
        require_scope(key, WRITE)
        suppress = _suppress_domain_events(headers)
        submitted = self.requests.submit(OperationRequest(
            operation_type=operation_type, subscription_id=subscription_id, parameters=dict(body),
            idempotency_key=headers.get("idempotency-key"), suppress_domain_events=suppress))
        resource = operation_resource(submitted.record)
        answer_headers = {"Location": f"/v1/operations/{resource['id']}"}
        if submitted.replayed:
            answer_headers["Idempotent-Replayed"] = "true"
            self.on_metric("ApiOperationReplayed")
        else:
            self.on_metric("ApiOperationRequested")
            logger.info("operation requested", extra={"operation_id": resource["id"], "key_id": key.key_id,
                                                      "operation_type": operation_type})
        return Answer(202, {"operation": resource}, answer_headers)

    def retrieve_operation(self, key: ApiKey, operation_id: str) -> Answer:
        require_scope(key, READ)
        return Answer(200, {"operation": operation_resource(self.requests.operation(operation_id))})

    # --- upgrade links ----------------------------------------------------------------------------------------

    def create_upgrade_link(self, key: ApiKey, subscription_id: str, body: Mapping[str, Any],
                            headers: Mapping[str, str]) -> Answer:
        require_scope(key, WRITE)
        _suppress_domain_events(headers)  # accepted for uniformity; a link publishes no event of its own
        parameters = {name: value for name, value in body.items() if value is not None and value != ""}
        refuse_unknown(parameters, UPGRADE_LINK_PARAMETERS)
        for name, value in parameters.items():
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise failures.param_wrong_value(f"{name} must be a string.", name)
        method = str(parameters["method"]) if "method" in parameters else None
        if method is not None and method not in UPGRADE_LINK_METHODS:
            raise failures.param_wrong_value("method must be enc or allow_upgrade (the default is the deployment's "
                                             "upgrade Security Type).", "method")
        idempotency_key = check_idempotency_key(headers.get("idempotency-key"))
        fingerprint = request_hash({"route": "upgrade_link", "subscription_id": subscription_id,
                                    "parameters": {k: str(v) for k, v in parameters.items()}, "method": method})
        if idempotency_key is not None:
            kept = self._read(lambda: self.idempotent.find("upgrade_link", idempotency_key, fingerprint))
            if kept is not None:
                return Answer(kept[0], kept[1], {"Idempotent-Replayed": "true"})
        record = self.requests.subscription(subscription_id)
        factory = self._link_factory
        if factory is None:
            from billops.upgrade_page.upgrade_links import create_upgrade_link as factory
        link = factory(record, method=UPGRADE_LINK_METHODS[method] if method else None,
                       upgrade_client_accnum=_text(parameters.get("upgrade_client_accnum")),
                       upgrade_client_subacc=_text(parameters.get("upgrade_client_subacc")),
                       upgrade_type_id=_text(parameters.get("upgrade_type_id")), idempotency_key=idempotency_key,
                       identify_by=_text(parameters.get("identify_by")))
        body_out = {"upgrade_link": {
            "url": link["url"], "action_url": link["action_url"],
            "form_fields": {str(k): str(v) for k, v in dict(link["form_fields"]).items()},
            "expires_at": link["expires_at"], "method": link.get("method", method),
            "operation_id": link.get("operation_id"),
            "credential_warning": link.get("credential_warning"),
            "identify_by": link.get("identify_by", "subscription_id"),
        }}
        self.on_metric("ApiUpgradeLinkCreated")
        logger.info("upgrade link created", extra={"subscription_id": subscription_id, "key_id": key.key_id,
                                                   "method": body_out["upgrade_link"]["method"],
                                                   "operation_id": link.get("operation_id")})
        if idempotency_key is None:
            return Answer(200, body_out)
        status, kept_body = self._read(lambda: self.idempotent.remember("upgrade_link", idempotency_key, fingerprint,
                                                                        200, body_out))
        return Answer(status, kept_body)

    # --- webhook deliveries -----------------------------------------------------------------------------------

    def list_events(self, key: ApiKey, raw_query: str | None) -> Answer:
        require_scope(key, READ)
        query = parse_query(raw_query, ("status", "event_type", "subscription_id", "days", "limit", "offset"))
        status = query.get("status") or None
        if status is not None and status not in ("received", "quarantined"):
            raise failures.param_wrong_value("status must be received or quarantined.", "status")
        event_type = query.get("event_type") or None
        if event_type is not None and not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,63}$", event_type):
            raise failures.param_wrong_value("event_type must be a CCBill event type name (like NewSaleSuccess).",
                                             "event_type")
        subscription_id = _digits(query.get("subscription_id"), "subscription_id", length=20)
        days_text = query.get("days")
        if days_text is not None and (not days_text.isdigit() or not 1 <= int(days_text) <= MAX_LOOKBACK_DAYS):
            raise failures.param_wrong_value(f"days must be a whole number from 1 to {MAX_LOOKBACK_DAYS}.", "days")
        days = int(days_text) if days_text else min(self.settings.events_lookback_days, MAX_LOOKBACK_DAYS)
        limit = parse_limit(query.get("limit"))
        position = decode_offset(query.get("offset"))
        found = self._read(lambda: self.queries.deliveries(
            days=days, status=status, event_type=event_type, subscription_id=subscription_id, limit=limit,
            position=position, start_key=dynamodb_key(position)))
        return Answer(200, page([{"event": delivery_resource(item)} for item in found.items], found.next_position))

    # --- helpers ------------------------------------------------------------------------------------------------

    @staticmethod
    def _read(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except StorageUnavailable:
            logger.exception("a table could not be read")
            raise failures.service_unavailable() from None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
