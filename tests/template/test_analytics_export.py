"""The optional analytics export (templates/analytics-export.yaml, AnalyticsExport=true): off by default, valid and
linted with it on and off, encrypted and private, least privilege - and its Athena named queries run, as written
in the template, by DuckDB on the Parquet layout Firehose writes (events/day=YYYY-MM-DD/*.parquet, the Glue table's
columns), over DeliveryCounted events made by billops.reports itself, delivered twice as the bus may."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from billops_local.template_resources import load_template, load_yaml

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
PARENT = ROOT / "template.yaml"
EXPORT = ROOT / "templates" / "analytics-export.yaml"
VENV_BIN = Path(sys.executable).parent
DATABASE, TABLE = "billops_test_analytics", "domain_events"


@pytest.fixture(scope="module")
def export() -> dict[str, Any]:
    return load_yaml(EXPORT)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]


# ----------------------------------------------------------------------------------------------------------------
# The parent template: a parameter, off by default, a nested application when on
# ----------------------------------------------------------------------------------------------------------------


def test_the_export_is_off_by_default_and_a_nested_application_when_on():
    parent = load_yaml(PARENT)
    parameter = parent["Parameters"]["AnalyticsExport"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("false", ["true", "false"])
    assert parent["Conditions"]["HasAnalyticsExport"] == {"Fn::Equals": [{"Ref": "AnalyticsExport"}, "true"]}
    stack = parent["Resources"]["AnalyticsExportStack"]
    assert (stack["Type"], stack["Condition"]) == ("AWS::Serverless::Application", "HasAnalyticsExport")
    assert (ROOT / stack["Properties"]["Location"]) == EXPORT
    assert set(stack["Properties"]["Parameters"]) == {"ParentStackName", "EventBusName"}
    variables = parent["Resources"]["SubscriptionProjectorFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["BILLOPS_REPORT_FACT_EVENTS"] == {"Fn::If": ["HasAnalyticsExport", "true", "false"]}
    for output in ("AnalyticsBucketName", "AnalyticsWorkGroupName"):
        assert parent["Outputs"][output]["Condition"] == "HasAnalyticsExport"


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_the_template_resolves_with_the_export_on_and_off(enabled, monkeypatch):
    """The local stack reads the template either way (it has no Firehose: the nested stack is AWS only), and SAM's
    transform makes CloudFormation of it either way."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = load_template(PARENT, parameter_overrides={"AnalyticsExport": enabled})
    variables = template.functions["SubscriptionProjectorFunction"].environment
    assert template.resolver.resolve(variables["BILLOPS_REPORT_FACT_EVENTS"]) == enabled
    assert template.resolver.condition("HasAnalyticsExport") is (enabled == "true")
    document = load_yaml(PARENT)
    for resource in document["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if isinstance((resource.get("Properties") or {}).get(key), str):
                resource["Properties"][key] = "s3://bucket/key"
    transformed = Translator(managed_policy_map={}, sam_parser=Parser()).translate(
        sam_template=document, parameter_values={"AnalyticsExport": enabled})
    nested = transformed["Resources"]["AnalyticsExportStack"]
    assert (nested["Type"], nested["Condition"]) == ("AWS::CloudFormation::Stack", "HasAnalyticsExport")


def test_sam_validate_lint_and_cfn_lint_pass_on_the_export_template():
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0",
           "HOME": str(Path.home())}
    lint = subprocess.run([str(VENV_BIN / "cfn-lint"), str(EXPORT)], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    validate = subprocess.run([str(VENV_BIN / "sam"), "validate", "--lint", "--template-file", str(EXPORT)],
                              capture_output=True, text=True, timeout=300, env=env, check=False)
    assert validate.returncode == 0 and "is a valid SAM Template" in validate.stdout + validate.stderr, \
        validate.stdout + validate.stderr


# ----------------------------------------------------------------------------------------------------------------
# Rules of the export template
# ----------------------------------------------------------------------------------------------------------------


def test_everything_the_export_keeps_is_encrypted_with_its_own_rotating_key_and_never_public(export):
    resources = export["Resources"]
    key = {"Fn::GetAtt": ["AnalyticsKey", "Arn"]}
    assert resources["AnalyticsKey"]["Properties"]["EnableKeyRotation"] is True
    bucket = resources["AnalyticsBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (deny,) = _statements(resources["AnalyticsBucketPolicy"]["Properties"]["PolicyDocument"])
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    stream = resources["DeliveryStream"]["Properties"]
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key}
    destination = stream["ExtendedS3DestinationConfiguration"]
    assert destination["EncryptionConfiguration"] == {"KMSEncryptionConfig": {"AWSKMSKeyARN": key}}
    assert destination["Prefix"] == "events/day=!{timestamp:yyyy-MM-dd}/"
    conversion = destination["DataFormatConversionConfiguration"]
    assert conversion["OutputFormatConfiguration"]["Serializer"] == {"ParquetSerDe": {"Compression": "SNAPPY"}}
    assert conversion["SchemaConfiguration"]["TableName"] == {"Ref": "DomainEventsTable"}
    workgroup = resources["AnalyticsWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["EnforceWorkGroupConfiguration"] is True
    assert workgroup["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS",
                                                                           "KmsKey": key}
    assert resources["DeliveryLogGroup"]["Properties"]["KmsKeyId"] == key


def test_the_roles_may_only_do_what_the_export_does_on_named_resources(export):
    resources = export["Resources"]
    for name in ("FirehoseRole", "EventsToFirehoseRole"):
        role = resources[name]["Properties"]
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
        for policy in role["Policies"]:
            for statement in _statements(policy["PolicyDocument"]):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), (name, actions)
                assert "*" not in json.dumps(statement["Resource"]).replace("/*", ""), (name, statement)
    rule = resources["ExportRule"]["Properties"]
    assert rule["EventPattern"] == {"source": ["billops"]} and rule["EventBusName"] == {"Ref": "EventBusName"}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["DeliveryStream", "Arn"]}


def _detail_fields(export) -> set[str]:
    columns = export["Resources"]["DomainEventsTable"]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
    detail = next(column["Type"] for column in columns if column["Name"] == "detail")
    return {field.split(":")[0] for field in detail[len("struct<"):-1].split(",")}


def test_the_table_holds_every_field_of_a_delivery_counted_event(export):
    from billops.reports.delivery_facts import delivery_counted_event
    from billops.reports.delivery_figures import contribution

    sale = contribution({"pk": "NewSaleSuccess#txn#1", "record_type": "delivery", "event_type": "NewSaleSuccess",
                         "occurred_at": "2026-11-01T00:00:00Z", "received_at": "2026-11-01T00:00:01Z",
                         "client_accnum": "900100", "client_subacc": "0000", "subscription_id": "1",
                         "fields": {"accountingInitialPrice": "1.00", "accountingCurrencyCode": "840",
                                    "initialPeriod": "3", "recurringPeriod": "30", "rebills": "99",
                                    "accountingRecurringPrice": "9.00", "cardType": "VISA"}}, "USD", {})
    decline = contribution({"pk": "NewSaleFailure#txn#2", "record_type": "delivery", "event_type": "NewSaleFailure",
                            "occurred_at": "2026-11-01T00:00:00Z", "client_accnum": "900100",
                            "client_subacc": "0000", "fields": {"failureCode": "BE-31"}}, "USD", {})
    fields = set(delivery_counted_event(sale).detail) | set(delivery_counted_event(decline).detail)
    assert fields <= _detail_fields(export)
    table = export["Resources"]["DomainEventsTable"]["Properties"]["TableInput"]
    assert table["PartitionKeys"] == [{"Name": "day", "Type": "string"}]
    assert table["Parameters"]["projection.enabled"] == "true"


# ----------------------------------------------------------------------------------------------------------------
# The named queries, run by DuckDB on the same Parquet layout
# ----------------------------------------------------------------------------------------------------------------

SALE = {"accountingCurrencyCode": "840", "recurringPeriod": "30", "rebills": "99"}
# (delivery key, event type, day, subscription, fields): three months, five subscriptions.
DELIVERIES = [
    ("NewSaleSuccess#txn#A", "NewSaleSuccess", "2026-09-10", "A",
     {**SALE, "accountingInitialPrice": "19.95", "accountingRecurringPrice": "19.95", "initialPeriod": "30",
      "nextRenewalDate": "2026-10-10", "cardType": "VISA"}),
    ("NewSaleSuccess#txn#B", "NewSaleSuccess", "2026-09-20", "B",
     {**SALE, "accountingInitialPrice": "29.95", "accountingRecurringPrice": "29.95", "initialPeriod": "30",
      "nextRenewalDate": "2026-10-20", "cardType": "MASTERCARD"}),
    ("Chargeback#txn#B1", "Chargeback", "2026-10-05", "B",
     {"accountingAmount": "29.95", "accountingCurrencyCode": "840", "cardType": "MASTERCARD"}),
    ("NewSaleSuccess#txn#C", "NewSaleSuccess", "2026-10-03", "C",
     {**SALE, "accountingInitialPrice": "9.99", "accountingRecurringPrice": "9.99", "initialPeriod": "7",
      "recurringPeriod": "7", "nextRenewalDate": "2026-10-10", "cardType": "VISA"}),
    ("RenewalSuccess#txn#A1", "RenewalSuccess", "2026-10-10", "A",
     {"accountingAmount": "19.95", "accountingCurrencyCode": "840", "renewalDate": "2026-10-10",
      "nextRenewalDate": "2026-11-09", "cardType": "VISA"}),
    ("Expiration#sha256#C", "Expiration", "2026-10-10", "C", {}),
    ("NewSaleSuccess#txn#D", "NewSaleSuccess", "2026-10-15", "D",
     {"accountingInitialPrice": "14.95", "accountingCurrencyCode": "840", "initialPeriod": "30",
      "recurringPeriod": "0", "rebills": "0", "cardType": "VISA"}),
    ("Expiration#sha256#B", "Expiration", "2026-10-20", "B", {}),
    ("NewSaleSuccess#txn#E", "NewSaleSuccess", "2026-11-01", "E",
     {**SALE, "accountingInitialPrice": "24.95", "accountingRecurringPrice": "24.95", "initialPeriod": "30",
      "nextRenewalDate": "2026-12-01", "cardType": "MASTERCARD"}),
    ("RenewalSuccess#txn#A2", "RenewalSuccess", "2026-11-09", "A",
     {"accountingAmount": "19.95", "accountingCurrencyCode": "840", "renewalDate": "2026-11-09",
      "nextRenewalDate": "2026-12-09", "cardType": "VISA"}),
    ("Expiration#sha256#D", "Expiration", "2026-11-14", "D", {}),
    ("Chargeback#txn#E1", "Chargeback", "2026-11-20", "E",
     {"accountingAmount": "24.95", "accountingCurrencyCode": "840", "cardType": "MASTERCARD"}),
]


def _items() -> list[dict[str, Any]]:
    return [{"pk": key, "record_type": "delivery", "event_type": event_type, "occurred_at": f"{day}T10:00:00Z",
             "received_at": f"{day}T10:00:01.000000Z", "client_accnum": "900100", "client_subacc": "0000",
             "subscription_id": subscription, "fields": fields}
            for key, event_type, day, subscription, fields in DELIVERIES]


def _firehose_records() -> list[dict[str, Any]]:
    """What the bus hands Firehose, each DeliveryCounted event twice (the second a day later), with other domain
    events in between - as the OpenX JSON SerDe maps them (detail-type -> detail_type)."""
    from billops.domain_events.publishing import RecordingPublisher
    from billops.reports.delivery_facts import delivery_counted_event
    from billops.reports.delivery_figures import contribution

    publisher = RecordingPublisher()
    publisher.publish([delivery_counted_event(contribution(item, "USD", {})) for item in _items()])
    records = []
    for copy in (0, 1):
        for number, event in enumerate(publisher.events):
            arrival = date.fromordinal(date.fromisoformat(event.detail["day"]).toordinal() + copy).isoformat()
            records.append({"id": f"{copy}-{number}", "detail_type": event.detail_type, "source": "billops",
                            "time": f"{arrival}T10:00:05Z", "detail": event.detail, "day": arrival})
    records.append({"id": "other-1", "detail_type": "SubscriptionChanged", "source": "billops",
                    "time": "2026-11-01T10:00:06Z", "day": "2026-11-01",
                    "detail": {"event_id": "E:SubscriptionChanged:1", "subscription_id": "E", "status": "active"}})
    records.append({"id": "other-2", "detail_type": "ChargebackRatioBreached", "source": "billops",
                    "time": "2026-11-20T10:00:06Z", "day": "2026-11-20",
                    "detail": {"event_id": "x", "card_type": "MASTERCARD", "month": "2026-11", "level": "breach",
                               "ratio": "1.0", "chargebacks": 1, "transactions": 1}})
    return records


def _duckdb_type(glue: str) -> str:
    """A Glue (Hive) column type as DuckDB writes it to Parquet."""
    glue = glue.strip()
    if glue.startswith("struct<"):
        fields, depth, current = [], 0, ""
        for char in glue[len("struct<"):-1]:
            depth += char == "<"
            depth -= char == ">"
            if char == "," and depth == 0:
                fields.append(current)
                current = ""
            else:
                current += char
        fields.append(current)
        return "STRUCT(" + ", ".join(f'"{name}" {_duckdb_type(kind)}'
                                     for name, _, kind in (field.partition(":") for field in fields)) + ")"
    if glue.startswith("array<"):
        return _duckdb_type(glue[len("array<"):-1]) + "[]"
    return {"string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "double": "DOUBLE",
            "boolean": "BOOLEAN"}[glue]


@pytest.fixture(scope="module")
def athena_like(export, tmp_path_factory):
    """DuckDB over events/day=YYYY-MM-DD/*.parquet with the Glue table's columns, as the view Athena would see."""
    import duckdb

    work = tmp_path_factory.mktemp("analytics")
    columns = export["Resources"]["DomainEventsTable"]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
    types = {column["Name"]: _duckdb_type(column["Type"]) for column in columns}
    lines = work / "records.json"
    lines.write_text("\n".join(json.dumps(record) for record in _firehose_records()), encoding="utf-8")
    connection = duckdb.connect()
    spec = ", ".join(f"'{name}': '{kind}'" for name, kind in {**types, "day": "VARCHAR"}.items())
    connection.execute(f"COPY (SELECT * FROM read_json('{lines}', format = 'newline_delimited', "
                       f"columns = {{{spec}}})) TO '{work / 'events'}' (FORMAT PARQUET, PARTITION_BY (day))")
    assert sorted(path.name for path in (work / "events").iterdir())[:2] == ["day=2026-09-10", "day=2026-09-11"]
    connection.execute(f'CREATE SCHEMA "{DATABASE}"')
    connection.execute(f'CREATE VIEW "{DATABASE}"."{TABLE}" AS SELECT * FROM read_parquet('
                       f"'{work / 'events'}/*/*.parquet', hive_partitioning = true, hive_types = {{'day': VARCHAR}})")
    return connection


def _query(export, athena_like, name: str) -> list[tuple]:
    text = export["Resources"][name]["Properties"]["QueryString"]["Fn::Sub"]
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"AnalyticsDatabase", "DomainEventsTable"}
    sql = text.replace("${AnalyticsDatabase}", DATABASE).replace("${DomainEventsTable}", TABLE)
    return athena_like.execute(sql).fetchall()


def test_mrr_by_month_matches_the_definition_and_the_reports_own_figures(export, athena_like):
    rows = _query(export, athena_like, "MrrByMonthQuery")
    # 09-30: A and B; 10-31: A's renewal and D (non-recurring: no MRR); 11-30: A's second renewal and E.
    assert rows == [("2026-09", 2, Decimal("49.90")), ("2026-10", 2, Decimal("19.95")),
                    ("2026-11", 2, Decimal("44.90"))]
    # The same deliveries counted into the reports table's figures give the same month ends.
    from billops.reports.report_reading import ReportData, add_into
    from billops.reports.delivery_figures import contribution

    data = ReportData(date(2026, 9, 1), date(2026, 11, 30))
    for item in _items():
        for day, counters in contribution(item, "USD", {}).by_day().items():
            add_into(data.history.setdefault(day, {}), counters)
    ends = {day: (int(active), mrr) for day, _, active, mrr in data.days()}
    assert [ends["2026-09-30"], ends["2026-10-31"], ends["2026-11-30"]] == [(count, mrr) for _, count, mrr in rows]


def test_churn_by_cohort(export, athena_like):
    assert _query(export, athena_like, "ChurnByCohortQuery") == [
        ("2026-09", 1, 1, 2, 0.5),  # B, sold in September, expired in October
        ("2026-10", 0, 1, 2, 0.5),  # C, the weekly plan, expired the month it was sold
        ("2026-10", 1, 1, 2, 0.5),  # D, non-recurring, expired in November
    ]


def test_chargeback_ratio_by_month_and_card_type(export, athena_like):
    assert _query(export, athena_like, "ChargebackRatioQuery") == [
        ("2026-09", "MASTERCARD", 0, 1, 0.0), ("2026-09", "VISA", 0, 1, 0.0),
        ("2026-10", "MASTERCARD", 1, 0, None),  # B's chargeback; no Mastercard sale that month
        ("2026-10", "VISA", 0, 3, 0.0),
        ("2026-11", "MASTERCARD", 1, 1, 1.0), ("2026-11", "VISA", 0, 1, 0.0),
    ]
