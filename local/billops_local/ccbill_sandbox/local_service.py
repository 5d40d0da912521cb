"""The sandbox as a service of the local stack, and the client settings that point the services at it.

``add_to_stack(stack)`` (called from ``billops_local.stack.build_stack``) starts the sandbox after the built-in
services and then configures the CCBill client exactly as an AWS deployment would, only against moto:

* the DataLink login goes into the template's CCBillCredentialsSecret (a secret of its own when there is none;
  ``BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN``);
* ``BILLOPS_UPGRADE_KEY`` (as Merchant Support hands it out; default LOCAL_UPGRADE_KEY, the guide's own example
  ``8745921457``) is checked against the recipe (a key that cannot work stops the start with the reason), encrypted
  exactly as given with the template's BillopsKey (a key of its own when there is none), and only its ciphertext is
  kept (``BILLOPS_UPGRADE_KEY_CIPHERTEXT``); the clear value is removed from the environment, so the services hold
  the key as production does. The sandbox keeps its own copy: it plays CCBill, which knows the key too;
* the sandbox's accounts get the upgrade Security Type the services use (BILLOPS_UPGRADE_SECURITY, resolved as the
  functions resolve it: billops.ccbill.upgrade_security), as a merchant sets it in CCBill's Admin Portal; with
  ``backend_post`` allowUpgrade is accepted from 127.0.0.1 only - the local stack's "fixed egress IP";
* the URLs, BILLOPS_CCBILL_SUBACCOUNTS and BILLOPS_UPGRADE_CATALOGUE describe the sandbox's accounts.

Everything set in os.environ is put back when the stack stops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from billops_local.ccbill_sandbox.accounts import (
    DEFAULT_ACCOUNTS,
    DEFAULT_DATALINK_PASSWORD,
    DEFAULT_DATALINK_USERNAME,
    SandboxAccount,
    client_subaccounts_setting,
    client_upgrade_catalogue_setting,
)
from billops_local.ccbill_sandbox.server import SandboxHandle, start_sandbox

CREDENTIALS_SECRET_NAME = "billops-local/ccbill-datalink"  # nosec B105  # a secret's name, not its value
UPGRADE_KEY_ALIAS = "alias/billops-local-ccbill-upgrade"
# The template's own secret and key, used when the local resources were created from template.yaml (the local stack,
# the integration tests): the functions then read the same resources as in AWS, and their grants are checked.
TEMPLATE_CREDENTIALS_SECRET = "billops-local-CCBillCredentialsSecret"  # nosec B105  # a secret's name
TEMPLATE_UPGRADE_KEY_ALIAS = "alias/billops-local-BillopsKeyAlias"


class SandboxConfigurationError(RuntimeError):
    pass


def client_environment(aws_endpoint: str, handle: SandboxHandle, upgrade_key: str | None,
                       accounts: tuple[SandboxAccount, ...] = DEFAULT_ACCOUNTS,
                       client_accnum: str = "900100") -> dict[str, str]:
    """BILLOPS_CCBILL_* / BILLOPS_UPGRADE_* for clients of this sandbox; creates the secret and KMS key in moto."""
    from billops.ccbill.upgrade_encryption import encrypt_key_for_configuration

    from billops_local.aws_environment import aws_client

    secrets = aws_client("secretsmanager", aws_endpoint)
    secret_value = json.dumps({"client_accnum": client_accnum, "username": DEFAULT_DATALINK_USERNAME,
                               "password": DEFAULT_DATALINK_PASSWORD})
    try:  # the template's secret when it was created (as in AWS: make check-iam then checks the real grants)
        arn = secrets.put_secret_value(SecretId=TEMPLATE_CREDENTIALS_SECRET, SecretString=secret_value)["ARN"]
    except secrets.exceptions.ResourceNotFoundException:
        try:
            arn = secrets.create_secret(Name=CREDENTIALS_SECRET_NAME, SecretString=secret_value)["ARN"]
        except secrets.exceptions.ResourceExistsException:
            arn = secrets.put_secret_value(SecretId=CREDENTIALS_SECRET_NAME, SecretString=secret_value)["ARN"]
    env = {
        "BILLOPS_CCBILL_SMS_URL": handle.sms_url,
        "BILLOPS_CCBILL_BILLING_API_URL": handle.billing_api_url,
        "BILLOPS_CCBILL_UPGRADE_URL": handle.upgrade_url,
        "BILLOPS_CCBILL_CREDENTIALS_SECRET_ARN": arn,
        "BILLOPS_CCBILL_SUBACCOUNTS": client_subaccounts_setting(accounts),
        "BILLOPS_UPGRADE_CATALOGUE": client_upgrade_catalogue_setting(accounts, client_accnum),
    }
    if upgrade_key:
        kms = aws_client("kms", aws_endpoint)
        try:  # the template's BillopsKey, as the README tells a merchant to encrypt it
            key_id = kms.describe_key(KeyId=TEMPLATE_UPGRADE_KEY_ALIAS)["KeyMetadata"]["KeyId"]
        except kms.exceptions.NotFoundException:
            key_id = kms.create_key(Description="billops local: CCBill upgrade key (TripleDES) encryption")[
                "KeyMetadata"]["KeyId"]
            try:
                kms.create_alias(AliasName=UPGRADE_KEY_ALIAS, TargetKeyId=key_id)
            except kms.exceptions.AlreadyExistsException:
                kms.update_alias(AliasName=UPGRADE_KEY_ALIAS, TargetKeyId=key_id)
        env["BILLOPS_UPGRADE_KEY_CIPHERTEXT"] = encrypt_key_for_configuration(kms, key_id, upgrade_key)
    return env


class SandboxService:
    def __init__(self, env: Mapping[str, str] | None = None,
                 accounts: tuple[SandboxAccount, ...] = DEFAULT_ACCOUNTS) -> None:
        self._env = os.environ if env is None else env
        self.accounts = accounts
        self.handle: SandboxHandle | None = None
        self._patch: Any = None

    @property
    def port(self) -> int:
        if self.handle is None:
            raise SandboxConfigurationError("the CCBill sandbox is not running")
        return self.handle.port

    def describe(self) -> str:
        if self.handle is None:
            return "not running"
        config = self.handle.sandbox.dispatcher.generator.config
        return f"{self.handle.url} (admin API: {self.handle.url}/sandbox/...; {config.describe()})"

    def start(self, stack: Any) -> None:
        from billops.ccbill.errors import CCBillConfigurationError
        from billops.ccbill.upgrade_encryption import EncRecipe, derive_key
        from billops.ccbill.upgrade_security import upgrade_security_from_env

        from billops_local.aws_environment import EnvironmentPatch
        from billops_local.ccbill_sandbox.accounts import with_upgrade_security

        from billops_local.ccbill_sandbox.webhook_config import WebhookConfig, WebhookConfigError

        try:
            webhook_config = WebhookConfig.from_env(self._env)
        except WebhookConfigError as error:
            raise SandboxConfigurationError(f"{error.param} {error.message}") from None
        try:
            recipe = EncRecipe.from_env(self._env)
            security = upgrade_security_from_env(self._env)
            upgrade_key = (self._env.get("BILLOPS_UPGRADE_KEY") or "").strip() or LOCAL_UPGRADE_KEY
            derive_key(upgrade_key, recipe.key_encoding)  # refuses a key that cannot work now, not at the first use
        except CCBillConfigurationError as problem:
            raise SandboxConfigurationError(f"BILLOPS_UPGRADE_KEY / BILLOPS_UPGRADE_*: {problem}") from None
        self.accounts = with_upgrade_security(self.accounts, security.value,
                                              ("127.0.0.1/32",) if security.value == "backend_post" else None)
        self.handle = start_sandbox(stack.settings.host, stack.settings.sandbox_port, stack.webhook_url,
                                    webhook_config.format, self.accounts, upgrade_key=upgrade_key,
                                    enc_recipe=recipe, webhook_config=webhook_config)
        try:
            client_env = client_environment(stack.aws_endpoint, self.handle, upgrade_key, self.accounts)
        except BaseException:
            self.handle.stop()
            self.handle = None
            raise
        self._patch = EnvironmentPatch()
        self._patch.set(client_env)
        # From here on the key exists in this process only as KMS ciphertext (and in the sandbox, playing CCBill).
        self._patch.remove(["BILLOPS_UPGRADE_KEY"])

    def stop(self) -> None:
        if self._patch is not None:
            self._patch.restore()
            self._patch = None
        if self.handle is not None:
            self.handle.stop()
            self.handle = None


LOCAL_UPGRADE_KEY = "8745921457"
"""The local stack's default TripleDES key: the guide's own example, in the shape Merchant Support hands keys out
(not 48 hex digits), so `enc` upgrade links work out of the box with the default key derivation. A test key only:
production keys come from CCBill Merchant Support and live only as KMS ciphertext."""


def add_to_stack(stack: Any, env: Mapping[str, str] | None = None) -> SandboxService:
    """Register the sandbox with a billops_local.stack.LocalStack (before stack.start())."""
    service = SandboxService(env)
    stack.add_service("ccbill-sandbox", service.start, service.stop, port=lambda: service.port,
                      description=service.describe)
    return service
