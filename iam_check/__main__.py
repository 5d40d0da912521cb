"""``python -m iam_check`` (`make check-iam`): check the AWS calls the last test run recorded against the deployed
form of template.yaml; with ``--record-if-missing``, make a short recording run first when there is none.

Exit status: 0 when every recorded call would be allowed, 1 when one would be denied (or cannot be checked).
The report (also in test-artifacts/iam/report.txt) lists the grants no recorded call used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALLS = ROOT / "test-artifacts" / "aws-calls"
OUT = ROOT / "test-artifacts" / "iam"


OWN_RECORDING = CALLS / "check-iam"


def _recorded_runs() -> list[Path]:
    """The suites' recordings (make test's, make test-reliability's); check-iam's own short one only when there is
    no other (it would otherwise outlive the code it recorded)."""
    suites = sorted(path for path in CALLS.iterdir() if path.is_dir() and path != OWN_RECORDING) \
        if CALLS.is_dir() else []
    return [path for path in suites if any(path.rglob("calls-*.jsonl"))] or [OWN_RECORDING]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iam_check", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=Path, action="append",
                        help=f"a directory of recorded calls (default: every one under {CALLS.relative_to(ROOT)})")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--record-if-missing", action="store_true",
                        help="no recorded call yet: run the short recording suite first (iam_check.recording_run)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the report and the resolved policies go")
    args = parser.parse_args(argv)
    started = time.monotonic()

    from iam_check import deployed_template
    from iam_check.checking import check, functions_without_calls, read_recordings, report

    directories = args.calls or _recorded_runs()
    calls = read_recordings(directory for directory in directories if directory.exists())
    if not calls and args.record_if_missing:
        from iam_check.recording_run import record

        print("iam_check: no recorded AWS calls yet: recording them with a short run of the suites", flush=True)
        status = record(OWN_RECORDING)
        if status != 0:
            print(f"iam_check: the recording run failed (pytest exit {status})", file=sys.stderr)
            return 1
        calls = read_recordings([OWN_RECORDING])
    if not calls:
        print(f"iam_check: no recorded AWS calls under {', '.join(map(str, directories))} "
              "(run `make test`, or `make check-iam` to record them)", file=sys.stderr)
        return 1

    template = deployed_template.load(args.template)
    result = check(calls, template, deployed_template.justifications(args.template))
    text = report(result, template)
    silent = functions_without_calls(result, template)
    if silent:
        text += "\n\nFunctions with no recorded call at all: " + ", ".join(silent)
    text += f"\n\niam_check took {time.monotonic() - started:.1f} s"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.txt").write_text(text + "\n", encoding="utf-8")
    # The parts that are off by default (the fixed-egress network, ...) are never checked against calls (the tests
    # run them off), but their policies are linted all the same.
    optional = deployed_template.load(args.template,
                                      parameter_overrides=deployed_template.every_option_on(args.template))
    linted = template.policies + [policy for policy in optional.policies
                                  if policy["where"] not in {known["where"] for known in template.policies}]
    (args.out / "policies.json").write_text(json.dumps(linted, indent=1), encoding="utf-8")
    print(text)
    if not result.ok:
        print(f"\niam_check: FAILED: {len(result.denials)} denied call(s), {len(result.problems)} unchecked",
              file=sys.stderr)
        return 1
    print("\niam_check: every recorded call is allowed by the deployed template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
