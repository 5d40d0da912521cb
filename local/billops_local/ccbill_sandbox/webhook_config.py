"""How the sandbox delivers webhooks, as a merchant sets it in CCBill's Admin Portal (and a little more).

CCBill lets a merchant choose, per webhook URL, the body format (URL Encoded or JSON) and, per event type, the
version (ccbill-facts.md 1.1). The sandbox adds two choices of its own for tests: ``any`` (a format or version drawn
at random for each delivery) and the ``variation`` (``off``: the documented shape with plain values; ``varied``:
the realistic differences real deliveries show, see webhook_generator.py). Everything random is drawn from ``seed``,
printed when the sandbox starts, so a run can be replayed.

Settings (environment), each also changeable at run time with ``POST /sandbox/config``:

    BILLOPS_SANDBOX_WEBHOOK_FORMAT     json (default) | urlencoded | any
    BILLOPS_SANDBOX_WEBHOOK_VERSIONS   newest (default) | any | a list like "NewSaleSuccess=3,RenewalSuccess=5,*=any"
                                       ("*" = every type not named; a value is a version number, newest or any)
    BILLOPS_SANDBOX_WEBHOOK_VARIATION  off (default) | varied
    BILLOPS_SANDBOX_SEED               an integer; default: a random one (printed)
    BILLOPS_SANDBOX_FAILURE_ORIGINALS  sent (default) | omitted: whether UpgradeFailure, UpSaleFailure and
                                       CrossSaleFailure carry originalSubscriptionId/-ClientAccnum/-ClientSubacc.
                                       The documents do not list them (docs/ccbill-assumptions.md); ``omitted``
                                       is the account that proves the assumption wrong.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from billops_local.ccbill_sandbox.webhook_reference import FORMATS, FieldTable, field_table

FORMAT_CHOICES = (*FORMATS, "any")
VARIATIONS = ("off", "varied")
FAILURE_ORIGINALS = ("sent", "omitted")
FAILURE_EVENTS = frozenset({"UpgradeFailure", "UpSaleFailure", "CrossSaleFailure"})
ORIGINAL_FIELDS = ("originalSubscriptionId", "originalClientAccnum", "originalClientSubacc")
NEWEST = "newest"
ANY = "any"
ALL_TYPES = "*"
MAX_SEED = 2**63 - 1


class WebhookConfigError(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(f"{param}: {message}")
        self.message = message
        self.param = param


VersionChoice = int | str  # a version number, "newest" or "any"


@dataclass(frozen=True)
class WebhookConfig:
    seed: int
    format: str = "json"
    variation: str = "off"
    versions: dict[str, VersionChoice] = field(default_factory=lambda: {ALL_TYPES: NEWEST})
    failure_originals: str = "sent"

    def omits(self, event_type: str, name: str) -> bool:
        """Whether a delivery of ``event_type`` leaves ``name`` out whatever the table says (failure_originals)."""
        return self.failure_originals == "omitted" and event_type in FAILURE_EVENTS and name in ORIGINAL_FIELDS

    def version_choice(self, event_type: str) -> VersionChoice:
        return self.versions.get(event_type, self.versions.get(ALL_TYPES, NEWEST))

    @property
    def varied(self) -> bool:
        return self.variation == "varied"

    def as_dict(self, table: FieldTable | None = None) -> dict[str, Any]:
        table = table or field_table()
        return {
            "format": self.format,
            "variation": self.variation,
            "failure_originals": self.failure_originals,
            "seed": self.seed,
            "versions": {event_type: self.version_choice(event_type) for event_type in table.event_types},
            "available_versions": {event_type: list(spec.version_numbers) for event_type, spec in table.events.items()},
            "url_encoded_only": {event_type: [v.version for v in spec.versions if "json" not in v.formats]
                                 for event_type, spec in table.events.items()
                                 if any("json" not in v.formats for v in spec.versions)},
        }

    def describe(self) -> str:
        versions = ", ".join(f"{name}={choice}" for name, choice in self.versions.items())
        return (f"webhooks {self.format}, versions {versions}, variation {self.variation}, "
                f"failure originals {self.failure_originals}, seed {self.seed} "
                f"(replay: BILLOPS_SANDBOX_SEED={self.seed})")

    def updated(self, changes: Mapping[str, Any], table: FieldTable | None = None) -> WebhookConfig:
        """A copy with ``changes`` applied (the body of ``POST /sandbox/config``); raises WebhookConfigError."""
        table = table or field_table()
        unknown = sorted(set(changes) - {"format", "variation", "versions", "seed", "failure_originals"})
        if unknown:
            raise WebhookConfigError("unknown setting; use format, versions, variation, seed or failure_originals",
                                     unknown[0])
        config = self
        if "format" in changes:
            config = replace(config, format=_choice(changes["format"], FORMAT_CHOICES, "format"))
        if "variation" in changes:
            config = replace(config, variation=_choice(changes["variation"], VARIATIONS, "variation"))
        if "seed" in changes:
            config = replace(config, seed=parse_seed(changes["seed"], "seed"))
        if "failure_originals" in changes:
            config = replace(config, failure_originals=_choice(changes["failure_originals"], FAILURE_ORIGINALS,
                                                               "failure_originals"))
        if "versions" in changes:
            config = replace(config, versions=_merge_versions(config.versions, changes["versions"], table))
        config.check(table)
        return config

    def check(self, table: FieldTable | None = None) -> None:
        """A fixed version a fixed format cannot carry is refused (UpSaleSuccess v1 and v2 are URL Encoded only)."""
        table = table or field_table()
        if self.format == ANY:
            return
        for event_type, spec in table.events.items():
            choice = self.version_choice(event_type)
            if isinstance(choice, int) and self.format not in spec.formats(choice):
                raise WebhookConfigError(
                    f"{event_type} version {choice} is delivered {' or '.join(spec.formats(choice))} only "
                    f"(the CCBill documents' 'Supported Formats'), not {self.format}", f"versions.{event_type}")

    @classmethod
    def from_env(cls, env: Mapping[str, str], table: FieldTable | None = None) -> WebhookConfig:
        table = table or field_table()
        seed_text = (env.get("BILLOPS_SANDBOX_SEED") or "").strip()
        config = cls(seed=parse_seed(seed_text, "BILLOPS_SANDBOX_SEED") if seed_text else new_seed())
        changes: dict[str, Any] = {}
        for name, key in (("BILLOPS_SANDBOX_WEBHOOK_FORMAT", "format"),
                          ("BILLOPS_SANDBOX_WEBHOOK_VARIATION", "variation"),
                          ("BILLOPS_SANDBOX_FAILURE_ORIGINALS", "failure_originals")):
            text = (env.get(name) or "").strip().lower()
            if text:
                changes[key] = text
        versions_text = (env.get("BILLOPS_SANDBOX_WEBHOOK_VERSIONS") or "").strip()
        if versions_text:
            changes["versions"] = parse_versions_setting(versions_text)
        try:
            return config.updated(changes, table)
        except WebhookConfigError as error:
            settings = {"format": "BILLOPS_SANDBOX_WEBHOOK_FORMAT", "variation": "BILLOPS_SANDBOX_WEBHOOK_VARIATION",
                        "failure_originals": "BILLOPS_SANDBOX_FAILURE_ORIGINALS"}
            setting = settings.get(error.param, "BILLOPS_SANDBOX_WEBHOOK_VERSIONS")
            raise WebhookConfigError(error.message, setting) from None


def new_seed() -> int:
    return secrets.randbelow(10**9)


def parse_seed(value: Any, param: str) -> int:
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) > MAX_SEED:
        raise WebhookConfigError("must be a whole number of at least 0", param)
    return int(text)


def parse_versions_setting(text: str) -> dict[str, str]:
    """``newest``, ``any``, or ``Type=choice,...`` (``*`` for every other type) into a mapping."""
    text = text.strip()
    if "=" not in text:
        return {ALL_TYPES: text}
    result: dict[str, str] = {}
    for part in text.split(","):
        name, separator, value = part.partition("=")
        if not separator or not name.strip():
            raise WebhookConfigError(f"{part.strip()!r} is not Type=version", "versions")
        result[name.strip()] = value.strip()
    return result


def _choice(value: Any, choices: tuple[str, ...], param: str) -> str:
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text not in choices:
        raise WebhookConfigError(f"must be one of {', '.join(choices)}", param)
    return text


def _merge_versions(current: Mapping[str, VersionChoice], changes: Any,
                    table: FieldTable) -> dict[str, VersionChoice]:
    if isinstance(changes, str):
        changes = {ALL_TYPES: changes}
    if not isinstance(changes, Mapping):
        raise WebhookConfigError("must be newest, any, or an object of event type -> version", "versions")
    merged = dict(current)
    if ALL_TYPES in changes:  # a new default replaces every earlier per-type choice not named again
        merged = {}
    for event_type, value in changes.items():
        param = f"versions.{event_type}"
        if event_type != ALL_TYPES and event_type not in table.events:
            raise WebhookConfigError(f"unknown event type; known: {', '.join(table.event_types)}", param)
        merged[event_type] = _version_choice(value, None if event_type == ALL_TYPES else table.event(event_type),
                                             param)
    merged.setdefault(ALL_TYPES, NEWEST)
    return merged


def _version_choice(value: Any, spec: Any, param: str) -> VersionChoice:
    if isinstance(value, str) and value.strip().lower() in (NEWEST, ANY):
        return value.strip().lower()
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise WebhookConfigError("must be a version number, newest or any", param)
    if spec is None:
        raise WebhookConfigError("a version number needs an event type (use newest or any for *)", param)
    number = int(text)
    if number not in spec.version_numbers:
        raise WebhookConfigError(f"{spec.event_type} has versions {spec.version_numbers[0]} to {spec.newest}", param)
    return number
