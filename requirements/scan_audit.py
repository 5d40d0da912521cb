"""pip-audit over the locked dependencies, for `make security`: fails on any known vulnerability, and says loudly when
the audit could not run at all (pip-audit itself prints "No known vulnerabilities found" when every package was
skipped because the vulnerability service could not be asked, which would be a silent pass).

Usage: python requirements/scan_audit.py PIP_AUDIT REQUIREMENTS...
Exit 1 on a vulnerability (or pip-audit failing); exit 0 with a loud "COULD NOT RUN" line when nothing or only part
could be audited, unless BILLOPS_REQUIRE_DEPENDENCY_AUDIT=1 (then exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs pip-audit, a fixed local executable
import sys
from typing import Any

SERVICE = "pypi"  # PyPI's JSON API (/pypi/<name>/<version>/json carries each release's known vulnerabilities)


def run_pip_audit(pip_audit: str, requirements: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    command = [pip_audit, "--no-deps", "--disable-pip", "--progress-spinner", "off", "-s", SERVICE,
               "-f", "json", "--desc", "off"]
    for requirement in requirements:
        command += ["-r", requirement]
    result = subprocess.run(  # nosec B603  # a fixed argument list, no shell
        command, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = None
    return result.returncode, report, result.stderr


def verdict(report: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """(vulnerabilities found, packages that could not be audited, packages audited)."""
    found: list[str] = []
    skipped: list[str] = []
    audited = 0
    for dependency in report.get("dependencies", []):
        label = f"{dependency.get('name')}=={dependency.get('version')}"
        if dependency.get("skip_reason"):
            skipped.append(f"{label}: {dependency['skip_reason']}")
            continue
        audited += 1
        for vulnerability in dependency.get("vulns", []):
            fixes = ", ".join(vulnerability.get("fix_versions") or []) or "no fixed version"
            found.append(f"{label}: {vulnerability.get('id')} (fixed in: {fixes})")
    return found, skipped, audited


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    pip_audit, requirements = argv[1], argv[2:]
    returncode, report, stderr = run_pip_audit(pip_audit, requirements)
    if report is None:
        print(stderr, file=sys.stderr)
        print(f"pip-audit failed (exit {returncode}) without a report", file=sys.stderr)
        return 1
    found, skipped, audited = verdict(report)
    for line in found:
        print(f"VULNERABLE {line}")
    if found:
        print(f"pip-audit: {len(found)} known vulnerabilities in {', '.join(requirements)}")
        return 1
    if skipped:
        reasons = sorted({line.split(": ", 1)[1].split(":")[0] for line in skipped})
        banner = "=" * 100
        print(banner)
        print(f"DEPENDENCY AUDIT COULD NOT RUN: {len(skipped)} of {len(skipped) + audited} locked packages were NOT "
              f"audited ({'; '.join(reasons)}).")
        print(f"The vulnerability service ({SERVICE}: PyPI's per-release JSON API) did not answer from this machine. "
              "This is NOT a pass: no verdict on known vulnerabilities.")
        print(banner)
        return 2 if os.environ.get("BILLOPS_REQUIRE_DEPENDENCY_AUDIT") == "1" else 0
    print(f"pip-audit: {audited} locked packages audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
