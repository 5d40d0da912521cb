"""Every BILLOPS_* variable a function reads, and where a deployed stack's value comes from.

The one list of names: the template test checks template.yaml against it (tests/template/test_settings_registry.py),
the local stack refuses a function whose environment does not satisfy its settings model, and the CLI's ``--stack``
target finds a stack's resources through it (billops_cli.targets). A variable comes from:

* ``resource``: ``!Ref <LogicalId>`` (a table's name, a queue's URL, a secret's ARN, a key's ID, a bus's name);
  ``output`` is the stack output that holds the same value, when there is one;
* ``parameter``: ``!Ref <Parameter>``, the value the stack was deployed with (``sam deploy --parameter-overrides``);
* ``template``: a value the template writes itself (``template_value``, or ``sub`` for an ``!Sub``);
* ``default``: nothing in the template: the setting's default, unless an operator sets it on the function (the
  README's configuration table and docs/*.md say which are meant to be set, and why);
* ``local``: only the local stack or a developer sets it (ports, fixed development values): with
  ``BILLOPS_ENV`` other than ``local`` it changes nothing, or is refused.

Which function reads which variable is its settings model's business (billops.settings.functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

Source = Literal["resource", "parameter", "template", "default", "local"]


@dataclass(frozen=True)
class Variable:
    name: str
    source: Source
    origin: str | None = None
    """The resource's logical ID, the parameter's name, or the template's value (``sub``: an ``!Sub`` string)."""
    output: str | None = None
    """The stack output holding a resource's name, URL or ARN (the CLI's ``--stack`` reads it)."""
    secret: bool = False
    """Never repeated in an error message."""
    sub: bool = False

    @property
    def resource(self) -> str | None:
        return self.origin if self.source == "resource" else None

    @property
    def parameter(self) -> str | None:
        return self.origin if self.source == "parameter" else None

    def template_value(self) -> object:
        """What template.yaml writes for this variable (CloudFormation's long form), or None."""
        if self.source in ("resource", "parameter"):
            return {"Ref": self.origin}
        if self.source == "template":
            return {"Fn::Sub": self.origin} if self.sub else self.origin
        return None


def _resource(name: str, logical_id: str, output: str | None = None) -> Variable:
    return Variable(name, "resource", logical_id, output)


def _parameter(name: str, parameter: str) -> Variable:
    return Variable(name, "parameter", parameter)


def _default(name: str, *, secret: bool = False) -> Variable:
    return Variable(name, "default", secret=secret)


def _local(name: str, *, secret: bool = False) -> Variable:
    return Variable(name, "local", secret=secret)


VARIABLES: tuple[Variable, ...] = (
    # the deployment
    _parameter("BILLOPS_ENV", "Environment"),
    _local("BILLOPS_LOCAL_ALLOW_LOOPBACK"),
    _local("BILLOPS_SANDBOX_PORT"),
    _local("BILLOPS_API_PORT"),
    # tables, queues, bus, keys, secrets
    _resource("BILLOPS_EVENTS_TABLE", "EventsTable", "EventsTableName"),
    _resource("BILLOPS_SUBSCRIPTIONS_TABLE", "SubscriptionsTable", "SubscriptionsTableName"),
    _resource("BILLOPS_DELIVERY_LOG_TABLE", "DeliveryLogTable"),
    _resource("BILLOPS_SUBSCRIPTION_HISTORY_TABLE", "SubscriptionHistoryTable", "SubscriptionHistoryTableName"),
    _resource("BILLOPS_OPERATIONS_TABLE", "OperationsTable", "OperationsTableName"),
    _resource("BILLOPS_API_KEYS_TABLE", "ApiKeysTable", "ApiKeysTableName"),
    _resource("BILLOPS_OPERATIONS_QUEUE_URL", "OperationsQueue", "OperationsQueueUrl"),
    _resource("BILLOPS_OPERATIONS_DLQ_URL", "OperationsDeadLetterQueue", "OperationsDeadLetterQueueUrl"),
    _resource("BILLOPS_EVENT_BUS_NAME", "DomainEventBus", "DomainEventBusName"),
    _resource("BILLOPS_PII_KEY_ID", "BillopsKey"),
    _resource("BILLOPS_WEBHOOK_TOKEN_SECRET_ARN", "WebhookTokenSecret", "WebhookTokenSecretArn"),
    _resource("BILLOPS_DELIVERY_KEY_SECRET_ARN", "DeliveryKeySecret", "DeliveryKeySecretArn"),
    _resource("BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN", "CCBillCredentialsSecret", "CCBillCredentialsSecretArn"),
    _resource("BILLOPS_UPGRADE_LINK_SECRET_ARN", "UpgradeLinkSigningSecret", "UpgradeLinkSigningSecretArn"),
    Variable("BILLOPS_PUBLIC_BASE_URL_PARAMETER", "template", "/${AWS::StackName}/public-base-url",
             "PublicBaseUrlParameterName", sub=True),
    # webhook intake (and CCBill's postbacks, authenticated alike)
    _local("BILLOPS_WEBHOOK_TOKEN", secret=True),
    _parameter("BILLOPS_ALLOWED_CIDRS", "AllowedCidrs"),
    _parameter("BILLOPS_CLIENT_ACCNUM", "ClientAccnum"),
    _parameter("BILLOPS_CLIENT_SUBACCS", "ClientSubaccs"),
    _parameter("BILLOPS_MAX_BODY_BYTES", "MaxBodyBytes"),
    _parameter("BILLOPS_CCBILL_TIMEZONE", "CCBillTimezone"),
    _parameter("BILLOPS_CHECK_LEGACY_DELIVERY_KEYS", "CheckLegacyDeliveryKeys"),
    _default("BILLOPS_DELIVERY_KEY_SECRET", secret=True),
    _parameter("BILLOPS_PASSTHROUGH_CLEAR_FIELDS", "PassthroughClearFields"),
    _parameter("BILLOPS_CUSTOMER_REFERENCE_FIELD", "CustomerReferenceField"),
    # personal data
    _default("BILLOPS_PII_DATA_KEY_MAX_AGE"),
    _default("BILLOPS_PII_DATA_KEY_MAX_MESSAGES"),
    # CCBill
    _default("BILLOPS_CCBILL_SMS_URL"),
    _default("BILLOPS_CCBILL_BILLING_API_URL"),
    _default("BILLOPS_CCBILL_UPGRADE_URL"),
    _default("BILLOPS_CCBILL_CONNECT_TIMEOUT"),
    _default("BILLOPS_CCBILL_READ_TIMEOUT"),
    _default("BILLOPS_CCBILL_RESPONSE_FORMAT"),
    _default("BILLOPS_CCBILL_POOL_SIZE"),
    _default("BILLOPS_CCBILL_STATUS_RETRIES"),
    _default("BILLOPS_CCBILL_CREDENTIALS_MAX_AGE"),
    _parameter("BILLOPS_CCBILL_SUBACCOUNTS", "CCBillSubaccountSettings"),
    _parameter("BILLOPS_UPGRADE_CATALOGUE", "UpgradeCatalogue"),
    _default("BILLOPS_UPGRADE_VARIABLE_SPELLING"),
    _parameter("BILLOPS_CCBILL_BREAKER_THRESHOLD", "CCBillBreakerThreshold"),
    _parameter("BILLOPS_UPGRADE_SECURITY", "UpgradeSecurity"),
    _parameter("BILLOPS_FIXED_EGRESS_IP", "WorkerFixedEgressIp"),
    # the upgrade key and how enc is made
    _parameter("BILLOPS_UPGRADE_KEY_CIPHERTEXT", "UpgradeKeyCiphertext"),
    _default("BILLOPS_UPGRADE_KEY_SECRET_ARN"),
    _default("BILLOPS_UPGRADE_KMS_KEY_ID"),
    _default("BILLOPS_UPGRADE_ENC_PLAINTEXT"),
    _default("BILLOPS_UPGRADE_ENC_KEY_ENCODING"),
    _default("BILLOPS_UPGRADE_ENC_MODE"),
    _default("BILLOPS_UPGRADE_ENC_PADDING"),
    _default("BILLOPS_UPGRADE_ENC_IV"),
    # operations
    _default("BILLOPS_OPERATION_MAX_ATTEMPTS"),
    _default("BILLOPS_OPERATION_RETRY_BASE_SECONDS"),
    _default("BILLOPS_OPERATION_RETRY_CAP_SECONDS"),
    Variable("BILLOPS_OPERATION_LEASE_SECONDS", "template", "180"),
    _parameter("BILLOPS_SETTLE_WINDOW_SECONDS", "SettleWindowSeconds"),
    _default("BILLOPS_UPGRADE_WINDOW_SECONDS"),
    _default("BILLOPS_EVIDENCE_TOLERANCE_SECONDS"),
    _default("BILLOPS_UPGRADE_REPEAT_WINDOW_SECONDS"),
    _default("BILLOPS_SETTLE_BY_FAILURE_WEBHOOKS"),
    _default("BILLOPS_REFRESH_STALE_SECONDS"),
    _default("BILLOPS_RECONCILE_REFRESH_LIMIT"),
    _default("BILLOPS_SCHEDULER_BATCH"),
    _default("BILLOPS_OPERATION_PAUSED_RECHECK_SECONDS"),
    # the merchant API
    _default("BILLOPS_API_KEY_CACHE_SECONDS"),
    _default("BILLOPS_API_AUTH_FAILURE_LIMIT"),
    _default("BILLOPS_API_AUTH_FAILURE_WINDOW_SECONDS"),
    _default("BILLOPS_API_MAX_BODY_BYTES"),
    _default("BILLOPS_API_EVENTS_LOOKBACK_DAYS"),
    # upgrade links and the upgrade page
    _default("BILLOPS_UPGRADE_LINK_SECRET_MAX_AGE"),
    _default("BILLOPS_UPGRADE_LINK_TTL_SECONDS"),
    _default("BILLOPS_PUBLIC_BASE_URL"),
    # the daily figures (billops.reports.report_settings)
    _resource("BILLOPS_REPORTS_TABLE", "ReportsTable", "ReportsTableName"),
    _parameter("BILLOPS_REPORT_CURRENCY", "ReportCurrency"),
    _parameter("BILLOPS_REPORT_EXCHANGE_RATES", "ReportExchangeRates"),
    _parameter("BILLOPS_CHARGEBACK_THRESHOLDS", "ChargebackThresholds"),
    Variable("BILLOPS_REPORT_FACT_EVENTS", "template", "HasAnalyticsExport"),  # !If [HasAnalyticsExport, ...]
    _default("BILLOPS_REPORT_GAUGE_SECONDS"),
)


@cache
def variables() -> dict[str, Variable]:
    return {variable.name: variable for variable in VARIABLES}


@cache
def secret_variables() -> frozenset[str]:
    return frozenset(variable.name for variable in VARIABLES if variable.secret)


def variable_of_resource(logical_id: str) -> Variable | None:
    """The variable through which the functions find the resource ``logical_id`` (None: no function reads it)."""
    return next((variable for variable in VARIABLES if variable.resource == logical_id), None)


def from_template(variable: str) -> bool:
    """Does a deployed stack's template give this variable its value?"""
    entry = variables().get(variable)
    return entry is not None and entry.source in ("resource", "parameter", "template")
