"""The consumer's own settings."""

from __future__ import annotations

import pytest

from consumers.settings import ConsumerSettings
from lectr.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = ConsumerSettings.from_env({})
    assert settings == ConsumerSettings()
    assert (settings.batch_size, settings.flush_interval_s) == (100, 5.0)
    assert settings.price_refresh_s == 300.0


def test_every_variable_is_read() -> None:
    settings = ConsumerSettings.from_env(
        {
            "LECTR_CONSUMER_BATCH_SIZE": "500",
            "LECTR_CONSUMER_FLUSH_INTERVAL_S": "0.5",
            "LECTR_CONSUMER_PREFETCH": "1000",
            "LECTR_CONSUMER_TOKENISE_THREADS": "4",
            "LECTR_CONSUMER_WRITERS": "3",
            "LECTR_CONSUMER_RETRY_BACKOFF_MAX_S": "10",
            "LECTR_CONSUMER_PRICE_REFRESH_S": "60",
            "LECTR_CONSUMER_HEALTH_INTERVAL_S": "15",
            "LECTR_CONSUMER_SHUTDOWN_TIMEOUT_S": "20",
            "LECTR_DEAD_RETENTION": "36h",
        }
    )
    assert settings == ConsumerSettings(
        500, 0.5, 1000, 4, 3, 10.0, 60.0, 15.0, 20.0, dead_retention_s=36 * 3600
    )


def test_a_restored_database_is_retried_within_seconds_by_default() -> None:
    assert ConsumerSettings().retry_backoff_max_s <= 4


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7D", 7 * 86_400), ("12h", 12 * 3_600), ("90m", 5_400), ("600s", 600), ("48", 48 * 3_600)],
)
def test_dead_letter_retention(value: str, seconds: int) -> None:
    assert ConsumerSettings.from_env({"LECTR_DEAD_RETENTION": value}).dead_retention_s == seconds
    assert ConsumerSettings().dead_retention_s == 7 * 86_400


@pytest.mark.parametrize("value", ["7 days", "0h", "50D", "-1"])
def test_a_bad_retention_names_its_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="LECTR_DEAD_RETENTION"):
        ConsumerSettings.from_env({"LECTR_DEAD_RETENTION": value})


def test_the_delivery_limit_stays_well_under_rabbitmq_4s_default_of_20() -> None:
    assert Settings.from_env({"LECTR_INGEST_DELIVERY_LIMIT": "15"}).ingest_delivery_limit == 15
    with pytest.raises(SettingsError, match=r"LECTR_INGEST_DELIVERY_LIMIT.*at most 15"):
        Settings.from_env({"LECTR_INGEST_DELIVERY_LIMIT": "20"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LECTR_CONSUMER_BATCH_SIZE", "0"),
        ("LECTR_CONSUMER_FLUSH_INTERVAL_S", "-1"),
        ("LECTR_CONSUMER_PREFETCH", "many"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        ConsumerSettings.from_env({variable: value})
