"""Lint every IAM policy of the deployed template with parliament (run by `make check-iam` in the scanners' venv).

Usage: ``.venv-scan/bin/python iam_check/policy_lint.py test-artifacts/iam/policies.json`` (written by
``python -m iam_check``: each role's policies, SAM's policy templates expanded, the managed policies, the key
policies, resolved to concrete ARNs). parliament checks the action names, that each resource fits a resource type
of its action, and that each condition key exists for its action. A finding fails the lint unless ``EXPLAINED``
below says why it is right here. Standalone on purpose: the scanners' venv has parliament, not the project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# (parliament's issue, where the policy is (substring), what the finding is about (substring of its detail), why).
EXPLAINED = [
    ("NO_VERSION", "FunctionRole/", "",
     "SAM writes its policy templates (EventBridgePutEventsPolicy, AWSSecretsManagerGetSecretValuePolicy) without "
     "a Version; the default language version only matters for policy variables, which they do not use"),
    ("RESOURCE_STAR", " key policy", "",
     "in a key policy, Resource \"*\" is the key itself (AWS KMS Developer Guide, 'Key policies')"),
    # StorageKey's, and AnalyticsKey's (templates/analytics-export.yaml).
    ("MISMATCHED_TYPE", " key policy", "ArnLike",
     "CloudWatch Logs' encryption context aws:logs:arn is an ARN, matched with ArnLike as AWS documents for log "
     "group encryption; parliament types every kms:EncryptionContext value as a string"),
]


_used: set[tuple[str, str, str, str]] = set()


def _explanation(finding, where: str) -> str | None:
    detail = json.dumps(finding.detail, sort_keys=True, default=str)
    for entry in EXPLAINED:
        issue, place, about, why = entry
        if finding.issue == issue and place in where and about in detail:
            _used.add(entry)
            return why
    return None


def main(argv: list[str]) -> int:
    from parliament import analyze_policy_string

    policies = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    unexplained = 0
    explained = 0
    for policy in policies:
        analyzed = analyze_policy_string(json.dumps(policy["document"]), ignore_private_auditors=True)
        for finding in analyzed.findings:
            why = _explanation(finding, policy["where"])
            if why is None:
                unexplained += 1
                print(f"FINDING {policy['where']}: {finding.issue} {finding.title}: "
                      f"{json.dumps(finding.detail, default=str)}")
            else:
                explained += 1
    print(f"parliament: {len(policies)} policies, {explained} finding(s) explained in iam_check/policy_lint.py, "
          f"{unexplained} unexplained")
    for entry in EXPLAINED:
        if entry not in _used:
            print(f"parliament: the explanation of {entry[0]} in {entry[1]!r} matched nothing: remove it")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
