"""The operation message: what the merchant's systems put on the operations queue.

One JSON object per SQS message; ``docs/schemas/operation-message.schema.json`` is generated from these models
(``python -m billops.operations.operation_messages docs/schemas/operation-message.schema.json``) and a unit test keeps
the file equal to what the models say, so the documented contract cannot drift from what the worker accepts.

Why these shapes:

* ``operation_type`` is the discriminator: each type has its own ``parameters`` model, so a typo in a parameter
  name is a rejection naming it, not a silently ignored field (``extra="forbid"`` everywhere).
* Money travels as strings ("19.95"): a JSON number is a binary float to most senders, and CCBill wants exactly two
  decimals. Formats are checked here; CCBill's own rules (ranges per subaccount, discount rules) are checked by the
  CCBill client when the operation runs, against what is known of the subscription.
* ``idempotency_key`` is chosen by the sender and doubles as the FIFO deduplication ID, so it is limited to what SQS
  accepts there: 1-128 printable ASCII characters without spaces.
* ``run_at`` must carry a time zone: a deferred charge at "09:00" of an unknown zone is a support ticket.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

SCHEMA_ID = "https://billops.example/schemas/operation-message.schema.json"
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parents[4] / "docs" / "schemas" / "operation-message.schema.json"

PRICE_PATTERN = r"^\d{1,4}(\.\d{1,2})?$"
SUBSCRIPTION_ID_PATTERN = r"^\d{1,20}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
SUBACC_PATTERN = r"^\d{1,4}$"
ACCNUM_PATTERN = r"^\d{6}$"
CURRENCY_PATTERN = r"^(\d{3}|[A-Za-z]{3})$"
UPGRADE_KEY_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

Price = Annotated[str, Field(pattern=PRICE_PATTERN, description="A price like \"19.95\": digits, at most two decimals, "
                                                                  "no currency sign.")]
Days = Annotated[int, Field(ge=1, le=3650)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --- parameters of each type --------------------------------------------------------------------------------------


class ChargeUpgradeParameters(_Strict):
    """Upgrade by API: chargeByPreviousTransactionId charges the card behind the subscription for a new one.

    Either ``upgrade`` (a key of BILLOPS_UPGRADE_CATALOGUE, whose price point is used) or an explicit destination and
    price point (``new_client_accnum``, ``new_client_subacc``, ``initial_price``, ``initial_period`` and, for a
    recurring price point, ``recurring_price``, ``recurring_period``, ``rebills``). ``currency_code`` selects the
    regional price's currency (numeric or alpha ISO-4217, one the destination bills in).
    """

    method: Literal["charge_by_previous_transaction"]
    upgrade: Annotated[str, Field(pattern=UPGRADE_KEY_PATTERN)] | None = None
    new_client_accnum: Annotated[str, Field(pattern=ACCNUM_PATTERN)] | None = None
    new_client_subacc: Annotated[str, Field(pattern=SUBACC_PATTERN)] | None = None
    initial_price: Price | None = None
    initial_period: Days | None = None
    recurring_price: Price | None = None
    recurring_period: Days | None = None
    rebills: Annotated[int, Field(ge=0, le=99)] | None = None
    currency_code: Annotated[str, Field(pattern=CURRENCY_PATTERN)] | None = None
    special_offer: bool | None = None
    shared_authentication: bool | None = None
    cancel_original: bool | None = Field(
        default=None, description="true: once the upgrade has succeeded, billops cancels the original subscription "
                                  "(its own operation, exactly once). chargeByPreviousTransactionId starts a new "
                                  "subscription and leaves the original billing; without this it keeps billing.")
    force: bool | None = Field(
        default=None, description="true: carry the upgrade out even though the subscription has another upgrade to "
                                  "this destination in flight or recently succeeded (otherwise refused).")

    @model_validator(mode="after")
    def _one_price_point(self) -> ChargeUpgradeParameters:
        explicit = {
            "new_client_accnum": self.new_client_accnum,
            "new_client_subacc": self.new_client_subacc,
            "initial_price": self.initial_price,
            "initial_period": self.initial_period,
        }
        recurring = (self.recurring_price, self.recurring_period, self.rebills)
        if self.upgrade is not None:
            given = [name for name, value in explicit.items() if value is not None]
            if given or any(value is not None for value in recurring) or self.currency_code is not None:
                raise ValueError("give either upgrade (a catalogue key) or an explicit price point, not both")
            return self
        missing = [name for name, value in explicit.items() if value is None]
        if missing:
            raise ValueError(f"give upgrade (a catalogue key) or the price point; missing: {', '.join(missing)}")
        if any(value is not None for value in recurring) and not all(value is not None for value in recurring):
            raise ValueError("recurring_price, recurring_period and rebills go together")
        return self


class AllowUpgradeParameters(_Strict):
    """Upgrade by the Subscription Upgrade System: the allowUpgrade backend post opens a 30-minute window in which
    the consumer is sent to CCBill's upgrade form (the operation record and an OperationAwaitingConsumer event carry
    the form's URL and fields). The Approval / Denial Background Post settles the operation."""

    method: Literal["allow_upgrade"]
    upgrade: Annotated[str, Field(pattern=UPGRADE_KEY_PATTERN)] | None = None
    username_ciphertext: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{16,4096}={0,2}$")] | None = Field(
        default=None, description="Identify the subscriber to CCBill by username instead of subscriptionId: the "
                                  "username sealed with KMS (BillopsKey, encryption context billops:purpose="
                                  "upgrade-identity, billops:subscription=<subscription_id>), Base64.")
    force: bool | None = Field(
        default=None, description="true: post allowUpgrade even though the subscription has an upgrade by API to "
                                  "this destination in flight, or an upgrade to it recently succeeded.")


UpgradeParameters = Annotated[ChargeUpgradeParameters | AllowUpgradeParameters, Field(discriminator="method")]


class DiscountParameters(_Strict):
    """discountSubscription: exactly one of ``discount_amount`` or ``new_recurring_price``."""

    discount_amount: Price | None = None
    new_recurring_price: Price | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DiscountParameters:
        if (self.discount_amount is None) == (self.new_recurring_price is None):
            raise ValueError("give exactly one of discount_amount and new_recurring_price")
        return self


class NoParameters(_Strict):
    """cancel and refresh take no parameters."""


class ExtendParameters(_Strict):
    """extendSubscription: push the next billing date (or a cancelled subscription's end) ``days`` later."""

    days: Annotated[int, Field(ge=1, le=365)]


class RefundParameters(_Strict):
    """refundTransaction: money back on one charge of the subscription. ``amount`` omitted: CCBill refunds the whole
    transaction; given (e.g. "5.00"): a partial refund. ``transaction_id`` omitted: the subscription's initial charge,
    whose transaction ID is the subscription ID (CCBill's refundTransaction names the transaction in its
    ``subscriptionId`` parameter); a renewal's transactionId (from its RenewalSuccess) refunds that renewal."""

    amount: Price | None = None
    transaction_id: Annotated[str, Field(pattern=SUBSCRIPTION_ID_PATTERN)] | None = None


class VoidParameters(_Strict):
    """voidTransaction: cancel a charge CCBill has not settled yet (the whole transaction). ``transaction_id`` as for
    a refund."""

    transaction_id: Annotated[str, Field(pattern=SUBSCRIPTION_ID_PATTERN)] | None = None


# --- the message ---------------------------------------------------------------------------------------------------


class _MessageBase(_Strict):
    subscription_id: Annotated[str, Field(pattern=SUBSCRIPTION_ID_PATTERN,
                                          description="CCBill's subscription ID (digits, leading zeros kept).")]
    idempotency_key: Annotated[str, Field(pattern=IDEMPOTENCY_KEY_PATTERN,
                                          description="Chosen by the sender; a second message with the same key is "
                                                      "the same operation (also the FIFO deduplication ID).")]
    run_at: AwareDatetime | None = Field(default=None, description="Carry the operation out at this time (ISO-8601 "
                                                                   "with a zone); absent or past: now.")
    client_subacc: Annotated[str, Field(pattern=SUBACC_PATTERN)] | None = Field(
        default=None, description="The subscription's subaccount, when the DataLink user must act in its scope.")
    suppress_domain_events: bool = Field(default=False, description="true: publish no domain event for this "
                                                                    "operation (ChargeBee's all-disabled).")


class UpgradeMessage(_MessageBase):
    operation_type: Literal["upgrade"]
    parameters: UpgradeParameters


class DiscountMessage(_MessageBase):
    operation_type: Literal["discount"]
    parameters: DiscountParameters


class CancelMessage(_MessageBase):
    operation_type: Literal["cancel"]
    parameters: NoParameters = Field(default_factory=NoParameters)


class ExtendMessage(_MessageBase):
    operation_type: Literal["extend"]
    parameters: ExtendParameters


class RefreshMessage(_MessageBase):
    operation_type: Literal["refresh"]
    parameters: NoParameters = Field(default_factory=NoParameters)


class RefundMessage(_MessageBase):
    operation_type: Literal["refund"]
    parameters: RefundParameters = Field(default_factory=RefundParameters)


class VoidMessage(_MessageBase):
    operation_type: Literal["void"]
    parameters: VoidParameters = Field(default_factory=VoidParameters)


AnyOperationMessage = (UpgradeMessage | DiscountMessage | CancelMessage | ExtendMessage | RefreshMessage
                       | RefundMessage | VoidMessage)
OPERATION_TYPES = ("upgrade", "discount", "cancel", "extend", "refresh", "refund", "void")


class OperationMessage(RootModel[Annotated[AnyOperationMessage, Field(discriminator="operation_type")]]):
    """The message on the operations queue (``.root`` is the message of its operation type)."""


class MessageInvalid(ValueError):
    """The body is not a valid operation message. ``param`` names the first offending field (dotted path)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def parse_message(body: str | bytes | dict[str, Any]) -> AnyOperationMessage:
    """The message of a queue body, or MessageInvalid naming what is wrong (never echoing values)."""
    try:
        if isinstance(body, dict):
            return OperationMessage.model_validate(body).root
        return OperationMessage.model_validate_json(body).root
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        location = [str(part) for part in first.get("loc", ()) if not _is_union_tag(part)]
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            # The discriminator itself is wrong or missing: name it (pydantic quotes it in ctx).
            location.append(str((first.get("ctx") or {}).get("discriminator", "")).strip("'\""))
        param = ".".join(part for part in location if part) or None
        if first.get("type") == "json_invalid":
            raise MessageInvalid("The message body is not valid JSON.") from None
        text = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise MessageInvalid(f"{param or 'message'}: {text}", param) from None


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the discriminator's value in the location ("upgrade", "charge_by_previous_transaction").
    return isinstance(part, str) and (part in OPERATION_TYPES or part in ("charge_by_previous_transaction",
                                                                          "allow_upgrade"))


def canonical_json(message: AnyOperationMessage, *, exclude: set[str] | None = None) -> str:
    """The message as compact JSON with sorted keys and no null fields: equal requests give equal text."""
    data = message.model_dump(mode="json", exclude=exclude, exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def message_schema() -> dict[str, Any]:
    schema = OperationMessage.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "billops operation message",
        "description": "One message on the OperationsQueue (SQS FIFO, group = subscription_id, deduplication ID = "
                       "idempotency_key). See docs/operations.md.",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }


def schema_text() -> str:
    return json.dumps(message_schema(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_schema(path: Path | str = DEFAULT_SCHEMA_PATH) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(schema_text(), encoding="utf-8")
    return target


if __name__ == "__main__":  # python -m billops.operations.operation_messages [path]
    print(write_schema(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SCHEMA_PATH))
