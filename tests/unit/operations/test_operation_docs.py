"""docs/operations.md stays true to the code: every setting and every domain event type is documented."""

from __future__ import annotations

from pathlib import Path

from billops import operation_states
from billops.domain_events import events as domain_events
from billops.settings.operations import OperationSettings

DOCS = (Path(__file__).resolve().parents[3] / "docs/operations.md").read_text(encoding="utf-8")


def test_every_operations_setting_is_documented():
    names = set(OperationSettings.variables())
    assert names
    missing = {name for name in names if name not in DOCS
               and name.replace("_CAP_SECONDS", "").replace("_BASE_SECONDS", "") not in DOCS}
    assert not missing


def test_every_domain_event_type_is_documented():
    detail_types = {value for name, value in vars(domain_events).items()
                    if name.isupper() and isinstance(value, str) and value[:1].isupper() and value != "SOURCE"}
    detail_types.discard(domain_events.SOURCE)
    assert {"OperationSucceeded", "SubscriptionChanged"} <= detail_types
    assert all(f"`{kind}`" in DOCS for kind in detail_types)


def test_every_status_is_documented():
    assert all(status in DOCS for status in operation_states.ALL_STATUSES)
