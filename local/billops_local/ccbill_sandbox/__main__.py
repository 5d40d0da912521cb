"""``python -m billops_local.ccbill_sandbox``: the CCBill sandbox on its own.

Settings (flags win over the environment):
    --port / BILLOPS_SANDBOX_PORT                      default 4000
    --webhook-url / BILLOPS_SANDBOX_WEBHOOK_URL        default http://127.0.0.1:$BILLOPS_API_PORT/webhooks/ccbill
                                                       ?token=$BILLOPS_WEBHOOK_TOKEN when a token is set, else none
    --webhook-format / BILLOPS_SANDBOX_WEBHOOK_FORMAT  json (default), urlencoded or any (drawn per delivery)
    BILLOPS_SANDBOX_WEBHOOK_VERSIONS                   newest (default), any, or "NewSaleSuccess=3,*=any"
    BILLOPS_SANDBOX_WEBHOOK_VARIATION                  off (default) or varied (webhook_generator.py)
    --seed / BILLOPS_SANDBOX_SEED                      the seed of every random choice (default: random, printed)
    BILLOPS_UPGRADE_KEY                                the TripleDES key (48 hex digits) the upgrade form reads enc with
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from urllib.parse import quote

from billops_local.ccbill_sandbox.server import start_sandbox


def default_webhook_url(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    explicit = (env.get("BILLOPS_SANDBOX_WEBHOOK_URL") or "").strip()
    if explicit:
        return explicit
    token = (env.get("BILLOPS_WEBHOOK_TOKEN") or "").strip()
    if not token:
        return None
    port = (env.get("BILLOPS_API_PORT") or "3000").strip()
    return f"http://127.0.0.1:{port}/webhooks/ccbill?token={quote(token, safe='')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billops_local.ccbill_sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BILLOPS_SANDBOX_PORT") or 4000))
    parser.add_argument("--webhook-url", default=default_webhook_url())
    parser.add_argument("--webhook-format", choices=("json", "urlencoded", "any"),
                        default=(os.environ.get("BILLOPS_SANDBOX_WEBHOOK_FORMAT") or "json").strip())
    parser.add_argument("--seed", default=(os.environ.get("BILLOPS_SANDBOX_SEED") or "").strip())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from billops_local.ccbill_sandbox.webhook_config import WebhookConfig, WebhookConfigError

    try:
        webhook_config = WebhookConfig.from_env({**os.environ, "BILLOPS_SANDBOX_WEBHOOK_FORMAT": args.webhook_format,
                                                 "BILLOPS_SANDBOX_SEED": args.seed})
    except WebhookConfigError as error:
        parser.error(f"{error.param}: {error.message}")

    from billops.ccbill.upgrade_encryption import EncRecipe

    key = (os.environ.get("BILLOPS_UPGRADE_KEY") or "").strip() or None
    handle = start_sandbox(args.host, args.port, args.webhook_url, webhook_config.format, upgrade_key=key,
                           enc_recipe=EncRecipe.from_env(), webhook_config=webhook_config)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
