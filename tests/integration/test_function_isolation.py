"""Each function of the local stack runs as Lambda runs it (billops_local.function_process): in execution
environments of its own, processes that each handle one invocation at a time, started when every warm one is busy.

The handlers here are small modules written to tmp_path and run in real processes; one of them keeps the event on a
class, as Powertools' resolvers do (``BaseRouter.current_event``), and sleeps in the middle of a request: with
invocations sharing one process they would read each other's events.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
from pathlib import Path

import pytest
from support.waiting import eventually

from billops_local.aws_environment import LocalFunction
from billops_local.function_process import FunctionProcessDied, FunctionProcessError
from billops_local.http_api_events import http_api_event

RESOLVER_HANDLER = """
    import os
    import threading
    import time

    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    app = APIGatewayHttpResolver()
    _lock = threading.Lock()
    running = {"now": 0, "most": 0}


    @app.get("/who")
    def who():
        seen = app.current_event.query_string_parameters["n"]
        time.sleep(0.3)  # another invocation at the same moment would resolve its own event meanwhile
        return {"n": seen, "after": app.current_event.query_string_parameters["n"], "pid": os.getpid(),
                "at_once": running["most"]}


    def handler(event, context):
        with _lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        try:
            return app.resolve(event, context)
        finally:
            with _lock:
                running["now"] -= 1
"""

MISBEHAVING_HANDLER = """
    import os

    class Refused(Exception):
        pass


    def handler(event, context):
        if event.get("exit"):
            os._exit(3)
        if event.get("raise"):
            raise Refused(event["raise"])
        return {"pid": os.getpid(), "setting": os.environ.get("BILLOPS_ISOLATION_TEST"),
                "function_name": context.function_name}
"""


def _module(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def _who(n: int) -> dict:
    return http_api_event("GET", "/who", f"n={n}", [("host", "localhost")], None, "127.0.0.1", route_key="GET /who")


@pytest.fixture
def functions():
    made: list[LocalFunction] = []

    def make(path: Path, **options) -> LocalFunction:
        function = LocalFunction(f"billops-local-{path.stem}", logical_id=path.stem, module_path=path,
                                 isolated=True, **options)
        made.append(function)
        return function

    yield make
    for function in made:
        function.stop()


def test_concurrent_invocations_never_share_a_process_nor_a_resolvers_event(functions, tmp_path):
    function = functions(_module(tmp_path, "resolver_fn", RESOLVER_HANDLER), max_concurrency=3)
    function.load()  # the cold start: one warm environment
    answers: dict[int, dict] = {}

    def call(n: int) -> None:
        answers[n] = json.loads(function.invoke(_who(n))["body"])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(answers) == list(range(9))
    assert all(answer["n"] == answer["after"] == str(n) for n, answer in answers.items()), answers
    assert {answer["at_once"] for answer in answers.values()} == {1}  # one invocation at a time per process
    assert 1 < function.environments <= 3  # more were started while the first was busy, never more than allowed
    assert os.getpid() not in {answer["pid"] for answer in answers.values()}


def test_each_function_has_its_own_process_and_the_stacks_environment(functions, tmp_path, monkeypatch):
    monkeypatch.setenv("BILLOPS_ISOLATION_TEST", "given")
    first = functions(_module(tmp_path, "first_fn", MISBEHAVING_HANDLER))
    second = functions(_module(tmp_path, "second_fn", MISBEHAVING_HANDLER))
    one, two = first.invoke({}), second.invoke({})
    assert one["pid"] != two["pid"] and os.getpid() not in (one["pid"], two["pid"])
    assert (one["setting"], one["function_name"]) == ("given", "billops-local-first_fn")
    assert first.invoke({})["pid"] == one["pid"]  # the environment stays warm


def test_an_error_keeps_its_name_and_a_process_that_dies_is_replaced(functions, tmp_path):
    function = functions(_module(tmp_path, "misbehaving_fn", MISBEHAVING_HANDLER))
    with pytest.raises(FunctionProcessError, match="not today") as raised:
        function.invoke({"raise": "not today"})
    assert type(raised.value).__name__ == "Refused"
    assert "in the function's process" in "".join(getattr(raised.value, "__notes__", []))

    before = function.invoke({})["pid"]
    with pytest.raises(FunctionProcessDied):
        function.invoke({"exit": True})
    after = function.invoke({})["pid"]
    assert after != before and function.environments == 1


def test_a_failed_import_is_retried_at_each_invocation(functions, tmp_path):
    path = _module(tmp_path, "broken_fn", "raise ImportError('missing dependency')\n")
    function = functions(path)
    with pytest.raises(FunctionProcessError, match="missing dependency"):
        function.load()
    with pytest.raises(FunctionProcessError, match="missing dependency"):
        function.invoke({})
    _module(tmp_path, "broken_fn", MISBEHAVING_HANDLER)  # fixed: the same environment imports it now
    assert function.invoke({})["function_name"] == "billops-local-broken_fn"


def test_stopping_a_function_ends_its_processes(functions, tmp_path):
    function = functions(_module(tmp_path, "stopped_fn", MISBEHAVING_HANDLER))
    pid = function.invoke({})["pid"]
    function.stop()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"

    eventually(gone, 30, what=f"process {pid} to end")
