"""The consumer's own settings."""

from __future__ import annotations

import pytest

from consumers.settings import ConsumerSettings
from lectr.settings import SettingsError


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
        }
    )
    assert settings == ConsumerSettings(500, 0.5, 1000, 4, 3, 10.0, 60.0, 15.0, 20.0)


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
