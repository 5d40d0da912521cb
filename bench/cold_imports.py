"""Cold import time of every function's handler module, each in a fresh interpreter, beside a bare
``import boto3`` (the floor every Python Lambda that talks to AWS pays) and the baseline's handler.

A probe is ``python -S -c`` code that reads the clock, imports the module and reads the clock again: only the
import is timed, not the interpreter's own start, and nothing but ``sys`` and ``time`` is loaded before it. The
import path is Lambda's, not the project virtualenv's (whose sam-cli dependencies, awscrt and pyOpenSSL among them,
botocore would pick up and which no Lambda has): the function's code directory (/var/task), then the layer
(layers/billops plus ``layers/billops/requirements.txt`` installed with uv into a cached directory, /opt/python),
then boto3 at the virtualenv's version (the runtime's own copy); ``-S`` keeps site-packages out. Module-level setup runs because each function's environment
is the template's, resolved against made-up resource names (``BILLOPS_ENV=dev``, AWS pointed at a closed loopback
port so that an import which called AWS would fail, not wait). Both the wall time and the process's CPU time of the import are kept; on a shared machine the wall time also counts
waiting for a CPU, so the target (receiver vs boto3) is judged on CPU time, and both are reported. Bytecode caches
are written first (compileall), so no run compiles. boto3, the receiver and the baseline run ``runs`` times, the
other functions half as many (at least 3), interleaved round by round so that a busy neighbour on the machine slows
every target alike; the median is reported, with the runs.

For the two webhook receivers the probe then also times the *first delivery* in the same interpreter, with the AWS
transport stubbed (bench.hot_path_timing.FakeAws): modules imported lazily on the first request (billops loads the
pydantic event models when it first validates) are a cold-start cost too, and since August 2025 Lambda bills the
INIT phase, so both are reported. One more run of each receiver under ``python -X importtime`` attributes the time
to top-level packages.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.isolated import ROOT, clean_environment, write_result
from bench.stats import median

CLOSED_ENDPOINT = "http://127.0.0.1:9"
LAYER_DIR = ROOT / "layers/billops"

_PROBE = """\
import sys, time
sys.path[:0] = {lambda_path!r}
c0 = time.process_time_ns()
t0 = time.perf_counter_ns()
import {module}
t1 = time.perf_counter_ns()
c1 = time.process_time_ns()
result = {{"import_ms": (t1 - t0) / 1e6, "import_cpu_ms": (c1 - c0) / 1e6}}
if {first_delivery!r}:
    sys.path.extend({bench_path!r})
    from bench.cold_imports import first_delivery
    result["first_delivery_ms"], result["first_delivery_cpu_ms"] = first_delivery({module}, {first_delivery!r})
import json
open({result_path!r}, "w").write(json.dumps(result))
"""


def first_delivery(module: Any, target: str) -> tuple[float, float]:
    """Wall and CPU time of the module's first webhook delivery with the AWS transport stubbed (events built before
    the clock)."""
    import time

    from bench.hot_path_timing import TOKEN, FakeAws
    from bench.lambda_runtime import LambdaContext
    from bench.payloads import delivery_mix, http_api_v2_event, rest_api_v1_event

    fake = FakeAws()
    fake.install()
    (delivery,) = delivery_mix(1, run=41)
    if target == "ours":
        event, handler = http_api_v2_event(delivery, TOKEN), module.handler
    else:
        event, handler = rest_api_v1_event(delivery, TOKEN), module.lambda_handler
    context = LambdaContext(f"{target}-first-delivery")
    cpu = time.process_time_ns()
    started = time.perf_counter_ns()
    answer = handler(event, context)
    elapsed = (time.perf_counter_ns() - started) / 1e6
    cpu = (time.process_time_ns() - cpu) / 1e6
    assert answer["statusCode"] == 200, answer
    return elapsed, cpu


def offline_environments() -> dict[str, dict[str, str]]:
    """Each function's Environment.Variables from template.yaml, resolved against made-up resource names."""
    from billops_local.aws_environment import (
        CreatedAlias,
        CreatedEventBus,
        CreatedKey,
        CreatedQueue,
        CreatedResources,
        CreatedSecret,
        CreatedTable,
        function_environments,
    )
    from billops_local.template_resources import load_template

    template = load_template()
    account, region = "123456789012", "us-east-1"
    created = CreatedResources("https://aws.invalid", role_refs=template.role_refs,
                               role_attributes=template.role_attributes)
    for lid, table in template.tables.items():
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{table.physical_name}"
        created.tables[lid] = CreatedTable(table.physical_name, arn, f"{arn}/stream/2026-01-01T00:00:00.000")
    for lid, queue in template.queues.items():
        created.queues[lid] = CreatedQueue(queue.physical_name,
                                           f"https://sqs.{region}.amazonaws.com/{account}/{queue.physical_name}",
                                           f"arn:aws:sqs:{region}:{account}:{queue.physical_name}")
    for lid, secret in template.secrets.items():
        created.secrets[lid] = CreatedSecret(secret.physical_name,
                                             f"arn:aws:secretsmanager:{region}:{account}:secret:{secret.physical_name}-AbCdEf")
    for lid, bus in template.event_buses.items():
        created.event_buses[lid] = CreatedEventBus(bus.physical_name, f"arn:aws:events:{region}:{account}:event-bus/{bus.physical_name}")
    for lid in template.kms_keys:
        key_id = "11111111-2222-3333-4444-555555555555"
        created.kms_keys[lid] = CreatedKey(key_id, f"arn:aws:kms:{region}:{account}:key/{key_id}")
    for lid, alias in template.kms_aliases.items():
        created.kms_aliases[lid] = CreatedAlias(alias.alias_name, f"arn:aws:kms:{region}:{account}:{alias.alias_name}",
                                                alias.target_key_logical_id)
    return function_environments(template, created)


def _targets() -> list[dict[str, Any]]:
    from bench.aws_request_counting import baseline_environment
    from bench.lambda_runtime import BASELINE_HANDLER, function_specs

    environments = offline_environments()
    targets = [{"name": "import boto3 (bare)", "kind": "floor", "code_dir": str(ROOT), "module": "boto3",
                "env": {}, "first_delivery": ""}]
    for logical_id, spec in sorted(function_specs().items()):
        env = {**environments.get(logical_id, {}), "BILLOPS_ENV": "dev"}
        targets.append({"name": logical_id, "kind": "function", "code_dir": str(spec.module_path.parent),
                        "module": spec.module_path.stem, "env": env, "memory_mb": spec.memory_size,
                        "first_delivery": "ours" if logical_id == "WebhookReceiverFunction" else ""})
    targets.append({"name": "Baseline (Powertools tutorial)", "kind": "baseline",
                    "code_dir": str(BASELINE_HANDLER.parent), "module": BASELINE_HANDLER.stem,
                    "env": baseline_environment(), "memory_mb": 512, "first_delivery": "baseline"})
    return targets


def lambda_site() -> Path:
    """The layer's requirements plus boto3 (the virtualenv's version, standing in for the runtime's), installed
    once into a directory keyed by their versions (uv, from PyPI or uv's cache)."""
    import hashlib
    from importlib.metadata import version

    requirements = (LAYER_DIR / "requirements.txt").read_text()
    boto3_pin = f"boto3=={version('boto3')}"
    digest = hashlib.sha256((requirements + boto3_pin + sys.version).encode()).hexdigest()[:16]
    site = Path(tempfile.gettempdir()) / f"billops-bench-lambda-site-{digest}"
    if (site / ".complete").exists():
        return site
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv), "pip", "install", "--quiet", "--python", sys.executable, "--target", str(site),
               "-r", str(LAYER_DIR / "requirements.txt"), boto3_pin]
    process = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"could not install the layer's requirements for the probes:\n{process.stderr[-2000:]}")
    (site / ".complete").write_text(boto3_pin)
    return site


RUNTIME_PACKAGES = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"})
"""What the Lambda runtime itself ships (with its bytecode): kept compiled when the layer's bytecode is left out."""


def layer_without_bytecode(site: Path, work: Path) -> tuple[Path, Path]:
    """Copies of the layer (the billops package) and of the site without the layer's bytecode: a layer as `sam
    build` made it before issue 14 (no __pycache__, and Lambda cannot write one, so every cold start compiles).
    The runtime's own packages (RUNTIME_PACKAGES) keep theirs."""
    import shutil

    layer, copied_site = work / "layer", work / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(LAYER_DIR / "billops", layer / "billops", ignore=ignore)
    copied_site.mkdir()
    for entry in site.iterdir():
        target = copied_site / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, ignore=None if entry.name in RUNTIME_PACKAGES else ignore)
        else:
            shutil.copy2(entry, target)
    return layer, copied_site


def _probe(target: dict[str, Any], site: Path, importtime: bool = False, layer: Path = LAYER_DIR,
           bytecode: bool = True) -> tuple[dict[str, float], str]:
    with tempfile.TemporaryDirectory(prefix="billops-cold-") as work:
        result_path = str(Path(work) / "probe.json")
        code = _PROBE.format(lambda_path=[target["code_dir"], str(layer), str(site)], module=target["module"],
                             bench_path=[str(ROOT), str(ROOT / "local")],
                             first_delivery=target["first_delivery"], result_path=result_path)
        env = clean_environment(AWS_ENDPOINT_URL=CLOSED_ENDPOINT, **target["env"],
                                **({} if bytecode else {"PYTHONDONTWRITEBYTECODE": "1"}))
        command = [sys.executable, "-S", *(["-X", "importtime"] if importtime else []), "-c", code]
        process = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120,
                                 check=False)
        if process.returncode != 0:
            raise RuntimeError(f"{target['name']}: the probe failed:\n{process.stderr[-2000:]}")
        return json.loads(Path(result_path).read_text()), process.stderr


HARNESS_PACKAGES = frozenset({"bench", "billops_local"})
"""Imported by the probe itself (to build the first delivery's event before the clock starts), not by the handler."""


def attribute_importtime(stderr: str, top: int = 10) -> list[dict[str, Any]]:
    """Self time per top-level package (billops per subpackage) from ``-X importtime`` output, largest first; the
    probe's own packages are left out."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            self_us, _cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        except ValueError:
            continue
        parts = name.strip().split(".")
        if parts[0] in HARNESS_PACKAGES:
            continue
        package = ".".join(parts[:3]) if parts[0] == "billops" else parts[0]
        totals[package] += int(self_us) / 1000
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]
    return [{"package": name, "self_ms": round(ms, 2)} for name, ms in ranked]


def _compile(paths: list[Path]) -> None:
    """Write every bytecode cache the probes will read (and bring the files into the page cache), so that no probe
    pays for compiling and none needs an untimed warm-up run."""
    import compileall

    for path in paths:
        compileall.compile_dir(str(path), quiet=2, workers=1)


def measure(runs: int) -> dict[str, Any]:
    import os

    site = lambda_site()
    targets = _targets()
    _compile([LAYER_DIR, site, *{Path(t["code_dir"]) for t in targets if t["kind"] != "floor"}])
    load_before = os.getloadavg()
    # The targets that are compared (boto3, the receiver, the baseline) get ``runs`` runs; the other functions,
    # reported for information, half as many (at least 3): a full run must stay within minutes on two cores.
    wanted = {t["name"]: runs if (t["kind"] != "function" or t["first_delivery"]) else max(3, runs // 2)
              for t in targets}
    samples: dict[str, list[dict[str, float]]] = {target["name"]: [] for target in targets}
    for round_number in range(max(wanted.values())):
        for target in targets:
            if round_number < wanted[target["name"]]:
                samples[target["name"]].append(_probe(target, site)[0])
    results = []
    for target in targets:
        entry = {key: target[key] for key in ("name", "kind", "module") if key in target}
        entry["memory_mb"] = target.get("memory_mb")
        runs_of = samples[target["name"]]
        entry["import_ms_runs"] = [round(s["import_ms"], 2) for s in runs_of]
        entry["import_ms"] = median(s["import_ms"] for s in runs_of)
        entry["import_ms_min"] = min(s["import_ms"] for s in runs_of)
        entry["import_cpu_ms"] = median(s["import_cpu_ms"] for s in runs_of)
        entry["import_cpu_ms_runs"] = [round(s["import_cpu_ms"], 2) for s in runs_of]
        if target["first_delivery"]:
            entry["first_delivery_ms"] = median(s["first_delivery_ms"] for s in runs_of)
            entry["first_delivery_cpu_ms"] = median(s["first_delivery_cpu_ms"] for s in runs_of)
            _, stderr = _probe(target, site, importtime=True)
            entry["importtime_top"] = attribute_importtime(stderr)
        results.append(entry)
    boto3 = next(r for r in results if r["kind"] == "floor")
    boto3_ms, boto3_cpu_ms = boto3["import_ms"], boto3["import_cpu_ms"]
    for entry in results:
        entry["ratio_to_boto3"] = entry["import_ms"] / boto3_ms if boto3_ms else None
        entry["cpu_ratio_to_boto3"] = entry["import_cpu_ms"] / boto3_cpu_ms if boto3_cpu_ms else None
    return {"runs": runs, "python": sys.version.split()[0], "targets": results, "boto3_import_ms": boto3_ms,
            "boto3_import_cpu_ms": boto3_cpu_ms,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "import_path": ["<function code dir>", str(LAYER_DIR), str(site)]}


def measure_layer_bytecode(runs: int) -> dict[str, Any]:
    """The receiver's import + first delivery with the layer's bytecode shipped (as `sam build` makes the layer
    now: layers/billops/Makefile) and without it (as before), beside a bare `import boto3`, interleaved."""
    site = lambda_site()
    targets = {t["name"]: t for t in _targets()}
    boto3, receiver = targets["import boto3 (bare)"], targets["WebhookReceiverFunction"]
    _compile([LAYER_DIR, site, Path(receiver["code_dir"])])
    samples: dict[str, list[dict[str, float]]] = {"boto3": [], "with": [], "without": []}
    with tempfile.TemporaryDirectory(prefix="billops-cold-layer-") as work:
        bare_layer, bare_site = layer_without_bytecode(site, Path(work))
        for _ in range(runs):
            samples["boto3"].append(_probe(boto3, site)[0])
            samples["with"].append(_probe(receiver, site)[0])
            samples["without"].append(_probe(receiver, bare_site, layer=bare_layer, bytecode=False)[0])
    boto3_cpu = median(s["import_cpu_ms"] for s in samples["boto3"])
    out: dict[str, Any] = {"runs": runs, "boto3_import_cpu_ms": boto3_cpu}
    for name in ("with", "without"):
        total = median(s["import_cpu_ms"] + s["first_delivery_cpu_ms"] for s in samples[name])
        out[f"{name}_layer_bytecode"] = {
            "import_cpu_ms": median(s["import_cpu_ms"] for s in samples[name]),
            "import_and_first_delivery_cpu_ms": total, "ratio_to_boto3": total / boto3_cpu if boto3_cpu else None}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_imports")
    parser.add_argument("--runs", type=int, default=7, help="runs of boto3, the receiver and the baseline")
    parser.add_argument("--layer-bytecode", action="store_true",
                        help="only the receiver, with and without the layer's bytecode (issue 14)")
    parser.add_argument("--result", required=True)
    arguments = parser.parse_args(argv)
    write_result(arguments.result, (measure_layer_bytecode if arguments.layer_bytecode else measure)(arguments.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
