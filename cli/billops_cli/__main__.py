"""``billops``: the operator's command line. ``billops --help``, and docs/cli.md for the whole reference.

    billops [--local | --stack NAME [--region R] [--profile P]] [--json] COMMAND ...

The target and output options may also be given after the command (``billops dlq list --json --stack x``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from billops_cli import (
    api_key_commands,
    bulk_operations,
    ccbill_commands,
    reconcile_command,
    replay_commands,
    report_command,
    subscription_commands,
)
from billops_cli.output import EXIT_FAILED, EXIT_INTERRUPTED, CliError, Output
from billops_cli.targets import resolve_target

COMMAND_MODULES = (api_key_commands, subscription_commands, replay_commands, bulk_operations, reconcile_command,
                   ccbill_commands, report_command)


def _target_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    flag_default = argparse.SUPPRESS if suppress else False
    where = parser.add_argument_group("target and output")
    where.add_argument("--local", action="store_true", default=flag_default,
                       help="the local stack of `make run` (the default unless $BILLOPS_STACK is set): moto on "
                            "$BILLOPS_AWS_PORT (5000), the API on $BILLOPS_API_PORT (3000)")
    where.add_argument("--stack", default=default, metavar="NAME",
                       help="a deployed CloudFormation stack (e.g. billops-dev; default $BILLOPS_STACK); uses your "
                            "AWS credentials")
    where.add_argument("--region", default=default, help="the stack's region (default: your AWS configuration's)")
    where.add_argument("--profile", default=default, help="the AWS profile to use with --stack")
    where.add_argument("--json", action="store_true", default=flag_default,
                       help="print one machine-readable JSON document instead of tables")
    where.add_argument("--no-progress", action="store_true", default=flag_default,
                       help="no progress bar on stderr")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _target_options(common, suppress=True)
    parser = argparse.ArgumentParser(
        prog="billops",
        description="Operate a billops stack: API keys, subscriptions, dead-letter and quarantine replays, bulk "
                    "operations from a CSV, reconciliation, reports. Talks to the local stack unless --stack is "
                    "given.",
        epilog="Exit codes: 0 done; 1 something failed or was refused; 2 usage; 3 an outcome is unknown or not "
               "final yet. See docs/cli.md.",
    )
    _target_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(json_mode=bool(args.json))
    try:
        target = resolve_target(local=bool(args.local), stack=args.stack, region=args.region, profile=args.profile)
        return int(args.handler(args, target, out))
    except CliError as error:
        print(f"billops: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("billops: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`billops ... | head`): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as error:
        message = _aws_problem(error)
        if message is None:
            raise
        print(f"billops: {message}", file=sys.stderr)
        return EXIT_FAILED


def _aws_problem(error: Exception) -> str | None:
    from billops.storage.errors import StorageUnavailable
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return "no AWS credentials (configure a profile, SSO login or environment variables)"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}"
    if isinstance(error, BotoCoreError):
        return f"AWS could not be reached: {error}"
    if isinstance(error, StorageUnavailable):
        return f"DynamoDB: {error}"
    return None


if __name__ == "__main__":
    sys.exit(main())
