"""``billops api-keys create|list|revoke``: the merchant API's keys, in the stack's ApiKeysTable.

Everything about a key (its format, how its secret is hashed, what is stored) belongs to
billops.merchant_api.api_keys; the CLI only calls it. The secret of a new key is printed once, when it is created,
and never again: list shows no secret and no hash.
"""

from __future__ import annotations

import argparse
from typing import Any

from billops_cli.output import EXIT_OK, CliError, Output, render_fields, render_table
from billops_cli.targets import Target

TABLE = "ApiKeysTable"
NEVER_SHOWN = ("secret", "hash", "salt", "digest", "verifier")
"""Attributes of a listed key whose name contains one of these are left out, whatever api_keys returns."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("api-keys", help="create, list and revoke merchant API keys")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", parents=[common], help="create a key; its secret is shown this once")
    create.add_argument("--name", required=True, help="what the key is for (e.g. 'crm-sync')")
    create.add_argument("--scope", dest="scopes", action="append", default=[], metavar="SCOPE",
                        help="a scope the key grants: read, write or pii (repeat for several; default read and "
                             "write)")
    create.set_defaults(handler=create_key)

    listing = actions.add_parser("list", parents=[common], help="every key (never a secret)")
    listing.set_defaults(handler=list_keys)

    revoke = actions.add_parser("revoke", parents=[common],
                                help="revoke a key (the API stops taking it within its key cache time, "
                                     "BILLOPS_API_KEY_CACHE_SECONDS: 60 s)")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=revoke_key)


def _api_keys() -> Any:
    try:
        from billops.merchant_api import api_keys
    except ImportError as error:
        raise CliError(f"this build has no merchant API keys module (billops.merchant_api.api_keys): {error}") \
            from None
    return api_keys


def _table(target: Target) -> Any:
    target.activate()
    return _api_keys().ApiKeysTable(target.table(TABLE), target.client("dynamodb"))


def _refused(error: Exception) -> CliError:
    return CliError(str(error) or type(error).__name__)


def create_key(args: argparse.Namespace, target: Target, out: Output) -> int:
    api_keys = _api_keys()
    try:
        scopes = api_keys.check_scopes(args.scopes or api_keys.DEFAULT_SCOPES)
        key_id, secret = api_keys.create_key(_table(target), args.name, scopes,
                                             environment=target.environment_name())
    except api_keys.ApiKeyError as error:
        raise _refused(error) from None
    document = {"key_id": key_id, "name": args.name.strip(), "scopes": scopes, "secret": secret,
                "note": "the secret is shown only now; store it safely"}
    out.emit(document, render_fields([("key id", key_id), ("name", args.name.strip()),
                                      ("scopes", ", ".join(scopes)), ("secret", secret)])
             + "\n\nThe secret is shown only now: store it safely. It cannot be read again, only revoked.")
    return EXIT_OK


def public_key_view(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items()
            if not any(word in name.lower() for word in NEVER_SHOWN)}


def list_keys(args: argparse.Namespace, target: Target, out: Output) -> int:
    api_keys = _api_keys()
    keys = [public_key_view(dict(item)) for item in api_keys.list_keys(_table(target))]
    columns: list[tuple[str, str]] = []
    for name in ("key_id", "name", "scopes", "status", "hint", "created_at", "revoked_at", "last_used_at"):
        if any(name in key for key in keys):
            columns.append((name, name.replace("_", " ")))
    for key in keys:
        for name in key:
            if name not in dict(columns):
                columns.append((name, name.replace("_", " ")))
    human = render_table(keys, columns) if keys else "No API keys."
    out.emit({"keys": keys}, human)
    return EXIT_OK


def revoke_key(args: argparse.Namespace, target: Target, out: Output) -> int:
    api_keys = _api_keys()
    try:
        result = api_keys.revoke_key(_table(target), args.key_id.strip())
    except api_keys.ApiKeyError as error:
        raise _refused(error) from None
    document = {"key_id": args.key_id.strip(), "revoked": True}
    if isinstance(result, dict):
        document.update(public_key_view(result))
    out.emit(document, f"Revoked {document['key_id']}: it stops working within the API's key cache time.")
    return EXIT_OK
