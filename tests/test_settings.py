from __future__ import annotations

import pytest

from lectr.settings import DEV_KEY_PEPPER, Settings, SettingsError, redact_url
from tests.support.cli import run_lectr


def test_defaults_work_on_a_single_machine() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/lectr"
    assert settings.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.proxy_port == 8080
    assert settings.api_port == 8081
    assert settings.broker_prefix == "lectr"
    assert settings.key_pepper == DEV_KEY_PEPPER


def test_values_are_read_and_parsed() -> None:
    settings = Settings.from_env(
        {
            "LECTR_DATABASE_URL": "postgresql://u:p@db:6543/gateway",
            "LECTR_PROXY_PORT": "9000",
            "LECTR_INGEST_DELIVERY_LIMIT": "7",
            "LECTR_LOG_LEVEL": "debug",
            "LECTR_KEY_PEPPER": "a-long-enough-pepper",
        }
    )
    assert settings.database_url == "postgresql://u:p@db:6543/gateway"
    assert settings.proxy_port == 9000
    assert settings.ingest_delivery_limit == 7
    assert settings.log_level == "DEBUG"
    assert settings.key_pepper == "a-long-enough-pepper"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LECTR_DATABASE_URL", "mysql://root@localhost/lectr"),
        ("LECTR_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"),
        ("LECTR_DATABASE_URL", "postgresql://postgres@127.0.0.1:notaport/lectr"),
        ("LECTR_AMQP_URL", "http://guest:guest@127.0.0.1:5672/"),
        ("LECTR_PROXY_PORT", "80800"),
        ("LECTR_API_PORT", "eighty"),
        ("LECTR_KEY_PEPPER", "short"),
        ("LECTR_ADMIN_SECRET", "short"),
        ("LECTR_BROKER_PREFIX", "has space"),
        ("LECTR_INGEST_DELIVERY_LIMIT", "0"),
        ("LECTR_REPLAY_MAX_AGE", "7 days"),
        ("LECTR_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_passwords_never_appear_in_errors() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LECTR_DATABASE_URL": "mysql://root:hunter2hunter2@db/lectr"})
    assert "hunter2hunter2" not in str(caught.value)
    assert redact_url("amqp://u:secret@h:1/") == "amqp://u:***@h:1/"


def test_cli_reports_a_bad_database_url_in_one_line(lectr_env: dict[str, str]) -> None:
    env = {**lectr_env, "LECTR_DATABASE_URL": "mysql://root:pw@127.0.0.1/lectr"}
    result = run_lectr("migrate", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lectr: LECTR_DATABASE_URL: ")
    assert "pw" not in lines[0].replace("postgresql", "")


@pytest.mark.parametrize("command", [("migrate",), ("org", "list"), ("key", "list", "x")])
def test_cli_reports_an_unreachable_database_in_one_line(
    lectr_env: dict[str, str], command: tuple[str, ...]
) -> None:
    env = {**lectr_env, "LECTR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/lectr"}
    result = run_lectr(*command, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "LECTR_DATABASE_URL" in lines[0]
    assert "127.0.0.1:1" in lines[0]
