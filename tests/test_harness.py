"""The test harness itself: a missing service is reported, never silently passed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NEEDS_DATABASE = """
def test_uses_the_database(database_url):
    assert database_url
"""


def _run_pytest(tmp_path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs_db.py").write_text(NEEDS_DATABASE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTR_TEST_")}
    env.update(LECTR_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres", **extra_env)
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # no container fallback either
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-rs",
            "-q",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=Path(__file__).parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(120)
def test_without_postgres_the_tests_are_skipped_with_the_reason(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "Postgres unavailable: nothing answers at" in result.stdout


@pytest.mark.timeout(120)
def test_ci_turns_a_missing_service_into_a_failure(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, {"LECTR_TEST_REQUIRE_SERVICES": "1"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout
    assert "Postgres unavailable" in result.stdout
