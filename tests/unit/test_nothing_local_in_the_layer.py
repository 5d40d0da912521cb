"""Production code has nothing local in it (issue 13): what is deployed (layers/, functions/) neither imports nor
names the local stack's code (local/billops_local: its package, its modules, the classes and functions it defines),
and no handler keeps per-thread state to survive invocations running side by side in one process: the local stack
gives each function its own processes, one invocation at a time, as Lambda does (billops_local.function_process).
The local stack plugs its faults in through the layer's composition root instead (billops_local.worker_faults)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = [ROOT / "layers", ROOT / "functions"]
LOCAL_PACKAGE = ROOT / "local" / "billops_local"
REMOVED = {"local_fault_hooks"}  # the fault hooks that used to live in the layer


def _python_files(directories: list[Path]) -> list[Path]:
    return sorted(path for directory in directories for path in directory.rglob("*.py") if ".aws-sam" not in path.parts)


def _defined(directories: list[Path]) -> tuple[set[str], set[str]]:
    """(module names, top-level class names) of the Python files under ``directories``."""
    modules, classes = set(), set()
    for path in _python_files(directories):
        modules.add(path.stem)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
    return modules, classes


@functools.lru_cache(maxsize=1)
def _local_names() -> frozenset[str]:
    """The local package, its modules and its classes - those that the deployed code does not define itself."""
    local_modules, local_classes = _defined([LOCAL_PACKAGE])
    deployed_modules, deployed_classes = _defined(DEPLOYED)
    modules = {name for name in local_modules - deployed_modules - {"__init__", "__main__"} if "_" in name}
    return frozenset({"billops_local"} | REMOVED | modules | (local_classes - deployed_classes))


def _findings(path: Path, local_names: set[str]) -> list[str]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            modules = []
        for module in modules:
            if module.split(".")[0] == "billops_local" or set(module.split(".")) & REMOVED:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
        if isinstance(node, ast.Attribute) and node.attr == "local" and isinstance(node.value, ast.Name) \
                and node.value.id == "threading":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} keeps per-thread state (threading.local): each "
                         "environment runs one invocation at a time")
    words = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    words |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    words |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for name in sorted(local_names & words):
        found.append(f"{path.relative_to(ROOT)} names {name!r} of the local stack")
    if "billops_local" in source:
        found.append(f"{path.relative_to(ROOT)} mentions billops_local")
    return found


def test_the_deployed_code_neither_imports_nor_names_the_local_stack():
    local_names = _local_names()
    assert {"billops_local", "SimulatedCrash", "WorkerFaults", "LocalFunction", "worker_faults"} <= local_names
    files = _python_files(DEPLOYED)
    assert len(files) > 50  # the layer and every handler were read
    findings = [finding for path in files for finding in _findings(path, local_names)]
    assert not findings, "\n".join(findings)


def test_the_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import threading\nfrom billops_local.worker_faults import SimulatedCrash\n"
                      "from billops.operations import local_fault_hooks\nstate = threading.local()\n"
                      "hook = 'LocalFunction'\nerror = SimulatedCrash\n", encoding="utf-8")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        findings = _findings(sample, _local_names())
    finally:
        ROOT = saved
    text = "\n".join(findings)
    assert "imports billops_local.worker_faults" in text and "imports billops.operations" in text
    assert "threading.local" in text and "'SimulatedCrash'" in text and "'LocalFunction'" in text
