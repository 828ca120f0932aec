"""Picking a TCP port for a server started as a child process (the demo's fake OpenRouter, tests).

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same pool every
outgoing connection takes its local port from: between the pick and the child's own bind, a
client connection can take it. Ports below that range (Linux: 32768-60999) are never taken that
way.
"""

import random
import socket

PORT_RANGE = (10000, 32767)
_handed_out = set()  # never the same port twice in one process, even before its server binds


def unused_port(host="0.0.0.0"):
    """A port below the ephemeral range that nothing listens on now and this process has not handed out."""
    while True:
        port = random.randint(*PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
