"""A function's execution environment, as Lambda gives it: its own process, one invocation at a time.

Lambda runs each concurrent invocation of a function in its own execution environment (a process of its own, with
its own module state, handling one event at a time) and starts another one only when every warm one is busy. The
local stack does the same: ``FunctionProcess`` is one environment, ``LocalFunction`` (aws_environment) keeps a
pool of them, up to the function's concurrency. So nothing a handler or a library keeps at module or class level
(Powertools' resolvers keep the current event on the class, caches, clients) is ever shared between functions or
between two invocations running at once, and no handler needs a local-only class to be safe.

The processes are forked from a multiprocessing forkserver that has imported boto3, botocore, Powertools and
pydantic once (``set_forkserver_preload``), so a new environment costs a fork and the handler's own import (its
cold start), not a fresh interpreter's imports. Only third-party libraries are preloaded: billops itself is imported
by each environment, from its own environment variables.

Protocol (a ``multiprocessing`` pipe, pickled tuples): the child answers ``("ready", init_error)`` once it imported
the handler (``init_error`` is None or ``(type, message, traceback)``: a failed import is retried on the next
invocation, as Lambda retries a failed init), then, for each ``("invoke", event)``, ``("result", value)`` or
``("error", type, message, traceback)``. The parent's end closing (the stack stopped, or died) ends the child; on
Linux the child also gets SIGTERM when its parent process dies (PR_SET_PDEATHSIG), and it ignores SIGINT: Ctrl-C
reaches the whole foreground process group, and only the stack decides when its functions stop.

What a child needs of the stack process is given to it explicitly (``ProcessConfig``): the environment (the stack's,
with every function's variables and the services' settings), what the AWS call recorder must know of the local
resources (aws_call_recording), and ``setups``: picklable callables run before the handler is imported (the local
stack's fault injection, billops_local.worker_faults).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

log = logging.getLogger("billops_local.functions")

PRELOADED = ["boto3", "botocore.session", "botocore.client", "boto3.dynamodb.types", "aws_lambda_powertools",
             "aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.batch",
             "aws_lambda_powertools.utilities.parameters", "pydantic", "pydantic.main", "pydantic_settings"]
"""What the forkserver imports once for every environment it forks (third-party only: no billops state).
``import pydantic`` alone loads almost nothing (pydantic imports its parts when first used): ``pydantic.main`` and
``pydantic_settings`` (billops.settings) were ~175 ms of CPU in every environment's cold start, paid while the
stack scales out under load."""

READY_TIMEOUT_SECONDS = 180.0  # a bound on a cold start (a loaded 2-core machine), not a wait

_context_lock = threading.Lock()
_context: Any = None


def process_context() -> Any:
    """The multiprocessing context every local function process (and moto's) is started from."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOADED)
            _context = context
        return _context


class FunctionProcessError(RuntimeError):
    """An invocation's error, raised in the stack process under the handler's exception name (e.g. a
    ``SimulatedCrash``), with the child's traceback as a note."""


_error_classes: dict[str, type[FunctionProcessError]] = {}


def remote_error(type_name: str, message: str, remote_traceback: str | None = None) -> FunctionProcessError:
    cls = _error_classes.get(type_name)
    if cls is None:
        cls = _error_classes.setdefault(type_name, type(type_name, (FunctionProcessError,), {}))
    error = cls(message)
    if remote_traceback:
        error.add_note(f"in the function's process:\n{remote_traceback.rstrip()}")
    return error


class FunctionProcessDied(RuntimeError):
    """The environment's process ended during an invocation (Lambda: "Runtime exited")."""


@dataclass(frozen=True)
class ProcessConfig:
    name: str  # the function's physical name
    logical_id: str
    module_path: Path
    module_name: str
    handler_attribute: str
    memory_size: int
    timeout: float
    environment: Mapping[str, str]
    recording: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    setups: Sequence[Callable[[], None]] = ()
    verbose: bool = False


class FunctionProcess:
    """One execution environment: ``start()`` forks it and waits for its cold start; ``invoke()`` runs one event."""

    def __init__(self, config: ProcessConfig) -> None:
        self.config = config
        self._connection: Connection | None = None
        self._process: Any = None
        self.init_error: tuple[str, str, str] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        context = process_context()
        parent, child = context.Pipe()
        process = context.Process(target=serve, args=(child, self.config), daemon=True,
                                  name=f"billops-local-{self.config.logical_id}")
        process.start()
        child.close()
        self._connection, self._process = parent, process
        if not parent.poll(READY_TIMEOUT_SECONDS):
            self.stop()
            raise FunctionProcessDied(f"{self.config.logical_id}: no answer from its process after "
                                      f"{READY_TIMEOUT_SECONDS:.0f} s")
        try:
            kind, self.init_error = parent.recv()
        except (EOFError, OSError):
            self.stop()
            raise FunctionProcessDied(f"{self.config.logical_id}: its process ended while starting") from None
        if kind != "ready":
            self.stop()
            raise FunctionProcessDied(f"{self.config.logical_id}: its process answered {kind!r} while starting")

    def invoke(self, event: Any) -> Any:
        connection = self._connection
        if connection is None:
            raise FunctionProcessDied(f"{self.config.logical_id}: its process is not running")
        try:
            connection.send(("invoke", event))
            answer = connection.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = self._process.exitcode if self._process is not None else None
            self.stop()
            raise FunctionProcessDied(f"{self.config.logical_id}: its process exited during the invocation "
                                      f"(exit code {code})") from None
        if answer[0] == "result":
            return answer[1]
        _, type_name, message, remote_traceback = answer
        raise remote_error(type_name, message, remote_traceback)

    def stop(self, timeout: float = 5.0) -> None:
        """Close its pipe (the child returns from its loop and exits), wait, then SIGTERM, then SIGKILL."""
        self.close()
        self.join(timeout)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def join(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.join(max(0.0, timeout))
        if process.is_alive():
            log.warning("%s: its process (pid %s) is still busy after %.0f s; terminating it",
                        self.config.logical_id, process.pid, timeout)
            process.terminate()
            process.join(2)
        if process.is_alive():
            process.kill()
            process.join(2)


# ----------------------------------------------------------------------------------------------------------------
# The child
# ----------------------------------------------------------------------------------------------------------------


def die_with_parent() -> None:
    """SIGTERM when the parent process dies (Linux), and Ctrl-C left to the stack; SIGTERM exits at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    if sys.platform == "linux":
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(143)


def configure_child_logging(verbose: bool) -> None:
    """As ``python -m billops_local`` configures the stack's: warnings to stderr, the stack's own logger apart."""
    from billops_local.__main__ import _configure_logging

    _configure_logging(verbose)


def serve(connection: Connection, config: ProcessConfig) -> None:
    die_with_parent()
    os.environ.clear()
    os.environ.update(config.environment)
    configure_child_logging(config.verbose)

    from billops_local import aws_call_recording, dynamodb_fault_injection
    from billops_local.aws_environment import LocalFunction

    aws_call_recording.install_from_environment(label=f"local stack, {config.logical_id}")
    aws_call_recording.register_resources(**config.recording)
    dynamodb_fault_injection.compress_retry_sleeps_from_env(os.environ)
    for setup in config.setups:
        setup()
    function = LocalFunction(config.name, logical_id=config.logical_id, module_path=config.module_path,
                             module_name=config.module_name, handler_attribute=config.handler_attribute,
                             memory_size=config.memory_size, timeout=config.timeout)
    init_error = None
    try:
        function.load()
    except BaseException as error:  # noqa: BLE001 - reported to the stack; retried on the next invocation
        init_error = (type(error).__name__, str(error), traceback.format_exc())
    connection.send(("ready", init_error))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            break
        if message[0] != "invoke":
            break
        try:
            answer: tuple[Any, ...] = ("result", function.invoke(message[1]))
        except BaseException as error:  # noqa: BLE001 - whatever the handler raises is the invocation's error
            answer = ("error", type(error).__name__, str(error), traceback.format_exc())
        try:
            connection.send(answer)
        except (TypeError, AttributeError, ValueError) as error:  # an unpicklable result
            connection.send(("error", type(error).__name__, f"the handler's result cannot be returned: {error}",
                             None))
        except (OSError, BrokenPipeError):
            break
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # as the stack does: no interpreter finalisation to wait for
