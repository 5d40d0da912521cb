# billops: the two commands are `make run` (the local stack) and `make test` (everything CI runs).
# Both create the project's own virtual environment in .venv and install the locked dependencies first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install browser wrk run test test-unit test-integration test-e2e test-template test-reliability bench lock clean \
	security scan-lock

$(INSTALLED): pyproject.toml requirements/dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "billops needs Python 3.11 (the Lambda runtime; sam build needs the same interpreter)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements/dev.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(INSTALLED)

install: $(INSTALLED)

## The security scanners live in their own environment (.venv-scan, from requirements/scan.lock): checkov pins many
## libraries the project also uses, and the two locks must not fight.
SCAN_VENV := .venv-scan
SCAN_INSTALLED := $(SCAN_VENV)/.installed
SECURITY_OUT := test-artifacts/security

$(SCAN_INSTALLED): requirements/scan.lock $(INSTALLED)
	$(PYTHON) -m venv $(SCAN_VENV)
	$(VENV)/bin/uv pip install --quiet --python $(SCAN_VENV)/bin/python -r requirements/scan.lock
	@touch $(SCAN_INSTALLED)

## Debian's Chromium for the upgrade page's browser test (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser test" >&2; exit 1; fi; }

## Debian's wrk for the load suite of `make test-reliability`.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "install Debian's wrk package (sudo apt-get install wrk) for the load suite" >&2; exit 1; fi; }

## The local stack: moto for AWS, the API on 127.0.0.1:3000, the CCBill sandbox. Ctrl-C stops it.
run: install
	$(PY) -m billops_local

## Every test: the security checks (below), then unit, integration (moto), template checks (sam validate --lint,
## sam build) and end-to-end.
test: install browser security
	$(PY) -m pytest

## cfn-lint over the template; checkov over the CloudFormation the SAM transform makes of it (no failed check: each
## suppression is in the resource's Metadata with its reason); bandit over the code; pip-audit over the locks (it
## fails on a known vulnerability, and says loudly when the vulnerability service cannot be reached).
security: install $(SCAN_INSTALLED)
	$(VENV)/bin/cfn-lint template.yaml templates/analytics-export.yaml
	$(PY) tests/template/sam_transform.py $(SECURITY_OUT)/transformed-template.json
	$(SCAN_VENV)/bin/checkov --file $(SECURITY_OUT)/transformed-template.json --framework cloudformation \
	  --compact --quiet --skip-download
	$(SCAN_VENV)/bin/checkov --file templates/analytics-export.yaml --framework cloudformation \
	  --compact --quiet --skip-download
	$(SCAN_VENV)/bin/bandit --quiet --recursive layers functions local cli
	$(PY) requirements/scan_audit.py $(SCAN_VENV)/bin/pip-audit requirements/dev.lock layers/billops/requirements.txt

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

test-template: install
	$(PY) -m pytest tests/template

## The reliability suites (10,000 webhooks with faults, 1,000 operations with faults, fuzzing, a minute of load).
test-reliability: install wrk
	$(PY) -m pytest tests/reliability -m reliability

## Benchmarks and the cost model, ours beside the Powertools-tutorial baseline: writes bench/results.json,
## bench/report.md and bench/chart.png. Not part of `make test`.
bench: install
	$(PY) -m bench

## Re-pin requirements/dev.lock from pyproject.toml (then keep layers/billops/requirements.txt in step).
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

## Re-pin the scanners (requirements/scan.in -> requirements/scan.lock).
scan-lock: install
	$(VENV)/bin/uv pip compile requirements/scan.in --python-version 3.11 -o requirements/scan.lock

clean:
	rm -rf $(VENV) $(SCAN_VENV) .aws-sam .pytest_cache test-artifacts
