"""The Lectr processes and how ``lectr`` finds them.

A process package (``proxy``, ``consumers``, ``scheduler``, ``api``) takes part once it
has a ``main`` module with ``def run(settings: Settings) -> int``: ``lectr NAME``
runs it, and ``lectr up`` supervises it. ``lectr`` imports a process package only to
run it, so a process never loads another's code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable

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


def available() -> list[str]:
    """The process names whose package has a ``main`` module, in start order."""
    return [name for name, package in PROCESSES.items() if _has_main(package)]


def _has_main(package: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.main") is not None
    except ModuleNotFoundError:
        return False


def entry_point(name: str) -> Callable[[Settings], int]:
    """The ``run`` function of process ``name``."""
    module = importlib.import_module(f"{PROCESSES[name]}.main")
    return module.run


def specs(names: list[str]) -> list[ProcessSpec]:
    """How ``lectr up`` starts each named process: ``python -m lectr NAME``."""
    return [ProcessSpec(name, (sys.executable, "-m", "lectr", name)) for name in names]
