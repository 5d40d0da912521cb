# billops: the two commands are `make run` (the local stack) and `make test` (everything CI runs).
# Both create the project's own virtual environment in .venv and install the locked dependencies first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install browser wrk run test test-unit test-integration test-e2e test-template test-reliability bench lock clean \
	security scan-lock check-iam monitoring

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
## sam build) and end-to-end, in TEST_WORKERS processes (pytest-xdist, one test file per worker at a time, the slow
## files first; each worker has its own local stack and moto on its own ports). TEST_WORKERS=0: one process.
## The rules a test must follow to run in parallel: docs/testing.md.
## Every AWS call the functions make is recorded (one file per process), then check-iam runs over those calls.
## 3 on the 2-core CI machine: the end-to-end tests spend much of their time waiting on their stacks (queues, schedules,
## upgrade windows), so a third worker fills the cores (docs/testing.md has the measurements).
TEST_WORKERS ?= 3
PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
AWS_CALLS := $(CURDIR)/test-artifacts/aws-calls

## The security scans run beside the tests (mostly one core, while the e2e tests wait on the stacks); their output
## is printed after pytest's, and `make test` fails if either failed.
test: export BILLOPS_RECORD_AWS_CALLS = $(AWS_CALLS)/test
test: install browser $(SCAN_INSTALLED)
	@mkdir -p $(SECURITY_OUT)
	@$(MAKE) --no-print-directory security > $(SECURITY_OUT)/security.log 2>&1 & scans=$$!; \
	$(PY) -m pytest $(PARALLEL) --durations=30; tests=$$?; \
	wait $$scans; security=$$?; \
	echo "--- make security (ran beside the tests; exit $$security) ---"; cat $(SECURITY_OUT)/security.log; \
	[ $$tests -eq 0 ] && [ $$security -eq 0 ]
	$(MAKE) --no-print-directory check-iam

## Least privilege that works on the first deploy: the AWS calls the last test run recorded (under
## test-artifacts/aws-calls; none yet = a short recording run first) against the deployed template's roles and key
## policies (denied = failure, naming the call; unused grants listed in test-artifacts/iam/report.txt), then
## parliament over every policy.
check-iam: install $(SCAN_INSTALLED)
	$(PY) -m iam_check --record-if-missing
	$(SCAN_VENV)/bin/python iam_check/policy_lint.py test-artifacts/iam/policies.json

## cfn-lint over the template and its nested templates (templates/*.yaml); checkov over the CloudFormation the SAM
## transform makes of every part, one JSON each (no failed check: each suppression is in the resource's Metadata
## with its reason); bandit over the code; pip-audit over the locks (it fails on a known vulnerability, and says
## loudly when the vulnerability service cannot be reached). tests/template/test_template_parts.py checks that these
## globs reach every nested template template.yaml names.
security: install $(SCAN_INSTALLED)
	$(PY) templates/monitoring/generate.py --check
	$(VENV)/bin/cfn-lint template.yaml templates/*.yaml
	$(PY) tests/template/sam_transform.py $(SECURITY_OUT)/transformed
	$(SCAN_VENV)/bin/checkov --directory $(SECURITY_OUT)/transformed --framework cloudformation \
	  --compact --quiet --skip-download
	$(SCAN_VENV)/bin/bandit --quiet --recursive layers functions local cli
	$(PY) requirements/scan_audit.py $(SCAN_VENV)/bin/pip-audit requirements/dev.lock layers/billops/requirements.txt

test-unit: install
	$(PY) -m pytest $(PARALLEL) tests/unit

test-integration: install
	$(PY) -m pytest $(PARALLEL) tests/integration

test-e2e: install
	$(PY) -m pytest $(PARALLEL) tests/e2e

test-template: install
	$(PY) -m pytest $(PARALLEL) tests/template

## The reliability suites (10,000 webhooks with faults, 1,000 operations with faults, fuzzing, a minute of load).
## Each suite starts its own stack, so those that only count outcomes run side by side (one per worker); the ones
## whose timing is part of what they check (load: the rate held; fuzzing: per-example deadlines; marked
## runs_alone) run afterwards, alone. Both runs always run; the target fails if either did. Then check-iam over the
## calls they recorded.
RELIABILITY_WORKERS ?= 2

test-reliability: export BILLOPS_RECORD_AWS_CALLS = $(AWS_CALLS)/reliability
test-reliability: install wrk
	@status=0; \
	$(PY) -m pytest tests/reliability -m "reliability and not runs_alone" \
	  $(if $(filter 0,$(RELIABILITY_WORKERS)),-p no:xdist,-n $(RELIABILITY_WORKERS) --dist loadfile) || status=$$?; \
	$(PY) -m pytest tests/reliability -m "reliability and runs_alone" -p no:xdist || status=$$?; \
	exit $$status
	$(MAKE) --no-print-directory check-iam

## Benchmarks and the cost model, ours beside the Powertools-tutorial baseline: writes bench/results.json,
## bench/report.md and bench/chart.png. Not part of `make test`.
bench: install
	$(PY) -m bench

## templates/monitoring.yaml (the alarms and the dashboard) from its short list,
## templates/monitoring/alarms-and-dashboard.yaml.
monitoring: install
	$(PY) templates/monitoring/generate.py

## Re-pin requirements/dev.lock from pyproject.toml (then keep layers/billops/requirements.txt in step).
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

## Re-pin the scanners (requirements/scan.in -> requirements/scan.lock).
scan-lock: install
	$(VENV)/bin/uv pip compile requirements/scan.in --python-version 3.11 -o requirements/scan.lock

clean:
	rm -rf $(VENV) $(SCAN_VENV) .aws-sam .pytest_cache test-artifacts
