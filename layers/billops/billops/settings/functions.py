"""Each function's settings: the groups of settings its code reads, checked together at its cold start.

``load(<Function>Settings)`` raises one SettingsError naming every wrong variable, so a function refuses to start
rather than fail on its first request (or worse, run with a setting nobody chose). Each model is also every group it
is made of (``isinstance(worker_settings, CCBillClientSettings)``), so the composition root hands the one object to
every part (billops.composition).
"""

from __future__ import annotations

from billops.settings.ccbill import CCBillSettings
from billops.settings.merchant_api import ApiSettings
from billops.settings.operations import OperationSettings
from billops.settings.privacy import PersonalDataSettings
from billops.settings.reports import ReportSettings
from billops.settings.upgrade_links import UpgradeLinkSettings
from billops.settings.webhooks import PassThroughSettings, Settings, TablesSettings, WebhookSourceSettings


class WebhookReceiverSettings(Settings, PersonalDataSettings):
    """POST /webhooks/ccbill."""


class SubscriptionProjectorSettings(TablesSettings, PassThroughSettings, OperationSettings, ReportSettings):
    """The events stream -> subscription records; upgrade settlement; SubscriptionChanged; the daily figures."""


class OperationWorkerSettings(TablesSettings, OperationSettings, CCBillSettings):
    """OperationsQueue -> CCBill."""


class OperationSchedulerSettings(TablesSettings, OperationSettings):
    """Due operations back on the queue."""


class ReconciliationSettings(TablesSettings, OperationSettings, CCBillSettings):
    """Settle what is unknown or stuck; operator commands (``billops ccbill check``)."""


class UpgradePostbackSettings(TablesSettings, WebhookSourceSettings, OperationSettings):
    """CCBill's upgrade Approval / Denial posts."""


class MerchantApiSettings(TablesSettings, PassThroughSettings, ApiSettings, OperationSettings, CCBillSettings,
                          UpgradeLinkSettings, PersonalDataSettings, ReportSettings):
    """/v1: reads, operation requests (validated as CCBill would), upgrade links, personal data for ``pii`` keys,
    the daily figures."""


class UpgradePageSettings(TablesSettings, OperationSettings, CCBillSettings, UpgradeLinkSettings):
    """GET /upgrade/{token}."""


FUNCTION_SETTINGS = {
    "WebhookReceiverFunction": WebhookReceiverSettings,
    "SubscriptionProjectorFunction": SubscriptionProjectorSettings,
    "OperationWorkerFunction": OperationWorkerSettings,
    "OperationSchedulerFunction": OperationSchedulerSettings,
    "ReconciliationFunction": ReconciliationSettings,
    "UpgradePostbackFunction": UpgradePostbackSettings,
    "MerchantApiFunction": MerchantApiSettings,
    "UpgradePageFunction": UpgradePageSettings,
}
"""template.yaml's logical ID -> the settings its handler reads (the template test and the local stack use it)."""

__all__ = ["FUNCTION_SETTINGS", "MerchantApiSettings", "OperationSchedulerSettings", "OperationWorkerSettings",
           "ReconciliationSettings", "SubscriptionProjectorSettings", "UpgradePageSettings", "UpgradePostbackSettings",
           "WebhookReceiverSettings"]
