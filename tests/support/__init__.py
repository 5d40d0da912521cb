"""What the test suites share beyond fixtures: waiting for asynchronous state, free ports, per-worker artifacts.

Importable as ``support`` from every test module and conftest (tests/ is on sys.path: pytest's rootdir-relative
"prepend" import mode puts the directory of tests/conftest.py there). Rules for tests that run in parallel:
docs/testing.md.
"""
