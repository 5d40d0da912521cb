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
    ("RESOURCE_MISMATCH", "FunctionRole", "/index/*",
     "a statement names a table and its indexes together: GetItem/PutItem/UpdateItem only ever match the table's "
     "ARN, Query the index's; one statement per table keeps the roles readable"),
    ("UNKNOWN_CONDITION_FOR_ACTION", "", "kms:ViaService",
     "kms:ViaService is a KMS condition key for every KMS operation (AWS KMS Developer Guide, 'kms:ViaService'); "
     "parliament's table lists it under few actions"),
    ("UNKNOWN_CONDITION_FOR_ACTION", "", "kms:EncryptionContext:",
     "kms:EncryptionContext:<key> exists for every cryptographic operation (KMS Developer Guide); parliament does "
     "not expand the '<key>' template"),
    ("UNKNOWN_CONDITION_FOR_ACTION", "", "kms:CallerAccount",
     "kms:CallerAccount applies to every KMS operation (KMS Developer Guide)"),
    ("RESOURCE_STAR", "(AWS managed)", "",
     "AWS's own managed policies, attached by SAM"),
]


def _explanation(finding, where: str) -> str | None:
    detail = json.dumps(finding.detail, sort_keys=True, default=str)
    for issue, place, about, why in EXPLAINED:
        if finding.issue == issue and place in where and about in detail:
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
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
