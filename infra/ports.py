"""Free TCP ports on 127.0.0.1 for local servers (brokers, ClickHouse) started by tests and benchmarks."""
from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held together while picking, so never equal)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
