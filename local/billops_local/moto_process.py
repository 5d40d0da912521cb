"""moto's server in a process of its own, for the local stack: AWS (moto) and the functions no longer share one
interpreter lock, as they share nothing in AWS either.

``MotoProcess`` has ``MotoServer``'s interface (start, reset, port, endpoint_url, stop). Its child (forked by the
stack's forkserver, billops_local.function_process) applies moto_fidelity and moto_speed, turns the DynamoDB fault
injection on when ``BILLOPS_LOCAL_DYNAMODB_FAULTS`` is set (billops_local.dynamodb_fault_injection), starts a
``MotoServer`` on the requested port (0 = any free one), sends the port back, and serves until its pipe closes:
``stop()``, or the stack's process ending whichever way (the pipe closes with it; on Linux the child also gets
SIGTERM when its parent dies). It ignores Ctrl-C, which the whole foreground process group receives: the stack
stops it, after the functions that call it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from billops_local.aws_environment import MotoServer, PortInUse, reset_moto

log = logging.getLogger("billops_local.aws")

START_TIMEOUT_SECONDS = 120.0  # a bound on importing moto on a loaded machine, not a wait


class MotoProcess:
    def __init__(self, host: str = "127.0.0.1", port: int = 5000, *, environment: Mapping[str, str] | None = None,
                 verbose: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.environment = dict(os.environ if environment is None else environment)
        self.verbose = verbose
        self._process: Any = None
        self._connection: Connection | None = None
        self._port: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        from billops_local.function_process import process_context

        context = process_context()
        parent, child = context.Pipe()
        process = context.Process(target=serve, args=(child, self.host, self.requested_port, self.environment,
                                                      self.verbose), daemon=True, name="billops-local-moto")
        process.start()
        child.close()
        self._process, self._connection = process, parent
        answer: tuple[Any, ...] | None = None
        if parent.poll(START_TIMEOUT_SECONDS):
            try:
                answer = parent.recv()
            except (EOFError, OSError):
                answer = None
        if answer is None or answer[0] != "ready":
            self.stop()
            if answer is not None and answer[0] == "port_in_use":
                raise PortInUse(answer[1])
            raise RuntimeError("moto's process did not start" + (f": {answer[1]}" if answer else ""))
        self._port = int(answer[1])

    def reset(self) -> None:
        reset_moto(self.endpoint_url)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("moto is not running")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self._connection is not None:
            self._connection.close()  # the child's cue to stop
            self._connection = None
        process, self._process = self._process, None
        self._port = None
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


def serve(connection: Connection, host: str, port: int, environment: Mapping[str, str], verbose: bool) -> None:
    from billops_local.function_process import configure_child_logging, die_with_parent

    die_with_parent()
    os.environ.clear()
    os.environ.update(environment)
    configure_child_logging(verbose)
    from billops_local import dynamodb_fault_injection

    server = MotoServer(host, port)
    try:
        dynamodb_fault_injection.install_from_env(environment)  # local only: off unless set
        server.start()
    except PortInUse as error:
        connection.send(("port_in_use", str(error)))
        os._exit(1)
    except BaseException as error:  # noqa: BLE001 - told to the stack, which fails to start with it
        connection.send(("failed", f"{type(error).__name__}: {error}"))
        os._exit(1)
    connection.send(("ready", server.port))
    try:
        connection.recv()  # nothing is ever sent: returns (EOFError) when the stack closes its end
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    dynamodb_fault_injection.write_final_report()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # moto's backends hold every item: skip tearing them down (a minute of CPU after a long run)
