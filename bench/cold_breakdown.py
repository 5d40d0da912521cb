"""Where the webhook receiver's cold start goes: ``python -m bench.cold_breakdown [--runs 9]``.

The cold probe of bench.cold_imports (same interpreter flags, import path, environment and stubbed first delivery),
but the receiver's work is split into steps, each timed (CPU) after the ones before it: first boto3, then the
libraries the handler imports, billops' own import and set-up, then what its first delivery makes (the AWS clients,
the event type's model, cryptography, the personal-data settings), and last the first delivery itself, which then
pays only for what is left. The collector is held off for the whole run, as billops.cold_start holds it for the
receiver's init and first invocation. Prints the median of each step; informational, not a target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.cold_imports import CLOSED_ENDPOINT, LAYER_DIR, _compile, _targets, lambda_site
from bench.isolated import ROOT, clean_environment
from bench.stats import median

_MODEL = "from billops.webhooks.event_models import model_for; from billops.webhooks.event_types import EventType; "
STEPS = (
    ("import boto3 (the floor)", "import boto3"),
    ("pydantic", "import pydantic"),
    ("pydantic: BaseModel", "import pydantic.main"),
    ("pydantic: fields and types (pydantic.dataclasses)", "import pydantic.dataclasses"),
    ("pydantic-settings", "import pydantic_settings"),
    ("Powertools: Logger, Metrics", "import aws_lambda_powertools"),
    ("Powertools: event data classes", "import aws_lambda_powertools.utilities.data_classes"),
    ("Powertools: the event-handler package", "import aws_lambda_powertools.event_handler"),
    ("billops: the handler's imports and set-up", "import webhook_receiver_handler"),
    ("first delivery: the DynamoDB client (the first client)",
     "from billops.storage.aws_clients import aws_client; aws_client('dynamodb')"),
    ("first delivery: the KMS client", "from billops.storage.aws_clients import aws_client; aws_client('kms')"),
    ("first delivery: the Secrets Manager client and provider",
     "from billops.storage.aws_clients import secrets_provider; secrets_provider()"),
    ("first delivery: the event type's model classes", _MODEL + "model_for(EventType.NEW_SALE_SUCCESS)"),
    ("first delivery: the event type's validator", _MODEL + "model_for(EventType.NEW_SALE_SUCCESS).model_rebuild()"),
    ("first delivery: cryptography (AES-GCM)", "import cryptography.hazmat.primitives.ciphers.aead"),
    ("first delivery: the personal-data settings",
     "from billops.settings.privacy import PersonalDataSettings; PersonalDataSettings.from_env()"),
)

_PROBE = """\
import gc, sys, time, json
gc.disable()
sys.path[:0] = {lambda_path!r}
out = []
for code in {steps!r}:
    c = time.process_time_ns()
    exec(code, {{}})
    out.append((time.process_time_ns() - c) / 1e6)
sys.path.extend({bench_path!r})
from bench.cold_imports import first_delivery
out.append(first_delivery(sys.modules["webhook_receiver_handler"], "ours")[1])
open({result_path!r}, "w").write(json.dumps(out))
"""


def measure(runs: int) -> list[tuple[str, float]]:
    site = lambda_site()
    receiver = next(t for t in _targets() if t["name"] == "WebhookReceiverFunction")
    _compile([LAYER_DIR, site, Path(receiver["code_dir"])])
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="billops-cold-steps-") as work:
            result = Path(work) / "steps.json"
            code = _PROBE.format(lambda_path=[receiver["code_dir"], str(LAYER_DIR), str(site)],
                                 steps=[code for _, code in STEPS], bench_path=[str(ROOT), str(ROOT / "local")],
                                 result_path=str(result))
            env = clean_environment(AWS_ENDPOINT_URL=CLOSED_ENDPOINT, **receiver["env"])
            process = subprocess.run([sys.executable, "-S", "-c", code], cwd=work, env=env, capture_output=True,
                                     text=True, timeout=120, check=False)
            if process.returncode != 0:
                raise RuntimeError(f"the probe failed:\n{process.stderr[-2000:]}")
            samples.append(json.loads(result.read_text()))
    names = [name for name, _ in STEPS] + ["first delivery: the rest (the delivery itself)"]
    return [(name, median(sample[i] for sample in samples)) for i, name in enumerate(names)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_breakdown")
    parser.add_argument("--runs", type=int, default=9)
    arguments = parser.parse_args(argv)
    steps = measure(arguments.runs)
    for name, ms in steps:
        print(f"{ms:7.1f} ms  {name}")
    print(f"{sum(ms for _, ms in steps):7.1f} ms  total (medians of {arguments.runs}; the steps' medians summed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
