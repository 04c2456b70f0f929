#!/usr/bin/env python3
"""Print N distinct loopback ports that are free for UDP and TCP (one line, space-separated).

  python3 bench/lib/ports.py 5

Used by `run.sh --smoke` so that a smoke run (e.g. from the test suite, next to
other tests that start their own servers) does not use fixed ports. A port is
taken only when no UDP socket of any address is bound to it (Kamailio binds
with SO_REUSEADDR, so a bind test alone could miss it) and TCP can bind it too
(mss's admin API).
"""
import socket
import sys

import servers


def free_ports(n, attempts=200):
    """n distinct free ports, chosen by the kernel (bound to port 0 meanwhile)."""
    held, ports = [], []
    try:
        for _ in range(attempts):
            if len(ports) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)  # kept open so the kernel does not hand it out twice
            port = s.getsockname()[1]
            if servers.udp_sockets_on(port) == 1 and not servers.tcp_port_busy(port):
                ports.append(port)
    finally:
        for s in held:
            s.close()
    if len(ports) < n:
        raise SystemExit("ports.py: found only %d free ports of %d" % (len(ports), n))
    return ports


if __name__ == "__main__":
    print(" ".join(str(p) for p in free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
