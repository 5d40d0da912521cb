"""What `make security` relies on: every checkov suppression says why, and the dependency audit neither passes a
vulnerability nor reports "no vulnerabilities" when it could not ask anyone."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest
from billops_local.template_resources import DEFAULT_TEMPLATE, load_yaml

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]


def _scan_audit():
    spec = importlib.util.spec_from_file_location("scan_audit", ROOT / "requirements" / "scan_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_checkov_suppression_carries_its_reason() -> None:
    skips = [
        (name, skip)
        for name, resource in load_yaml(DEFAULT_TEMPLATE)["Resources"].items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
    ]
    assert skips, "no suppression found: the walk is broken, or the Metadata moved"
    for name, skip in skips:
        assert skip["id"].startswith(("CKV_", "CKV2_")), name
        assert len(skip.get("comment", "").split()) >= 8, f"{name}: {skip['id']} has no real reason"


def _fake_pip_audit(tmp_path: Path, report: dict) -> str:
    """A stand-in for pip-audit that prints the given JSON report (the real one needs the vulnerability service)."""
    script = tmp_path / "pip-audit"
    script.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(report))})\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_the_audit_fails_on_a_known_vulnerability(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = {"dependencies": [
        {"name": "requests", "version": "2.0.0", "vulns": [{"id": "PYSEC-0000-1", "fix_versions": ["2.32.0"]}]},
        {"name": "pydantic", "version": "2.13.5", "vulns": []},
    ]}
    assert _scan_audit().main(["scan_audit", _fake_pip_audit(tmp_path, report), "x.lock"]) == 1
    assert "VULNERABLE requests==2.0.0: PYSEC-0000-1 (fixed in: 2.32.0)" in capsys.readouterr().out


def test_an_audit_that_could_not_ask_says_so_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    report = {"dependencies": [
        {"name": "requests", "version": "2.34.2", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        {"name": "pydantic", "version": "2.13.5", "vulns": []},
    ]}
    fake = _fake_pip_audit(tmp_path, report)
    monkeypatch.delenv("BILLOPS_REQUIRE_DEPENDENCY_AUDIT", raising=False)
    assert _scan_audit().main(["scan_audit", fake, "x.lock"]) == 0
    out = capsys.readouterr().out
    assert "DEPENDENCY AUDIT COULD NOT RUN: 1 of 2 locked packages were NOT audited" in out
    assert "no known vulnerabilities" not in out.lower().replace("no verdict on known vulnerabilities", "")
    monkeypatch.setenv("BILLOPS_REQUIRE_DEPENDENCY_AUDIT", "1")
    assert _scan_audit().main(["scan_audit", fake, "x.lock"]) == 2


def test_a_clean_audit_counts_what_it_audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = {"dependencies": [{"name": "pydantic", "version": "2.13.5", "vulns": []}]}
    assert _scan_audit().main(["scan_audit", _fake_pip_audit(tmp_path, report), "x.lock"]) == 0
    assert "1 locked packages audited, no known vulnerabilities" in capsys.readouterr().out
