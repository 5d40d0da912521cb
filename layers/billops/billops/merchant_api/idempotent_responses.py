"""Idempotency for a POST that is not an operation (``upgrade_link``): the first answer, kept for 24 hours.

Operations need nothing of this: their record *is* the idempotency record (operation_requests.py). An upgrade link
has no record of its own, so its first answer is kept in the keys table under ``idempotency#upgrade_link#<key>``
(with the request's hash and a TTL, ``expires_at``). The same key and request within 24 hours get that answer
again; the same key with another request is refused (409). Two identical requests racing may both build a link;
their allowUpgrade operation is one (its ID derives from the key: upgrade_links), and the first stored answer is the
one both clients get.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from billops.merchant_api import api_failures as failures
from billops.merchant_api.api_keys import ApiKeysTable

IDEMPOTENCY_PREFIX = "idempotency#"
DEFAULT_TTL_SECONDS = 24 * 3600


def request_hash(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
                          ).hexdigest()


class IdempotentResponses:
    def __init__(self, table: ApiKeysTable, ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def _key(self, scope: str, key: str) -> str:
        return f"{IDEMPOTENCY_PREFIX}{scope}#{key}"

    def find(self, scope: str, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
        """The answer kept for ``key``: None when there is none; 409 when it was for another request."""
        item = self.table.get(self._key(scope, key))
        if item is None or int(item.get("expires_at") or 0) <= self.clock():
            return None
        if item.get("request_hash") != fingerprint:
            raise failures.idempotency_conflict()
        return int(item["status"]), json.loads(str(item["body"]))

    def remember(self, scope: str, key: str, fingerprint: str, status: int, body: dict[str, Any]
                 ) -> tuple[int, dict[str, Any]]:
        """Keep the answer unless another one got there first; returns the answer that is kept."""
        now = self.clock()
        item = {"key_hash": self._key(scope, key), "request_hash": fingerprint, "status": status,
                "body": json.dumps(body, separators=(",", ":")), "expires_at": int(now) + self.ttl_seconds}
        if self.table.put_unless_current(item, int(now)):
            return status, body
        kept = self.find(scope, key, fingerprint)
        return kept if kept is not None else (status, body)


__all__ = ["IdempotentResponses", "request_hash"]
