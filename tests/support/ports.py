"""Free loopback ports for the servers a test starts, safe when several test processes start servers at once.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` is free *now*; between closing the probe and the server
binding it, another process (another pytest-xdist worker, another engineer's run, an outgoing connection) may take
it. ``START_ATTEMPTS`` is how often a starter that finds its port taken picks new ports and tries again
(``is_port_taken`` recognises the failure).
"""

from __future__ import annotations

import socket

START_ATTEMPTS = 5
PORT_TAKEN_MARKERS = ("already in use", "Address already in use", "[Errno 98]")
"""What the local stack prints when it cannot bind (billops_local.aws_environment.PortInUse, or the OSError of a
server's bind)."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listened on a moment ago (all probes are held open together, so they
    differ)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def is_port_taken(output: str) -> bool:
    """Did a server that failed to start say its port was taken?"""
    return any(marker in output for marker in PORT_TAKEN_MARKERS)
