"""Finds secrets and subscribers' personal data in captured logs: the end-to-end suite's session-end check.

Two kinds of needle: exact values a run knows (the webhook token, the DataLink password, every secret in the local
Secrets Manager, the data keys behind the stored ciphertexts, the personal values the samples send) in the forms
they take on the wire (as is, URL-encoded, JSON-escaped, base64/hex for binary keys), and patterns for what a run
generates without telling anyone (API keys ``bo_<env>_...``, upgrade links' tokens, the sandbox consumers'
passwords and e-mail addresses, a full card number). A finding names the file, the line and what leaked - never the value itself, so the
report can be printed in CI without leaking in turn.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from billops.privacy.subscriber_data import is_pass_through

MIN_NEEDLE_LENGTH = 6
"""Shorter values ("US", "IL", "Jane") match innocent text; the patterns and longer values catch a leak anyway."""

BANNER_FIRST_LINE = "billops local stack"
BANNER_LAST_LINE = "billops local stack ready"
"""The local stack's start-up banner: a developer's instructions (the webhook URL with its local token, a sample
curl), printed once on purpose by `make run`; not a log line, so not scanned."""

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bbo_[a-z]+_[0-9A-Za-z]{32}\b"), "a merchant API key"),
    (re.compile(r"sandbox-pw-\d{4}"), "a sandbox consumer's password"),
    (re.compile(r"sandbox-datalink-password"), "the sandbox DataLink password"),
    # billops.upgrade_page.link_tokens: base64url claims, ".", base64url HMAC-SHA256 (43 characters).
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
     "an upgrade link's token"),
    (re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)example\.(?:com|org|net)\b"), "a subscriber's e-mail address"),
    # 15-16 digits, one run or grouped by 4, Luhn-checked below; 19-digit CCBill IDs and epoch times never match.
    (re.compile(r"(?<![\d.])(?:[3-6]\d{14,15}|[3-6]\d{3}[ -]\d{4}[ -]\d{4}[ -]\d{3,4})(?![\d.])"),
     "a full card number"),
)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# A needle of fewer distinct characters cannot be told apart from innocent text.
MIN_DISTINCT_CHARACTERS = 3


@dataclass(frozen=True)
class Leak:
    source: str
    line_number: int
    what: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line_number}: {self.what}"


class LeakScanner:
    def __init__(self) -> None:
        self._needles: dict[str, str] = {}

    def add(self, value: str | None, what: str) -> None:
        """A text that must not appear, in every form a log line could carry it."""
        text = str(value or "").strip()
        if len(text) < MIN_NEEDLE_LENGTH or len(set(text)) < MIN_DISTINCT_CHARACTERS:
            return  # a placeholder such as "00000" (real pass-through values hold it) is in every timestamp
        for form in {text, quote(text, safe=""), quote_plus(text), json.dumps(text)[1:-1]}:
            self._needles.setdefault(form, what)

    def add_binary(self, value: bytes, what: str) -> None:
        """Key material: its base64 and hex forms."""
        if len(value) >= MIN_NEEDLE_LENGTH:
            self.add(base64.b64encode(value).decode("ascii"), what)
            self.add(value.hex(), what)

    def add_secret_string(self, secret_string: str, what: str) -> None:
        """A Secrets Manager value: the whole string and, when it is JSON, each of its string values."""
        self.add(secret_string, what)
        try:
            parsed = json.loads(secret_string)
        except ValueError:
            return
        if isinstance(parsed, dict):
            for name, inner in parsed.items():
                if isinstance(inner, str) and name.lower() not in ("username", "clientaccnum", "client_accnum"):
                    self.add(inner, what)

    def add_personal_fields(self, fields: Mapping[str, Any], personal_names: Iterable[str], what: str) -> None:
        for name in personal_names:
            if fields.get(name):
                self.add(str(fields[name]), f"{what} ({name})")

    @property
    def needle_count(self) -> int:
        return len(self._needles)

    def scan_text(self, text: str, source: str) -> list[Leak]:
        leaks: list[Leak] = []
        in_banner = False
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if stripped == BANNER_FIRST_LINE:
                in_banner = True
            if in_banner:
                in_banner = stripped != BANNER_LAST_LINE
                continue
            leaks.extend(Leak(source, number, what) for what in self._findings(line))
        return leaks

    def scan_file(self, path: Path) -> list[Leak]:
        return self.scan_text(path.read_text(encoding="utf-8", errors="replace"), str(path))

    def _findings(self, line: str) -> list[str]:
        found = [what for needle, what in self._needles.items()
                 if needle in line and (not needle.isdigit() or _as_a_whole_number(needle, line))]
        for pattern, what in PATTERNS:
            for match in pattern.finditer(line):
                if what == "a full card number" and not _luhn_valid(re.sub(r"\D", "", match.group())):
                    continue
                found.append(what)
                break
        return sorted(set(found))


def _as_a_whole_number(digits: str, line: str) -> bool:
    """Whether ``digits`` stands in ``line`` as a number of its own, not inside a longer one: a pass-through user ID
    such as 531387 is in the epoch-millisecond timestamp 1796531387587 of a metrics line by chance, but a log line that
    leaked it would hold it between non-digits (``"531387"``, ``=531387&``)."""
    return re.search(rf"(?<!\d){digits}(?!\d)", line) is not None


def add_stack_secrets(scanner: LeakScanner, aws_endpoint: str) -> None:
    """What a running local stack holds that must never be logged: every Secrets Manager value, the data keys
    behind every encrypted value in its tables (opened with KMS, as the merchant API would), and every pass-through
    value (X-..., referringUrl) it stored encrypted - whoever sent them (a test, the sandbox), they are personal
    data the run cannot know in advance."""
    from billops_local.aws_environment import aws_client

    secrets = aws_client("secretsmanager", aws_endpoint)
    for page in secrets.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            value = secrets.get_secret_value(SecretId=secret["ARN"]).get("SecretString")
            if value:
                scanner.add_secret_string(value, f"the secret {secret['Name']}")
    from billops.privacy.field_encryption import ENCRYPTION_CONTEXT

    kms = aws_client("kms", aws_endpoint)
    dynamodb = aws_client("dynamodb", aws_endpoint)
    encrypted_keys: set[str] = set()
    pass_through: list[tuple[str, str, dict[str, str]]] = []
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                keys = {reference: value["S"]
                        for reference, value in (item.get("subscriber_keys") or {}).get("M", {}).items()}
                encrypted_keys.update(keys.values())
                for name, value in (item.get("subscriber") or {}).get("M", {}).items():
                    if is_pass_through(name) and "S" in value:
                        pass_through.append((name, value["S"], keys))
    _add_pass_through_values(scanner, kms, pass_through)
    for encrypted in encrypted_keys:
        plaintext = kms.decrypt(CiphertextBlob=base64.b64decode(encrypted),
                                EncryptionContext=ENCRYPTION_CONTEXT)["Plaintext"]
        scanner.add_binary(plaintext, "a personal-data data key")


def _add_pass_through_values(scanner: LeakScanner, kms: Any, values: list[tuple[str, str, dict[str, str]]]) -> None:
    from billops.privacy.field_encryption import FieldCipher, is_encrypted

    cipher = FieldCipher(None, lambda: kms)  # decrypts only: the data keys named in each item
    for name, value, keys in values:
        if is_encrypted(value):
            scanner.add(cipher.decrypt_fields({name: value}, keys)[name], f"a pass-through field ({name})")


def seeded_scanner(webhook_token: str) -> LeakScanner:
    """A scanner that knows the values every end-to-end run sends: the samples' personal data and password, the
    webhook token, the local API key and upgrade key, the sandbox's DataLink password."""
    from billops.privacy.subscriber_data import is_personal

    from billops_local.api_key_seed import DEFAULT_API_KEY
    from billops_local.ccbill_sandbox.accounts import DEFAULT_DATALINK_PASSWORD
    from billops_local.ccbill_sandbox.local_service import LOCAL_UPGRADE_KEY
    from billops_local.webhook_samples import EVENT_TYPES, SAMPLE_PASSWORD, sample_fields

    scanner = LeakScanner()
    for event_type in EVENT_TYPES:
        fields = sample_fields(event_type)  # CCBill's personal fields and the pass-through ones (X-..., referringUrl)
        scanner.add_personal_fields(fields, [name for name in fields if is_personal(name)],
                                    f"a subscriber's data ({event_type})")
    scanner.add(SAMPLE_PASSWORD, "a consumer's password")
    scanner.add(webhook_token, "the webhook token")
    scanner.add(DEFAULT_API_KEY, "the local API key")
    scanner.add(LOCAL_UPGRADE_KEY, "the upgrade key")
    scanner.add(DEFAULT_DATALINK_PASSWORD, "the DataLink password")
    return scanner


class CapturedLogs:
    """Where a run's process logs go (one file per process under ``directory``) and the check at its end."""

    def __init__(self, directory: Path, scanner: LeakScanner) -> None:
        self.directory = directory
        self.scanner = scanner
        self.files: list[Path] = []
        self.problems: list[Leak] = []

    def collect(self, collector: Any, *args: Any) -> None:
        """Run a needle collector; if it fails the check fails too (a scan without its needles proves nothing)."""
        try:
            collector(*args)
        except Exception as error:  # noqa: BLE001 - reported as a finding, never swallowed
            self.problems.append(Leak(getattr(collector, "__name__", "collector"), 0,
                                      f"could not collect what must not leak: {type(error).__name__}: {error}"))

    def new_file(self, name: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        path.write_text("", encoding="utf-8")
        self.files.append(path)
        return path

    def append(self, path: Path, text: str) -> None:
        if path not in self.files:
            self.new_file(path.name)
        with path.open("a", encoding="utf-8") as out:
            out.write(text)

    def check(self) -> list[Leak]:
        """Every leak in every file captured; written to ``leaks.txt`` beside them (values never included)."""
        leaks = list(self.problems)
        leaks += [leak for path in self.files if path.exists() for leak in self.scanner.scan_file(path)]
        report = self.directory / "leaks.txt"
        if leaks:
            report.write_text("\n".join(map(str, leaks)) + "\n", encoding="utf-8")
        elif report.exists():
            report.unlink()
        return leaks
