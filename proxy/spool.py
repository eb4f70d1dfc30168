"""The shutdown spool: events that could not reach the broker, kept for the next start.

At shutdown, what the publisher could not send in time is written here, sanitised (no
text; ``token_source`` says ``uncounted`` when its tokens were still to be counted), one
encoded event per line, in one file per proxy process: written under a temporary name,
fsync'd, renamed, and the directory fsync'd, so a file is either complete or absent.
The directory holds at most ``max_bytes``; what does not fit is lost, and logged.

At start-up any proxy may take any spool file: it claims a file by renaming it (so two
proxies never send the same file), publishes its events before new ones, and deletes
it once they are confirmed, or once they are spooled again at its own shutdown. A claim
left by a process that died (same host, and its pid gone or now ours) is taken over.
Inserts are idempotent by event id, so an event sent twice is still stored once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
_CLAIMED = re.compile(
    r"^(?P<name>events-.+\.jsonl)\.claimed-(?P<host>.+)-(?P<pid>\d+)-(?P<run>[0-9a-f]+)$"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# This process's own mark in its claims: a pid alone may be an earlier process's (in a
# container, every start is pid 1).
_RUN = uuid.uuid4().hex[:12]


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, instance: str) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._instance = _UNSAFE.sub("_", instance)[:80]
        self._host = _UNSAFE.sub("_", socket.gethostname())[:80]
        self._claimed: list[Path] = []

    def claim(self) -> list[bytes]:
        """Take the spool files no live proxy has taken, oldest first, up to
        ``max_bytes``; return their events (encoded, one per item)."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        events: list[bytes] = []
        size = 0
        for name in names:
            if size >= self.max_bytes or not self._claimable(name):
                continue
            path = self.directory / name
            original = _CLAIMED.match(name)
            mine = self.directory / (
                f"{original['name'] if original else name}"
                f".claimed-{self._host}-{os.getpid()}-{_RUN}"
            )
            try:
                os.rename(path, mine)
                data = mine.read_bytes()
            except FileNotFoundError:  # another proxy claimed it first
                continue
            self._claimed.append(mine)
            size += len(data)
            events.extend(_events(data, mine))
        if events:
            log.info("publishing %d spooled events from %d files", len(events), len(self._claimed))
        return events

    def _claimable(self, name: str) -> bool:
        if name.startswith("events-") and name.endswith(SUFFIX):
            return True
        claimed = _CLAIMED.match(name)
        if claimed is None or claimed["host"] != self._host:
            return False
        pid = int(claimed["pid"])
        if pid == os.getpid():
            return claimed["run"] != _RUN  # an earlier process had our pid
        return not _alive(pid)

    def release(self) -> None:
        """Delete the claimed files: their events are published, or spooled again."""
        for path in self._claimed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._claimed.clear()

    def write(self, events: Sequence[bytes]) -> int:
        """Write ``events`` (encoded, sanitised) to a new file, as many as the directory
        has room for: how many were written. Raises OSError when it cannot write."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        room = self.max_bytes - self._used()
        count = 0
        for event in events:
            room -= len(event) + 1
            if room < 0:
                break
            count += 1
        if not count:
            return 0
        name = f"events-{time.time_ns() // 1_000_000:013d}-{self._instance}-{os.getpid()}{SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        try:
            with open(temporary, "wb") as file:
                file.write(b"\n".join(events[:count]) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.rename(temporary, self.directory / name)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _fsync_directory(self.directory)
        return count

    def _used(self) -> int:
        """Bytes in the directory, but for the files this process claimed (released
        right after writing)."""
        used = 0
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.is_file() and Path(entry.path) not in self._claimed:
                    used += entry.stat().st_size
        return used


def _events(data: bytes, path: Path) -> list[bytes]:
    """The lines of a spool file that are JSON objects (others are logged and skipped)."""
    events, bad = [], 0
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            valid = isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            valid = False
        if valid:
            events.append(line)
        else:
            bad += 1
    if bad:
        log.warning("skipped %d unreadable lines in the spool file %s", bad, path)
    return events


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
