"""The DataLink login the API calls authenticate with, from Secrets Manager, cached per container.

The secret is JSON:

    {"client_accnum": "900100", "username": "...", "password": "...", "client_subacc": "0000"}

``client_subacc`` is present only when the DataLink user is bound to a subaccount. CCBill's scope rule
(ccbill-facts.md 2.1): a user bound to a subaccount sends ``clientSubacc``; a user at main-account level acting on a
subaccount sends ``usingSubacc``. The two are not interchangeable.

The value is read with Powertools Parameters (a ``SecretsProvider`` ``get`` with ``max_age``), so a rotated password is picked up
within ``max_age`` seconds without a redeploy; on an authentication refusal the client asks for a fresh copy once.
Nothing here ever puts a username or password in a repr, a log line or an exception message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from billops.ccbill import request_validation as check
from billops.ccbill.errors import CCBillConfigurationError, CCBillError, CCBillRequestInvalid

DEFAULT_MAX_AGE_SECONDS = 300


class CCBillCredentialsUnavailable(CCBillError):
    """The DataLink login could not be read (Secrets Manager unreachable, secret missing or malformed)."""


@dataclass(frozen=True)
class CCBillCredentials:
    client_accnum: str
    username: str = field(repr=False)
    password: str = field(repr=False)
    client_subacc: str | None = None  # the subaccount the DataLink user is bound to, if any

    def __repr__(self) -> str:
        scope = f", client_subacc={self.client_subacc!r}" if self.client_subacc else ""
        return f"CCBillCredentials(client_accnum={self.client_accnum!r}, username='***', password='***'{scope})"

    __str__ = __repr__

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CCBillCredentials:
        def pick(*names: str) -> Any:
            for name in names:
                if raw.get(name) not in (None, ""):
                    return raw[name]
            return None

        username = pick("username")
        password = pick("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise CCBillConfigurationError("the CCBill credentials need a username and a password")
        subacc = pick("client_subacc", "clientSubacc")
        try:
            return cls(
                client_accnum=check.client_accnum(pick("client_accnum", "clientAccnum"), "client_accnum"),
                username=username,
                password=password,
                client_subacc=None if subacc is None else check.client_subacc(subacc, "client_subacc"),
            )
        except CCBillRequestInvalid as exc:
            raise CCBillConfigurationError(f"the CCBill credentials: {exc}") from None

    def auth_params(self, target_subacc: str | None) -> dict[str, str]:
        """clientAccnum/username/password plus the subaccount scope for a call on ``target_subacc``."""
        params = {"clientAccnum": self.client_accnum, "username": self.username, "password": self.password}
        if self.client_subacc is not None:
            if target_subacc is not None and target_subacc != self.client_subacc:
                raise CCBillRequestInvalid(
                    "clientSubacc",
                    f"the DataLink user is bound to subaccount {self.client_subacc} and cannot act on "
                    f"subaccount {target_subacc}",
                )
            params["clientSubacc"] = self.client_subacc
        elif target_subacc is not None:
            params["usingSubacc"] = target_subacc
        return params


class CredentialsProvider(Protocol):
    def get(self, *, force_refresh: bool = False) -> CCBillCredentials: ...


class StaticCredentials:
    """Fixed credentials (tests, scripts)."""

    def __init__(self, credentials: CCBillCredentials) -> None:
        self._credentials = credentials

    def get(self, *, force_refresh: bool = False) -> CCBillCredentials:
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"


class SecretsManagerCredentials:
    """Credentials from a Secrets Manager secret, cached for ``max_age`` seconds by Powertools Parameters."""

    def __init__(self, secret_id: str, *, max_age: int = DEFAULT_MAX_AGE_SECONDS, provider: Any = None) -> None:
        if not secret_id:
            raise CCBillConfigurationError("BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN is not set")
        self.secret_id = secret_id
        self.max_age = max_age
        self._provider = provider  # a powertools SecretsProvider; made at the first read when None

    def get(self, *, force_refresh: bool = False) -> CCBillCredentials:
        # Imported here: Powertools Parameters pulls in boto3, which a cold start should pay for only when needed.
        from aws_lambda_powertools.utilities import parameters

        try:
            if self._provider is None:
                # Our own provider rather than Powertools' process-wide default: its cache holds nothing but this
                # secret; its client is the container's (billops.storage.aws_clients).
                from billops.storage.aws_clients import secrets_provider

                self._provider = secrets_provider(shared=False)
            raw = self._provider.get(self.secret_id, max_age=self.max_age, transform="json",
                                     force_fetch=force_refresh)
        except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
            # The exception text of a transform error may quote the secret; only its class is kept.
            raise CCBillCredentialsUnavailable(
                f"cannot read the CCBill credentials from {self.secret_id} ({type(exc).__name__})"
            ) from None
        if not isinstance(raw, Mapping):
            raise CCBillCredentialsUnavailable(f"the secret {self.secret_id} is not a JSON object")
        try:
            return CCBillCredentials.from_mapping(raw)
        except CCBillConfigurationError as exc:
            raise CCBillCredentialsUnavailable(f"the secret {self.secret_id}: {exc}") from None

    def __repr__(self) -> str:
        return f"SecretsManagerCredentials({self.secret_id!r}, max_age={self.max_age})"
