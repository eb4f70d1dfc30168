"""Container health checks for the Lectr image (it has Python, but no curl).

    python /app/healthcheck.py http URL            2xx from URL within 3 s
    python /app/healthcheck.py connected PORT ...  an established TCP connection to each
                                                   remote PORT (e.g. 5672, the broker)

Exit 0 when healthy, 1 otherwise (also for bad arguments), with one line on stderr
saying why. ``connected`` suits a process that serves nothing over HTTP
(``lectr consumer``): it reads the container's own ``/proc/net/tcp`` and ``/proc/net/tcp6``.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

TIMEOUT_S = 3.0
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
ESTABLISHED = "01"


def http_ok(url: str, timeout_s: float = TIMEOUT_S) -> str | None:
    """None when ``url`` answers 2xx, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url} did not answer: {exc}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def established_remote_ports(lines: Iterable[str]) -> set[int]:
    """Remote ports of the established connections in ``/proc/net/tcp``-format lines."""
    ports: set[int] = set()
    for line in lines:
        fields = line.split()
        # sl local_address rem_address st ...; the header line has "rem_address" there.
        if len(fields) < 4 or fields[3] != ESTABLISHED or ":" not in fields[2]:
            continue
        try:
            ports.add(int(fields[2].rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return ports


def connected(ports: list[int], tables: Iterable[Path] = TCP_TABLES) -> str | None:
    """None when this container has an established connection to every port in ``ports``."""
    lines: list[str] = []
    for table in tables:
        try:
            lines += table.read_text().splitlines()
        except OSError:  # no IPv6, for one
            continue
    missing = sorted(set(ports) - established_remote_ports(lines))
    if missing:
        return "no established connection to port " + ", ".join(map(str, missing))
    return None


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "http":
        problem = http_ok(argv[1])
    elif len(argv) >= 2 and argv[0] == "connected" and all(a.isdigit() for a in argv[1:]):
        problem = connected([int(a) for a in argv[1:]])
    else:
        print(__doc__, file=sys.stderr)
        return 1  # Docker reserves exit code 2
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
