"""The OpenAPI 3.1 document of the merchant API (openapi.json, next to this module), served at GET /v1/openapi.json.

The document is written by hand and kept true by tests: every route of the handler is in it and nothing else
(tests/unit/merchant_api/test_merchant_api_openapi_document.py), it is a valid OpenAPI 3.1 document, and schemathesis checks the
running API against it (tests/e2e/test_merchant_api_schemathesis.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")


@lru_cache(maxsize=1)
def openapi_document_text() -> str:
    return DOCUMENT_PATH.read_text(encoding="utf-8")


def openapi_document() -> dict[str, Any]:
    return json.loads(openapi_document_text())
