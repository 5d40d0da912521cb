"""``python -m billops_local`` (``make run``): the local stack in the foreground until Ctrl-C or SIGTERM.

No Docker, no AWS account: moto on 127.0.0.1:$BILLOPS_AWS_PORT (5000), the HTTP API on 127.0.0.1:$BILLOPS_API_PORT
(3000), the webhook token $BILLOPS_WEBHOOK_TOKEN (local-webhook-token). What to curl is printed on stdout, followed
by the line "billops local stack ready"; logs go to stderr. Exit code 0 after a clean stop, 1 if it cannot start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from billops_local.stack import LocalStackError, build_stack
from billops_local.template_resources import TemplateError

log = logging.getLogger("billops_local")


def _configure_logging(verbose: bool) -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format=formatter._fmt, datefmt=formatter.datefmt)
    # The stack's own logger gets its own handler: Powertools' Logger(service="billops") puts a filter on the root
    # handlers that drops every record whose logger name contains "billops" (billops_local included).
    own = logging.getLogger("billops_local")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    own.addHandler(handler)
    own.setLevel(logging.DEBUG if verbose else logging.INFO)
    own.propagate = False
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m billops_local",
        description="Run billops locally: moto, the HTTP API emulator and the stream poller, from template.yaml.",
        epilog="Settings: BILLOPS_AWS_PORT (5000), BILLOPS_API_PORT (3000), BILLOPS_SANDBOX_PORT (4000), "
        "BILLOPS_WEBHOOK_TOKEN (local-webhook-token).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    arguments = parser.parse_args(argv)
    _configure_logging(arguments.verbose)

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop_requested.is_set():  # a second Ctrl-C: stop waiting for a clean shutdown
            os._exit(130)
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        stack = build_stack()
        stack.start()
    except (LocalStackError, TemplateError, OSError) as error:
        log.error("the local stack could not start: %s", error)
        return 1
    except Exception:
        log.exception("the local stack could not start")
        return 1

    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        stack.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    exit_code = main()
    # Skip the interpreter's finalisation: after a long run moto holds hundreds of thousands of objects and tearing
    # them down took a minute of CPU after "stopped" (measured by the reliability suites). Everything the stack
    # owns lives in this process's memory, so there is nothing left to flush but the standard streams and logs.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
