"""The event pipeline's settings, and every stop deadline derived from the same settings:
a proxy process's, its --workers parent's, and `lectr up`'s for each process."""

from __future__ import annotations

import pytest

from lectr import stack_commands
from lectr.settings import SettingsError
from proxy import shutdown
from proxy.settings import MIB, ProxySettings


def test_pipeline_settings_from_the_environment() -> None:
    settings = ProxySettings.from_env(
        {
            "LECTR_PROXY_BUFFER_BYTES": "1000000",
            "LECTR_PROXY_PUBLISH_BATCH_BYTES": "65536",
            "LECTR_PROXY_TEXT_CAP_BYTES": "4096",
            "LECTR_PROXY_BROKER_WAIT_S": "0.5",
            "LECTR_PROXY_SPOOL_DIR": "/var/lib/lectr/spool",
            "LECTR_PROXY_SPOOL_MAX_BYTES": "2048",
        }
    )
    assert (settings.buffer_bytes, settings.publish_batch_bytes) == (1_000_000, 65536)
    assert (settings.text_cap_bytes, settings.stream_text_cap) == (4096, 4096)
    assert settings.broker_wait_s == 0.5
    assert (settings.spool_dir, settings.spool_max_bytes) == ("/var/lib/lectr/spool", 2048)


def test_defaults_and_the_older_name_of_the_text_cap() -> None:
    settings = ProxySettings.from_env({"HOME": "/home/ada"})
    assert (settings.buffer_bytes, settings.publish_batch_bytes) == (64 * MIB, 4 * MIB)
    assert settings.text_cap_bytes == settings.stream_text_cap == MIB
    assert settings.spool_dir == "/home/ada/.local/state/lectr/spool"
    state = ProxySettings.from_env({"XDG_STATE_HOME": "/state"})
    assert state.spool_dir == "/state/lectr/spool"
    old = ProxySettings.from_env({"LECTR_PROXY_STREAM_TEXT_CAP": "1000"})
    assert old.text_cap_bytes == old.stream_text_cap == 1000
    both = {"LECTR_PROXY_STREAM_TEXT_CAP": "1000", "LECTR_PROXY_TEXT_CAP_BYTES": "2000"}
    assert ProxySettings.from_env(both).text_cap_bytes == 2000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LECTR_PROXY_BUFFER_BYTES", "0"),
        ("LECTR_PROXY_PUBLISH_BATCH_BYTES", "4MiB"),
        ("LECTR_PROXY_TEXT_CAP_BYTES", "-1"),
        ("LECTR_PROXY_BROKER_WAIT_S", "soon"),
        ("LECTR_PROXY_SPOOL_DIR", "  "),
        ("LECTR_PROXY_SPOOL_MAX_BYTES", "0"),
    ],
)
def test_bad_pipeline_settings_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ProxySettings.from_env({variable: value})
    assert caught.value.variable == variable


def test_every_stop_deadline_follows_the_proxy_settings() -> None:
    short = {"LECTR_PROXY_SHUTDOWN_TIMEOUT_S": "2", "LECTR_PROXY_BROKER_WAIT_S": "1"}
    process = shutdown.process_deadline_s(ProxySettings.from_env(short))
    # The grace, the broker wait, then bounded steps: no more than a few seconds.
    assert 2 + 1 < process <= 2 + 1 + 12
    long = shutdown.process_deadline_s(
        ProxySettings.from_env({"LECTR_PROXY_SHUTDOWN_TIMEOUT_S": "120"})
    )
    assert long - process == 120 - 2 + 5 - 1  # grace and broker wait count one for one

    # `lectr up` gives a proxy its deadline plus a margin, and one more for --workers.
    single = stack_commands.stop_deadline_s("proxy", short)
    with_workers = stack_commands.stop_deadline_s("proxy", {**short, "LECTR_PROXY_WORKERS": "4"})
    assert process < single < with_workers
    assert with_workers - single == shutdown.SUPERVISOR_MARGIN_S


def test_lectr_up_gives_the_consumer_its_shutdown_timeout_and_a_margin() -> None:
    deadline = stack_commands.stop_deadline_s
    assert deadline("consumer", {"LECTR_CONSUMER_SHUTDOWN_TIMEOUT_S": "90"}) > 90
    assert deadline("consumer", {}) == stack_commands.STOP_TIMEOUT_S  # 30 s and the margin
    # The scheduler says its own: its running jobs' shutdown timeout and a margin.
    assert deadline("scheduler", {"LECTR_SCHEDULER_SHUTDOWN_TIMEOUT_S": "100"}) > 100
