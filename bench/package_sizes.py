"""Unpacked size of every function as ``sam build`` makes it (no container: the arm64 wheels come from PyPI), and
of the baseline built the same way.

billops' functions share one layer (layers/billops: the ``billops`` package and its requirements); Lambda unpacks
function + layers into one 250 MB (unzipped) budget, so each function is reported as its own code, the layer, and
the two together. The baseline is the tutorial's shape: one function whose requirements.txt brings Powertools
(boto3 from the runtime, as for billops). Sizes are apparent sizes (the sum of file sizes, what Lambda's limit
counts); the zipped size (deflate, as ``sam deploy`` uploads) is given beside it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.isolated import ROOT, write_result

TEMPLATE = ROOT / "template.yaml"
BASELINE_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: The Powertools-tutorial baseline webhook receiver (bench/baseline_receiver.py).
Resources:
  WebhookFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: webhook/
      Handler: baseline_receiver.lambda_handler
      Runtime: python3.11
      Architectures: [arm64]
      MemorySize: 512
      Timeout: 10
      Events:
        Webhook:
          Type: Api
          Properties:
            Path: /webhooks/ccbill
            Method: post
"""


def _sam_environment() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "SAM_CLI_TELEMETRY": "0"})
    return env


def sam_build(template: Path, work: Path) -> tuple[Path, float]:
    build_dir = work / "build"
    sam = Path(sys.executable).parent / "sam"
    started = time.monotonic()
    process = subprocess.run(
        [str(sam), "build", "--template-file", str(template), "--build-dir", str(build_dir),
         "--cache-dir", str(work / "cache"), "--no-cached", "--parallel"],
        cwd=template.parent, env=_sam_environment(), capture_output=True, text=True, timeout=900, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"sam build of {template} failed:\n{process.stdout[-2000:]}\n{process.stderr[-2000:]}")
    return build_dir, time.monotonic() - started


def directory_size(path: Path) -> dict[str, int]:
    total, files = 0, 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file() and not file.is_symlink():
                total += file.stat().st_size
                files += 1
                archive.write(file, file.relative_to(path))
    return {"bytes": total, "files": files, "zipped_bytes": buffer.tell()}


def _largest_packages(layer_python: Path, top: int = 6) -> list[dict[str, Any]]:
    sizes = []
    for entry in layer_python.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")):
            sizes.append((entry.name, sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())))
    sizes.sort(key=lambda item: item[1], reverse=True)
    return [{"package": name, "bytes": size} for name, size in sizes[:top]]


def measure() -> dict[str, Any]:
    from bench.lambda_runtime import function_specs

    work = Path(tempfile.mkdtemp(prefix="billops-bench-sam-"))
    try:
        build_dir, seconds = sam_build(TEMPLATE, work / "ours")
        layer = directory_size(build_dir / "BillopsLayer")
        functions = {}
        for logical_id in sorted(function_specs()):
            own = directory_size(build_dir / logical_id)
            functions[logical_id] = {"function": own, "layer": layer["bytes"],
                                     "total_bytes": own["bytes"] + layer["bytes"],
                                     "total_zipped_bytes": own["zipped_bytes"] + layer["zipped_bytes"]}
        layer_python = build_dir / "BillopsLayer" / "python"
        largest = _largest_packages(layer_python) if layer_python.is_dir() else []

        baseline_src = work / "baseline-src"
        (baseline_src / "webhook").mkdir(parents=True)
        shutil.copy(ROOT / "bench/baseline_receiver.py", baseline_src / "webhook/baseline_receiver.py")
        powertools = _pinned("aws-lambda-powertools")
        (baseline_src / "webhook/requirements.txt").write_text(f"{powertools}\n")
        (baseline_src / "template.yaml").write_text(BASELINE_TEMPLATE)
        baseline_dir, baseline_seconds = sam_build(baseline_src / "template.yaml", work / "baseline")
        baseline = directory_size(baseline_dir / "WebhookFunction")
        return {
            "functions": functions,
            "layer": layer,
            "layer_largest_packages": largest,
            "baseline": {"function": baseline, "total_bytes": baseline["bytes"],
                         "total_zipped_bytes": baseline["zipped_bytes"], "requirements": [powertools]},
            "sam_build_seconds": {"ours": seconds, "baseline": baseline_seconds},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pinned(name: str) -> str:
    for line in (ROOT / "layers/billops/requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.strip()
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.package_sizes")
    parser.add_argument("--result", required=True)
    arguments = parser.parse_args(argv)
    write_result(arguments.result, measure())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
