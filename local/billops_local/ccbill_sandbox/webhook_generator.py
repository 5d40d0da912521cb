"""CCBill's webhook deliveries, generated from the field table (webhook_fields.json), version by version.

``WebhookGenerator.generate(event_type, values)`` takes what the caller knows about an event (the sandbox: IDs,
account, prices, dates, the consumer's email and username) and returns one delivery: the fields of the configured
version of that event type (webhook_config.py) in the documents' order, each taken from ``values``, else from the
consumer, else from the table's example; then encoded in the configured format. Nothing here reads billops' own
event models: what is sent follows the documents, not what the receiver expects.

With ``variation=varied`` a delivery shows what real deliveries show (ccbill-facts.md 1.6, issue 11; the ones the
documents do not settle are rows of docs/ccbill-assumptions.md, "Inbound: webhooks"):

* ``older_version``    a version below the newest (with ``versions=any``);
* ``json_numbers``     JSON numbers for numeric fields (``"clientAccnum": 945280``, ``"subscriptionInitialPrice":
                       23.0``, ``"expDate": 317``, ``"last4": 1111``), leading zeros of zero-filled fields lost;
* ``bank_payment``     an ACH/check payment: ``paymentType=CHECK``, ``last4`` of the bank account, ``expDate``
                       absent, empty or ``0000``, no ``bin`` nor other card-only field;
* ``short_bin``        a BIN with a leading zero, sent as 5 digits (mediumint(6), not zero-filled);
* ``blank_fields``     optional fields sent empty (``phoneNumber=``, ``bin=``...);
* ``passthrough_fields`` the form's pass-through fields echoed back on purchases (``X-user_id``, ``X-email``,
                       ``X-customer_fname``);
* ``latin1_names``     names with accents; URL-encoded bodies then use ISO-8859-1 percent-escapes (``%E9``);
* ``stray_ampersand``  a URL-encoded body with a leading, trailing or doubled ``&``.

Which variations a consumer shows (bank or card, names, blank fields, pass-through fields, FlexForm) is drawn once
per consumer, so a subscription's deliveries agree with each other; the rest is drawn per delivery. Every draw comes
from ``Random(f"{seed}|...|{identity}")``: the same seed and the same events give the same deliveries, in any order.
"""

from __future__ import annotations

import hashlib
import json
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from random import Random
from typing import Any
from urllib.parse import urlencode

from billops_local.ccbill_sandbox.webhook_config import ANY, NEWEST, WebhookConfig
from billops_local.ccbill_sandbox.webhook_reference import EventSpec, FieldTable, field_table

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"

OLDER_VERSION = "older_version"
JSON_NUMBERS = "json_numbers"
BANK_PAYMENT = "bank_payment"
SHORT_BIN = "short_bin"
BLANK_FIELDS = "blank_fields"
PASSTHROUGH_FIELDS = "passthrough_fields"
LATIN1_NAMES = "latin1_names"
STRAY_AMPERSAND = "stray_ampersand"
VARIATIONS = (OLDER_VERSION, JSON_NUMBERS, BANK_PAYMENT, SHORT_BIN, BLANK_FIELDS, PASSTHROUGH_FIELDS, LATIN1_NAMES,
              STRAY_AMPERSAND)

PASSTHROUGH_NAMES = ("X-user_id", "X-email", "X-customer_fname")
"""Pass-through variables as real deliveries carry them (issue 11: X-email, X-customer_fname; X-user_id: a merchant's
own user ID, the field BILLOPS_CUSTOMER_REFERENCE_FIELD may name)."""

# Per consumer / per delivery chances in varied mode.
CHANCE = {"latin1": 0.4, "bank": 0.25, "short_bin": 0.15, "blank": 0.4, "passthrough": 0.5, "flexform": 0.5,
          "cvv2": 0.6, "json_numbers": 0.5, "stray_ampersand": 0.3, "ensure_ascii": 0.5}

ASCII_NAMES = (("Jane", "Doe", "Springfield", "IL", "US", "62704"), ("Ben", "Carter", "Portland", "OR", "US", "97201"),
               ("Ana", "Silva", "Lisbon", "", "PT", "1100-148"), ("Dev", "Patel", "Leicester", "", "GB", "LE1 5YA"))
LATIN1_NAMES_CHOICES = (("Renée", "Lefèvre", "Montréal", "QC", "CA", "H2X 1Y4"),
                        ("Jürgen", "Müller", "Köln", "", "DE", "50667"),
                        ("Søren", "Ærøskøbing", "Århus", "", "DK", "8000"),
                        ("José", "Núñez", "Málaga", "", "ES", "29001"),
                        ("Zoë", "Brontë", "Zürich", "", "CH", "8001"),
                        ("François", "Garçon", "Besançon", "", "FR", "25000"))
STREETS = ("Main Street", "Oak Avenue", "Calle Mayor", "Station Road")
LATIN1_STREETS = ("Rue de l'Église", "Hauptstraße", "Calle Núñez de Balboa", "Øster Allé")
CARDS = (("411111", "1111", "VISA"), ("510510", "5100", "MASTERCARD"), ("401288", "1881", "VISA"),
         ("601100", "0004", "DISCOVER"), ("371449", "8431", "AMEX"))
SHORT_BINS = (("042424", "0042", "VISA"), ("022300", "7012", "MASTERCARD"))
"""BINs with a leading zero: a mediumint(6) unsigned (not zero-filled) BIN is then 5 digits long."""


@dataclass(frozen=True)
class Consumer:
    """Who pays, and how: the values a consumer's deliveries share."""

    first_name: str = "Jane"
    last_name: str = "Doe"
    address1: str = "123 Example Street"
    city: str = "Springfield"
    state: str = "IL"
    country: str = "US"
    postal_code: str = "62704"
    phone: str = "555-0142"
    ip_address: str = "203.0.113.42"
    reservation_id: str = "0126015401000000098"
    bank: bool = False
    bin: str = "411111"
    last4: str = "1111"
    exp_date: str | None = "0129"
    """None: absent (a bank payment may have no expDate at all)."""
    card_type: str = "VISA"
    card_sub_type: str = "CREDIT"
    payment_account: str = "57bc7327b5d721d7d20b240c0357e6ed"
    three_d_secure: str = "AUTH_SUCCESS"
    sca_response: str = "Y"
    avs_response: str = "Y"
    cvv2_response: str = "M"
    flexform: bool = True
    cvv2: bool = True
    blank: frozenset[str] = frozenset()
    passthrough_user_id: str | None = None
    variations: tuple[str, ...] = ()

    @classmethod
    def drawn(cls, rng: Random, blankable: tuple[str, ...]) -> Consumer:
        variations: list[str] = []
        if rng.random() < CHANCE["latin1"]:
            first, last, city, state, country, postal = rng.choice(LATIN1_NAMES_CHOICES)
            street = rng.choice(LATIN1_STREETS)
            variations.append(LATIN1_NAMES)
        else:
            first, last, city, state, country, postal = rng.choice(ASCII_NAMES)
            street = rng.choice(STREETS)
        card: dict[str, Any]
        if rng.random() < CHANCE["bank"]:
            variations.append(BANK_PAYMENT)
            card = {"bank": True, "bin": "", "last4": f"{rng.randrange(10000):04d}",
                    "exp_date": rng.choice((None, "", "0000")), "card_type": "", "card_sub_type": ""}
        else:
            short = rng.random() < CHANCE["short_bin"]
            if short:
                variations.append(SHORT_BIN)
            bin_, last4, card_type = rng.choice(SHORT_BINS if short else CARDS)
            card = {"bin": str(int(bin_)), "last4": last4, "card_type": card_type,
                    "exp_date": f"{rng.randrange(1, 13):02d}{rng.randrange(26, 35):02d}",
                    "card_sub_type": rng.choice(("CREDIT", "DEBIT", "OTHER"))}
        blank: frozenset[str] = frozenset()
        if rng.random() < CHANCE["blank"]:
            blank = frozenset(rng.sample(blankable, rng.randint(1, min(4, len(blankable)))))
            variations.append(BLANK_FIELDS)
        passthrough = None
        if rng.random() < CHANCE["passthrough"]:
            passthrough = str(rng.randrange(1, 10**6))
            variations.append(PASSTHROUGH_FIELDS)
        return cls(
            first_name=first, last_name=last, city=city, state=state, country=country, postal_code=postal,
            address1=f"{rng.randrange(1, 999)} {street}",
            phone=f"555-01{rng.randrange(100):02d}", ip_address=f"203.0.113.{rng.randrange(1, 255)}",
            reservation_id=f"0126{rng.randrange(10**15):015d}",
            payment_account=hashlib.md5(str(rng.random()).encode(), usedforsecurity=False).hexdigest(),
            three_d_secure=rng.choice(("AUTH_SUCCESS", "AUTH_SUCCESS", "NOT_ENROLLED", "AUTH_ATTEMPTED")),
            sca_response=rng.choice(("Y", "Y", "A", "N", "U")), avs_response=rng.choice(("Y", "Y", "Z", "N", "U")),
            cvv2_response=rng.choice(("M", "M", "N", "P")),
            flexform=rng.random() < CHANCE["flexform"], cvv2=rng.random() < CHANCE["cvv2"],
            blank=blank, passthrough_user_id=passthrough, variations=tuple(variations), **card)

    def value(self, name: str, email: str | None, card_only: frozenset[str]) -> str | None:
        """This consumer's value of a documented field; None when the consumer has none (the field is absent).
        ``card_only``: the fields a bank payment lacks (the table's ``card_only``; expDate has its own forms)."""
        if self.bank and name in card_only and name != "expDate":
            return None
        if name in ("flexId", "flexID") and not self.flexform:
            return None
        if name == "cvv2Response" and not self.cvv2:
            return None
        if name == "expDate":
            return self.exp_date
        if name in self.blank:
            return ""
        return {
            "firstName": self.first_name, "lastName": self.last_name, "address1": self.address1, "city": self.city,
            "state": self.state, "country": self.country, "postalCode": self.postal_code, "phoneNumber": self.phone,
            "ipAddress": self.ip_address, "reservationId": self.reservation_id, "bin": self.bin, "last4": self.last4,
            "paymentType": "CHECK" if self.bank else "CREDIT", "cardType": self.card_type,
            "cardSubType": self.card_sub_type, "paymentAccount": self.payment_account,
            "threeDSecure": self.three_d_secure, "scaResponseStatus": self.sca_response,
            "avsResponse": self.avs_response, "cvv2Response": self.cvv2_response,
            "flexId": "cb617dcc-8467-49ab-b3a7-735ce1d60ad9", "flexID": "cb617dcc-8467-49ab-b3a7-735ce1d60ad9",
            "email": email or _ascii(f"{self.first_name}.{self.last_name}@example.com".lower()),
        }.get(name)


@lru_cache(maxsize=4096)
def _drawn_consumer(seed: int, consumer_key: str, blankable: tuple[str, ...]) -> Consumer:
    rng = Random(f"{seed}|consumer|{consumer_key}")  # nosec B311  # seeded test data, not security
    return Consumer.drawn(rng, blankable)


PLAIN_CONSUMER = Consumer()
"""The consumer of ``variation=off``: every documented field present, plain ASCII values, a card payment."""


@dataclass(frozen=True)
class GeneratedDelivery:
    event_type: str
    version: int
    body_format: str
    content_type: str
    body: bytes
    fields: dict[str, Any]
    """The fields as written: text, or (``json_numbers``) numbers in a JSON body."""
    text_fields: dict[str, str]
    """The same fields as text: what a reader that decodes the body right gets (a JSON number's digits, zero-filled
    fields without their lost zeros: ``317`` reads ``"317"``)."""
    values: dict[str, str]
    """The fields' values as CCBill holds them, before they were written (``"0317"``, ``"0000"``)."""
    variations: tuple[str, ...] = field(default=())


class WebhookGenerator:
    """Deliveries for the current configuration; the configuration can be changed while deliveries are made."""

    def __init__(self, config: WebhookConfig, table: FieldTable | None = None) -> None:
        self.table = table or field_table()
        config.check(self.table)
        self._config = config
        self._lock = threading.Lock()
        self._blankable = tuple(name for name, spec in self.table.fields.items() if spec.may_be_blank)
        self._card_only = frozenset(name for name, spec in self.table.fields.items() if spec.card_only)
        # Fields a consumer may lack (bank payments, sales without a FlexForm or a CVV2 check): left out, never
        # replaced by the table's example.
        self._consumer_owned = self._card_only | {"flexId", "flexID"}

    @property
    def config(self) -> WebhookConfig:
        with self._lock:
            return self._config

    def configure(self, changes: Mapping[str, Any]) -> WebhookConfig:
        with self._lock:
            self._config = self._config.updated(changes, self.table)
            return self._config

    def consumer(self, consumer_key: str, config: WebhookConfig | None = None) -> Consumer:
        config = config or self.config
        if not config.varied:
            return PLAIN_CONSUMER
        return _drawn_consumer(config.seed, consumer_key, self._blankable)

    def generate(self, event_type: str, values: Mapping[str, str | None], *, key: str | None = None,
                 consumer_key: str | None = None) -> GeneratedDelivery:
        """One delivery of ``event_type``. ``values``: documented fields the caller knows (None: leave the field
        out), plus pass-through ``X-`` fields; ``key`` identifies the delivery among the seed's draws (default: its
        transaction and subscription IDs, else its timestamp); ``consumer_key`` who pays (default: the
        subscription ID, else the username or email)."""
        config = self.config
        spec = self.table.event(event_type)
        unknown = sorted(name for name in values if name not in spec.all_fields and not name.startswith("X-"))
        if unknown:
            raise ValueError(f"{event_type} has no field {unknown[0]} in any version (webhook_fields.json)")
        # The event's identity, not its time: a replay with the same seed runs at another time of day.
        key = key or "|".join(str(values.get(name) or "") for name in ("transactionId", "subscriptionId"))
        if key == "|":
            key = str(values.get("timestamp") or "")
        consumer_key = consumer_key or str(values.get("subscriptionId") or values.get("username")
                                           or values.get("email") or key)
        rng = Random(f"{config.seed}|delivery|{event_type}|{key}")  # nosec B311  # seeded test data, not security
        consumer = self.consumer(consumer_key, config)
        version = self._version(spec, config, rng)
        body_format = self._format(spec, version, config, rng)

        text_fields = {name: value for name, value in self._text_fields(spec, version, values, consumer).items()
                       if not config.omits(event_type, name)}
        variations = [name for name in consumer.variations if _shows(name, text_fields, consumer)]
        if version < spec.newest:
            variations.append(OLDER_VERSION)
        written, body, read_back, written_variations = self._write(text_fields, body_format, config, rng)
        return GeneratedDelivery(
            event_type=event_type, version=version, body_format=body_format,
            content_type=JSON_CONTENT_TYPE if body_format == "json" else FORM_CONTENT_TYPE, body=body,
            fields=written, text_fields=read_back, values=text_fields,
            variations=tuple(sorted({*variations, *written_variations}, key=VARIATIONS.index)))

    def _text_fields(self, spec: EventSpec, version: int, values: Mapping[str, str | None],
                     consumer: Consumer) -> dict[str, str]:
        """The version's fields in the documents' order: the caller's value, else the consumer's, else the table's
        example (a conditional field without a value is left out), then the pass-through fields."""
        fields: dict[str, str] = {}
        for name in spec.fields(version):
            if name in values:
                value = values[name]
            else:
                value = consumer.value(name, values.get("email"), self._card_only)
                if value is None and name not in self._consumer_owned:
                    documented = self.table.field(name)
                    value = None if documented.conditional else documented.example
            if value is not None:
                fields[name] = value
        own = {name: value for name, value in values.items() if name.startswith("X-") and value is not None}
        fields.update(own)
        # The merchant's own pass-through fields replace the ones drawn for the consumer.
        if spec.is_purchase and consumer.passthrough_user_id is not None and not own:
            fields.update({"X-user_id": consumer.passthrough_user_id, "X-email": fields.get("email", ""),
                           "X-customer_fname": fields.get("firstName", consumer.first_name)})
        return fields

    def _write(self, fields: dict[str, str], body_format: str, config: WebhookConfig,
               rng: Random) -> tuple[dict[str, Any], bytes, dict[str, str], list[str]]:
        """(fields as written, body, fields as read back, variations of the writing)."""
        if body_format == "json":
            numbers = config.varied and rng.random() < CHANCE["json_numbers"]
            written = self._json_values(fields) if numbers else dict(fields)
            body = json.dumps(written, ensure_ascii=config.varied and rng.random() < CHANCE["ensure_ascii"]
                              ).encode("utf-8")
            read_back = {name: _as_text(value) for name, value in written.items()}
            return written, body, read_back, [JSON_NUMBERS] if written != fields else []
        body = _form_body(fields)
        if config.varied and rng.random() < CHANCE["stray_ampersand"]:
            return dict(fields), _stray_ampersand(body, rng), dict(fields), [STRAY_AMPERSAND]
        return dict(fields), body, dict(fields), []

    # --- choices -----------------------------------------------------------------------------------------------

    @staticmethod
    def _version(spec: EventSpec, config: WebhookConfig, rng: Random) -> int:
        choice = config.version_choice(spec.event_type)
        if choice == NEWEST:
            return spec.newest
        if choice == ANY:
            candidates = [v.version for v in spec.versions if config.format == ANY or config.format in v.formats]
            return rng.choice(candidates)
        return int(choice)

    @staticmethod
    def _format(spec: EventSpec, version: int, config: WebhookConfig, rng: Random) -> str:
        formats = spec.formats(version)
        if config.format == ANY:
            return rng.choice(formats)
        if config.format not in formats:  # config.check() refuses fixed versions; "newest" always has both
            return formats[0]
        return config.format

    def _json_values(self, text_fields: Mapping[str, str]) -> dict[str, Any]:
        written: dict[str, Any] = {}
        for name, value in text_fields.items():
            spec = self.table.fields.get(name)
            kind = spec.json_number if spec is not None else None
            written[name] = _number(value, kind) if kind else value
        return written


def _shows(variation: str, fields: Mapping[str, str], consumer: Consumer) -> bool:
    """Whether a consumer's variation is visible in this delivery (an old version may have no field to show it)."""
    if variation == LATIN1_NAMES:
        return any(not value.isascii() for value in fields.values())
    if variation == BANK_PAYMENT:
        return any(name in fields for name in ("paymentType", "last4", "expDate", "paymentAccount"))
    if variation == SHORT_BIN:
        return "bin" in fields and 0 < len(fields["bin"]) < 6
    if variation == BLANK_FIELDS:
        return any(fields.get(name) == "" for name in consumer.blank)
    if variation == PASSTHROUGH_FIELDS:
        return any(name.startswith("X-") for name in fields)
    return True


def _ascii(text: str) -> str:
    """An address without accents ("renée" -> "renee"): e-mail addresses stay ASCII."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _number(value: str, kind: str) -> Any:
    if kind == "int" and value.isdigit():
        return int(value)
    if kind == "decimal":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        if number.is_finite() and value.strip():
            return float(number)  # json writes 23.0 for "23.00", 19.95 for "19.95"
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _form_body(fields: Mapping[str, str]) -> bytes:
    """URL-encoded as CCBill's forms post it: ISO-8859-1 percent-escapes when every value fits (assumed), else
    UTF-8."""
    pairs = list(fields.items())
    try:
        return urlencode(pairs, encoding="iso-8859-1").encode("ascii")
    except UnicodeEncodeError:
        return urlencode(pairs, encoding="utf-8").encode("ascii")


def _stray_ampersand(body: bytes, rng: Random) -> bytes:
    where = rng.choice(("leading", "trailing", "doubled"))
    if where == "leading":
        return b"&" + body
    if where == "trailing":
        return body + b"&"
    pairs = body.split(b"&")
    cut = rng.randrange(1, len(pairs)) if len(pairs) > 1 else 1
    return b"&".join(pairs[:cut]) + b"&&" + b"&".join(pairs[cut:])
