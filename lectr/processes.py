"""The Lectr processes and how ``lectr`` finds them.

A process package (``proxy``, ``consumers``, ``scheduler``, ``api``) takes part once it
has a ``main`` module with ``def run(settings: Settings, argv: list[str]) -> int``:
``lectr NAME [OPTIONS]`` runs it (``argv`` holds the options, which the process parses
itself), and ``lectr up`` supervises it. A package can also offer one-off commands
(:data:`COMMANDS`, same signature). A ``main`` module may also say how long the process
needs to stop after SIGTERM with given settings: ``def stop_deadline_s(environ:
Mapping[str, str]) -> float`` (``lectr up`` waits that long before it kills it).
``lectr`` imports a process package only to run or supervise it, so a process never
loads another's code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping

from lectr.settings import Settings
from lectr.supervisor import ProcessSpec

# Start order for `lectr up`; it stops them in reverse. Consumers start first so the
# queue is drained from the start; the proxy last, so it takes traffic only when all
# behind it runs, and on shutdown it is the first to stop and drain its buffer.
PROCESSES: dict[str, str] = {
    "consumer": "consumers",
    "scheduler": "scheduler",
    "api": "api",
    "proxy": "proxy",
}


# One-off commands a process package offers: command name -> module with ``run``.
COMMANDS: dict[str, str] = {
    "replay": "consumers.replay_command",
    "dead": "consumers.dead_command",
}

EntryPoint = Callable[[Settings, list[str]], int]


def available() -> list[str]:
    """The process names whose package has a ``main`` module, in start order."""
    return [name for name, package in PROCESSES.items() if _exists(f"{package}.main")]


def available_commands() -> list[str]:
    """The one-off commands whose module is installed."""
    return [name for name, module in COMMANDS.items() if _exists(module)]


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def entry_point(name: str) -> EntryPoint:
    """The ``run`` function of process or command ``name``."""
    module_name = f"{PROCESSES[name]}.main" if name in PROCESSES else COMMANDS[name]
    return importlib.import_module(module_name).run


def stop_deadline_s(name: str, environ: Mapping[str, str]) -> float | None:
    """The seconds process ``name`` needs to stop after SIGTERM with the settings in
    ``environ``, or None when its package does not say."""
    module_name = f"{PROCESSES.get(name)}.main"
    if name not in PROCESSES or not _exists(module_name):
        return None
    deadline = getattr(importlib.import_module(module_name), "stop_deadline_s", None)
    return None if deadline is None else float(deadline(environ))


def specs(names: list[str]) -> list[ProcessSpec]:
    """How ``lectr up`` starts each named process: ``python -m lectr NAME``."""
    return [ProcessSpec(name, (sys.executable, "-m", "lectr", name)) for name in names]
