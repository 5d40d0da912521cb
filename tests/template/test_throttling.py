"""Issue 14: bursts are not refused. Every route of the HTTP API has its own throttling (the webhook route's from
parameters sized for CCBill's rebill bursts), and any 429 on a route CCBill calls is counted from the access log
and alarmed (docs/scale.md, "Throttling and floods")."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from billops_local.template_resources import load_template, load_yaml
from sam_transform import ROOT, TEMPLATE, transform_template

pytestmark = pytest.mark.template

WEBHOOK_ROUTE = "POST /webhooks/ccbill"
POSTBACK_ROUTE = "POST /postbacks/ccbill/upgrade/{outcome}"
ACCOUNT_RATE, ACCOUNT_BURST = 10_000, 5_000  # API Gateway's default regional limits, every API of the account
# The scale model (docs/scale.md): a 1M-subscription merchant's day of rebills, sent by CCBill in bursts of up to
# 1,000 deliveries a second.
MODELLED_BURST_RATE = 1_000


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE)


@pytest.fixture(scope="module")
def routes() -> dict[str, str]:
    """Route key -> the function behind it, as the functions' HttpApi events declare them."""
    return {route.route_key: route.function_logical_id for route in load_template().http_routes}


def test_every_route_has_its_own_limits_and_no_setting_names_a_route_that_does_not_exist(
        template: dict[str, Any], routes: dict[str, str]) -> None:
    """A route's settings replace the stage's defaults for it, so each is written out; a key naming no route
    fails the deployment ("Unable to find Route by key"), so a renamed route must rename its settings."""
    api = template["Resources"]["HttpApi"]["Properties"]
    settings = api["RouteSettings"]
    assert set(settings) == set(routes)
    assert routes[WEBHOOK_ROUTE] == "WebhookReceiverFunction" and routes[POSTBACK_ROUTE] == "UpgradePostbackFunction"
    assert settings[WEBHOOK_ROUTE] == {"ThrottlingRateLimit": {"Ref": "WebhookThrottlingRateLimit"},
                                       "ThrottlingBurstLimit": {"Ref": "WebhookThrottlingBurstLimit"}}
    for route in set(routes) - {WEBHOOK_ROUTE}:  # the merchant API, the page, the postbacks keep their own
        assert settings[route] == {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}, route
    assert api["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50}


def test_the_deployed_stage_carries_every_route_setting(template: dict[str, Any]) -> None:
    (stage,) = [r["Properties"] for r in transform_template()["Resources"].values()
                if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["RouteSettings"] == template["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
    assert "DetailedMetricsEnabled" not in json.dumps(stage)  # per-route metrics are paid; the 429s come from logs


def test_the_webhook_limits_are_parameters_sized_for_a_rebill_burst(template: dict[str, Any]) -> None:
    rate, burst = (template["Parameters"][name] for name in ("WebhookThrottlingRateLimit",
                                                             "WebhookThrottlingBurstLimit"))
    assert rate["Type"] == burst["Type"] == "Number"
    assert rate["Default"] >= MODELLED_BURST_RATE and burst["Default"] >= 2 * MODELLED_BURST_RATE
    assert rate["MaxValue"] <= ACCOUNT_RATE and burst["MaxValue"] <= ACCOUNT_BURST
    assert rate["MinValue"] >= 1 and burst["MinValue"] >= 1
    assert "docs/scale.md" in rate["Description"]


def _filter_matches(pattern: str, event: dict[str, str]) -> bool:
    """CloudWatch Logs' JSON filter syntax, as far as the template uses it: `{ (c) && (c) }`, each c being
    `$.field = "text"` or `$.field != "text"` (exact text, no wildcard)."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    result = True
    for term in body[1:-1].split("&&"):
        match = re.fullmatch(r'\s*\(?\s*\$\.(\w+)\s*(!?=)\s*"([^"*]*)"\s*\)?\s*', term)
        assert match, f"not understood: {term!r}"
        field, operator, text = match.groups()
        equal = event.get(field) == text
        result = result and (equal if operator == "=" else not equal)
    return result


def _access_log_line(template: dict[str, Any], route: str, status: int) -> dict[str, str]:
    """The access log line API Gateway writes for a request, from the template's own format."""
    log_format = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    values = {"$context.requestId": "Id=", "$context.requestTimeEpoch": "1767225600000",
              "$context.identity.sourceIp": "64.38.212.10", "$context.routeKey": route,
              "$context.status": str(status), "$context.responseLatency": "12",
              "$context.integrationErrorMessage": "-"}
    for variable, value in sorted(values.items(), key=lambda item: -len(item[0])):
        log_format = log_format.replace(variable, value)
    return json.loads(log_format)


def test_any_429_on_a_route_ccbill_calls_is_counted(template: dict[str, Any], routes: dict[str, str]) -> None:
    resources = template["Resources"]
    metric_filter = resources["CCBillRequestsThrottledMetricFilter"]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "HttpApiAccessLogGroup"}
    (transformation,) = metric_filter["MetricTransformations"]
    assert (transformation["MetricNamespace"], transformation["MetricName"]) == ("Billops", "CCBillRequestsThrottled")
    pattern = metric_filter["FilterPattern"]
    ccbill = {WEBHOOK_ROUTE, POSTBACK_ROUTE}
    for route in routes:
        assert _filter_matches(pattern, _access_log_line(template, route, 429)) is (route in ccbill), route
        assert not _filter_matches(pattern, _access_log_line(template, route, 200)), route
        assert not _filter_matches(pattern, _access_log_line(template, route, 403)), route
    # Throttled before a route was matched (the account's limit): counted too, it may be CCBill's.
    assert _filter_matches(pattern, _access_log_line(template, "-", 429))
    # The same reading of the syntax on the filter that counts accepted webhooks.
    accepted = resources["WebhooksAcceptedMetricFilter"]["Properties"]["FilterPattern"]
    assert _filter_matches(accepted, _access_log_line(template, WEBHOOK_ROUTE, 200))
    assert not _filter_matches(accepted, _access_log_line(template, WEBHOOK_ROUTE, 429))


def test_a_single_429_to_ccbill_raises_the_alarm() -> None:
    nested = load_yaml(ROOT / "templates/monitoring.yaml")["Resources"]
    alarm = nested["CCBillRequestsThrottledAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Billops", "CCBillRequestsThrottled")
    assert "Dimensions" not in alarm  # the metric filter publishes it without any
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum", 60, 1, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"  # no 429, no data point
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert "docs/scale.md" in alarm["AlarmDescription"]
