# billops: the two commands are `make run` (the local stack) and `make test` (everything CI runs).
# Both create the project's own virtual environment in .venv and install the locked dependencies first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install browser run test test-unit test-integration test-e2e test-template test-reliability bench lock clean

$(INSTALLED): pyproject.toml requirements/dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "billops needs Python 3.11 (the Lambda runtime; sam build needs the same interpreter)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements/dev.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(INSTALLED)

install: $(INSTALLED)

## Debian's Chromium for the upgrade page's browser test (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium) for the browser test" >&2; exit 1; fi; }

## The local stack: moto for AWS, the API on 127.0.0.1:3000, the CCBill sandbox. Ctrl-C stops it.
run: install
	$(PY) -m billops_local

## Every test: unit, integration (moto), template checks (sam validate --lint, sam build) and end-to-end.
test: install browser
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

test-template: install
	$(PY) -m pytest tests/template

## The reliability suites (10,000 webhooks with faults, 1,000 operations with faults, fuzzing, a minute of load).
test-reliability: install
	$(PY) -m pytest tests/reliability -m reliability

## Benchmarks and the cost model, ours beside the Powertools-tutorial baseline: writes bench/results.json,
## bench/report.md and bench/chart.png. Not part of `make test`.
bench: install
	$(PY) -m bench

## Re-pin requirements/dev.lock from pyproject.toml (then keep layers/billops/requirements.txt in step).
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache test-artifacts
