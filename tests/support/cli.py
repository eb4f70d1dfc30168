"""Run the real ``lectr`` command in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

import orjson

LECTR = (sys.executable, "-m", "lectr")


def run_lectr(
    *args: str, env: Mapping[str, str], timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LECTR, *args], env=dict(env), capture_output=True, text=True, timeout=timeout_s
    )


def run_lectr_json(*args: str, env: Mapping[str, str]) -> object:
    """Run a command with ``--json`` and return what it printed, failing on a non-zero exit."""
    result = run_lectr(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)
