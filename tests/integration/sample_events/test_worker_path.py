"""The worker's path through the code: which of the project's files and functions one SQS batch passes through.

The operation worker runs the sample batch (events/operation_worker/sqs-batch.json: an extend and a discount) in a
warm container, as Lambda runs all but the first batch: the container has handled one message before, so the
imports and the lazily built CCBill client are not part of the figure. ``sys.setprofile`` sees every Python call of
the invoking thread; a call counts when its code is the project's own (``layers/billops/billops/`` or
``functions/``), never a library's. The figures go to test-artifacts/worker-path/<worker>/worker-path.json and are
printed with ``-s``:

    .venv/bin/python -m pytest tests/integration/sample_events/test_worker_path.py -q -s -p no:xdist

Issue 13 part 4 compares them before and after the re-cut of operations/ (fewer files a request passes through and
returns from is the goal; the figure is not a limit this test holds, the outcome is).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from sam_local_invoke import SAMPLE_SUBSCRIPTION, sample
from support.parallel import artifacts_dir

ROOT = Path(__file__).resolve().parents[3]
PROJECT = (str(ROOT / "layers" / "billops" / "billops") + "/", str(ROOT / "functions") + "/")


def traced(call):
    """Run ``call`` under a profile hook; the project's files and functions it entered, and how deep it nested."""
    calls: Counter[tuple[str, str]] = Counter()
    depth = deepest = 0

    def profile(frame, event, _arg):
        nonlocal depth, deepest
        filename = frame.f_code.co_filename
        if not filename.startswith(PROJECT):
            return
        if event == "call":
            calls[(filename, frame.f_code.co_qualname)] += 1
            depth += 1
            deepest = max(deepest, depth)
        elif event == "return":
            depth -= 1

    sys.setprofile(profile)
    try:
        answer = call()
    finally:
        sys.setprofile(None)
    files = sorted({str(Path(filename).relative_to(ROOT)) for filename, _ in calls})
    return answer, {"files": len(files), "functions": len(calls), "calls": sum(calls.values()),
                    "deepest_project_nesting": deepest, "file_list": files}


def test_the_worker_s_path_through_the_code_for_the_sample_batch(sam_local):
    sam_local.sale_at_ccbill()
    sam_local.subscription_known()
    worker = sam_local.container("OperationWorkerFunction")
    context = sam_local.context("OperationWorkerFunction")
    warm_up = sam_local.sqs_event({"operation_type": "refresh", "subscription_id": SAMPLE_SUBSCRIPTION,
                                   "idempotency_key": "path-warm-up", "parameters": {}})
    assert worker.handler(warm_up, context) == {"batchItemFailures": []}

    answer, figures = traced(lambda: worker.handler(sample("operation_worker/sqs-batch.json"), context))

    assert answer == {"batchItemFailures": []}
    assert sam_local.operation("sample-extend-0001")["status"] == "succeeded"
    assert sam_local.operation("sample-discount-0001")["status"] == "succeeded"
    assert "functions/operation_worker/operation_worker_handler.py" in figures["file_list"]
    (artifacts_dir("worker-path") / "worker-path.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print("\nworker path (sample SQS batch, warm):", json.dumps({k: v for k, v in figures.items() if k != "file_list"}))
    print("\n".join(figures["file_list"]))
